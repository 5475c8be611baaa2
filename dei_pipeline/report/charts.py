"""The report's charts: figure tables in, ``Chart`` (SVG, and PNG on demand) out, one function per
white-paper figure.

Each chart is declared with Altair (Vega-Lite) and rendered offline by vl-convert, which lays the
text out with the system's fonts (WenQuanYi Micro Hei on Debian: ``fonts-wqy-microhei``), so neither
the SVG nor the PNG needs a browser. Every chart has a bilingual title, a subtitle with units, labelled axes,
values printed on the marks and a source line at the bottom, so it reads at a glance on a slide as
well as in the report.

Encodings are written as channel objects (``alt.X("rank:Q")``) rather than bare shorthand strings
(``x="rank:Q"``): Altair 6 turns a string into a channel with ``from_dict``, which hashes the schema of
every Vega-Lite class on each call (about half of Altair's time building the charts); the specs are the
same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import polars as pl
import vl_convert

from dei_pipeline.report import tables
from dei_pipeline.report.rows import EditionRows
from dei_pipeline.scalars import integer, number_or_none

# The first family is the one vl-convert lays the text out with: a TrueType CJK font, with which it draws
# a chart three to four times as fast as with Noto Sans CJK (CFF outlines; docs/performance.md). The others
# are for viewers of the SVG without it (CJK glyphs are one em wide in all of them).
FONT_FAMILY = (
    "'WenQuanYi Micro Hei','Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
    "sans-serif"
)
TEXT = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
AXIS = "#9aa5b1"
REFERENCE = "#c0392b"
# Tiers are ordinal, so one sequential palette (ColorBrewer YlGnBu), darkest for the highest tier.
TIER_PALETTE: tuple[tuple[str, str], ...] = (  # (fill, text on the fill) by tier_order 1..5
    ("#253494", "#ffffff"),
    ("#2c7fb8", "#ffffff"),
    ("#41b6c4", "#10242b"),
    ("#7fcdbb", "#10242b"),
    ("#c7e9b4", "#10242b"),
)
PRIMARY = "#2c7fb8"
SECONDARY = "#f28e2b"
MUTED_BAR = "#9fb3c8"
RISE, FALL = "#2b8a3e", "#c92a2a"
TOP_CITIES_IN_CHART = 20
SCORE_AXIS = "得分（0–100 分） Score (0–100)"
SOURCE_PREFIX = "来源 Source: dei_pipeline warehouse"
BAR_STEP = 26  # pixels per bar in the horizontal bar charts
PLOT_WIDTH = 660  # the plot area of the full-width charts; labels and legends come on top of it
# The tier chart's plot area, at most (until each edition's column is down to its minimum step: room for
# the column, a count printed beside it and the edition's label).
TIER_PLOT_MAX_WIDTH = 1040
TIER_COLUMN_MIN_STEP = 56
# Validate each spec against the Vega-Lite schema before drawing it (the tests turn it on).
VALIDATE_SPECS = False

# One look for every chart: titles left-aligned, muted axes and grid, no frame around the plot.
# What render frames: any Altair chart (a chart, a layer, a facet, a concatenation, a repeat).
AnyChart = (
    alt.Chart
    | alt.LayerChart
    | alt.FacetChart
    | alt.ConcatChart
    | alt.HConcatChart
    | alt.VConcatChart
    | alt.RepeatChart
)

CONFIG: dict[str, Any] = {
    "font": FONT_FAMILY,
    "background": "#ffffff",
    "padding": 16,
    "view": {"stroke": None},
    "title": {
        "anchor": "start",
        "fontSize": 18,
        "color": TEXT,
        "subtitleFontSize": 12,
        "subtitleColor": MUTED,
        "subtitlePadding": 6,
        "offset": 14,
    },
    "axis": {
        "labelFontSize": 12,
        "labelColor": MUTED,
        "titleFontSize": 13,
        "titleColor": MUTED,
        "titleFontWeight": "normal",
        "gridColor": GRID,
        "domainColor": AXIS,
        "tickColor": AXIS,
        "titlePadding": 10,
    },
    "axisBand": {
        "labelFontSize": 13,
        "labelColor": TEXT,
        "ticks": False,
        "domainColor": AXIS,
        "labelPadding": 8,
    },
    "legend": {
        "labelFontSize": 13,
        "labelColor": TEXT,
        "labelLimit": 400,
        "symbolType": "square",
        "symbolSize": 160,
        "title": None,
    },
    "header": {
        "labelFontSize": 14,
        "labelFontWeight": "bold",
        "labelColor": TEXT,
        "labelAnchor": "start",
        "labelPadding": 4,
    },
    "text": {"fontSize": 12, "color": TEXT},
}


@dataclass(frozen=True)
class Chart:
    """One rendered chart: ``name`` is the file stem of its SVG and PNG (``<edition>/<name>.svg``),
    ``width`` and ``height`` the SVG's size in CSS pixels."""

    name: str
    title: str
    svg: str
    width: int
    height: int


def svg_to_png(svg: str, scale: float) -> bytes:
    """A chart's SVG as a PNG of ``scale`` times its size, drawn with the same fonts."""
    return vl_convert.svg_to_png(svg, scale=scale)


def framed_spec(chart: AnyChart, title: str, subtitle: str, source: str) -> dict[str, Any]:
    """The Vega-Lite spec of ``chart`` with its title and subtitle on top, its source line at the bottom
    and the report's look."""
    spec = chart.to_dict(validate=VALIDATE_SPECS)
    # The frames are added to the chart's spec rather than with alt.vconcat, which deep-copies the
    # chart and its data twice (most of Altair's time in the report). Only the top level of a spec may
    # hold the datasets, the schema and the config; the frame's config replaces the chart's defaults.
    top: dict[str, Any] = {key: spec.pop(key) for key in ("$schema", "datasets") if key in spec}
    spec.pop("config", None)
    # Two frames, as a view has one title. The inner one keeps its own colour scale, so that a top
    # legend goes under the title rather than above it.
    heading = {
        "vconcat": [spec],
        "title": {"text": title, "subtitle": subtitle},
        "resolve": {"scale": {"color": "independent"}},
    }
    footer = {
        "text": source,
        "orient": "bottom",
        "anchor": "start",
        "fontSize": 11,
        "fontWeight": "normal",
        "color": MUTED,
        "offset": 18,
    }
    framed: dict[str, Any] = {**top, "vconcat": [heading], "title": footer, "config": CONFIG}
    if VALIDATE_SPECS:
        alt.TopLevelVConcatSpec.validate(framed)
    return framed


def tooltips(*fields: str | alt.Tooltip) -> list[alt.Tooltip]:
    """A tooltip of these fields (shorthands such as ``"rank:Q"``, or tooltips with a format), as
    channel objects (see the module's note)."""
    return [field if isinstance(field, alt.Tooltip) else alt.Tooltip(field) for field in fields]


def render(name: str, title: str, subtitle: str, chart: AnyChart, source: str) -> Chart:
    """Give ``chart`` its title and subtitle on top and its source line at the bottom, and render it
    to SVG."""
    # Altair's JSON-schema validation of the spec costs about as much as drawing a simple chart; the
    # specs are validated by the tests instead (VALIDATE_SPECS), for every chart of the sample's editions.
    svg = vl_convert.vegalite_to_svg(framed_spec(chart, title, subtitle, source))
    size = re.search(r'<svg[^>]*\swidth="([\d.]+)" height="([\d.]+)"', svg)
    if size is None:
        raise ValueError(f"vl-convert returned an SVG without a size for chart {name!r}")
    return Chart(name, title, svg, round(float(size.group(1))), round(float(size.group(2))))


def tier_color(tier_order: int) -> tuple[str, str]:
    return TIER_PALETTE[min(max(tier_order, 1), len(TIER_PALETTE)) - 1]


def tier_colors(rows: EditionRows) -> dict[str, tuple[str, str]]:
    """Tier code -> (fill, text colour)."""
    return {
        code: tier_color(order) for code, order in rows.tiers.select("tier_code", "tier_order").iter_rows()
    }


def _source(*marts: str) -> str:
    return f"{SOURCE_PREFIX}, {', '.join(marts)}"


def _one_decimal(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.1f}"


@dataclass(frozen=True)
class BarSeries:
    label: str
    color: str
    values: Sequence[float | None]


def horizontal_bars(
    categories: Sequence[str],
    series: Sequence[BarSeries],
    axis_title: str,
    color_keys: Sequence[str] | None = None,
    legend: Sequence[tuple[str, str]] = (),
    reference: tuple[float, str] | None = None,
) -> alt.LayerChart:
    """Grouped horizontal bars on a 0–100 axis, one group per category (top to bottom), the value
    printed at each bar's end ("无数据" where there is none). Bars take their series' colour, or with
    ``color_keys`` (one per category) the colour that ``legend`` (key, colour) gives that key; the
    legend names the series when there are several. ``reference`` (value, label) is a dashed line."""
    long = pl.DataFrame(
        [
            {
                "category": category,
                "series": bars.label,
                "value": value,
                "key": key,
                "label": _one_decimal(value, "无数据"),
                "label_at": value or 0.0,
            }
            for bars in series
            for category, value, key in zip(
                categories, bars.values, color_keys or [bars.label] * len(categories), strict=True
            )
        ]
    )
    if color_keys is None:
        legend = [(bars.label, bars.color) for bars in series] if len(series) > 1 else []
        keys, colors = [bars.label for bars in series], [bars.color for bars in series]
    else:
        keys, colors = [key for key, _ in legend], [color for _, color in legend]
    grouped = len(series) > 1
    y = alt.Y(
        "category:N",
        sort=list(categories),
        title=None,
        scale=alt.Scale(paddingInner=0.3 if grouped else 0.35, paddingOuter=0.2),
    )
    offset: dict[str, Any] = (
        {"yOffset": alt.YOffset("series:N", sort=[bars.label for bars in series])} if grouped else {}
    )
    base = alt.Chart(long).encode(y=y, **offset)
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", scale=alt.Scale(domain=[0, 100]), title=axis_title, axis=alt.Axis(tickCount=10)),
        color=alt.Color(
            "key:N",
            scale=alt.Scale(domain=keys, range=colors),
            legend=alt.Legend(
                orient="top",
                direction="horizontal",
                values=[key for key, _ in legend],
                offset=30 if reference else 12,
            )
            if legend
            else None,
        ),
        tooltip=tooltips("category:N", "series:N", alt.Tooltip("value:Q", format=".1f")),
    )
    labels = base.mark_text(align="left", dx=5).encode(x=alt.X("label_at:Q"), text=alt.Text("label:N"))
    layers: list[alt.Chart] = [bars, labels]
    if reference is not None:
        value, name = reference
        line = pl.DataFrame({"value": [value], "label": [f"{name} {value:.1f}"]})
        layers += [
            alt.Chart(line)
            .mark_rule(color=REFERENCE, strokeWidth=1.5, strokeDash=[6, 4])
            .encode(x=alt.X("value:Q")),
            alt.Chart(line)
            .mark_text(color=REFERENCE, dy=-10, baseline="bottom")
            .encode(x=alt.X("value:Q"), y=alt.value(0), text=alt.Text("label:N")),
        ]
    step = BAR_STEP * len(series) + (8 if grouped else 0)
    # alt.layer would make a facet chart of layers that share a facet encoding; these have none.
    return alt.LayerChart(layer=layers).properties(
        width=PLOT_WIDTH, height=alt.Step(step) if not grouped else len(categories) * step
    )


def top_cities(rows: EditionRows) -> Chart | None:
    table = tables.ranking(rows).head(TOP_CITIES_IN_CHART)
    if table.height == 0:
        return None
    colors, labels = tier_colors(rows), tables.tier_labels(rows)
    shown = set(table["tier"])
    chart = horizontal_bars(
        [f"{r['rank']}. {r['name_zh']}" for r in table.iter_rows(named=True)],
        [BarSeries("综合得分", PRIMARY, table["score"].to_list())],
        SCORE_AXIS,
        color_keys=[labels[code] for code in table["tier"]],
        legend=[(labels[code], colors[code][0]) for code in rows.tiers["tier_code"] if code in shown],
    )
    return render(
        "top_cities",
        f"{rows.survey_year}年城市数字经济指数 前{table.height}名  Top {table.height} cities",
        "综合得分，颜色为城市画像  Composite score, coloured by tier",
        chart,
        _source("marts.city_index"),
    )


def tier_distribution(rows: EditionRows) -> Chart | None:
    editions, tier_codes, counts = tables.tier_counts_by_edition(rows)
    if not editions:
        return None
    colors, labels = tier_colors(rows), tables.tier_labels(rows)
    # Columns narrow as editions accumulate, so that twenty editions still fit about a slide's width.
    step = min(130, max(TIER_COLUMN_MIN_STEP, round(TIER_PLOT_MAX_WIDTH / len(editions))))
    plot_height, column_width = 340, min(64, step - 30)
    totals = [sum(column) for column in counts]
    # Segments are stacked here rather than by Vega-Lite so that each knows whether it is tall enough
    # (15 px) to hold its count; thinner ones print it beside the column.
    pixels_per_city = plot_height / max(max(totals), 1)
    segments: list[dict[str, Any]] = []
    for year, column in zip(editions, counts, strict=True):
        bottom = 0
        for code, count in zip(tier_codes, column, strict=True):
            segments.append(
                {
                    "edition": str(year),
                    "tier": labels[code],
                    "start": bottom,
                    "end": bottom + count,
                    "count": count,
                    "middle": bottom + count / 2,
                    "inside": count * pixels_per_city >= 15,
                    "ink": colors[code][1],
                }
            )
            bottom += count
    stack = pl.DataFrame(segments)
    totals_frame = pl.DataFrame({"edition": [str(year) for year in editions], "total": totals})
    x = alt.X(
        "edition:N",
        title="评估年度 Edition",
        axis=alt.Axis(labelAngle=0),
        sort=[str(year) for year in editions],
    )
    base = alt.Chart(stack).encode(x=x)
    top_first = [labels[code] for code in reversed(tier_codes)]  # the legend reads like the columns, top down
    chart = alt.layer(
        base.mark_bar(size=column_width).encode(
            y=alt.Y("start:Q", title="城市数量（个） Number of cities"),
            y2=alt.Y2("end:Q"),
            color=alt.Color(
                "tier:N",
                scale=alt.Scale(domain=top_first, range=[colors[code][0] for code in reversed(tier_codes)]),
                legend=alt.Legend(orient="right", values=top_first),
            ),
            tooltip=tooltips("edition:N", "tier:N", "count:Q"),
        ),
        base.transform_filter("datum.inside")
        .mark_text()
        .encode(y=alt.Y("middle:Q"), text=alt.Text("count:Q"), color=alt.Color("ink:N", scale=None)),
        base.transform_filter("!datum.inside && datum.count > 0")
        .mark_text(align="left", dx=column_width / 2 + 5)
        .encode(y=alt.Y("middle:Q"), text=alt.Text("count:Q")),
        alt.Chart(totals_frame)
        .mark_text(dy=-10, fontSize=13, fontWeight="bold")
        .encode(x=x, y=alt.Y("total:Q"), text=alt.Text("total:Q")),
    ).properties(width=max(step * len(editions), 260), height=plot_height)
    span = f"{editions[0]}–{editions[-1]}" if len(editions) > 1 else str(editions[0])
    return render(
        "tier_distribution",
        f"数字经济城市画像分布 {span}  Cities per tier by edition",
        "每个评估年度各画像的城市数量，柱顶为城市总数  Cities per tier; totals on top",
        chart,
        _source("marts.tier_summary"),
    )


def level1_by_tier(rows: EditionRows) -> Chart | None:
    table = tables.level1_by_tier(rows)
    if table.height == 0:
        return None
    colors, labels = tier_colors(rows), tables.tier_labels(rows)
    tier_codes = rows.tiers["tier_code"].to_list()
    long = table.unpivot(
        tier_codes, index=["name_zh", "all_cities"], variable_name="tier_code", value_name="value"
    ).with_columns(
        pl.col("tier_code").replace_strict(labels).alias("tier"),
        pl.col("tier_code").replace_strict({code: fill for code, (fill, _) in colors.items()}).alias("fill"),
        pl.col("value")
        .map_elements(lambda v: _one_decimal(v, "无"), return_dtype=pl.String, skip_nulls=False)
        .alias("label"),
        pl.col("value").fill_null(0).alias("label_at"),
    )
    base = alt.Chart().encode(
        x=alt.X("tier:N", sort=[labels[code] for code in tier_codes], title=None, axis=alt.Axis(labelAngle=0))
    )
    # The reference (all-city mean) is the same on every row of a panel: one line per panel.
    reference = (
        alt.Chart()
        .transform_aggregate(all_cities="mean(all_cities)", groupby=["name_zh"])
        .transform_filter("isValid(datum.all_cities)")
        .transform_calculate(label="'综合平均 ' + format(datum.all_cities, '.1f')")
    )
    panel = alt.layer(
        base.mark_bar(size=44).encode(
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 100]), title="平均得分（分）"),
            color=alt.Color("fill:N", scale=None),
            tooltip=tooltips("name_zh:N", "tier:N", alt.Tooltip("value:Q", format=".1f")),
        ),
        base.mark_text(dy=-8, baseline="bottom").encode(y=alt.Y("label_at:Q"), text=alt.Text("label:N")),
        reference.mark_rule(color=REFERENCE, strokeWidth=1.5, strokeDash=[6, 4]).encode(
            y=alt.Y("all_cities:Q")
        ),
        reference.mark_text(color=REFERENCE, align="right", baseline="bottom", dy=-4).encode(
            y=alt.Y("all_cities:Q"), x=alt.value(400), text=alt.Text("label:N")
        ),
        data=long,
    ).properties(width=400, height=200)
    chart = panel.facet(
        facet=alt.Facet("name_zh:N", sort=table["name_zh"].to_list(), title=None),
        columns=2,
        spacing={"row": 28, "column": 40},
    )
    return render(
        "level1_by_tier",
        f"{rows.survey_year}年一级指标平均得分：按城市画像  Level-1 averages by tier",
        "各画像城市的平均得分，虚线为全部城市平均  Mean score per tier; dashed line: all cities",
        chart,
        _source("marts.subindex_scores", "marts.city_index"),
    )


def industry_averages(rows: EditionRows) -> Chart | None:
    table = tables.industry_averages(rows)
    if table.height == 0:
        return None
    chart = horizontal_bars(
        table["name_zh"].to_list(),
        [
            BarSeries("全部城市平均 All cities", PRIMARY, table["average"].to_list()),
            BarSeries(
                f"Top{tables.TOP_N_FOR_INDUSTRY}城市平均 Top 10", SECONDARY, table["top10_average"].to_list()
            ),
        ],
        SCORE_AXIS,
    )
    return render(
        "industry_averages",
        f"{rows.survey_year}年产业数字化与数字产业化平均得分  Industry averages",
        "全部城市平均与得分最高10个城市的平均  Mean of all cities and of the top 10",
        chart,
        _source("marts.subindex_scores"),
    )


def regions(rows: EditionRows) -> Chart | None:
    table = tables.region_summary(rows)
    if table.height == 0:
        return None
    mean = number_or_none(rows.cities["score"].mean())
    chart = horizontal_bars(
        [f"{r['region_zh']}（{r['n_scored']}城）" for r in table.iter_rows(named=True)],
        [
            BarSeries("GDP加权得分 GDP-weighted", PRIMARY, table["gdp_weighted_score"].to_list()),
            BarSeries("算术平均 Plain mean", MUTED_BAR, table["mean_score"].to_list()),
        ],
        SCORE_AXIS,
        reference=(mean, "全国城市平均") if mean is not None else None,
    )
    return render(
        "regions",
        f"{rows.survey_year}年重点区域数字经济得分  Key regions",
        "按城市GDP比重加权与算术平均，虚线为全国城市平均  GDP-weighted and plain mean of member cities",
        chart,
        _source("marts.region_rollup"),
    )


def movers(rows: EditionRows) -> Chart | None:
    table = tables.movers(rows)
    if table.height == 0 or rows.previous_year is None:
        return None
    frame = table.select(
        "name_zh",
        pl.col("cohort_rank_change").alias("rank_change"),
        pl.format(
            "第{}→{}名  {}分",
            "prev_rank",
            "rank",
            pl.col("score_change").map_elements(lambda v: f"{v:+.1f}", return_dtype=pl.String),
        ).alias("note"),
        pl.when(pl.col("cohort_rank_change") >= 0).then(pl.lit(RISE)).otherwise(pl.lit(FALL)).alias("ink"),
        pl.col("cohort_rank_change").map_elements(lambda v: f"{v:+d}", return_dtype=pl.String).alias("label"),
    )
    extent = 1.15 * max(abs(v) for v in frame["rank_change"])  # room for the value beside the longest bar
    width = 520
    base = alt.Chart(frame).encode(
        y=alt.Y("name_zh:N", sort=frame["name_zh"].to_list(), title=None, scale=alt.Scale(paddingInner=0.25))
    )
    x = alt.X(
        "rank_change:Q",
        scale=alt.Scale(domain=[-extent, extent], nice=True),
        title="回归城市中的名次变化（位） Rank change among the cities ranked in both editions (places)",
        axis=alt.Axis(labelExpr="datum.value > 0 ? '+' + datum.label : datum.label"),
    )
    ink = alt.Color("ink:N", scale=None)
    chart = alt.layer(
        base.mark_bar().encode(
            x=x,
            color=ink,
            tooltip=tooltips("name_zh:N", "rank_change:Q", "note:N"),
        ),
        base.transform_filter("datum.rank_change >= 0")
        .mark_text(align="left", dx=5, fontWeight="bold")
        .encode(x=alt.X("rank_change:Q"), text=alt.Text("label:N"), color=ink),
        base.transform_filter("datum.rank_change < 0")
        .mark_text(align="right", dx=-5, fontWeight="bold")
        .encode(x=alt.X("rank_change:Q"), text=alt.Text("label:N"), color=ink),
        base.mark_text(align="left", color=MUTED).encode(x=alt.value(width + 12), text=alt.Text("note:N")),
        alt.Chart(pl.DataFrame({"zero": [0]}))
        .mark_rule(color=TEXT, strokeWidth=1.2)
        .encode(x=alt.X("zero:Q")),
    ).properties(width=width, height=alt.Step(24))
    return render(
        "movers",
        f"{rows.previous_year}→{rows.survey_year} 排名变化最大的城市  Biggest movers",
        "名次在两次评估均参评的城市中计算，上升为正；注为公布名次  Ranks among the cities ranked in both editions; "
        "positive = moved up; the notes give the published ranks",
        chart,
        _source("marts.city_yoy"),
    )


def rank_uncertainty(rows: EditionRows) -> Chart | None:
    table = tables.rank_intervals(rows)
    if table is None or table.height == 0:
        return None
    frame = table.select(
        pl.format("{}. {}", "rank", "name_zh").alias("city"),
        "rank",
        "rank_low",
        "rank_high",
        pl.format("{}–{}", "rank_low", "rank_high").alias("interval"),
    )
    width = PLOT_WIDTH
    top = max(integer(frame["rank_high"].max()), integer(frame["rank"].max()), 2)
    base = alt.Chart(frame).encode(y=alt.Y("city:N", sort=frame["city"].to_list(), title=None))
    x = alt.X(
        "rank_low:Q",
        scale=alt.Scale(domain=[1, top], zero=False, nice=False),
        title="名次（1 = 最好） Rank (1 = best)",
    )
    chart = alt.layer(
        base.mark_rule(color="#2f6db5", strokeWidth=3).encode(x=x, x2=alt.X2("rank_high:Q")),
        base.mark_circle(color="#0b3c73", size=80, opacity=1).encode(
            x=alt.X("rank:Q"),
            tooltip=tooltips("city:N", "rank:Q", "rank_low:Q", "rank_high:Q"),
        ),
        base.mark_text(align="left", color=MUTED).encode(
            x=alt.value(width + 10), text=alt.Text("interval:N")
        ),
    ).properties(width=width, height=alt.Step(20))
    return render(
        "rank_uncertainty",
        f"{rows.survey_year}年排名的不确定区间（前{table.height}名）  Rank uncertainty",
        "点为实际名次，线为模拟名次的5%–95%区间  Dot: rank; line: 5th–95th percentile of simulated ranks",
        chart,
        _source("marts.rank_uncertainty"),
    )


CHART_BUILDERS = (
    top_cities,
    tier_distribution,
    level1_by_tier,
    industry_averages,
    regions,
    movers,
    rank_uncertainty,
)


def edition_charts(rows: EditionRows) -> dict[str, Chart]:
    """Every chart the edition has data for, by name (file stem of its SVG and PNG)."""
    charts = (build(rows) for build in CHART_BUILDERS)
    return {chart.name: chart for chart in charts if chart is not None}
