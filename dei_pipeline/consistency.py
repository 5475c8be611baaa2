"""Do the editions in the warehouse agree with each other? A comparison, a tier count or an analysis
figure of one edition restates figures of the index (of its own edition or of the previous one with
data); after a rerun of one edition, what was not brought up to date no longer does. Each function
returns the disagreements as rows (mart, edition, unit, item, expected, found): none means consistent.
The exports publish nothing while any is found."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dei_pipeline.comparisons import previous_editions
from dei_pipeline.warehouse import UNIT_CODE, YEAR

# Scores are recomputed from the same inputs by the same code: anything beyond float noise is a change.
TOLERANCE = 1e-9
# A disagreement names the mart and its key (edition and unit, typed as the tables have them); the
# figures compared are shown as text, whatever their type.
DISAGREEMENT_SCHEMA = pl.Schema(
    {
        "mart": pl.String(),
        "survey_year": YEAR.dtype,
        "unit_code": UNIT_CODE.dtype,
        "item": pl.String(),
        "expected": pl.String(),
        "found": pl.String(),
    }
)


def _differs(found: str, expected: str) -> pl.Expr:
    """Null on one side only; numbers further apart than the tolerance; unequal text."""
    a, b = pl.col(found), pl.col(expected)
    numbers_apart = (a.cast(pl.Float64, strict=False) - b.cast(pl.Float64, strict=False)).abs() > TOLERANCE
    text_differs = a.cast(pl.String) != b.cast(pl.String)
    return (a.is_null() != b.is_null()) | (
        a.is_not_null() & b.is_not_null() & pl.coalesce(numbers_apart, text_differs)
    )


def _disagreements(rows: pl.DataFrame, mart: str, item: str, found: str, expected: str) -> pl.DataFrame:
    return rows.filter(_differs(found, expected)).select(
        pl.lit(mart).alias("mart"),
        pl.col("survey_year").cast(YEAR.dtype),
        pl.col("unit_code").cast(UNIT_CODE.dtype),
        pl.lit(item).alias("item"),
        pl.col(expected).cast(pl.String).alias("expected"),
        pl.col(found).cast(pl.String).alias("found"),
    )


def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    return (
        pl.concat([f.cast(DISAGREEMENT_SCHEMA) for f in frames])
        if frames
        else pl.DataFrame(schema=DISAGREEMENT_SCHEMA)
    )


def comparisons_against_index(
    mart: str, changes: pl.DataFrame, index: pl.DataFrame, compared: Sequence[str] = ("score", "rank")
) -> pl.DataFrame:
    """A yoy mart (``changes``: survey_year, unit_code, prev_year, status and ``compared`` columns now
    and ``prev_``) against the index it was computed from (survey_year, unit_code and ``compared``):
    the previous edition is the latest earlier one with data, every unit of the index is there, and
    the figures now and then are the index's."""
    years = previous_editions(index["survey_year"].unique().to_list())
    editions = changes.select("survey_year").unique().join(years, on="survey_year", how="left")
    wrong_previous = (
        changes.select("survey_year", "prev_year")
        .unique()
        .join(
            editions.rename({"prev_year": "expected_prev_year"}),
            on="survey_year",
            how="left",
        )
        .with_columns(pl.lit(None, pl.String).alias("unit_code"))
    )
    listed = changes.filter(pl.col("status") != "dropped").select("survey_year", "unit_code")
    missing = (
        index.filter(pl.col("survey_year").is_in(changes["survey_year"].unique().implode()))
        .select("survey_year", "unit_code")
        .join(listed, on=["survey_year", "unit_code"], how="anti")
        .with_columns(pl.lit("listed").alias("expected"), pl.lit(None, pl.String).alias("found"))
    )
    now = changes.filter(pl.col("status") != "dropped").join(
        index.select("survey_year", "unit_code", *compared),
        on=["survey_year", "unit_code"],
        how="left",
        suffix="_index",
    )
    before = changes.filter(pl.col("status") != "new").join(
        index.select(
            pl.col("survey_year").alias("prev_year"),
            "unit_code",
            *[pl.col(c).alias(f"prev_{c}_index") for c in compared],
        ),
        on=["prev_year", "unit_code"],
        how="left",
    )
    return _concat(
        [
            _disagreements(
                wrong_previous, mart, "previous edition with data", "prev_year", "expected_prev_year"
            ),
            _disagreements(missing, mart, "unit of the index", "found", "expected"),
            *[_disagreements(now, mart, column, column, f"{column}_index") for column in compared],
            *[
                _disagreements(before, mart, f"prev_{column}", f"prev_{column}", f"prev_{column}_index")
                for column in compared
            ],
        ]
    )


def tier_counts_against_index(tier_summary: pl.DataFrame, city_index: pl.DataFrame) -> pl.DataFrame:
    """marts.tier_summary's counts, now and in the previous edition, against marts.city_index."""
    counts = city_index.group_by("survey_year", "tier").len("n_index")
    rows = (
        tier_summary.join(counts, on=["survey_year", "tier"], how="left")
        .join(
            counts.rename({"survey_year": "prev_year", "n_index": "prev_n_index"}),
            on=["prev_year", "tier"],
            how="left",
        )
        .with_columns(
            pl.col("n_index").fill_null(0),
            pl.when(pl.col("prev_year").is_not_null()).then(pl.col("prev_n_index").fill_null(0)),
            pl.col("tier").alias("unit_code"),
        )
    )
    return _concat(
        [
            _disagreements(rows, "marts.tier_summary", "cities in tier", "n_cities", "n_index"),
            _disagreements(
                rows,
                "marts.tier_summary",
                "cities in tier, previous edition",
                "prev_n_cities",
                "prev_n_index",
            ),
        ]
    )


def analysis_against_index(rank_uncertainty: pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    """marts.rank_uncertainty's nominal score and rank against the index (survey_year, unit_type,
    unit_code, score, rank), for the editions the analysis covers."""
    covered = index.filter(pl.col("survey_year").is_in(rank_uncertainty["survey_year"].unique().implode()))
    rows = covered.join(
        rank_uncertainty, on=["survey_year", "unit_type", "unit_code"], how="full", coalesce=True
    )
    return _concat(
        [
            _disagreements(rows, "marts.rank_uncertainty", "nominal score", "nominal_score", "score"),
            _disagreements(rows, "marts.rank_uncertainty", "nominal rank", "nominal_rank", "rank"),
        ]
    )
