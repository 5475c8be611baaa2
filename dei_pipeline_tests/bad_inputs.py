"""The corpus of bad input: one case per problem an analyst's file can have.

Each case turns a copy of the good sample into a bad one (a small, readable edit of the file as an
analyst would make it, or a careless upload: a file gone, a link or folder in its place) and says what
the pipeline must do: refuse it with a message naming the file, line, column, value and rule (and
keep the bad cells in core.quarantine), or accept it with a documented meaning. ``test_bad_input.py``
runs every case through the Dagster job.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

CITIES = "raw/2020/cities.csv"
COUNTIES = "raw/2020/counties.csv"
COLUMN = "infra_network_mobile"  # any indicator column


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Path], None]
    accepted: bool = False
    # Every part must be in the failure message; "{line}" stands for the line of ``unit_row``'s row.
    message: tuple[str, ...] = ()
    # The quarantine rows expected, (line, column, value); line None = the line of ``unit_row``.
    quarantine: tuple[tuple[int | None, str, str], ...] | None = None
    unit_row: str = "杭州"
    failing_step: str | None = None
    partition_key: str = "2020"


# ------------------------------------------------------------------------------------------ helpers


def lines_of(data_dir: Path, relative: str) -> list[str]:
    return (data_dir / relative).read_text(encoding="utf-8").split("\n")


def write_lines(data_dir: Path, relative: str, lines: list[str], encoding: str = "utf-8") -> None:
    (data_dir / relative).write_bytes("\n".join(lines).encode(encoding))


def line_of(data_dir: Path, relative: str, unit_name: str) -> int:
    """The file line (header = 1) of a unit's row."""
    return 1 + next(i for i, line in enumerate(lines_of(data_dir, relative)) if f",{unit_name}," in line)


def set_cell(relative: str, unit_name: str, column: str, text: str) -> Callable[[Path], None]:
    """Replace one cell's text, keeping everything else of the file byte for byte."""

    def mutate(data_dir: Path) -> None:
        lines = lines_of(data_dir, relative)
        header = lines[0].split(",")
        index = line_of(data_dir, relative, unit_name) - 1
        fields = lines[index].split(",")
        fields[header.index(column)] = text
        lines[index] = ",".join(fields)
        write_lines(data_dir, relative, lines)

    return mutate


def edit_table(relative: str, edit: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        edit(pl.read_csv(data_dir / relative, infer_schema=False)).write_csv(data_dir / relative)

    return mutate


def edit_text(relative: str, edit: Callable[[str], str], encoding: str = "utf-8") -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        path = data_dir / relative
        path.write_bytes(edit(path.read_text(encoding="utf-8")).encode(encoding))

    return mutate


def to_xlsx(sheets: int = 1, merged_header: bool = False) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        table = pl.read_csv(data_dir / CITIES, infer_schema=False)
        workbook = Workbook()
        sheet = workbook.active
        assert isinstance(sheet, Worksheet)  # a new workbook's one sheet
        sheet.title = "scores"
        sheet.append(table.columns)
        for row in table.iter_rows():
            sheet.append([row[0], row[1], *(float(v) for v in row[2:])])
        if merged_header:
            sheet.insert_rows(1)
            sheet["C1"] = "数据及信息化基础设施"
            sheet.merge_cells("C1:K1")
        for extra in range(1, sheets):
            workbook.create_sheet(f"说明{extra}")
        workbook.save(data_dir / "raw/2020/cities.xlsx")
        (data_dir / CITIES).unlink()

    return mutate


def edit_framework(edit: Callable[[str], str]) -> Callable[[Path], None]:
    return edit_text("frameworks/city_2020.csv", edit)


def drop_gdp(unit_code: str, year: int) -> Callable[[Path], None]:
    return edit_table(
        "registry/city_gdp.csv",
        lambda t: t.filter(~((pl.col("unit_code") == unit_code) & (pl.col("year") == str(year)))),
    )


def header_and_first_rows(n: int) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        write_lines(data_dir, CITIES, lines_of(data_dir, CITIES)[:n])

    return mutate


def cut_mid_row(data_dir: Path) -> None:
    lines = lines_of(data_dir, CITIES)
    keep = lines[:40] + [lines[40][: len(lines[40]) // 3]]
    write_lines(data_dir, CITIES, keep)


def stray_blank_line(data_dir: Path) -> None:
    lines = lines_of(data_dir, CITIES)
    write_lines(data_dir, CITIES, lines[:10] + ["", "   "] + lines[10:])


def pad_with_spaces(data_dir: Path) -> None:
    lines = lines_of(data_dir, CITIES)
    padded = [lines[0]] + [
        ",".join(f" {cell} " if i < 3 else cell for i, cell in enumerate(line.split(","))) if line else line
        for line in lines[1:]
    ]
    write_lines(data_dir, CITIES, padded)


FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


def full_width_row(data_dir: Path) -> None:
    lines = lines_of(data_dir, CITIES)
    index = line_of(data_dir, CITIES, "杭州") - 1
    fields = lines[index].split(",")
    lines[index] = ",".join(
        [fields[0].translate(FULL_WIDTH), fields[1], *(f.translate(FULL_WIDTH) for f in fields[2:])]
    )
    write_lines(data_dir, CITIES, lines)


def reorder_columns(data_dir: Path) -> None:
    table = pl.read_csv(data_dir / CITIES, infer_schema=False)
    table.select(list(reversed(table.columns))).write_csv(data_dir / CITIES)


def empty_edition_folder(data_dir: Path) -> None:
    (data_dir / "raw" / "2021").mkdir()


def dangling_link(data_dir: Path) -> None:
    (data_dir / CITIES).unlink()
    (data_dir / CITIES).symlink_to("cities_2020_final.csv")  # a relative link to a file never copied


def folder_in_place(data_dir: Path) -> None:
    (data_dir / CITIES).unlink()
    (data_dir / CITIES).mkdir()


def link_outside(data_dir: Path) -> None:
    outside = data_dir.parent / "downloads" / "cities.csv"
    outside.parent.mkdir()
    (data_dir / CITIES).rename(outside)
    (data_dir / CITIES).symlink_to(outside)


def second_city_file(data_dir: Path) -> None:
    pl.read_csv(data_dir / CITIES, infer_schema=False).write_parquet(data_dir / "raw/2020/cities.parquet")


def delete_cities(data_dir: Path) -> None:
    (data_dir / CITIES).unlink()


def damage_first_byte_of(unit_name: str, encoding: str) -> Callable[[Path], None]:
    """The file in ``encoding``, with the first byte of ``unit_name`` (in its row) turned into 0xFF,
    a byte that neither UTF-8 nor GB18030 has."""

    def mutate(data_dir: Path) -> None:
        path = data_dir / CITIES
        raw = path.read_text(encoding="utf-8").encode(encoding)
        offset = damaged_offset(raw, unit_name, encoding)
        path.write_bytes(raw[:offset] + b"\xff" + raw[offset + 1 :])

    return mutate


def damaged_offset(raw: bytes, unit_name: str, encoding: str) -> int:
    return raw.index(f",{unit_name},".encode(encoding)) + 1


def edit_row(unit_name: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    """Rewrite one unit's row as text (for quoting mistakes the CSV writer would never make)."""

    def mutate(data_dir: Path) -> None:
        lines = lines_of(data_dir, CITIES)
        index = line_of(data_dir, CITIES, unit_name) - 1
        lines[index] = edit(lines[index])
        write_lines(data_dir, CITIES, lines)

    return mutate


# -------------------------------------------------------------------------------------------- cases


def _cell_case(name: str, text: str, rule: str, value: str | None = None) -> Case:
    """One bad cell in 杭州's row; ``value`` is the cell as read when it differs from the file text."""
    value = text if value is None else value
    return Case(
        name=name,
        mutate=set_cell(CITIES, "杭州", COLUMN, text),
        message=(f"{CITIES} line {{line}}, column {COLUMN}: value {value!r} breaks rule: {rule}",),
        quarantine=((None, COLUMN, value),),
        failing_step="indicator_scores",
    )


NOT_A_NUMBER = "score is a number (not empty, not text, not NaN)"
OUT_OF_RANGE = "score is a number in [0, 100]"
NOT_DECODABLE = "breaks rule: file is UTF-8, UTF-16 (with a BOM) or GB18030 text"
HUGE = "x" * 1_000_000
HOW_TO_CONFIRM = ("`dei materialize --years 2020 --confirm-removal`", "with the tag dei/confirm_removal=true")

CASES: list[Case] = [
    _cell_case("score above 100", "100.5", OUT_OF_RANGE),
    _cell_case("negative score", "-3.2", OUT_OF_RANGE),
    _cell_case("NaN", "NaN", NOT_A_NUMBER),
    _cell_case("infinite", "inf", OUT_OF_RANGE),
    _cell_case("N/A", "N/A", NOT_A_NUMBER),
    _cell_case("em dash", "—", NOT_A_NUMBER),
    _cell_case("decimal comma (quoted)", '"12,5"', NOT_A_NUMBER, value="12,5"),
    _cell_case("empty cell", "", NOT_A_NUMBER),
    Case(
        "duplicate unit row",
        edit_text(CITIES, lambda text: text + text.split("\n")[5] + "\n"),
        message=(
            "column unit_code: value '",
            "breaks rule: each unit appears once per file (duplicate unit row)",
        ),
        failing_step="indicator_scores",
    ),
    Case(
        "unknown unit code",
        edit_text(CITIES, lambda text: text.replace("330100,杭州,", "339999,杭州,")),
        message=(
            f"{CITIES} line {{line}}, column unit_code: value '339999' breaks rule: unit_code is a unit of the registry",
        ),
        quarantine=((None, "unit_code", "339999"),),
        failing_step="indicator_scores",
    ),
    Case(
        "unit name does not match its code",
        edit_text(CITIES, lambda text: text.replace("330100,杭州,", "330100,宁波,")),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '宁波' breaks rule: unit_name matches the registry name of unit_code",
        ),
        quarantine=((None, "unit_name", "宁波"),),
        failing_step="indicator_scores",
    ),
    Case(
        "missing indicator column",
        edit_table(CITIES, lambda t: t.drop(COLUMN)),
        message=(
            f"{CITIES} line 1, column {COLUMN}: value '' breaks rule: every indicator of the edition's framework has a column",
        ),
        quarantine=((1, COLUMN, ""),),
        failing_step="indicator_scores",
    ),
    Case(
        "unknown extra column",
        edit_table(CITIES, lambda t: t.with_columns(pl.lit("50").alias("infra_network_satellite"))),
        message=(
            f"{CITIES} line 1, column infra_network_satellite: value 'infra_network_satellite' breaks rule: column is an indicator of the edition's framework (unknown extra column)",
        ),
        quarantine=((1, "infra_network_satellite", "infra_network_satellite"),),
        failing_step="indicator_scores",
    ),
    Case("columns in another order", reorder_columns, accepted=True),
    Case(
        "empty file",
        edit_text(CITIES, lambda text: ""),
        message=(f"{CITIES} line 1: breaks rule: file is not empty (0 bytes)",),
        quarantine=((1, "", ""),),
        failing_step="raw_scores",
    ),
    Case(
        "header-only file",
        header_and_first_rows(1),
        message=(f"{CITIES} line 2: breaks rule: file has at least one unit row (it has a header only)",),
        failing_step="raw_scores",
    ),
    Case(
        "file cut off in the middle of a row",
        cut_mid_row,
        message=(f"{CITIES} line 41: breaks rule: every row has the header's 48 fields",),
        quarantine=((41, "", ""),),
        failing_step="raw_scores",
    ),
    Case("stray blank lines", stray_blank_line, accepted=True),
    Case("GBK (GB18030) encoding", edit_text(CITIES, lambda text: text, encoding="gb18030"), accepted=True),
    Case(
        "UTF-8 with a byte-order mark",
        edit_text(CITIES, lambda text: codecs.BOM_UTF8.decode("utf-8") + text),
        accepted=True,
    ),
    Case("spaces around codes and names", pad_with_spaces, accepted=True),
    Case("full-width digits and punctuation", full_width_row, accepted=True),
    Case("xlsx with one sheet", to_xlsx(), accepted=True),
    Case(
        "xlsx with several sheets",
        to_xlsx(sheets=2),
        message=(
            "raw/2020/cities.xlsx line 1: value 'scores, 说明1' breaks rule: workbook has exactly one sheet",
        ),
        failing_step="raw_scores",
    ),
    Case(
        "xlsx with merged header cells",
        to_xlsx(merged_header=True),
        message=("raw/2020/cities.xlsx line 1: value 'C1:K1' breaks rule: header cells are not merged",),
        failing_step="raw_scores",
    ),
    Case(
        "a value of 1 MB",
        set_cell(CITIES, "杭州", COLUMN, HUGE),
        message=(
            (
                f"{CITIES} line {{line}}, column {COLUMN}: value '{'x' * 60}'… (1,000,000 characters, the first 60 shown) "
                f"breaks rule: {NOT_A_NUMBER}"
            ),
        ),
        quarantine=((None, COLUMN, "x" * 60 + "… [1,000,000 characters]"),),
        failing_step="indicator_scores",
    ),
    Case(
        "a damaged byte in a UTF-8 file",
        damage_first_byte_of("杭州", "utf-8"),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '\ufffd\ufffd\ufffd州' {NOT_DECODABLE} (read as UTF-8, byte(s) 0xFF at byte offset ",
        ),
        quarantine=((None, "unit_name", "\ufffd\ufffd\ufffd州"),),
        failing_step="raw_scores",
    ),
    Case(
        "a damaged byte in a GB18030 file",
        damage_first_byte_of("杭州", "gb18030"),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '\ufffd",
            f"{NOT_DECODABLE} (read as GB18030, byte(s) 0xFF at byte offset ",
        ),
        failing_step="raw_scores",
    ),
    Case(
        "an unbalanced quote",
        edit_row("杭州", lambda row: row.replace(",杭州,", ',"杭州,')),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '\"杭州,",
            "breaks rule: every quote is closed (the quote that opens this cell never is",
        ),
        failing_step="raw_scores",
    ),
    Case(
        "a line break inside a quoted cell",
        edit_row("杭州", lambda row: row.replace(",杭州,", ',"杭\n州",')),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '杭\\n州' breaks rule: no line break inside a quoted cell (the cell quoted on line {{line}} runs on to line",
        ),
        quarantine=((None, "unit_name", "杭\n州"),),
        failing_step="raw_scores",
    ),
    Case(
        "text after a closing quote",
        edit_row("杭州", lambda row: row.replace(",杭州,", ',"杭州"市,')),
        message=(
            f"{CITIES} line {{line}}, column unit_name: value '杭州市' breaks rule: a quoted cell ends at its closing quote",
        ),
        failing_step="raw_scores",
    ),
    Case(
        "raw file is a dangling link",
        dangling_link,
        message=(f"{CITIES}: is a symbolic link to cities_2020_final.csv, which does not exist",),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "a folder in place of the raw file",
        folder_in_place,
        message=(f"{CITIES}: is a folder, not a file",),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "raw file is a link leading outside the data directory",
        link_outside,
        message=("cities.csv: leads outside the data directory",),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "two files for one unit type",
        second_city_file,
        message=("two files for unit type 'city': cities.csv and cities.parquet",),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "raw file deleted (every city of the edition would go)",
        delete_cities,
        message=(
            "this run would remove all 148 cities of edition 2020 from the warehouse and the BI snapshot (no raw file of cities was read",
            "Units that would be lost: 110000 北京, ",
            ", … and 138 more.",
            *HOW_TO_CONFIRM,
        ),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "raw file cut to its first ten rows (most cities would go)",
        header_and_first_rows(11),
        message=(
            "this run would remove 138 of the 148 cities (93%) of edition 2020",
            "raw/2020/cities.csv now hold(s) only 10 of them",
            "removal.max_share",
            *HOW_TO_CONFIRM,
        ),
        quarantine=(),
        failing_step="raw_scores",
    ),
    Case(
        "framework weights do not sum to 1",
        edit_framework(
            lambda text: text.replace(
                "infra_network_security,infra_network,信息安全,Information security,0.30",
                "infra_network_security,infra_network,信息安全,Information security,0.35",
            )
        ),
        message=(
            "frameworks/city_2020.csv: weights of the children of 'infra_network'",
            "sum to 1.05, not 1",
        ),
    ),
    Case(
        "framework node without parent",
        edit_framework(
            lambda text: text.replace("infra_data_open,infra_data,", "infra_data_open,infra_dta,")
        ),
        message=("node 'infra_data_open': parent 'infra_dta' is not defined (orphan node)",),
    ),
    Case(
        "framework cycle",
        edit_framework(
            lambda text: text.replace("infra,,数据及信息化基础设施", "infra,infra_ops,数据及信息化基础设施")
        ),
        message=("cycle in parent links",),
    ),
    Case(
        "a level-3 indicator that no raw file provides",
        edit_framework(
            lambda text: text.replace(
                "infra_ops_mechanism,infra_ops,运营机制,Operating mechanism,0.50",
                "infra_ops_mechanism,infra_ops,运营机制,Operating mechanism,0.25\ninfra_ops_talent,infra_ops,人才,Talent,0.25",
            )
        ),
        message=(
            f"{CITIES} line 1, column infra_ops_talent: value '' breaks rule: every indicator of the edition's framework has a column",
        ),
        failing_step="indicator_scores",
    ),
    Case(
        "region member without GDP for the chosen year",
        drop_gdp("110000", 2019),
        message=(
            "region jingjinji: member 110000 has no GDP for year 2019 (vintage revised)",
            "Nothing of edition(s) 2020 was written",
        ),
        failing_step="indicator_scores",
    ),
]
