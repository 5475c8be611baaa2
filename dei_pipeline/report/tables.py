"""The report's figures as tables: pure functions of an edition's rows (polars in, polars out).

Each function reproduces one figure of the white paper from the marts; the charts and the HTML only
lay these tables out.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dei_pipeline.report.rows import EditionRows
from dei_pipeline.scalars import number_or_none

# The white paper's 数字经济产业篇 reports the eight 产业数字化 sectors and the two 数字产业化 nodes:
# the children of these two framework nodes.
INDUSTRY_PARENTS: tuple[str, ...] = ("industry_sectors", "industry_digital")
TOP_N_FOR_INDUSTRY = 10  # "Top10城市平均得分"
MOVERS_PER_SIDE = 10
# Matched figures are the normal case; these are the statuses a reader has to see.
NOTEWORTHY_STATUSES: tuple[str, ...] = ("mismatch", "missing", "known_contradiction")


def tier_labels(rows: EditionRows) -> dict[str, str]:
    """Tier code -> Chinese name (一线, 新一线, ...)."""
    return dict(rows.tiers.select("tier_code", "name_zh").iter_rows())


def ranking(rows: EditionRows) -> pl.DataFrame:
    """Every ranked city in rank order: rank, name, province, score, tier and the rank change since
    the previous edition among the cities ranked in both (null for cities new to this edition): the
    published ranks of two editions rank different pools of cities."""
    changes = rows.city_changes.select("unit_code", "status", "cohort_rank_change")
    return (
        rows.cities.join(changes, on="unit_code", how="left")
        .with_columns(
            pl.col("tier").replace_strict(tier_labels(rows), default=pl.col("tier")).alias("tier_zh")
        )
        .sort("rank", "name_zh")
        .select(
            "rank",
            "unit_code",
            "name_zh",
            "name_en",
            "province",
            "score",
            "tier",
            "tier_zh",
            "status",
            "cohort_rank_change",
        )
    )


def county_ranking(rows: EditionRows, kind: str) -> pl.DataFrame:
    """Districts (``kind='district'``, 市辖区) or counties (``'county'``, 县市) in rank order."""
    return (
        rows.counties.filter(pl.col("kind") == kind)
        .sort("rank", "name_zh")
        .select("rank", "province", "name_zh", "score")
    )


def tier_counts_by_edition(rows: EditionRows) -> tuple[list[int], list[str], list[list[int]]]:
    """(editions, tier codes lowest tier first, counts[edition][tier]) for the stacked tier chart."""
    editions = sorted(rows.tier_history["survey_year"].unique().to_list())
    tier_codes = rows.tiers.sort("tier_order", descending=True)["tier_code"].to_list()
    counts = {
        (y, t): n for y, t, n in rows.tier_history.select("survey_year", "tier", "n_cities").iter_rows()
    }
    return (
        editions,
        tier_codes,
        [[int(counts.get((year, tier), 0)) for tier in tier_codes] for year in editions],
    )


def tier_counts_table(rows: EditionRows) -> pl.DataFrame:
    """The tier chart's numbers as a table: one row per edition, one column per tier (highest first)."""
    editions, tier_codes, counts = tier_counts_by_edition(rows)
    labels = tier_labels(rows)
    data: dict[str, list[int]] = {"edition": editions}
    for position, code in reversed(list(enumerate(tier_codes))):
        data[labels[code]] = [column[position] for column in counts]
    data["合计 total"] = [sum(column) for column in counts]
    return pl.DataFrame(data)


def level1_by_tier(rows: EditionRows) -> pl.DataFrame:
    """Mean level-1 score of the cities of each tier, and of all cities (the white paper's
    "城市画像 / 综合平均" charts): one row per level-1 node in framework order, one column per tier
    code plus ``all_cities``."""
    nodes = (
        rows.framework.filter(pl.col("level") == 1)
        .with_row_index("order")
        .select("order", "node_code", "name_zh")
    )
    scores = rows.city_scores.filter(pl.col("level") == 1).select("unit_code", "node_code", "score")
    tiered = scores.join(rows.cities.select("unit_code", "tier"), on="unit_code", how="inner")
    by_tier = (
        tiered.group_by("node_code", "tier")
        .agg(pl.col("score").mean())
        .pivot("tier", index="node_code", values="score")
    )
    overall = tiered.group_by("node_code").agg(pl.col("score").mean().alias("all_cities"))
    table = (
        nodes.join(by_tier, on="node_code", how="left")
        .join(overall, on="node_code", how="left")
        .sort("order")
        .drop("order")
    )
    for tier in rows.tiers["tier_code"]:
        if tier not in table.columns:  # a tier without cities this edition
            table = table.with_columns(pl.lit(None, pl.Float64).alias(tier))
    return table.select("node_code", "name_zh", *rows.tiers["tier_code"].to_list(), "all_cities")


def _published(rows: EditionRows, category: str, alias: str) -> pl.DataFrame:
    return rows.reconciliation.filter(pl.col("category") == category).select(
        pl.col("item"), pl.col("published").alias(alias)
    )


def industry_averages(rows: EditionRows) -> pl.DataFrame:
    """Average and top-10 average of each industry node over the ranked cities, with the published
    figures where the edition has them, highest average first."""
    nodes = rows.framework.filter(pl.col("parent_code").is_in(INDUSTRY_PARENTS)).select(
        "node_code", "name_zh", "parent_code"
    )
    scores = rows.city_scores.join(rows.cities.select("unit_code"), on="unit_code").join(
        nodes.select("node_code"), on="node_code"
    )
    averages = scores.group_by("node_code").agg(
        pl.col("score").mean().alias("average"),
        pl.col("score").top_k(TOP_N_FOR_INDUSTRY).mean().alias("top10_average"),
        pl.len().alias("n_cities"),
    )
    return (
        nodes.join(averages, on="node_code", how="inner")
        .join(
            _published(rows, "industry_average", "published_average"),
            left_on="node_code",
            right_on="item",
            how="left",
        )
        .join(
            _published(rows, "industry_top10_average", "published_top10_average"),
            left_on="node_code",
            right_on="item",
            how="left",
        )
        .sort("average", descending=True)
    )


def region_summary(rows: EditionRows) -> pl.DataFrame:
    """The four key regions: GDP-weighted and plain mean score, members, the cities per tier and the
    published GDP-weighted score where the edition has one; highest weighted score first."""
    tier_columns = rows.tiers["tier_code"].to_list()
    mix = (
        rows.region_tiers.pivot("tier", index="region", values="n_cities")
        if rows.region_tiers.height
        else pl.DataFrame({"region": []}, schema={"region": pl.String})
    )
    for tier in tier_columns:
        if tier not in mix.columns:
            mix = mix.with_columns(pl.lit(0, pl.Int32).alias(tier))
    names = rows.region_names.select(
        pl.col("region_code").alias("region"), pl.col("name_zh").alias("region_zh")
    )
    return (
        rows.regions.join(names, on="region", how="left")
        .join(mix.select("region", *tier_columns), on="region", how="left")
        .join(
            _published(rows, "region_score", "published_score"), left_on="region", right_on="item", how="left"
        )
        .sort("gdp_weighted_score", descending=True, nulls_last=True)
    )


def movers(rows: EditionRows, per_side: int = MOVERS_PER_SIDE) -> pl.DataFrame:
    """The cities that moved most in rank since the previous edition, ranked among the cities ranked in
    both editions (``cohort_rank_change``): up to ``per_side`` risers (largest rise first) followed by up
    to ``per_side`` fallers (largest fall last). Empty for an edition without a predecessor."""
    returning = (
        rows.city_changes.filter(
            (pl.col("status") == "returning") & pl.col("cohort_rank_change").is_not_null()
        )
        .join(rows.cities.select("unit_code", "name_zh"), on="unit_code")
        .select(
            "unit_code",
            "name_zh",
            "prev_rank",
            "rank",
            "rank_change",
            "cohort_rank_change",
            "prev_score",
            "score",
            "score_change",
            "prev_tier",
            "tier",
        )
    )
    risers = (
        returning.filter(pl.col("cohort_rank_change") > 0)
        .sort(["cohort_rank_change", "rank"], descending=[True, False])
        .head(per_side)
    )
    fallers = (
        returning.filter(pl.col("cohort_rank_change") < 0)
        .sort(["cohort_rank_change", "rank"], descending=[False, True])
        .head(per_side)
    )
    return pl.concat([risers, fallers.reverse()])


def rank_intervals(rows: EditionRows, top: int = 40) -> pl.DataFrame | None:
    """The ``top`` best-ranked cities with their rank interval, in rank order (None without the mart)."""
    if rows.rank_intervals.rows is None:
        return None
    intervals = rows.rank_intervals.rows
    return (
        rows.cities.select("unit_code", "name_zh", "rank", "score")
        .join(intervals, on="unit_code", how="inner")
        .sort("rank", "name_zh")
        .head(top)
    )


@dataclass(frozen=True)
class KeyFigures:
    n_cities: int
    mean_score: float | None
    top_city: str | None
    top_score: float | None
    n_districts: int
    n_counties: int
    reconciliation_status: dict[str, int]  # published figures compared with the computed ones, per status


def key_figures(rows: EditionRows) -> KeyFigures:
    top = rows.cities.sort("rank", "name_zh").head(1)
    return KeyFigures(
        n_cities=rows.cities.height,
        mean_score=number_or_none(rows.cities["score"].mean()) if rows.cities.height else None,
        top_city=top["name_zh"][0] if top.height else None,
        top_score=top["score"][0] if top.height else None,
        n_districts=rows.counties.filter(pl.col("kind") == "district").height,
        n_counties=rows.counties.filter(pl.col("kind") == "county").height,
        reconciliation_status=dict(rows.reconciliation.group_by("status").len().sort("status").iter_rows()),
    )


def reconciliation_overview(rows: EditionRows) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(status counts per category, the rows that are not plain matches) of the edition."""
    recon = rows.reconciliation
    if recon.height == 0:
        return recon, recon
    counts = recon.group_by("category", "status").len().sort("category", "status")
    noteworthy = recon.filter(pl.col("status").is_in(NOTEWORTHY_STATUSES)).sort("category", "item")
    return counts, noteworthy


def top_rows(rows: EditionRows, n: int = 10) -> pl.DataFrame:
    """The ranking's top rows: edition, rank, city, province, score and tier (Chinese)."""
    return (
        ranking(rows)
        .head(n)
        .select(
            pl.lit(rows.survey_year).alias("edition"),
            "rank",
            pl.col("name_zh").alias("city"),
            "province",
            "score",
            pl.col("tier_zh").alias("tier"),
        )
    )
