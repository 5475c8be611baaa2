"""Reconciliation: every figure the white paper publishes, against the same figure computed by the
pipeline. Each comparison is one row (published, computed, difference, status); a disagreement is
reported, never patched over. Where the white paper contradicts itself (recorded in
``data/published/<edition>/contradictions.yaml``) the affected rows say ``known_contradiction``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dei_pipeline.published import Published
from dei_pipeline.scalars import number_or_none

TIER_LIST_CONTRADICTION = "tier_lists_vs_thresholds"
EXACT = 1e-9  # counts and tier positions must agree exactly
RESULT_COLUMNS = (
    "survey_year",
    "category",
    "item",
    "published",
    "computed",
    "difference",
    "tolerance",
    "status",
    "note",
)


@dataclass(frozen=True)
class Computed:
    """The pipeline's figures for one edition (and, for year-over-year statements, its comparisons)."""

    city_index: pl.DataFrame  # unit_code, name_zh, score, tier
    county_index: pl.DataFrame  # unit_code, name_zh, kind, score
    city_subindex: pl.DataFrame  # unit_code, node_code, level, score (cities only)
    region_rollup: pl.DataFrame  # region, gdp_weighted_score
    yoy_summary: pl.DataFrame  # unit_type, n_new, returning_mean, returning_prev_mean (may be empty)
    tier_summary: pl.DataFrame  # tier, n_cities, change_pct


def _compare(category: str, pairs: pl.DataFrame, tolerance: float, note: str = "") -> pl.DataFrame:
    """``pairs``: item, published, computed -> result rows (status match / mismatch / missing)."""
    return pairs.select(
        pl.lit(category).alias("category"),
        pl.col("item").cast(pl.String),
        pl.col("published").cast(pl.Float64),
        pl.col("computed").cast(pl.Float64),
        (pl.col("computed").cast(pl.Float64) - pl.col("published").cast(pl.Float64)).alias("difference"),
        pl.lit(tolerance, pl.Float64).alias("tolerance"),
        pl.when(pl.col("computed").is_null())
        .then(pl.lit("missing"))
        .when((pl.col("computed") - pl.col("published")).abs() <= tolerance + EXACT)
        .then(pl.lit("match"))
        .otherwise(pl.lit("mismatch"))
        .alias("status"),
        pl.lit(note).alias("note"),
    )


def _scores(published_ranking: pl.DataFrame, computed: pl.DataFrame) -> pl.DataFrame:
    return published_ranking.join(
        computed.select("name_zh", pl.col("score").alias("computed")), on="name_zh", how="left"
    ).select(pl.col("name_zh").alias("item"), pl.col("score").alias("published"), "computed")


def _ranks(category: str, published_ranking: pl.DataFrame, computed: pl.DataFrame) -> pl.DataFrame:
    """Published ranks against computed ones. The white paper gives equal printed scores distinct
    ranks; the pipeline lets them share the best rank (settings.yaml ``ranking.tie_method``), so a
    rank that differs only that way is ``tie_rule``, not a mismatch."""
    ties = published_ranking.with_columns(
        pl.col("rank").min().over("score").alias("tie_rank"), pl.len().over("score").alias("tie_size")
    )
    pairs = ties.join(computed.select("name_zh", pl.col("rank").alias("computed")), on="name_zh", how="left")
    compared = _compare(
        category,
        pairs.select(pl.col("name_zh").alias("item"), pl.col("rank").alias("published"), "computed"),
        EXACT,
    )
    shared = (
        (compared["status"] == "mismatch")
        & (pairs["tie_size"] > 1)
        & (pairs["computed"] == pairs["tie_rank"])
    )
    return compared.with_columns(
        pl.when(shared).then(pl.lit("tie_rule")).otherwise(pl.col("status")).alias("status"),
        pl.when(shared)
        .then(
            pl.lit(
                "equal printed scores: the white paper ranks them apart, the pipeline lets them share the best rank"
            )
        )
        .otherwise(pl.col("note"))
        .alias("note"),
    )


def _tier_lists(published: Published, city_index: pl.DataFrame, tiers: pl.DataFrame) -> pl.DataFrame:
    order = tiers.select(pl.col("tier_code"), pl.col("tier_order").cast(pl.Float64))
    known = {
        city["name_zh"]
        for item in published.contradictions
        if item["id"] == TIER_LIST_CONTRADICTION
        for city in item.get("cities", [])
    }
    pairs = (
        published.tier_lists.join(order, on="tier_code", how="left")
        .rename({"tier_order": "published"})
        .join(city_index.select("name_zh", "tier"), on="name_zh", how="left")
        .join(order.rename({"tier_code": "tier", "tier_order": "computed"}), on="tier", how="left")
        .select(pl.col("name_zh").alias("item"), "published", "computed")
    )
    compared = _compare(
        "tier_list", pairs, EXACT, "tier position 1 (一线) to 5 (四线): appendix list vs tier by threshold"
    )
    return compared.with_columns(
        pl.when((pl.col("status") == "mismatch") & pl.col("item").is_in(sorted(known)))
        .then(pl.lit("known_contradiction"))
        .otherwise(pl.col("status"))
        .alias("status"),
        pl.when((pl.col("status") == "mismatch") & pl.col("item").is_in(sorted(known)))
        .then(
            pl.lit(
                f"the white paper's appendix list disagrees with its own scores and thresholds (contradictions.yaml: {TIER_LIST_CONTRADICTION})"
            )
        )
        .otherwise(pl.col("note"))
        .alias("note"),
    )


def _statements(published: Published, computed: Computed) -> pl.DataFrame:
    """The summary and year-over-year statements that the pipeline can compute."""
    cities, counties = computed.city_index, computed.county_index
    # Year-over-year statements need a previous edition; without one they are missing, not zero.
    city_yoy = computed.yoy_summary.filter(
        (pl.col("unit_type") == "city") & pl.col("prev_year").is_not_null()
    )
    tier_change = dict(
        computed.tier_summary.filter(pl.col("prev_year").is_not_null())
        .select("tier", "change_pct")
        .iter_rows()
    )
    values: dict[str, tuple[float | None, float]] = {
        "n_cities": (float(cities["score"].drop_nulls().len()), EXACT),
        "city_mean": (number_or_none(cities["score"].mean()), 0.05),
        "city_max": (number_or_none(cities["score"].max()), 0.05),
        "n_districts": (float(counties.filter(pl.col("kind") == "district").height), EXACT),
        "n_counties": (float(counties.filter(pl.col("kind") == "county").height), EXACT),
        "district_mean": (
            number_or_none(counties.filter(pl.col("kind") == "district")["score"].mean()),
            0.05,
        ),
        "county_mean": (number_or_none(counties.filter(pl.col("kind") == "county")["score"].mean()), 0.05),
        "new_cities": (float(city_yoy["n_new"].sum()) if city_yoy.height else None, EXACT),
        "returning_mean": (
            number_or_none(city_yoy["returning_mean"].max()) if city_yoy.height else None,
            0.05,
        ),
        "returning_mean_prev": (
            number_or_none(city_yoy["returning_prev_mean"].max()) if city_yoy.height else None,
            0.05,
        ),
        "new_tier1_growth_pct": (tier_change.get("new_tier1"), 0.05),
        "tier2_growth_pct": (tier_change.get("tier2"), 0.05),
    }
    rows = [
        _compare(
            "statement",
            pl.DataFrame(
                {
                    "item": [sid],
                    "published": [float(published.statements[sid]["value"])],
                    "computed": [value],
                },
                schema={"item": pl.String, "published": pl.Float64, "computed": pl.Float64},
            ),
            tolerance,
            str(published.statements[sid].get("quote", "")),
        )
        for sid, (value, tolerance) in values.items()
        if sid in published.statements
    ]
    return pl.concat(rows)


def reconcile(
    published: Published, computed: Computed, tiers: pl.DataFrame, score_tolerance: float
) -> pl.DataFrame:
    """Every comparison of one edition as ``marts.reconciliation`` rows."""
    city_levels = computed.city_subindex
    level1_means = (
        city_levels.filter(pl.col("level") == 1)
        .group_by("node_code")
        .agg(pl.col("score").mean().alias("computed"))
    )
    leaf_stats = city_levels.group_by("node_code").agg(
        pl.col("score").mean().alias("mean"),
        pl.col("score").sort(descending=True).head(10).mean().alias("top10"),
    )
    tier_counts = computed.city_index.group_by("tier").agg(pl.len().alias("computed"))
    parts = [
        _compare("city_score", _scores(published.city_ranking, computed.city_index), score_tolerance),
        _compare(
            "county_score",
            _scores(pl.concat([published.district_ranking, published.county_ranking]), computed.county_index),
            score_tolerance,
        ),
        _ranks("city_rank", published.city_ranking, computed.city_index),
        _ranks(
            "county_rank",
            published.district_ranking,
            computed.county_index.filter(pl.col("kind") == "district"),
        ),
        _ranks(
            "county_rank", published.county_ranking, computed.county_index.filter(pl.col("kind") == "county")
        ),
        _compare(
            "tier_count",
            published.tier_counts.join(
                tier_counts.rename({"tier": "tier_code"}), on="tier_code", how="left"
            ).select(
                pl.col("tier_code").alias("item"),
                pl.col("count").alias("published"),
                pl.col("computed").fill_null(0),
            ),
            EXACT,
        ),
        _tier_lists(published, computed.city_index, tiers),
        _compare(
            "level1_average",
            published.level1_averages.join(level1_means, on="node_code", how="left").select(
                pl.col("node_code").alias("item"), pl.col("average").alias("published"), "computed"
            ),
            score_tolerance,
        ),
        _compare(
            "industry_average",
            published.industry_averages.join(leaf_stats, on="node_code", how="left").select(
                pl.col("node_code").alias("item"),
                pl.col("average").alias("published"),
                pl.col("mean").alias("computed"),
            ),
            score_tolerance,
        ),
        _compare(
            "industry_top10_average",
            published.industry_averages.join(leaf_stats, on="node_code", how="left").select(
                pl.col("node_code").alias("item"),
                pl.col("top10_average").alias("published"),
                pl.col("top10").alias("computed"),
            ),
            score_tolerance,
        ),
        _compare(
            "region_score",
            published.regions.join(
                computed.region_rollup.select(
                    pl.col("region").alias("region_code"), pl.col("gdp_weighted_score").alias("computed")
                ),
                on="region_code",
                how="left",
            ).select(
                pl.col("region_code").alias("item"),
                pl.col("gdp_weighted_score").alias("published"),
                "computed",
            ),
            score_tolerance,
            "GDP-weighted mean of the region's scored cities (see data/registry/README.md for the GDP year and vintage)",
        ),
        _statements(published, computed),
    ]
    return (
        pl.concat(parts)
        .with_columns(pl.lit(published.edition, pl.Int32).alias("survey_year"))
        .select(RESULT_COLUMNS)
    )


CHECK_CATEGORIES: dict[str, tuple[str, ...]] = {
    "city_scores_match_published": ("city_score",),
    "county_scores_match_published": ("county_score",),
    "ranks_match_published": ("city_rank", "county_rank"),
    "tier_counts_match_published": ("tier_count",),
    "tier_lists_match_published": ("tier_list",),
    "level1_averages_match_published": ("level1_average",),
    "industry_averages_match_published": ("industry_average", "industry_top10_average"),
    "region_scores_match_published": ("region_score",),
    "statements_match_published": ("statement",),
}
