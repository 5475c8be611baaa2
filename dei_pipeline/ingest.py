"""Raw ingestion: an edition's files as they are, with lineage.

An edition is a folder ``data/raw/<YYYY>/`` holding one file per unit type (``cities`` and
``counties``) as CSV, Parquet or Excel (.xlsx). Every cell is kept as text at this stage, with the
source file, its content hash and the row's line number, so that validation can point at the exact
cell of the exact file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

EDITION_PATTERN = re.compile(r"^\d{4}$")
UNIT_TYPE_BY_STEM: dict[str, str] = {"cities": "city", "counties": "county"}
READERS_BY_SUFFIX: tuple[str, ...] = (".csv", ".parquet", ".xlsx")
ID_COLUMNS: tuple[str, ...] = ("unit_code", "unit_name")

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


class IngestError(ValueError):
    """A raw file or edition folder that cannot be read; the message names the path and the reason."""


@dataclass(frozen=True)
class RawFile:
    survey_year: int
    unit_type: str
    path: Path
    relative_path: str
    content_hash: str


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


def edition_files(data_dir: Path, survey_year: int) -> list[RawFile]:
    """The raw files of one edition; one per unit type."""
    folder = data_dir / "raw" / f"{survey_year:04d}"
    if not folder.is_dir():
        raise IngestError(f"{folder}: edition folder does not exist")
    paths = _raw_paths(folder)
    if not paths:
        raise IngestError(f"{folder}: edition folder holds no raw file (expected cities.csv|.parquet|.xlsx and/or counties.*)")
    by_type: dict[str, Path] = {}
    for path in paths:
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


def read_wide(raw_file: RawFile) -> pl.DataFrame:
    """The file as a table of text cells plus ``line_number`` (the row's line in a CSV, its row in a
    sheet, counting the header as 1)."""
    suffix = raw_file.path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pl.read_csv(raw_file.path, infer_schema=False, encoding="utf8")
        elif suffix == ".parquet":
            table = pl.read_parquet(raw_file.path)
            table = table.with_columns(pl.all().cast(pl.String))
        else:
            table = pl.read_excel(raw_file.path, infer_schema_length=0)
            table = table.with_columns(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise IngestError(f"{raw_file.relative_path}: cannot be read as {suffix[1:]} ({exc})") from exc
    missing = [column for column in ID_COLUMNS if column not in table.columns]
    if missing:
        raise IngestError(f"{raw_file.relative_path}: missing column(s) {', '.join(missing)}")
    return table.with_row_index("line_number", offset=2).with_columns(pl.col("line_number").cast(pl.Int64))


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


def ingest_edition(data_dir: Path, survey_year: int) -> tuple[pl.DataFrame, list[RawFile]]:
    """All raw cells of one edition in long form, and the files they came from."""
    files = edition_files(data_dir, survey_year)
    frames = [to_long(raw_file, read_wide(raw_file)) for raw_file in files]
    return pl.concat(frames), files

