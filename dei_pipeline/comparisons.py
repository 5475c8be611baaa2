"""Year-over-year comparison of an edition with the previous edition that has data.

Units are ``new`` (not in the previous edition), ``returning`` (in both) or ``dropped`` (only in the
previous one; their current columns are null). Rank change is previous rank minus current rank, so a
positive number means the unit moved up.

The published ranks of two editions rank different pools (113 cities in 2019, 148 in 2020 on the
sample), so a published rank change mixes the unit's move with the arrival and departure of others.
The cohort rank change compares like with like: both ranks are taken within the returning cohort (the
units ranked in both editions), keeping the published order and ties.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def previous_editions(editions_with_data: Sequence[int]) -> pl.DataFrame:
    """survey_year -> prev_year (the latest earlier edition that has data; null for the first)."""
    years = sorted(set(editions_with_data))
    return pl.DataFrame(
        {"survey_year": years, "prev_year": [None, *years[:-1]][: len(years)]},
        schema={"survey_year": pl.Int32, "prev_year": pl.Int32},
    )


def unit_changes(
    current: pl.DataFrame,
    history: pl.DataFrame,
    prev_years: pl.DataFrame,
    compared: Sequence[str],
    keys: Sequence[str] = ("unit_code",),
    rank_group: str | None = "kind",
) -> pl.DataFrame:
    """Per unit: each ``compared`` column now and in the previous edition, and the unit's status.

    ``current``: rows of the editions being compared; ``history``: rows of every edition (the
    previous ones are looked up there). Numeric columns also get ``<col>_change``; with ``rank``
    compared, also the cohort ranks (:func:`cohort_ranks`), within ``rank_group`` when that column is
    compared (county units are ranked within their kind).
    """
    keys, compared = list(keys), list(compared)
    with_prev = current.join(prev_years, on="survey_year", how="left")
    previous = history.select(
        pl.col("survey_year").alias("prev_year"),
        *keys,
        *[pl.col(c).alias(f"prev_{c}") for c in compared],
        pl.lit(True).alias("in_prev"),
    )
    present = with_prev.join(previous, on=["prev_year", *keys], how="left").with_columns(
        pl.when(pl.col("prev_year").is_null())
        .then(pl.lit("first_edition"))
        .when(pl.col("in_prev").is_null())
        .then(pl.lit("new"))
        .otherwise(pl.lit("returning"))
        .alias("status")
    )
    # Units of the previous edition missing from the current one.
    dropped = (
        prev_years.drop_nulls("prev_year")
        .filter(pl.col("survey_year").is_in(current["survey_year"].unique().implode()))
        .join(previous, on="prev_year")
        .join(current.select("survey_year", *keys), on=["survey_year", *keys], how="anti")
        .with_columns(pl.lit("dropped").alias("status"))
    )
    combined = pl.concat([present, dropped], how="diagonal_relaxed").drop("in_prev")
    numeric = [c for c in compared if combined.schema[c].is_numeric()]
    changes = combined.with_columns(
        [(pl.col(c) - pl.col(f"prev_{c}")).alias(f"{c}_change") for c in numeric if c != "rank"]
        + ([(pl.col("prev_rank") - pl.col("rank")).alias("rank_change")] if "rank" in compared else [])
    )
    if "rank" not in compared:
        return changes
    if rank_group is not None and rank_group in compared:
        return changes.with_columns(
            cohort_ranks(pl.col("survey_year"), pl.col(rank_group), pl.col(f"prev_{rank_group}"))
        )
    return changes.with_columns(cohort_ranks(pl.col("survey_year"), None, None))


def cohort_ranks(edition: pl.Expr, group: pl.Expr | None, prev_group: pl.Expr | None) -> list[pl.Expr]:
    """cohort_rank, prev_cohort_rank and cohort_rank_change: the published ranks re-ranked within the
    returning units ranked in both editions (ties kept: re-ranking the ranks with 'min' keeps the
    published tie rule), per edition and rank group (the group now, and the group then)."""
    in_cohort = (
        (pl.col("status") == "returning") & pl.col("rank").is_not_null() & pl.col("prev_rank").is_not_null()
    )

    def within(rank: str, by: pl.Expr | None) -> pl.Expr:
        keys = [edition, in_cohort] + ([by] if by is not None else [])
        return pl.when(in_cohort).then(pl.col(rank).rank(method="min").over(keys)).cast(pl.Int32)

    now, before = (
        within("rank", group).alias("cohort_rank"),
        within("prev_rank", prev_group).alias("prev_cohort_rank"),
    )
    return [now, before, (before - now).alias("cohort_rank_change")]


def cohort_summary(changes: pl.DataFrame, unit_type: str) -> pl.DataFrame:
    """``marts.yoy_summary``: counts of new, returning and dropped units and the returning cohort's
    averages now and before (the white paper's "参与上年评估的城市 ... 57.6 → 61.8"). The cohort
    averages are taken over the units scored in both editions (``n_cohort``), so both sides of the
    change average the same units: a returning unit unscored in one edition is left out of both."""
    returning = pl.col("status") == "returning"
    cohort = returning & pl.col("score").is_not_null() & pl.col("prev_score").is_not_null()
    return (
        changes.group_by("survey_year")
        .agg(
            pl.col("prev_year").drop_nulls().first(),
            pl.col("score").is_not_null().sum().cast(pl.Int32).alias("n_units"),
            pl.col("prev_score").is_not_null().sum().cast(pl.Int32).alias("n_prev_units"),
            (pl.col("status") == "new").sum().cast(pl.Int32).alias("n_new"),
            returning.sum().cast(pl.Int32).alias("n_returning"),
            (pl.col("status") == "dropped").sum().cast(pl.Int32).alias("n_dropped"),
            cohort.sum().cast(pl.Int32).alias("n_cohort"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("score").filter(cohort).mean().alias("returning_mean"),
            pl.col("prev_score").filter(cohort).mean().alias("returning_prev_mean"),
        )
        .with_columns(
            pl.lit(unit_type).alias("unit_type"),
            (pl.col("returning_mean") - pl.col("returning_prev_mean")).alias("returning_mean_change"),
        )
        .select(
            "survey_year",
            "unit_type",
            "prev_year",
            "n_units",
            "n_prev_units",
            "n_new",
            "n_returning",
            "n_dropped",
            "n_cohort",
            "mean_score",
            "returning_mean",
            "returning_prev_mean",
            "returning_mean_change",
        )
        .sort("survey_year")
    )


def tier_summary(
    city_index: pl.DataFrame, history: pl.DataFrame, prev_years: pl.DataFrame, tiers: pl.DataFrame
) -> pl.DataFrame:
    """``marts.tier_summary``: cities per tier now and in the previous edition, and the change in %."""

    def counts(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.drop_nulls("tier")
            .group_by("survey_year", "tier")
            .agg(pl.len().cast(pl.Int32).alias("n_cities"))
        )

    grid = (
        city_index.select("survey_year")
        .unique()
        .join(tiers.select(pl.col("tier_code").alias("tier"), "tier_order"), how="cross")
    )
    previous = counts(history).select(
        pl.col("survey_year").alias("prev_year"), "tier", pl.col("n_cities").alias("prev_n_cities")
    )
    return (
        grid.join(counts(city_index), on=["survey_year", "tier"], how="left")
        .join(prev_years, on="survey_year", how="left")
        .join(previous, on=["prev_year", "tier"], how="left")
        .with_columns(
            pl.col("n_cities").fill_null(0),
            pl.when(pl.col("prev_year").is_not_null())
            .then(pl.col("prev_n_cities").fill_null(0))
            .alias("prev_n_cities"),
        )
        .with_columns(
            pl.when(pl.col("prev_n_cities") > 0)
            .then((pl.col("n_cities") / pl.col("prev_n_cities") - 1) * 100)
            .alias("change_pct")
        )
        .select("survey_year", "tier", "tier_order", "n_cities", "prev_year", "prev_n_cities", "change_pct")
        .sort("survey_year", "tier_order")
    )
