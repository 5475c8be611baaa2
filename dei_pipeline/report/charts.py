"""The report's charts: figure tables in, ``Chart`` (SVG) out, one function per white-paper figure."""

from __future__ import annotations

from dei_pipeline.report import figures
from dei_pipeline.report.rows import EditionRows
from dei_pipeline.report.svg import (
    BarSeries, Chart, Panel, ReferenceLine, Segment, column_panels, diverging_bars, horizontal_bars,
    interval_dots, stacked_columns,
)

# Tiers are ordinal, so one sequential palette (ColorBrewer YlGnBu), darkest for the highest tier.
TIER_PALETTE: tuple[tuple[str, str], ...] = (  # (fill, text on the fill) by tier_order 1..5
    ("#253494", "#ffffff"), ("#2c7fb8", "#ffffff"), ("#41b6c4", "#10242b"), ("#7fcdbb", "#10242b"), ("#c7e9b4", "#10242b"),
)
PRIMARY = "#2c7fb8"
SECONDARY = "#f28e2b"
TOP_CITIES_IN_CHART = 20
SCORE_AXIS = "得分（0–100 分） Score (0–100)"
SOURCE_PREFIX = "来源 Source: dei_pipeline warehouse"


def tier_color(tier_order: int) -> tuple[str, str]:
    return TIER_PALETTE[min(max(tier_order, 1), len(TIER_PALETTE)) - 1]


def tier_colors(rows: EditionRows) -> dict[str, tuple[str, str]]:
    """Tier code -> (fill, text colour)."""
    return {code: tier_color(order) for code, order in rows.tiers.select("tier_code", "tier_order").iter_rows()}


def _source(*marts: str) -> str:
    return f"{SOURCE_PREFIX}, {', '.join(marts)}"


def top_cities(rows: EditionRows) -> Chart | None:
    table = figures.ranking(rows).head(TOP_CITIES_IN_CHART)
    if table.height == 0:
        return None
    colors = tier_colors(rows)
    labels = figures.tier_labels(rows)
    return horizontal_bars(
        "top_cities", f"{rows.survey_year}年城市数字经济指数 前{table.height}名  Top {table.height} cities",
        "综合得分，颜色为城市画像  Composite score, coloured by tier",
        [f"{r['rank']}. {r['name_zh']}" for r in table.iter_rows(named=True)],
        [BarSeries("综合得分", PRIMARY, table["score"].to_list(), [colors[t][0] for t in table["tier"]])],
        SCORE_AXIS, domain_max=100,
        legend=[(labels[code], colors[code][0]) for code in rows.tiers["tier_code"] if code in set(table["tier"])],
        source=_source("marts.city_index"),
    )


def tier_distribution(rows: EditionRows) -> Chart | None:
    editions, tier_codes, counts = figures.tier_counts_by_edition(rows)
    if not editions:
        return None
    colors, labels = tier_colors(rows), figures.tier_labels(rows)
    span = f"{editions[0]}–{editions[-1]}" if len(editions) > 1 else str(editions[0])
    return stacked_columns(
        "tier_distribution", f"数字经济城市画像分布 {span}  Cities per tier by edition",
        "每个评估年度各画像的城市数量，柱顶为城市总数  Cities per tier; totals on top",
        [str(year) for year in editions],
        [Segment(labels[code], *colors[code]) for code in tier_codes],
        counts, "城市数量（个） Number of cities", "评估年度 Edition",
        source=_source("marts.tier_summary"),
    )


def level1_by_tier(rows: EditionRows) -> Chart | None:
    table = figures.level1_by_tier(rows)
    if table.height == 0:
        return None
    colors, labels = tier_colors(rows), figures.tier_labels(rows)
    tier_codes = rows.tiers["tier_code"].to_list()
    panels = [
        Panel(
            title=record["name_zh"],
            labels=[labels[code] for code in tier_codes],
            values=[record[code] for code in tier_codes],
            colors=[colors[code][0] for code in tier_codes],
            reference=ReferenceLine(record["all_cities"], "综合平均") if record["all_cities"] is not None else None,
        )
        for record in table.iter_rows(named=True)
    ]
    return column_panels(
        "level1_by_tier", f"{rows.survey_year}年一级指标平均得分：按城市画像  Level-1 averages by tier",
        "各画像城市的平均得分，虚线为全部城市平均  Mean score per tier; dashed line: all cities",
        panels, "平均得分（分）",
        source=_source("marts.subindex_scores", "marts.city_index"),
    )


def industry_averages(rows: EditionRows) -> Chart | None:
    table = figures.industry_averages(rows)
    if table.height == 0:
        return None
    return horizontal_bars(
        "industry_averages", f"{rows.survey_year}年产业数字化与数字产业化平均得分  Industry averages",
        "全部城市平均与得分最高10个城市的平均  Mean of all cities and of the top 10",
        table["name_zh"].to_list(),
        [BarSeries("全部城市平均 All cities", PRIMARY, table["average"].to_list()),
         BarSeries(f"Top{figures.TOP_N_FOR_INDUSTRY}城市平均 Top 10", SECONDARY, table["top10_average"].to_list())],
        SCORE_AXIS, domain_max=100,
        source=_source("marts.subindex_scores"),
    )


def regions(rows: EditionRows) -> Chart | None:
    table = figures.region_summary(rows)
    if table.height == 0:
        return None
    mean = rows.cities["score"].mean()
    return horizontal_bars(
        "regions", f"{rows.survey_year}年重点区域数字经济得分  Key regions",
        "按城市GDP比重加权与算术平均，虚线为全国城市平均  GDP-weighted and plain mean of member cities",
        [f"{r['region_zh']}（{r['n_scored']}城）" for r in table.iter_rows(named=True)],
        [BarSeries("GDP加权得分 GDP-weighted", PRIMARY, table["gdp_weighted_score"].to_list()),
         BarSeries("算术平均 Plain mean", "#9fb3c8", table["mean_score"].to_list())],
        SCORE_AXIS, references=[ReferenceLine(float(mean), "全国城市平均")] if mean is not None else [], domain_max=100,  # type: ignore[arg-type]
        source=_source("marts.region_rollup"),
    )


def movers(rows: EditionRows) -> Chart | None:
    table = figures.movers(rows)
    if table.height == 0 or rows.previous_year is None:
        return None
    return diverging_bars(
        "movers", f"{rows.previous_year}→{rows.survey_year} 排名变化最大的城市  Biggest movers",
        "两次评估均参评的城市，名次上升为正  Cities ranked in both editions; positive = moved up",
        table["name_zh"].to_list(),
        table["rank_change"].to_list(),
        [f"第{r['prev_rank']}→{r['rank']}名  {r['score_change']:+.1f}分" for r in table.iter_rows(named=True)],
        "名次变化（位） Rank change (places)",
        source=_source("marts.city_yoy"),
    )


def rank_uncertainty(rows: EditionRows) -> Chart | None:
    table = figures.rank_intervals(rows)
    if table is None or table.height == 0:
        return None
    return interval_dots(
        "rank_uncertainty", f"{rows.survey_year}年排名的不确定区间（前{table.height}名）  Rank uncertainty",
        "点为实际名次，线为模拟名次的5%–95%区间  Dot: rank; line: 5th–95th percentile of simulated ranks",
        [f"{r['rank']}. {r['name_zh']}" for r in table.iter_rows(named=True)],
        [float(v) for v in table["rank"]], [float(v) for v in table["rank_low"]], [float(v) for v in table["rank_high"]],
        "名次（1 = 最好） Rank (1 = best)",
        source=_source("marts.rank_uncertainty"),
    )


CHART_BUILDERS = (top_cities, tier_distribution, level1_by_tier, industry_averages, regions, movers, rank_uncertainty)


def edition_charts(rows: EditionRows) -> dict[str, Chart]:
    """Every chart the edition has data for, by name (file stem of its PNG)."""
    charts = (build(rows) for build in CHART_BUILDERS)
    return {chart.name: chart for chart in charts if chart is not None}

