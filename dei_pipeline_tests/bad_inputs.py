"""The corpus of bad input: one case per problem an analyst's file can have.

Each case turns a copy of the good sample into a bad one (a small, readable edit of the file as an
analyst would make it) and says what the pipeline must do: refuse it with a message naming the file,
line, column, value and rule (and keep the bad cells in core.quarantine), or accept it with a
documented meaning. ``test_bad_input.py`` runs every case through the Dagster job.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from openpyxl import Workbook

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
    extra_partitions: tuple[str, ...] = field(default_factory=tuple)


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
    return edit_table("registry/city_gdp.csv", lambda t: t.filter(~((pl.col("unit_code") == unit_code) & (pl.col("year") == str(year)))))


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
    padded = [lines[0]] + [",".join(f" {cell} " if i < 3 else cell for i, cell in enumerate(line.split(","))) if line else line for line in lines[1:]]
    write_lines(data_dir, CITIES, padded)


FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


def full_width_row(data_dir: Path) -> None:
    lines = lines_of(data_dir, CITIES)
    index = line_of(data_dir, CITIES, "杭州") - 1
    fields = lines[index].split(",")
    lines[index] = ",".join([fields[0].translate(FULL_WIDTH), fields[1], *(f.translate(FULL_WIDTH) for f in fields[2:])])
    write_lines(data_dir, CITIES, lines)


def reorder_columns(data_dir: Path) -> None:
    table = pl.read_csv(data_dir / CITIES, infer_schema=False)
    table.select(list(reversed(table.columns))).write_csv(data_dir / CITIES)


def empty_edition_folder(data_dir: Path) -> None:
    (data_dir / "raw" / "2021").mkdir()


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
        message=("column unit_code: value '", "breaks rule: each unit appears once per file (duplicate unit row)"),
        failing_step="indicator_scores",
    ),
    Case(
        "unknown unit code",
        edit_text(CITIES, lambda text: text.replace("330100,杭州,", "339999,杭州,")),
        message=(f"{CITIES} line {{line}}, column unit_code: value '339999' breaks rule: unit_code is a unit of the registry",),
        quarantine=((None, "unit_code", "339999"),),
        failing_step="indicator_scores",
    ),
    Case(
        "unit name does not match its code",
        edit_text(CITIES, lambda text: text.replace("330100,杭州,", "330100,宁波,")),
        message=(f"{CITIES} line {{line}}, column unit_name: value '宁波' breaks rule: unit_name matches the registry name of unit_code",),
        quarantine=((None, "unit_name", "宁波"),),
        failing_step="indicator_scores",
    ),
    Case(
        "missing indicator column",
        edit_table(CITIES, lambda t: t.drop(COLUMN)),
        message=(f"{CITIES} line 1, column {COLUMN}: value '' breaks rule: every indicator of the edition's framework has a column",),
        quarantine=((1, COLUMN, ""),),
        failing_step="indicator_scores",
    ),
    Case(
        "unknown extra column",
        edit_table(CITIES, lambda t: t.with_columns(pl.lit("50").alias("infra_network_satellite"))),
        message=(f"{CITIES} line 1, column infra_network_satellite: value 'infra_network_satellite' breaks rule: column is an indicator of the edition's framework (unknown extra column)",),
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
    Case("UTF-8 with a byte-order mark", edit_text(CITIES, lambda text: codecs.BOM_UTF8.decode("utf-8") + text), accepted=True),
    Case("spaces around codes and names", pad_with_spaces, accepted=True),
    Case("full-width digits and punctuation", full_width_row, accepted=True),
    Case("xlsx with one sheet", to_xlsx(), accepted=True),
    Case(
        "xlsx with several sheets",
        to_xlsx(sheets=2),
        message=("raw/2020/cities.xlsx line 1: value 'scores, 说明1' breaks rule: workbook has exactly one sheet",),
        failing_step="raw_scores",
    ),
    Case(
        "xlsx with merged header cells",
        to_xlsx(merged_header=True),
        message=("raw/2020/cities.xlsx line 1: value 'C1:K1' breaks rule: header cells are not merged",),
        failing_step="raw_scores",
    ),
    Case(
        "framework weights do not sum to 1",
        edit_framework(lambda text: text.replace("infra_network_security,infra_network,信息安全,Information security,0.30", "infra_network_security,infra_network,信息安全,Information security,0.35")),
        message=("frameworks/city_2020.csv: weights of the children of 'infra_network'", "sum to 1.05, not 1"),
    ),
    Case(
        "framework node without parent",
        edit_framework(lambda text: text.replace("infra_data_open,infra_data,", "infra_data_open,infra_dta,")),
        message=("node 'infra_data_open': parent 'infra_dta' is not defined (orphan node)",),
    ),
    Case(
        "framework cycle",
        edit_framework(lambda text: text.replace("infra,,数据及信息化基础设施", "infra,infra_ops,数据及信息化基础设施")),
        message=("cycle in parent links",),
    ),
    Case(
        "a level-3 indicator that no raw file provides",
        edit_framework(lambda text: text.replace(
            "infra_ops_mechanism,infra_ops,运营机制,Operating mechanism,0.50",
            "infra_ops_mechanism,infra_ops,运营机制,Operating mechanism,0.25\ninfra_ops_talent,infra_ops,人才,Talent,0.25")),
        message=(f"{CITIES} line 1, column infra_ops_talent: value '' breaks rule: every indicator of the edition's framework has a column",),
        failing_step="indicator_scores",
    ),
    Case(
        "region member without GDP for the chosen year",
        drop_gdp("110000", 2019),
        message=("region jingjinji: member 110000 has no GDP for year 2019 (vintage revised)", "Nothing of edition(s) 2020 was written"),
        failing_step="indicator_scores",
    ),
    Case(
        "edition folder without files",
        empty_edition_folder,
        message=("raw/2021: edition folder holds no raw file",),
        partition_key="2021",
        extra_partitions=("2021",),
    ),
    Case(
        "edition key with SQL in it",
        lambda data_dir: None,
        message=("edition key \"2020'; drop table x\" is not a four-digit year",),
        partition_key="2020'; drop table x",
        extra_partitions=("2020'; drop table x",),
    ),
    Case(
        "edition key with a path in it",
        lambda data_dir: None,
        message=("edition key '../2020' is not a four-digit year",),
        partition_key="../2020",
        extra_partitions=("../2020",),
    ),
]
