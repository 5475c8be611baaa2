"""Ranks (ties shared) and tiers of the units by their composite score."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dei_pipeline.config import TieMethod
from dei_pipeline.tiers import tier_expr


def rank_expr(score: pl.Expr, decimals: int, method: TieMethod = "min") -> pl.Expr:
    """Rank by descending score as displayed: two units shown with the same score share a rank."""
    return score.round(decimals).rank(method=method, descending=True).cast(pl.Int32)


def rank_units(
    composites: pl.DataFrame,
    group_keys: Sequence[str],
    decimals: int,
    method: TieMethod = "min",
) -> pl.DataFrame:
    """Add ``rank`` within each group (edition, and kind for county units); unscored units get none."""
    return composites.with_columns(
        pl.when(pl.col("score").is_not_null())
        .then(rank_expr(pl.col("score"), decimals, method).over(list(group_keys)))
        .alias("rank")
    )


def city_index(
    composites: pl.DataFrame,
    cities: pl.DataFrame,
    tiers: pl.DataFrame,
    decimals: int,
    method: TieMethod = "min",
) -> pl.DataFrame:
    """``marts.city_index`` rows: composites of cities with names, rank and tier."""
    ranked = rank_units(composites, ["survey_year"], decimals, method)
    return (
        ranked.join(
            cities.select("unit_code", "name_zh", "name_en", pl.col("province_zh").alias("province")),
            on="unit_code",
            how="left",
        )
        .with_columns(tier_expr(pl.col("score"), tiers, decimals).alias("tier"))
        .select("survey_year", "unit_code", "name_zh", "name_en", "province", "score", "rank", "tier")
        .sort("survey_year", "rank", "unit_code")
    )


def county_index(
    composites: pl.DataFrame, counties: pl.DataFrame, decimals: int, method: TieMethod = "min"
) -> pl.DataFrame:
    """``marts.county_index`` rows: districts and county-level units are ranked within their kind."""
    with_kind = composites.join(
        counties.select("unit_code", "name_zh", pl.col("province_zh").alias("province"), "kind"),
        on="unit_code",
        how="left",
    )
    return (
        rank_units(with_kind, ["survey_year", "kind"], decimals, method)
        .select("survey_year", "unit_code", "name_zh", "province", "kind", "score", "rank")
        .sort("survey_year", "kind", "rank", "unit_code")
    )
