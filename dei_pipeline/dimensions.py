"""The dimension marts: the labels of the codes the facts carry (units, tiers, key regions and their
members, indicators), built from the reference files (``data/registry/``, ``data/method/tiers.csv``,
``data/frameworks/``) and the editions in the warehouse. Pure functions of polars frames; the columns
and their meaning are declared in ``warehouse.TABLES`` (``marts.dim_*``)."""

from __future__ import annotations

from typing import Any

import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE
from dei_pipeline.registry import Registry
from dei_pipeline.warehouse import TABLES

COMPOSITE_NAME_ZH = "综合指数"
COMPOSITE_NAME_EN = "Composite index"

# kind (as on the facts) -> (kind_zh, kind_en). 'county' alone is ambiguous next to unit_type 'county'
# (all county units), hence the spelled-out English name.
KIND_NAMES: dict[str, tuple[str, str]] = {
    "city": ("地级及以上城市", "prefecture-level city"),
    "district": ("市辖区", "urban district"),
    "county": ("县市", "county or county-level city"),
}


def _kind_names(kind: pl.Expr) -> list[pl.Expr]:
    return [
        kind.replace_strict({k: names[i] for k, names in KIND_NAMES.items()}, return_dtype=pl.String).alias(
            column
        )
        for i, column in enumerate(("kind_zh", "kind_en"))
    ]


def unit_dimension(registry: Registry, scored: pl.DataFrame) -> pl.DataFrame:
    """One row per unit of the registry. ``scored``: (unit_code, survey_year) of every unit with a
    composite score in an edition (the rows of marts.city_index and county_index)."""
    cities = registry.cities.select(
        pl.lit("city").alias("unit_type"),
        "unit_code",
        "name_zh",
        "full_name_zh",
        "name_en",
        "province_code",
        "province_zh",
        pl.col("unit_code").alias("prefecture_code"),
        pl.col("name_zh").alias("prefecture_zh"),
        pl.lit("city").alias("kind"),
    )
    counties = registry.counties.select(
        pl.lit("county").alias("unit_type"),
        "unit_code",
        "name_zh",
        pl.col("name_zh").alias("full_name_zh"),
        "name_en",
        "province_code",
        "province_zh",
        pl.col("city_code").alias("prefecture_code"),
        pl.col("city_name_zh").alias("prefecture_zh"),
        "kind",
    )
    editions = (
        scored.select("unit_code", pl.col("survey_year").cast(pl.Int32))
        .unique()
        .sort("survey_year")
        .group_by("unit_code", maintain_order=True)
        .agg(
            pl.col("survey_year").cast(pl.String).str.join(",").alias("editions_scored"),
            pl.len().cast(pl.Int32).alias("n_editions_scored"),
            pl.col("survey_year").min().alias("first_edition"),
            pl.col("survey_year").max().alias("last_edition"),
        )
    )
    changes = registry.code_changes.select(
        "unit_code",
        "current_code",
        "current_name_zh",
        pl.col("change_year").cast(pl.Int32).alias("code_change_year"),
        pl.col("note").alias("code_change_note"),
    )
    return (
        pl.concat([cities, counties])
        .with_columns(_kind_names(pl.col("kind")))
        .join(editions, on="unit_code", how="left", maintain_order="left")
        .join(changes, on="unit_code", how="left", maintain_order="left")
        .with_columns(pl.col("editions_scored").fill_null(""), pl.col("n_editions_scored").fill_null(0))
    )


def _bound_text(tier: dict[str, Any]) -> str:
    """The tier's bounds as text: 'score > 85', '65 <= score <= 85'."""
    lower = f"score {'>=' if tier['lower_inclusive'] else '>'} {tier['lower_bound']:g}"
    if tier["upper_bound"] is None:
        return lower
    upper = f"{'<=' if tier['upper_inclusive'] else '<'} {tier['upper_bound']:g}"
    return f"{tier['lower_bound']:g} {'<=' if tier['lower_inclusive'] else '<'} score {upper}"


def tier_dimension(tiers: pl.DataFrame) -> pl.DataFrame:
    """One row per tier (``tiers``: tiers.load_tiers), with the upper bound each tier gets from the
    next higher one: a score equal to that bound is in this tier when the higher tier's bound is exclusive."""
    ordered = tiers.sort("lower_bound").with_columns(
        pl.col("lower_bound").shift(-1).alias("upper_bound"),
        (~pl.col("lower_inclusive").shift(-1)).alias("upper_inclusive"),
    )
    ranges = [_bound_text(tier) for tier in ordered.iter_rows(named=True)]
    return (
        ordered.with_columns(pl.Series("score_range", ranges, pl.String))
        .sort("tier_order")
        .select(
            "tier_code",
            "tier_order",
            "name_zh",
            "name_en",
            "lower_bound",
            "lower_inclusive",
            "upper_bound",
            "upper_inclusive",
            "score_range",
            "description_zh",
        )
    )


def region_dimension(registry: Registry) -> pl.DataFrame:
    return registry.regions.select(
        "region_code", "name_zh", "name_en", pl.col("n_members_published").cast(pl.Int32).alias("n_members")
    )


def region_member_dimension(
    registry: Registry, scored_cities: pl.DataFrame, editions: list[int]
) -> pl.DataFrame:
    """One row per edition, region and listed member. The registry lists one membership for every
    edition; whether a member was scored changes by edition. ``scored_cities``: (survey_year, unit_code)
    of marts.city_index."""
    members = registry.region_members.with_columns(
        (pl.int_range(pl.len()).over("region_code") + 1).cast(pl.Int32).alias("member_order"),
    )
    per_edition = pl.DataFrame({"survey_year": editions}, schema={"survey_year": pl.Int32}).join(
        members, how="cross"
    )
    scored = scored_cities.select(
        pl.col("survey_year").cast(pl.Int32), "unit_code", pl.lit(True).alias("is_scored")
    )
    return (
        per_edition.join(scored, on=["survey_year", "unit_code"], how="left", maintain_order="left")
        .with_columns(pl.col("is_scored").fill_null(False))
        .select("survey_year", "region_code", "member_order", "member_name_zh", "unit_code", "is_scored")
    )


def indicator_dimension(framework: pl.DataFrame) -> pl.DataFrame:
    """The rows of marts.framework as one tree per edition and unit type: the composite as the root
    node (level 0) and the parent of every level-1 node."""
    parents = (
        framework.select(
            "survey_year",
            "unit_type",
            pl.col("parent_code").alias("node_code"),
            pl.lit(False).alias("is_leaf"),
        )
        .drop_nulls()
        .unique()
    )
    nodes = framework.join(
        parents, on=["survey_year", "unit_type", "node_code"], how="left", maintain_order="left"
    ).with_columns(
        pl.col("parent_code").fill_null(pl.lit(COMPOSITE_CODE)),
        (pl.int_range(pl.len()).over("survey_year", "unit_type") + 1).cast(pl.Int32).alias("sort_order"),
        pl.col("is_leaf").fill_null(True),
    )
    roots = (
        framework.select("survey_year", "unit_type", "framework_file")
        .unique(maintain_order=True)
        .with_columns(
            pl.lit(COMPOSITE_CODE).alias("node_code"),
            pl.lit(None, pl.String).alias("parent_code"),
            pl.lit(0, pl.Int32).alias("level"),
            pl.lit(COMPOSITE_NAME_ZH).alias("name_zh"),
            pl.lit(COMPOSITE_NAME_EN).alias("name_en"),
            pl.lit(1.0).alias("weight"),
            pl.lit(1.0).alias("effective_weight"),
            pl.lit(False).alias("is_leaf"),
            pl.lit(0, pl.Int32).alias("sort_order"),
        )
    )
    columns = TABLES["marts.dim_indicator"].column_names
    return pl.concat(
        [roots.select(columns), nodes.with_columns(pl.col("level").cast(pl.Int32)).select(columns)]
    ).sort("survey_year", "unit_type", "sort_order")
