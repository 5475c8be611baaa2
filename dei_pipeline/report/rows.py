"""The warehouse rows one edition's report is made of: the only module of the report that reads DuckDB.

Everything downstream (figures, charts, HTML) is a pure function of an ``EditionRows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from dei_pipeline.warehouse import read_table

# The analysis's Monte Carlo over weights and aggregation method, whose 5th and 95th percentile of each
# city's simulated rank the report shows. The mart is another asset's, which the report depends on.
RANK_UNCERTAINTY_TABLE = "marts.rank_uncertainty"


@dataclass(frozen=True)
class RankIntervals:
    """Rank intervals per city (``unit_code``, ``rank_low``, ``rank_high``) with a sentence saying
    where they come from; ``rows`` is None when the mart has none for the edition."""

    rows: pl.DataFrame | None
    note: str


@dataclass(frozen=True)
class EditionRows:
    """One edition's marts as stored, plus the reference tables that name their codes."""

    survey_year: int
    previous_year: int | None  # the edition the year-over-year marts compare with
    cities: pl.DataFrame  # marts.city_index
    city_changes: pl.DataFrame  # marts.city_yoy
    counties: pl.DataFrame  # marts.county_index
    tier_history: pl.DataFrame  # marts.tier_summary of every edition up to this one
    regions: pl.DataFrame  # marts.region_rollup
    region_tiers: pl.DataFrame  # marts.region_tier_mix
    city_scores: pl.DataFrame  # marts.subindex_scores of the cities, every level
    framework: pl.DataFrame  # marts.framework of the cities
    reconciliation: pl.DataFrame  # marts.reconciliation (empty for editions without published figures)
    rank_intervals: RankIntervals
    tiers: pl.DataFrame  # data/method/tiers.csv, highest tier first
    region_names: pl.DataFrame  # data/registry/regions.csv
    data_note: str | None  # e.g. that the raw data are a synthetic sample


def read_rank_intervals(con: duckdb.DuckDBPyConnection, survey_year: int) -> RankIntervals:
    """The city rank intervals of an edition from the analysis mart (the warehouse schema always has
    it: every run that writes creates the declared tables and columns), where it has them."""
    rows = con.sql(
        f"SELECT unit_code, rank_p05 AS rank_low, rank_p95 AS rank_high, max(n_draws) AS n_draws FROM {RANK_UNCERTAINTY_TABLE} "
        "WHERE survey_year = $1 AND unit_type = 'city' GROUP BY ALL",
        params=[survey_year],
    ).pl()
    if rows.height == 0:
        return RankIntervals(None, f"{RANK_UNCERTAINTY_TABLE} has no city rows for {survey_year}.")
    n_draws = rows["n_draws"].max()
    simulation = (
        f" over {n_draws:,} Monte Carlo draws of the weights and the aggregation method" if n_draws else ""
    )
    return RankIntervals(
        rows.drop("n_draws"),
        f"5th to 95th percentile of each city's simulated rank{simulation} ({RANK_UNCERTAINTY_TABLE}).",
    )


def read_edition_rows(
    con: duckdb.DuckDBPyConnection,
    survey_year: int,
    tiers: pl.DataFrame,
    region_names: pl.DataFrame,
    data_note: str | None,
) -> EditionRows:
    changes = read_table(con, "marts.city_yoy", [survey_year])
    previous = changes["prev_year"].drop_nulls()
    return EditionRows(
        survey_year=survey_year,
        previous_year=int(previous[0]) if previous.len() else None,
        cities=read_table(con, "marts.city_index", [survey_year]),
        city_changes=changes,
        counties=read_table(con, "marts.county_index", [survey_year]),
        tier_history=read_table(con, "marts.tier_summary").filter(pl.col("survey_year") <= survey_year),
        regions=read_table(con, "marts.region_rollup", [survey_year]),
        region_tiers=read_table(con, "marts.region_tier_mix", [survey_year]),
        city_scores=read_table(con, "marts.subindex_scores", [survey_year]).filter(
            pl.col("unit_type") == "city"
        ),
        framework=read_table(con, "marts.framework", [survey_year]).filter(pl.col("unit_type") == "city"),
        reconciliation=read_table(con, "marts.reconciliation", [survey_year]),
        rank_intervals=read_rank_intervals(con, survey_year),
        tiers=tiers,
        region_names=region_names,
        data_note=data_note,
    )
