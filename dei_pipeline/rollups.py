"""Regional rollups: each key region's GDP-weighted and plain mean of its scored cities.

The white paper weights each region's city scores by the cities' GDP shares ("综合加权得分指各区域评分
以城市GDP比重进行加权计算"). Which GDP year and vintage weight an edition is a setting
(``data/method/settings.yaml``: ``gdp.year_offset``, ``gdp.vintage``); the year actually used is
recorded on every row.
"""

from __future__ import annotations

import polars as pl


class RollupError(ValueError):
    """Missing inputs for a rollup; the message names the region, the city, the GDP year and vintage."""


def choose_gdp_year(available_years: list[int], survey_year: int, year_offset: int) -> int:
    """The edition's GDP year: ``survey_year + year_offset``, else the latest year before it, else the
    earliest available (an old edition with no GDP yet published uses the first year we have)."""
    if not available_years:
        raise RollupError("no GDP data at all: data/registry/city_gdp.csv is empty")
    wanted = survey_year + year_offset
    earlier = [year for year in available_years if year <= wanted]
    return max(earlier) if earlier else min(available_years)


def _weighted_members(
    city_scores: pl.DataFrame,
    region_members: pl.DataFrame,
    gdp: pl.DataFrame,
    gdp_years: pl.DataFrame,
    vintage: str,
) -> pl.DataFrame:
    """Each scored member city with its region and the GDP that weights it; a RollupError names the
    first member without GDP for the chosen year and vintage."""
    scored = (
        city_scores.drop_nulls("score")
        .join(region_members.drop_nulls("unit_code").select("region_code", "unit_code"), on="unit_code")
        .join(gdp_years, on="survey_year")
        .join(
            gdp.filter(pl.col("vintage") == vintage).select(
                "unit_code", pl.col("year").alias("gdp_year"), "gdp_100m_yuan"
            ),
            on=["unit_code", "gdp_year"],
            how="left",
        )
    )
    without_gdp = scored.filter(pl.col("gdp_100m_yuan").is_null()).sort(
        "survey_year", "region_code", "unit_code"
    )
    if without_gdp.height:
        first = without_gdp.row(0, named=True)
        raise RollupError(
            f"region {first['region_code']}: member {first['unit_code']} has no GDP for year {first['gdp_year']} "
            f"(vintage {vintage}) in data/registry/city_gdp.csv; {without_gdp.height} member-edition(s) lack GDP"
        )
    return scored


def check_member_gdp(
    city_codes: pl.DataFrame,
    region_members: pl.DataFrame,
    gdp: pl.DataFrame,
    gdp_years: pl.DataFrame,
    vintage: str,
) -> None:
    """Fail early (before anything of the edition is written) when a region member that will be
    scored has no GDP. ``city_codes``: survey_year, unit_code of the cities in the raw files."""
    _weighted_members(
        city_codes.with_columns(pl.lit(0.0).alias("score")), region_members, gdp, gdp_years, vintage
    )


def region_rollup(
    city_scores: pl.DataFrame,
    region_members: pl.DataFrame,
    gdp: pl.DataFrame,
    gdp_years: pl.DataFrame,
    vintage: str,
) -> pl.DataFrame:
    """``marts.region_rollup`` rows.

    ``city_scores``: survey_year, unit_code, score. ``region_members``: region_code, unit_code (null
    for members that are never scored, e.g. Hong Kong). ``gdp``: unit_code, year, vintage,
    gdp_100m_yuan. ``gdp_years``: survey_year, gdp_year.
    """
    listed = region_members.group_by("region_code").agg(pl.len().cast(pl.Int32).alias("n_members"))
    scored = _weighted_members(city_scores, region_members, gdp, gdp_years, vintage)
    return (
        scored.sort(
            "survey_year", "region_code", "unit_code"
        )  # a fixed summation order: reruns are identical
        .group_by("survey_year", "region_code", "gdp_year", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int32).alias("n_scored"),
            ((pl.col("score") * pl.col("gdp_100m_yuan")).sum() / pl.col("gdp_100m_yuan").sum()).alias(
                "gdp_weighted_score"
            ),
            pl.col("score").mean().alias("mean_score"),
            pl.col("gdp_100m_yuan").sum().alias("gdp_total_100m_yuan"),
        )
        .join(listed, on="region_code")
        .select(
            "survey_year",
            pl.col("region_code").alias("region"),
            "n_members",
            "n_scored",
            pl.col("gdp_year").cast(pl.Int32),
            pl.lit(vintage).alias("gdp_vintage"),
            "gdp_weighted_score",
            "mean_score",
            "gdp_total_100m_yuan",
        )
        .sort("survey_year", "region")
    )


def gdp_years_for(editions: list[int], gdp: pl.DataFrame, vintage: str, year_offset: int) -> pl.DataFrame:
    """survey_year -> the GDP year that weights it (see :func:`choose_gdp_year`)."""
    available = sorted(gdp.filter(pl.col("vintage") == vintage)["year"].unique().to_list())
    return pl.DataFrame(
        {
            "survey_year": editions,
            "gdp_year": [choose_gdp_year(available, year, year_offset) for year in editions],
        },
        schema={"survey_year": pl.Int32, "gdp_year": pl.Int64},
    )


def region_tier_mix(
    city_tiers: pl.DataFrame, region_members: pl.DataFrame, tiers: pl.DataFrame
) -> pl.DataFrame:
    """``marts.region_tier_mix``: how many of a region's scored cities fall in each tier (zeros kept)."""
    counts = (
        city_tiers.drop_nulls("tier")
        .join(region_members.drop_nulls("unit_code").select("region_code", "unit_code"), on="unit_code")
        .group_by("survey_year", "region_code", "tier")
        .agg(pl.len().cast(pl.Int32).alias("n_cities"))
    )
    grid = (
        counts.select("survey_year", "region_code")
        .unique()
        .join(tiers.select(pl.col("tier_code").alias("tier"), "tier_order"), how="cross")
    )
    return (
        grid.join(counts, on=["survey_year", "region_code", "tier"], how="left")
        .with_columns(pl.col("n_cities").fill_null(0))
        .select("survey_year", pl.col("region_code").alias("region"), "tier", "tier_order", "n_cities")
        .sort("survey_year", "region", "tier_order")
    )
