"""Validation of an edition's indicator cells with pandera (polars backend).

The checks: every value is a number in [0, 100] (not NaN, not infinite, not text), every unit code is
a known unit of its type whose name matches the registry, every indicator is a leaf of the edition's
framework, each (unit, indicator) appears once, and every leaf is provided for every unit type that
has a file. A failure names the file, the line, the column, the value (cut to a readable length) and
the rule, and every failing cell is returned for the quarantine table, so an analyst can fix them all
in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandera.polars as pa
import polars as pl

from dei_pipeline.ingest import QUARANTINE_SCHEMA, cut, shown
from dei_pipeline.warehouse import TABLES

if TYPE_CHECKING:
    from dei_pipeline.frameworks import Framework

VALID_SCHEMA: pl.Schema = TABLES["core.indicator_scores"].polars_schema()
MAX_ERRORS_IN_MESSAGE = 20


class IndicatorValidationError(ValueError):
    """Bad input cells; ``failures`` holds every one of them (the quarantine rows)."""

    def __init__(self, message: str, failures: pl.DataFrame) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass(frozen=True)
class Reference:
    """What an edition's cells are checked against."""

    leaf_codes: dict[str, list[str]]  # unit_type -> the framework's leaf codes
    unit_names: pl.DataFrame  # unit_type, unit_code, name_zh


MEASUREMENT_RULE = (
    "measurement is a number or blank (any sign and size; blank = missing; not text, NaN or infinite)"
)


def cells_schema(
    reference: Reference, score_min: float, score_max: float, value_kind: str = "score"
) -> pa.DataFrameSchema:
    """The pandera schema of the long cell table (one row per unit and indicator). Scores are numbers
    in [score_min, score_max]; measurements (``value_kind`` 'measurement') are numbers of any sign
    and size, or blank (missing)."""
    value_columns = (
        {
            "score": pa.Column(
                VALID_SCHEMA["score"],
                pa.Check.in_range(
                    score_min, score_max, error=f"score is a number in [{score_min:g}, {score_max:g}]"
                ),
                nullable=False,
            )
        }
        if value_kind == "score"
        else {
            "score": pa.Column(VALID_SCHEMA["score"], nullable=True),
            "readable": pa.Column(bool, pa.Check.eq(True, error=MEASUREMENT_RULE), nullable=False),
        }
    )
    all_leaves = sorted({code for codes in reference.leaf_codes.values() for code in codes})
    # Dtypes as the table has them; known_unit and name_matches are flags of the check, not table columns.
    return pa.DataFrameSchema(
        {
            "unit_type": pa.Column(
                VALID_SCHEMA["unit_type"], pa.Check.isin(sorted(reference.leaf_codes)), nullable=False
            ),
            "unit_code": pa.Column(
                VALID_SCHEMA["unit_code"],
                pa.Check.str_matches(r"^\d{6}$", error="unit_code is a 6-digit GB/T 2260 code"),
                nullable=False,
            ),
            "indicator_code": pa.Column(
                VALID_SCHEMA["indicator_code"],
                pa.Check.isin(all_leaves, error="column is an indicator of the edition's framework"),
                nullable=False,
            ),
            **value_columns,
            "known_unit": pa.Column(
                bool, pa.Check.eq(True, error="unit_code is a unit of the registry"), nullable=False
            ),
            "name_matches": pa.Column(
                bool,
                pa.Check.eq(True, error="unit_name matches the registry name of unit_code"),
                nullable=False,
            ),
        },
        # The table's key within the edition being validated.
        unique=[name for name in TABLES["core.indicator_scores"].key if name != "survey_year"],
        report_duplicates="all",
    )


def _prepared(cells: pl.DataFrame, reference: Reference) -> pl.DataFrame:
    trimmed = cells.with_columns(pl.col("unit_code", "unit_name", "raw_value").str.strip_chars())
    value = pl.col("raw_value").cast(pl.Float64, strict=False)
    return trimmed.join(reference.unit_names, on=["unit_type", "unit_code"], how="left").with_columns(
        value.alias("score"),
        (pl.col("raw_value").fill_null("").eq("") | (value.is_not_null() & value.is_finite())).alias(
            "readable"
        ),
        pl.col("name_zh").is_not_null().alias("known_unit"),
        (pl.col("name_zh").is_null() | (pl.col("name_zh") == pl.col("unit_name"))).alias("name_matches"),
    )


def _failures_from_pandera(prepared: pl.DataFrame, errors: pa.errors.SchemaErrors) -> pl.DataFrame:
    """Pandera's failure cases located in the raw files: which cell (line and column) holds what."""
    cases = errors.failure_cases.filter(pl.col("index").is_not_null())
    located = cases.join(
        prepared.with_row_index("index").with_columns(pl.col("index").cast(pl.Int32)), on="index", how="left"
    )
    column, check = pl.col("column"), pl.col("check")
    duplicate = check == "multiple_fields_uniqueness"
    unknown_column = column == "indicator_code"
    return located.select(
        "survey_year",
        "source_file",
        # An unknown column is one problem of the header, not one per row.
        pl.when(unknown_column)
        .then(pl.lit(1, pl.Int64))
        .otherwise(pl.col("line_number"))
        .alias("line_number"),
        pl.when(duplicate | (column == "known_unit") | (column == "unit_code"))
        .then(pl.lit("unit_code"))
        .when(column == "name_matches")
        .then(pl.lit("unit_name"))
        .otherwise(pl.col("indicator_code"))
        .alias("column_name"),
        pl.when(duplicate | (column == "known_unit") | (column == "unit_code"))
        .then(pl.col("unit_code"))
        .when(column == "name_matches")
        .then(pl.col("unit_name"))
        .when(column == "readable")
        .then(pl.col("raw_value"))
        .when(unknown_column)
        .then(pl.col("indicator_code"))
        .otherwise(pl.col("raw_value"))
        .fill_null("")
        .alias("value"),
        pl.when(duplicate)
        .then(pl.lit("each unit appears once per file (duplicate unit row)"))
        .when(unknown_column)
        .then(pl.lit("column is an indicator of the edition's framework (unknown extra column)"))
        .when((column == "score") & (check == "not_nullable"))
        .then(pl.lit("score is a number (not empty, not text, not NaN)"))
        .when(check == "not_nullable")
        .then(pl.concat_str(column, pl.lit(" is not empty")))
        .otherwise(check)
        .alias("rule"),
        # The unit whose row holds the cell (not for a problem of the header), for the message.
        pl.when(unknown_column)
        .then(None)
        .otherwise(pl.concat_str(pl.col("unit_code"), pl.lit(" "), pl.col("unit_name").fill_null("")))
        .alias("unit"),
    )


def _missing_indicator_failures(prepared: pl.DataFrame, reference: Reference) -> pl.DataFrame:
    """A leaf that a unit type's file does not provide at all is a missing column."""
    present = prepared.group_by("survey_year", "unit_type", "source_file").agg(
        pl.col("indicator_code").unique()
    )
    expected = pl.DataFrame(
        {"unit_type": list(reference.leaf_codes), "expected": list(reference.leaf_codes.values())},
        schema={"unit_type": pl.String, "expected": pl.List(pl.String)},
    )
    return (
        present.join(expected, on="unit_type")
        .with_columns(pl.col("expected").list.set_difference(pl.col("indicator_code")).alias("missing"))
        .explode("missing")
        .drop_nulls("missing")
        .select(
            "survey_year",
            "source_file",
            pl.lit(1, pl.Int64).alias("line_number"),
            pl.col("missing").alias("column_name"),
            pl.lit("").alias("value"),
            pl.lit(
                "every indicator of the edition's framework has a column (missing indicator column)"
            ).alias("rule"),
        )
    )


def validate_cells(
    cells: pl.DataFrame,
    reference: Reference,
    score_min: float = 0.0,
    score_max: float = 100.0,
    value_kind: str = "score",
) -> pl.DataFrame:
    """The validated indicator table, or :class:`IndicatorValidationError` listing every bad cell.
    With ``value_kind`` 'measurement' the cells are measurements: ``score`` holds the measurement
    (null where the cell is blank)."""
    prepared = _prepared(cells, reference)
    failures = _missing_indicator_failures(prepared, reference)
    try:
        cells_schema(reference, score_min, score_max, value_kind).validate(prepared, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = pl.concat([failures, _failures_from_pandera(prepared, errors)], how="diagonal")
    # One row per bad cell (NaN breaks both "is a number" and the range; the first rule says it).
    failures = failures.unique(
        ["source_file", "line_number", "column_name"], keep="first", maintain_order=True
    ).sort("source_file", "line_number", "column_name")
    if failures.height:
        # The quarantine keeps values cut to a readable length, as the message shows them.
        kept = (
            failures.select(list(QUARANTINE_SCHEMA))
            .cast(QUARANTINE_SCHEMA)
            .with_columns(pl.col("value").map_elements(cut, return_dtype=pl.String))
        )
        raise IndicatorValidationError(format_failures(failures), kept)
    return prepared.select(list(VALID_SCHEMA)).cast(VALID_SCHEMA)


def measurement_method_failures(
    cells: pl.DataFrame, frameworks: Mapping[str, Framework], year: int
) -> IndicatorValidationError | None:
    """What the scoring stage needs beyond valid cells (:func:`validate_cells` with value_kind
    'measurement'): a method for every indicator of a measurement file, and positive measurements
    where an indicator is normalised on a log scale."""
    rows: list[dict[str, object]] = []

    def failure(source_file: str, line: int, column: str, value: str, rule: str, unit: str | None) -> None:
        rows.append(
            {
                "survey_year": year,
                "source_file": source_file,
                "line_number": line,
                "column_name": column,
                "value": value,
                "rule": rule,
                "unit": unit,
            }
        )

    for unit_type, fw in frameworks.items():
        source = cells.filter(pl.col("unit_type") == unit_type)
        if fw.methods is None:
            unmethodical = fw.leaf_codes
        else:
            unmethodical = fw.methods.filter(pl.col("normalisation").is_null())["indicator_code"].to_list()
        for code in unmethodical:
            failure(
                source["source_file"][0],
                1,
                code,
                "",
                f"a measured indicator has a normalisation in its framework file {fw.source_file.name} "
                "(method columns, data/frameworks/README.md)",
                None,
            )
        if fw.methods is not None:
            logged = fw.methods.filter(pl.col("log"))["indicator_code"].to_list()
            bad = source.filter(pl.col("indicator_code").is_in(logged) & (pl.col("score") <= 0))
            for r in bad.iter_rows(named=True):
                failure(
                    r["source_file"],
                    r["line_number"],
                    r["indicator_code"],
                    repr(r["score"]),
                    "measurement is > 0 (the indicator is normalised on a log scale)",
                    r["unit_code"],
                )
    if not rows:
        return None
    failures = pl.DataFrame(rows, schema={**QUARANTINE_SCHEMA, "unit": pl.String()})
    return IndicatorValidationError(format_failures(failures), failures.select(list(QUARANTINE_SCHEMA)))


def format_failures(failures: pl.DataFrame) -> str:
    """One line per bad cell: file, line, column, value and rule, then the unit of the row when the
    failures name it (column ``unit``)."""
    listed = failures.head(MAX_ERRORS_IN_MESSAGE).iter_rows(named=True)
    lines = [
        f"  {row['source_file']} line {row['line_number']}, column {row['column_name']}: value {shown(row['value'])} breaks rule: {row['rule']}"
        + (f" (unit {row['unit'].strip()})" if row.get("unit") else "")
        for row in listed
    ]
    more = failures.height - MAX_ERRORS_IN_MESSAGE
    if more > 0:
        lines.append(f"  ... and {more} more (all are in the quarantine table core.quarantine)")
    return f"{failures.height} invalid cell(s) in the raw files:\n" + "\n".join(lines)
