"""Raw ingestion: an edition's files as they are, with lineage.

An edition is a folder ``data/raw/<YYYY>/`` holding one file per unit type (``cities`` and
``counties``) as CSV, Parquet or Excel (.xlsx). Every cell is kept as text at this stage, with the
source file, its content hash and the row's line number, so that validation can point at the exact
cell of the exact file.

What arrives from analysts is forgiven where the meaning is unambiguous, and refused otherwise:

- CSV in UTF-8, UTF-8 with a BOM, UTF-16 with a BOM, or GB18030/GBK (Chinese Excel exports) is
  decoded; the encoding used is recorded. Blank lines are skipped, and line numbers still count them.
- Spaces around codes, names and values are ignored, and full-width digits, letters and punctuation
  (８５．５) are read as their ASCII forms (Unicode NFKC).
- Columns may come in any order.
- Refused with the file, line and reason: an empty file, a header-only file, a row with more or fewer
  fields than the header (a file cut off in the middle of a row), a header without unit_code or
  unit_name, a blank or duplicate column name, a workbook with several sheets or merged header cells,
  and any path that leads outside the data directory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import polars as pl

EDITION_PATTERN = re.compile(r"^\d{4}$")
UNIT_TYPE_BY_STEM: dict[str, str] = {"cities": "city", "counties": "county"}
READERS_BY_SUFFIX: tuple[str, ...] = (".csv", ".parquet", ".xlsx")
ID_COLUMNS: tuple[str, ...] = ("unit_code", "unit_name")
# Byte-order marks, checked longest first; without one, UTF-8 is tried before GB18030.
BOM_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)

RAW_SCHEMA: dict[str, pl.DataType] = {
    "survey_year": pl.Int32(),
    "unit_type": pl.String(),
    "source_file": pl.String(),
    "content_hash": pl.String(),
    "line_number": pl.Int64(),
    "unit_code": pl.String(),
    "unit_name": pl.String(),
    "indicator_code": pl.String(),
    "raw_value": pl.String(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "survey_year": pl.Int32(), "source_file": pl.String(), "line_number": pl.Int64(),
    "column_name": pl.String(), "value": pl.String(), "rule": pl.String(),
}


class IngestError(ValueError):
    """An edition folder or raw file that cannot be read. ``failures`` holds the quarantine rows
    (file, line, column, value, rule) when the problem is in a file."""

    def __init__(self, message: str, failures: pl.DataFrame | None = None) -> None:
        super().__init__(message)
        self.failures = failures if failures is not None else pl.DataFrame(schema=QUARANTINE_SCHEMA)


@dataclass(frozen=True)
class RawFile:
    survey_year: int
    unit_type: str
    path: Path
    relative_path: str
    content_hash: str


@dataclass(frozen=True)
class WideTable:
    """A raw file as text cells, with ``line_number`` per row, its header as written and how it was
    decoded."""

    cells: pl.DataFrame
    header: list[str]
    encoding: str


def validate_edition_key(key: str) -> int:
    """An edition key is a four-digit year and nothing else (it ends up in paths and SQL)."""
    if not EDITION_PATTERN.fullmatch(key):
        raise IngestError(f"edition key {key!r} is not a four-digit year")
    return int(key)


def list_editions(data_dir: Path) -> list[int]:
    """Editions present under ``data/raw/``: four-digit folders holding at least one raw file."""
    raw_dir = data_dir / "raw"
    if not raw_dir.is_dir():
        return []
    return sorted(
        int(folder.name)
        for folder in raw_dir.iterdir()
        if folder.is_dir() and EDITION_PATTERN.fullmatch(folder.name) and _raw_paths(folder)
    )


def _raw_paths(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.stem in UNIT_TYPE_BY_STEM and path.suffix.lower() in READERS_BY_SUFFIX
    )


def _file_error(raw_file: RawFile, line: int, column: str, value: str, rule: str) -> IngestError:
    failure = pl.DataFrame(
        {"survey_year": [raw_file.survey_year], "source_file": [raw_file.relative_path], "line_number": [line],
         "column_name": [column], "value": [value], "rule": [rule]},
        schema=QUARANTINE_SCHEMA,
    )
    where = f"{raw_file.relative_path} line {line}" + (f", column {column}" if column else "")
    shown = f"value {value!r} " if value else ""
    return IngestError(f"{where}: {shown}breaks rule: {rule}", failure)


def edition_files(data_dir: Path, survey_year: int) -> list[RawFile]:
    """The raw files of one edition; one per unit type, all inside the data directory."""
    root = data_dir.resolve()
    folder = data_dir / "raw" / f"{survey_year:04d}"
    if not folder.is_dir():
        raise IngestError(f"{folder}: edition folder does not exist")
    paths = _raw_paths(folder)
    if not paths:
        raise IngestError(f"{folder}: edition folder holds no raw file (expected cities.csv|.parquet|.xlsx and/or counties.*)")
    by_type: dict[str, Path] = {}
    for path in paths:
        if not path.resolve().is_relative_to(root):
            raise IngestError(f"{path}: leads outside the data directory {root} (a link?); refused")
        unit_type = UNIT_TYPE_BY_STEM[path.stem]
        if unit_type in by_type:
            raise IngestError(f"{folder}: two files for unit type '{unit_type}': {by_type[unit_type].name} and {path.name}")
        by_type[unit_type] = path
    return [
        RawFile(
            survey_year=survey_year,
            unit_type=unit_type,
            path=path,
            relative_path=path.relative_to(data_dir).as_posix(),
            content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for unit_type, path in sorted(by_type.items())
    ]


def decode_text(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a CSV export: a BOM decides; else UTF-8; else GB18030 (a superset of GBK)."""
    for bom, encoding in BOM_ENCODINGS:
        if raw.startswith(bom):
            return raw.decode(encoding), encoding
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("gb18030"), "gb18030"


def _read_csv(raw_file: RawFile) -> WideTable:
    raw = raw_file.path.read_bytes()
    try:
        text, encoding = decode_text(raw)
    except UnicodeDecodeError as exc:
        raise _file_error(raw_file, 1, "", "", f"file is UTF-8, UTF-16 or GB18030 text (undecodable byte at offset {exc.start})") from None
    lines = pl.Series("line", text.splitlines(), dtype=pl.String)
    # Line numbers of the non-blank lines, so that a stray blank line does not shift later rows.
    kept = lines.str.strip_chars().str.len_chars() > 0
    line_numbers = (kept.arg_true() + 1).cast(pl.Int64)
    if line_numbers.len() == 0:
        raise _file_error(raw_file, 1, "", "", "file is not empty (it has no header and no rows)")
    records = lines.filter(kept)
    header_fields = records[0].count(",") + 1 if '"' not in records[0] else None
    if header_fields is not None:
        ragged = records.str.count_matches(",") + 1 != header_fields
        plain = ~records.str.contains('"', literal=True)
        bad = (ragged & plain).arg_true()
        if bad.len():
            index = int(bad[0])
            fields = records[index].count(",") + 1
            raise _file_error(raw_file, int(line_numbers[index]), "", "",
                              f"every row has the header's {header_fields} fields (this row has {fields}: a file cut off in the middle of a row?)")
    header = next(csv.reader([records[0]]))
    _check_header(raw_file, header)
    try:
        table = pl.read_csv(io.StringIO("\n".join(records.to_list())), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise _file_error(raw_file, 1, "", "", f"file is readable CSV ({exc})") from None
    if table.height != records.len() - 1:
        raise _file_error(raw_file, 1, "", "", "no line break inside a quoted cell (rows and lines must match)")
    return WideTable(table.with_columns(line_numbers.slice(1).alias("line_number")), header, encoding)


def _read_xlsx(raw_file: RawFile) -> WideTable:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(raw_file.path, read_only=False, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise _file_error(raw_file, 1, "", "", f"file is a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    if len(workbook.sheetnames) != 1:
        raise _file_error(raw_file, 1, "", ", ".join(workbook.sheetnames),
                          "workbook has exactly one sheet (keep only the data sheet)")
    sheet = workbook.worksheets[0]
    merged_in_header = [str(cells) for cells in sheet.merged_cells.ranges if cells.min_row == 1]
    if merged_in_header:
        raise _file_error(raw_file, 1, "", ", ".join(merged_in_header), "header cells are not merged (one column name per column)")
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(cell not in (None, "") for cell in row)]
    if not numbered:
        raise _file_error(raw_file, 1, "", "", "sheet is not empty")
    header = ["" if cell is None else str(cell) for cell in numbered[0][1]]
    _check_header(raw_file, header)
    columns = {name: [_cell_text(row[i]) if i < len(row) else None for _, row in numbered[1:]] for i, name in enumerate(header)}
    table = pl.DataFrame(columns, schema={name: pl.String for name in header})
    return WideTable(table.with_columns(pl.Series("line_number", [n for n, _ in numbered[1:]], dtype=pl.Int64)), header, "xlsx")


def _cell_text(value: object) -> str | None:
    # Whole numbers typed into a spreadsheet come back as int or as float like 85.0; keep them readable.
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_parquet(raw_file: RawFile) -> WideTable:
    try:
        table = pl.read_parquet(raw_file.path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _file_error(raw_file, 1, "", "", f"file is readable Parquet ({exc})") from None
    # Parquet has no lines: row k (1-based) is reported as line k + 1, as if the header were line 1.
    return WideTable(
        table.with_columns(pl.all().cast(pl.String)).with_row_index("line_number", offset=2).with_columns(pl.col("line_number").cast(pl.Int64)),
        table.columns,
        "parquet",
    )


def _check_header(raw_file: RawFile, header: list[str]) -> None:
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if not name:
            raise _file_error(raw_file, 1, f"#{position}", "", "every column has a name (merged or blank header cell?)")
        if names.count(name) > 1:
            raise _file_error(raw_file, 1, name, name, "column names are unique")
    missing = [column for column in ID_COLUMNS if column not in names]
    if missing:
        raise _file_error(raw_file, 1, missing[0], "", f"the header has the columns {', '.join(ID_COLUMNS)}")


def read_wide(raw_file: RawFile) -> WideTable:
    """The file as a table of text cells plus ``line_number`` (header = line 1), values normalised
    (spaces trimmed, full-width forms folded by NFKC)."""
    suffix = raw_file.path.suffix.lower()
    if raw_file.path.stat().st_size == 0:
        raise _file_error(raw_file, 1, "", "", "file is not empty (0 bytes)")
    reader = {".csv": _read_csv, ".parquet": _read_parquet, ".xlsx": _read_xlsx}[suffix]
    wide = reader(raw_file)
    header = [unicodedata.normalize("NFKC", name).strip() for name in wide.header]
    _check_header(raw_file, header)
    table = wide.cells.rename({name: unicodedata.normalize("NFKC", name).strip() for name in wide.cells.columns})
    if table.height == 0:
        raise _file_error(raw_file, 2, "", "", "file has at least one unit row (it has a header only)")
    normalised = table.with_columns(pl.exclude("line_number").str.normalize("NFKC").str.strip_chars())
    return WideTable(normalised, header, wide.encoding)


def to_long(raw_file: RawFile, wide: pl.DataFrame) -> pl.DataFrame:
    """One row per (unit row, indicator column) cell, values still text."""
    indicator_columns = [c for c in wide.columns if c not in (*ID_COLUMNS, "line_number")]
    return (
        wide.unpivot(index=["line_number", *ID_COLUMNS], on=indicator_columns, variable_name="indicator_code", value_name="raw_value")
        .with_columns(
            pl.lit(raw_file.survey_year, pl.Int32).alias("survey_year"),
            pl.lit(raw_file.unit_type).alias("unit_type"),
            pl.lit(raw_file.relative_path).alias("source_file"),
            pl.lit(raw_file.content_hash).alias("content_hash"),
        )
        .select(list(RAW_SCHEMA))
        .cast(RAW_SCHEMA)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class IngestedEdition:
    cells: pl.DataFrame
    files: list[RawFile]
    encodings: dict[str, str]  # relative path -> encoding used


def ingest_edition(data_dir: Path, survey_year: int) -> IngestedEdition:
    """All raw cells of one edition in long form, the files they came from and their encodings.
    Every unreadable file of the edition is reported, not only the first."""
    files = edition_files(data_dir, survey_year)
    frames, encodings, errors = [], {}, []
    for raw_file in files:
        try:
            wide = read_wide(raw_file)
        except IngestError as error:
            errors.append(error)
            continue
        encodings[raw_file.relative_path] = wide.encoding
        frames.append(to_long(raw_file, wide.cells))
    if errors:
        raise IngestError("\n".join(str(error) for error in errors), pl.concat([error.failures for error in errors]))
    return IngestedEdition(pl.concat(frames), files, encodings)
