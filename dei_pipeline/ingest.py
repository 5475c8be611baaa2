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
  fields than the header (a file cut off in the middle of a row), a byte that the file's encoding
  cannot decode (its line, column and byte offset), a quote that is never closed or a line break inside
  a quoted cell (the line where the quoted cell starts), a header without unit_code or unit_name, a
  blank or duplicate column name, a workbook with several sheets or merged header cells, a raw file
  name that is not a readable regular file (a dangling link, a folder), and any path that leads outside
  the data directory.

Values quoted in messages and kept in the quarantine are cut to :data:`MAX_SHOWN_CHARS` characters,
with their size, so that a runaway cell cannot flood a terminal or the Dagster event log.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import polars as pl

from dei_pipeline.warehouse import TABLES

EDITION_PATTERN = re.compile(r"^\d{4}$")
UNIT_TYPE_BY_STEM: dict[str, str] = {"cities": "city", "counties": "county"}
# A unit type's file holds either scores (cities.csv) or measurements in natural units
# (cities_measurements.csv), which the scoring stage turns into scores (dei_pipeline/scoring/).
MEASUREMENT_SUFFIX = "_measurements"


def stem_kind(stem: str) -> tuple[str, str] | None:
    """(unit_type, value_kind) of a raw file's stem, or None when it is not a raw file's name."""
    if stem in UNIT_TYPE_BY_STEM:
        return UNIT_TYPE_BY_STEM[stem], "score"
    if stem.endswith(MEASUREMENT_SUFFIX) and stem[: -len(MEASUREMENT_SUFFIX)] in UNIT_TYPE_BY_STEM:
        return UNIT_TYPE_BY_STEM[stem[: -len(MEASUREMENT_SUFFIX)]], "measurement"
    return None


READERS_BY_SUFFIX: tuple[str, ...] = (".csv", ".parquet", ".xlsx")
ID_COLUMNS: tuple[str, ...] = ("unit_code", "unit_name")
# Byte-order marks, checked longest first; without one, UTF-8 is tried before GB18030.
BOM_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

RAW_SCHEMA: pl.Schema = TABLES["staging.raw_scores"].polars_schema()
# Line ends as a text editor counts them (and as the CSV reader below splits lines).
LINE_END = re.compile(r"\r\n|\r|\n")
MAX_SHOWN_CHARS = 60

# The quarantine rows a failure carries; the time is added when they are recorded.
QUARANTINE_SCHEMA: pl.Schema = TABLES["core.quarantine"].polars_schema(exclude=["recorded_at"])


class IngestError(ValueError):
    """An edition folder or raw file that cannot be read. ``failures`` holds the quarantine rows
    (file, line, column, value, rule) when the problem is in a file."""

    def __init__(self, message: str, failures: pl.DataFrame | None = None) -> None:
        super().__init__(message)
        self.failures = failures if failures is not None else pl.DataFrame(schema=QUARANTINE_SCHEMA)


def cut(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value as kept in core.quarantine: whole when short, else its first ``limit`` characters and its size."""
    return value if len(value) <= limit else f"{value[:limit]}… [{len(value):,} characters]"


def shown(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value as quoted in a message (repr, so that control characters are visible), cut like :func:`cut`."""
    return (
        repr(value)
        if len(value) <= limit
        else f"{value[:limit]!r}… ({len(value):,} characters, the first {limit} shown)"
    )


@dataclass(frozen=True)
class RawFile:
    survey_year: int
    unit_type: str
    path: Path
    relative_path: str
    content_hash: str
    value_kind: str = "score"  # 'score' (0-100) or 'measurement' (natural units)


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


def _raw_paths(folder: Path) -> dict[Path, tuple[str, str]]:
    """The folder's raw files, in name order, each with its (unit_type, value_kind)."""
    # Whatever the entry is: a dangling link or a folder under a raw file's name is refused by
    # edition_files, not skipped (skipping it would empty the unit type's part of the edition).
    return {
        path: kind
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in READERS_BY_SUFFIX and (kind := stem_kind(path.stem)) is not None
    }


def _file_error(raw_file: RawFile, line: int, column: str, value: str, rule: str) -> IngestError:
    failure = pl.DataFrame(
        {
            "survey_year": [raw_file.survey_year],
            "source_file": [raw_file.relative_path],
            "line_number": [line],
            "column_name": [column],
            "value": [cut(value)],
            "rule": [rule],
        },
        schema=QUARANTINE_SCHEMA,
    )
    where = f"{raw_file.relative_path} line {line}" + (f", column {column}" if column else "")
    quoted = f"value {shown(value)} " if value else ""
    return IngestError(f"{where}: {quoted}breaks rule: {rule}", failure)


def edition_files(data_dir: Path, survey_year: int) -> list[RawFile]:
    """The raw files of one edition; one per unit type, all inside the data directory."""
    root = data_dir.resolve()
    folder = data_dir / "raw" / f"{survey_year:04d}"
    if not folder.is_dir():
        raise IngestError(f"{folder}: edition folder does not exist")
    paths = _raw_paths(folder)
    if not paths:
        raise IngestError(
            f"{folder}: edition folder holds no raw file (expected cities.csv|.parquet|.xlsx and/or counties.*, "
            "or cities_measurements.* / counties_measurements.*)"
        )
    by_type: dict[str, tuple[Path, str]] = {}
    for path, (unit_type, value_kind) in paths.items():
        _check_regular_file(path, data_dir, root)
        if unit_type in by_type:
            raise IngestError(
                f"{folder}: two files for unit type '{unit_type}': {by_type[unit_type][0].name} and {path.name}"
            )
        by_type[unit_type] = (path, value_kind)
    return [
        RawFile(
            survey_year=survey_year,
            unit_type=unit_type,
            path=path,
            relative_path=path.relative_to(data_dir).as_posix(),
            content_hash=_content_hash(path, data_dir),
            value_kind=value_kind,
        )
        for unit_type, (path, value_kind) in sorted(by_type.items())
    ]


def _check_regular_file(path: Path, data_dir: Path, root: Path) -> None:
    """A raw file's name must lead to a regular file inside the data directory: anything else is
    refused, naming it, rather than read as an absent file."""
    relative = path.relative_to(data_dir).as_posix()
    if path.is_symlink() and not path.exists():
        raise IngestError(
            f"{relative}: is a symbolic link to {os.readlink(path)}, which does not exist (or is a loop of links); "
            "restore the file or remove the link"
        )
    if not path.resolve().is_relative_to(root):
        raise IngestError(f"{path}: leads outside the data directory {root} (a link?); refused")
    if path.is_dir():
        raise IngestError(f"{relative}: is a folder, not a file; a raw file must be a regular file")
    if not path.is_file():
        raise IngestError(
            f"{relative}: is not a regular file (a device, pipe or socket?); a raw file must be a regular file"
        )


def _content_hash(path: Path, data_dir: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise IngestError(
            f"{path.relative_to(data_dir).as_posix()}: cannot be read ({error.strerror})"
        ) from None


def decode_text(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a CSV export: a BOM decides; else UTF-8; else GB18030 (a superset of GBK).

    Text that does not decode raises the UnicodeDecodeError of the encoding it was written in, so
    that the error is at the bad byte: UTF-8 when most of its non-ASCII characters are valid UTF-8 (a
    UTF-8 file with a damaged byte, which GB18030 would otherwise turn into nonsense or fail on
    somewhere else), else GB18030."""
    for bom, encoding in BOM_ENCODINGS:
        if raw.startswith(bom):
            return raw.decode(encoding), encoding
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        if _mostly_utf8(raw):
            raise utf8_error from None
    return raw.decode("gb18030"), "gb18030"


def _mostly_utf8(raw: bytes) -> bool:
    # A GBK/GB18030 text read as UTF-8 has far more invalid sequences than valid characters (the
    # 2020 sample: 474 to 70); a UTF-8 text with one damaged byte has one or two among hundreds.
    text = raw.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return non_ascii - invalid > invalid


def _read_csv(raw_file: RawFile) -> WideTable:
    raw = raw_file.path.read_bytes()
    try:
        text, encoding = decode_text(raw)
    except UnicodeDecodeError as error:
        raise _undecodable(raw_file, raw, error) from None
    # Exports of numbers rarely quote anything: without a quote, a line is a row and a comma a field
    # boundary, read vectorised; with quotes, the csv module reads record by record.
    header, cells = _read_unquoted(raw_file, text) if '"' not in text else _read_quoted(raw_file, text)
    return WideTable(cells, header, encoding)


def _read_unquoted(raw_file: RawFile, text: str) -> tuple[list[str], pl.DataFrame]:
    lines = pl.Series("line", LINE_END.split(text), dtype=pl.String)
    kept = (
        lines.str.strip_chars().str.len_chars() > 0
    )  # blank lines are skipped; line numbers still count them
    line_numbers = (kept.arg_true() + 1).cast(pl.Int64)
    records = lines.filter(kept)
    if records.len() == 0:
        raise _file_error(raw_file, 1, "", "", "file is not empty (it has no header and no rows)")
    header = str(records[0]).split(",")
    _check_header(raw_file, header)
    ragged = (records.str.count_matches(",", literal=True) + 1 != len(header)).arg_true()
    if ragged.len():
        index = int(ragged[0])
        raise _ragged_row(raw_file, int(line_numbers[index]), len(header), str(records[index]).count(",") + 1)
    cells = (
        records.slice(1).str.split_exact(",", len(header) - 1).struct.rename_fields(header).struct.unnest()
    )
    return header, cells.with_columns(line_numbers.slice(1).alias("line_number"))


def _read_quoted(raw_file: RawFile, text: str) -> tuple[list[str], pl.DataFrame]:
    # The csv module caps a field at 128 Ki characters; an overlong cell is for validation to show
    # (cut), not a parse error. Raising the process-wide cap only ever widens it.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    start = 1  # the line where the record being read starts
    try:
        for row in reader:
            end, record_start, start = reader.line_num, start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line; line numbers still count it
            if end > record_start:
                raise _line_break_in_quotes(raw_file, header, row, record_start, end)
            if header is None:
                header = row
                _check_header(raw_file, header)
            elif len(row) != len(header):
                raise _ragged_row(raw_file, record_start, len(header), len(row))
            else:
                rows.append(row)
                line_numbers.append(record_start)
    except csv.Error as error:
        raise _quoting_error(raw_file, text, header, start, reader.line_num, str(error)) from None
    if header is None:
        raise _file_error(raw_file, 1, "", "", "file is not empty (it has no header and no rows)")
    cells = pl.DataFrame(rows, schema={name: pl.String for name in header}, orient="row")
    return header, cells.with_columns(pl.Series("line_number", line_numbers, dtype=pl.Int64))


def _ragged_row(raw_file: RawFile, line: int, expected: int, found: int) -> IngestError:
    return _file_error(
        raw_file,
        line,
        "",
        "",
        f"every row has the header's {expected} fields (this row has {found}: a file cut off in the middle of a row?)",
    )


def _quote_cells(line: str) -> list[str]:
    """The cells of one line, read leniently (for messages about a line the strict reader refused)."""
    return next(csv.reader([line]), [])


def _column_name(header: list[str] | None, index: int) -> str:
    return header[index] if header is not None and index < len(header) else f"#{index + 1}"


class QuoteState(NamedTuple):
    """How one CSV line stands with its quotes: the 0-based field where it ends, where a quote is
    still open at its end (field and character position), and which field has text right after its
    closing quote."""

    field: int
    open_field: int | None
    open_at: int | None
    text_after_quote: int | None


def _quote_state(line: str) -> QuoteState:
    # Read as the csv module reads it: a quote opens a cell only at the cell's start; "" inside quotes is a quote.
    field, open_at, position = 0, None, 0
    while position < len(line):
        char = line[position]
        if open_at is not None and char == '"':
            if line.startswith('"', position + 1):
                position += 1  # an escaped quote
            else:
                open_at = None
                if position + 1 < len(line) and line[position + 1] not in ",\r\n":
                    return QuoteState(field, None, None, field)
        elif open_at is None and char == '"' and (position == 0 or line[position - 1] == ","):
            open_at = position
        elif open_at is None and char == ",":
            field += 1
        position += 1
    return QuoteState(field, None if open_at is None else field, open_at, None)


def _line_break_in_quotes(
    raw_file: RawFile, header: list[str] | None, row: list[str], start: int, end: int
) -> IngestError:
    index = next(i for i, cell in enumerate(row) if "\n" in cell or "\r" in cell)
    return _file_error(
        raw_file,
        start,
        _column_name(header, index),
        row[index],
        f"no line break inside a quoted cell (the cell quoted on line {start} runs on to line {end}: "
        "a line break typed into the cell, or a quote left open)",
    )


def _quoting_error(
    raw_file: RawFile, text: str, header: list[str] | None, start: int, at: int, reason: str
) -> IngestError:
    """A quoting problem the csv module stopped at, located at the line where the record starts."""
    lines = LINE_END.split(text)
    line = lines[start - 1] if start <= len(lines) else ""
    state = _quote_state(line)
    if state.open_field is not None and state.open_at is not None and reason == "unexpected end of data":
        return _file_error(
            raw_file,
            start,
            _column_name(header, state.open_field),
            line[state.open_at :],
            "every quote is closed (the quote that opens this cell never is: everything after it, to the "
            "end of the file, would be this one cell)",
        )
    if state.text_after_quote is not None:
        return _file_error(
            raw_file,
            start,
            _column_name(header, state.text_after_quote),
            _quote_cells(line)[state.text_after_quote],
            "a quoted cell ends at its closing quote (text follows it: a stray quote inside the cell?)",
        )
    return _file_error(raw_file, at, "", "", f"file is readable CSV ({cut(reason, 200)})")


def _undecodable(raw_file: RawFile, raw: bytes, error: UnicodeDecodeError) -> IngestError:
    """The first byte the file's encoding cannot decode: its line, column, cell and byte offset."""
    before = LINE_END.split(raw[: error.start].decode(error.encoding, errors="replace").lstrip("\ufeff"))
    header = _quote_cells(before[0]) if len(before) > 1 else None
    line_text = before[-1]
    field = _quote_state(line_text).field
    # The cell as far as it can be read, the bad bytes as U+FFFD (exact unless the cell holds a quoted comma).
    rest = LINE_END.split(
        raw[error.start : error.start + 4 * MAX_SHOWN_CHARS].decode(error.encoding, errors="replace")
    )[0]
    value = line_text[line_text.rfind(",") + 1 :] + rest.split(",")[0]
    byte_list = " ".join(f"0x{byte:02X}" for byte in raw[error.start : error.end])
    return _file_error(
        raw_file,
        len(before),
        _column_name(header, field),
        value,
        f"file is UTF-8, UTF-16 (with a BOM) or GB18030 text (read as {error.encoding.upper()}, "
        f"byte(s) {byte_list} at byte offset {error.start:,} of the file cannot be decoded)",
    )


def _read_xlsx(raw_file: RawFile) -> WideTable:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(raw_file.path, read_only=False, data_only=True)
    # What openpyxl raises for a damaged workbook: the file is not a zip archive or its members do not
    # inflate, a part is missing, a part is not XML (ParseError is a SyntaxError) or holds values of the
    # wrong kind, or it is a format openpyxl does not read.
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        KeyError,
        AttributeError,
        IndexError,
        SyntaxError,
        ValueError,
        TypeError,
        InvalidFileException,
    ) as exc:
        raise _file_error(
            raw_file,
            1,
            "",
            "",
            f"file is a readable .xlsx workbook ({type(exc).__name__}: {cut(str(exc), 200)})",
        ) from None
    if len(workbook.sheetnames) != 1:
        raise _file_error(
            raw_file,
            1,
            "",
            ", ".join(workbook.sheetnames),
            "workbook has exactly one sheet (keep only the data sheet)",
        )
    sheet = workbook.worksheets[0]
    merged_in_header = [str(cells) for cells in sheet.merged_cells.ranges if cells.min_row == 1]
    if merged_in_header:
        raise _file_error(
            raw_file,
            1,
            "",
            ", ".join(merged_in_header),
            "header cells are not merged (one column name per column)",
        )
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    numbered = [
        (number, row)
        for number, row in enumerate(rows, start=1)
        if any(cell not in (None, "") for cell in row)
    ]
    if not numbered:
        raise _file_error(raw_file, 1, "", "", "sheet is not empty")
    header = ["" if cell is None else str(cell) for cell in numbered[0][1]]
    _check_header(raw_file, header)
    columns = {
        name: [_cell_text(row[i]) if i < len(row) else None for _, row in numbered[1:]]
        for i, name in enumerate(header)
    }
    table = pl.DataFrame(columns, schema={name: pl.String for name in header})
    return WideTable(
        table.with_columns(pl.Series("line_number", [n for n, _ in numbered[1:]], dtype=pl.Int64)),
        header,
        "xlsx",
    )


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
        raise _file_error(raw_file, 1, "", "", f"file is readable Parquet ({cut(str(exc), 200)})") from None
    # Parquet has no lines: row k (1-based) is reported as line k + 1, as if the header were line 1.
    return WideTable(
        table.with_columns(pl.all().cast(pl.String))
        .with_row_index("line_number", offset=2)
        .with_columns(pl.col("line_number").cast(pl.Int64)),
        table.columns,
        "parquet",
    )


def _check_header(raw_file: RawFile, header: list[str]) -> None:
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if not name:
            raise _file_error(
                raw_file, 1, f"#{position}", "", "every column has a name (merged or blank header cell?)"
            )
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
    table = wide.cells.rename(
        {name: unicodedata.normalize("NFKC", name).strip() for name in wide.cells.columns}
    )
    if table.height == 0:
        raise _file_error(raw_file, 2, "", "", "file has at least one unit row (it has a header only)")
    normalised = table.with_columns(pl.exclude("line_number").str.normalize("NFKC").str.strip_chars())
    return WideTable(normalised, header, wide.encoding)


def to_long(raw_file: RawFile, wide: pl.DataFrame) -> pl.DataFrame:
    """One row per (unit row, indicator column) cell, values still text."""
    indicator_columns = [c for c in wide.columns if c not in (*ID_COLUMNS, "line_number")]
    return (
        wide.unpivot(
            index=["line_number", *ID_COLUMNS],
            on=indicator_columns,
            variable_name="indicator_code",
            value_name="raw_value",
        )
        .with_columns(
            pl.lit(raw_file.survey_year, pl.Int32).alias("survey_year"),
            pl.lit(raw_file.unit_type).alias("unit_type"),
            pl.lit(raw_file.relative_path).alias("source_file"),
            pl.lit(raw_file.content_hash).alias("content_hash"),
            pl.lit(raw_file.value_kind).alias("value_kind"),
        )
        .select(list(RAW_SCHEMA))
        .cast(RAW_SCHEMA)
    )


@dataclass(frozen=True)
class IngestedEdition:
    cells: pl.DataFrame
    files: list[RawFile]
    encodings: dict[str, str]  # relative path -> encoding used

    @property
    def survey_year(self) -> int:
        return self.files[0].survey_year


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
        raise IngestError(
            "\n".join(str(error) for error in errors), pl.concat([error.failures for error in errors])
        )
    return IngestedEdition(pl.concat(frames), files, encodings)
