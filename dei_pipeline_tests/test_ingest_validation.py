"""Ingestion of CSV, Parquet and Excel files and the validation errors an analyst sees."""

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.ingest import (
    IngestError,
    RawFile,
    edition_files,
    ingest_edition,
    list_editions,
    read_wide,
    validate_edition_key,
)
from dei_pipeline.registry import load_registry, units
from dei_pipeline.scalars import number
from dei_pipeline.validation import IndicatorValidationError, Reference, validate_cells


def write_xlsx(table: pl.DataFrame, path: Path) -> None:
    """Write a sheet with openpyxl, the way a spreadsheet export looks (numbers as numbers)."""
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    workbook = Workbook()
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)  # a new workbook's one sheet
    sheet.append(table.columns)
    for row in table.iter_rows():
        sheet.append(list(row))
    workbook.save(path)


def reference(data_dir: Path, year: int) -> Reference:
    return Reference(
        {ut: resolve_framework(data_dir, ut, year).leaf_codes for ut in ("city", "county")},
        units(load_registry(data_dir)).select("unit_type", "unit_code", "name_zh"),
    )


def test_sample_editions_are_discovered(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory()
    assert list_editions(data_dir) == [2017, 2018, 2019, 2020]
    (data_dir / "raw" / "notes").mkdir()
    (data_dir / "raw" / "2021").mkdir()  # empty folder: not an edition yet
    assert list_editions(data_dir) == [2017, 2018, 2019, 2020]


@pytest.mark.parametrize("key", ["2020'; drop table x", "../2020", "20", "2020 ", "abcd"])
def test_edition_keys_are_four_digit_years(key: str) -> None:
    with pytest.raises(IngestError, match="is not a four-digit year"):
        validate_edition_key(key)


def test_csv_cells_keep_file_hash_and_line(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2019,))
    ingested = ingest_edition(data_dir, 2019)
    cells, files = ingested.cells, ingested.files
    assert [f.relative_path for f in files] == ["raw/2019/cities.csv", "raw/2019/counties.csv"]
    assert all(len(f.content_hash) == 64 for f in files)
    first_city = pl.read_csv(data_dir / "raw/2019/cities.csv", infer_schema=False).row(0, named=True)
    row = cells.filter(
        (pl.col("line_number") == 2)
        & (pl.col("unit_type") == "city")
        & (pl.col("indicator_code") == "infra_data_open")
    )
    assert row["unit_code"][0] == first_city["unit_code"]
    assert row["raw_value"][0] == first_city["infra_data_open"]
    assert cells.height == 113 * 46 + 100 * 32


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_parquet_and_excel_give_the_same_validated_scores(
    data_dir_factory: Callable[..., Path], suffix: str
) -> None:
    data_dir = data_dir_factory((2019,))
    expected = validate_cells(ingest_edition(data_dir, 2019).cells, reference(data_dir, 2019))
    csv_path = data_dir / "raw/2019/cities.csv"
    table = pl.read_csv(csv_path, schema_overrides={"unit_code": pl.String, "unit_name": pl.String})
    if suffix == ".parquet":
        table.write_parquet(csv_path.with_suffix(suffix))
    else:
        write_xlsx(table, csv_path.with_suffix(suffix))
    csv_path.unlink()
    ingested = ingest_edition(data_dir, 2019)
    cells, files = ingested.cells, ingested.files
    assert files[0].relative_path == f"raw/2019/cities{suffix}"
    got = validate_cells(cells, reference(data_dir, 2019))
    key = ["unit_type", "unit_code", "indicator_code"]
    joined = expected.join(got, on=key, suffix="_new")
    assert joined.height == expected.height
    assert number((joined["score"] - joined["score_new"]).abs().max()) < 1e-9
    assert got.filter(pl.col("unit_type") == "city")["line_number"].min() == 2


def _damage_member(workbook: bytes, member: str, damage: Callable[[bytes], bytes | None]) -> bytes:
    """The workbook's zip archive with ``member`` replaced by ``damage(content)`` (dropped on None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            changed = damage(content) if item.filename == member else content
            if changed is not None:
                target.writestr(item.filename, changed)
    return out.getvalue()


DAMAGED_XLSX: dict[str, Callable[[bytes], bytes]] = {
    "not a zip file": lambda _: b"unit_code,unit_name\n1,a\n",
    "truncated archive": lambda workbook: workbook[: len(workbook) // 2],
    "no content types": lambda workbook: _damage_member(workbook, "[Content_Types].xml", lambda _: None),
    "no workbook part": lambda workbook: _damage_member(workbook, "xl/workbook.xml", lambda _: None),
    "worksheet not XML": lambda workbook: _damage_member(
        workbook, "xl/worksheets/sheet1.xml", lambda content: content[: len(content) // 2]
    ),
    "number that is not one": lambda workbook: _damage_member(
        workbook, "xl/worksheets/sheet1.xml", lambda content: content.replace(b"<v>1</v>", b"<v>x</v>")
    ),
}


@pytest.mark.parametrize("damage", DAMAGED_XLSX.values(), ids=DAMAGED_XLSX.keys())
def test_a_damaged_workbook_is_a_file_error(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "cities.xlsx"
    write_xlsx(pl.DataFrame({"unit_code": ["C1"], "unit_name": ["a"], "x": [1]}), path)
    path.write_bytes(damage(path.read_bytes()))
    raw_file = RawFile(2020, "city", path, "raw/2020/cities.xlsx", "0" * 64)
    with pytest.raises(IngestError, match=r"breaks rule: file is a readable \.xlsx workbook \(\w+: "):
        read_wide(raw_file)


def test_two_files_for_one_unit_type_are_refused(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2019,))
    pl.read_csv(data_dir / "raw/2019/cities.csv").write_parquet(data_dir / "raw/2019/cities.parquet")
    with pytest.raises(IngestError, match="two files for unit type 'city': cities.csv and cities.parquet"):
        edition_files(data_dir, 2019)


def test_bad_cells_are_all_reported_with_file_line_column_value_rule(
    data_dir_factory: Callable[..., Path],
) -> None:
    data_dir = data_dir_factory((2019,))
    path = data_dir / "raw/2019/cities.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    column = header.index("infra_network_mobile")
    row3 = lines[2].split(",")
    row3[column] = "N/A"
    lines[2] = ",".join(row3)
    row5 = lines[4].split(",")
    row5[column] = "100.5"
    row5[1] = "不是这个城市"
    lines[4] = ",".join(row5)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IndicatorValidationError) as error:
        validate_cells(ingest_edition(data_dir, 2019).cells, reference(data_dir, 2019))
    message = str(error.value)
    assert (
        "raw/2019/cities.csv line 3, column infra_network_mobile: value 'N/A' breaks rule: score is a number"
        in message
    )
    assert (
        "raw/2019/cities.csv line 5, column infra_network_mobile: value '100.5' breaks rule: score is a number in [0, 100]"
        in message
    )
    assert (
        "raw/2019/cities.csv line 5, column unit_name: value '不是这个城市' breaks rule: unit_name matches the registry name"
        in message
    )
    assert error.value.failures.height == 3
    assert error.value.failures.columns == [
        "survey_year",
        "source_file",
        "line_number",
        "column_name",
        "value",
        "rule",
    ]


def test_missing_and_unknown_indicator_columns(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2019,))
    path = data_dir / "raw/2019/counties.csv"
    table = pl.read_csv(path, infer_schema=False).rename({"infra_ops_mechanism": "infra_ops_mechanisms"})
    table.write_csv(path)
    with pytest.raises(IndicatorValidationError) as error:
        validate_cells(ingest_edition(data_dir, 2019).cells, reference(data_dir, 2019))
    message = str(error.value)
    assert (
        "raw/2019/counties.csv line 1, column infra_ops_mechanism: value '' breaks rule: every indicator of the edition's framework has a column"
        in message
    )
    assert (
        "column infra_ops_mechanisms" in message
        and "column is an indicator of the edition's framework" in message
    )


def test_an_edition_mixes_measurement_and_score_files(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2020,))
    files = edition_files(data_dir, 2020)
    assert [(f.relative_path, f.value_kind) for f in files] == [
        ("raw/2020/cities_measurements.csv", "measurement"),
        ("raw/2020/counties.csv", "score"),
    ]
    cells = ingest_edition(data_dir, 2020).cells
    kinds = dict(cells.group_by("unit_type").agg(pl.col("value_kind").unique().first()).iter_rows())
    assert kinds == {"city": "measurement", "county": "score"}
    # A blank measurement is kept as an empty cell (missing), for the scoring stage to impute or not.
    assert cells.filter(pl.col("value_kind") == "measurement")["raw_value"].fill_null("").eq("").sum() == 3
    # Scores and measurements of one unit type in one edition: refused.
    (data_dir / "raw/2020/cities.csv").write_text("unit_code,unit_name\n", encoding="utf-8")
    with pytest.raises(IngestError, match="two files for unit type 'city'"):
        edition_files(data_dir, 2020)
