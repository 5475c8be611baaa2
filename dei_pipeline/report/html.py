"""The edition report as one self-contained HTML page: tables and inline SVG charts, the stylesheet
inline, no script, no external resource, so it opens offline, prints, and can be mailed as a single
file. The page is the Jinja template ``templates/report.html`` (autoescaped); this module turns an
edition's figures into the sections, tables and cells it lays out."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
import polars as pl

from dei_pipeline import __version__
from dei_pipeline.report import tables
from dei_pipeline.report.charts import FONT_FAMILY, Chart, tier_colors
from dei_pipeline.report.rows import EditionRows
from dei_pipeline.scalars import number_or_none

RANKING_BLOCKS = 3  # the white paper prints its 148-city ranking in three side-by-side blocks
COUNTY_BLOCKS = 2  # and each county table in two

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("dei_pipeline.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),  # the page; its stylesheet (report.css) is not HTML
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the report instead of leaving a gap
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Cell:
    """A table cell's text, shown in a styled span when it has a ``css_class``."""

    text: str
    css_class: str = ""
    style: str = ""


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str | Cell]  # row -> cell text (escaped by the template)
    numeric: bool = False
    wrap: bool = False  # long text: let it wrap instead of widening the table

    @property
    def css_class(self) -> str:
        return "num" if self.numeric else "wrap" if self.wrap else ""


@dataclass(frozen=True)
class Table:
    columns: Sequence[Column]
    rows: list[list[Cell]]
    caption: str | None = None
    kind: Literal["table"] = "table"


@dataclass(frozen=True)
class Paragraph:
    text: str
    css_class: str = "lead"
    kind: Literal["paragraph"] = "paragraph"


@dataclass(frozen=True)
class Heading:
    title: str
    detail: str
    kind: Literal["heading"] = "heading"


@dataclass(frozen=True)
class Figure:
    chart: Chart
    chart_folder: str | None
    kind: Literal["figure"] = "figure"


@dataclass(frozen=True)
class Row:
    """Items side by side (e.g. a long table cut into blocks, or a chart beside its table)."""

    items: Sequence[Content]
    kind: Literal["row"] = "row"


Content = Table | Paragraph | Heading | Figure | Row


@dataclass
class Section:
    anchor: str
    toc_label: str
    title_zh: str
    title_en: str
    items: list[Content] = field(default_factory=list)


def _score(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _int(value: int | None) -> str:
    return "–" if value is None else str(value)


def _field(
    name: str, format_value: Callable[[Any], str] = lambda v: "–" if v is None else str(v)
) -> Callable[[dict[str, Any]], str]:
    return lambda row: format_value(row[name])


def table(columns: Sequence[Column], records: Sequence[dict[str, Any]], caption: str | None = None) -> Table:
    cells = [
        [cell if isinstance(cell := column.cell(record), Cell) else Cell(cell) for column in columns]
        for record in records
    ]
    return Table(columns, cells, caption)


def blocks(columns: Sequence[Column], records: Sequence[dict[str, Any]], n_blocks: int) -> Row:
    """A long table cut into side-by-side blocks, read column by column like the white paper's."""
    size = max(1, math.ceil(len(records) / n_blocks))
    return Row([table(columns, records[start : start + size]) for start in range(0, len(records), size)])


def _chip(rows: EditionRows) -> Callable[[dict[str, Any]], Cell]:
    colors = tier_colors(rows)

    def chip(row: dict[str, Any]) -> Cell:
        fill, text = colors.get(row["tier"], ("#e4e7eb", "#1f2933"))
        return Cell(row["tier_zh"], "chip", f"background:{fill};color:{text}")

    return chip


def _rank_change(row: dict[str, Any]) -> Cell:
    change, status = row["cohort_rank_change"], row["status"]
    if status == "new":
        return Cell("新 new", "new")
    if change is None:
        return Cell("–")
    if change > 0:
        return Cell(f"↑{change}", "up")
    if change < 0:
        return Cell(f"↓{-change}", "down")
    return Cell("0")


def _figure(chart: Chart | None, chart_folder: str | None) -> list[Content]:
    return [] if chart is None else [Figure(chart, chart_folder)]


# ----------------------------------------------------------------------------------- sections


def _ranking_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section:
    section = Section("ranking", "城市排名", "城市评分及排名", "City ranking")
    ranked = tables.ranking(rows).to_dicts()
    if not ranked:
        section.items.append(Paragraph("本年度无城市数据 No ranked cities in this edition."))
        return section
    compare = (
        f"，与{rows.previous_year}年相比的名次变化（在两年均参评的城市中计算）" if rows.previous_year else ""
    )
    columns = [
        Column("排名", _field("rank", _int), numeric=True),
        Column("城市", _field("name_zh")),
        Column("省份", _field("province")),
        Column("评分", _field("score", _score), numeric=True),
        Column("画像", _chip(rows)),
    ]
    if rows.previous_year:
        columns.append(Column(f"较{rows.previous_year}", _rank_change, numeric=True))
    section.items += [
        Paragraph(
            f"{len(ranked)}个城市按综合评分排名{compare}；同分同名次。"
            f" All {len(ranked)} cities by composite score (ties share the best rank), with their tier (城市画像)"
            + (
                f" and their rank change since {rows.previous_year} among the cities ranked in both editions"
                " (the two editions' published ranks rank different sets of cities)."
                if rows.previous_year
                else "."
            )
        ),
        blocks(columns, ranked, RANKING_BLOCKS),
        *_figure(charts.get("top_cities"), chart_folder),
    ]
    return section


def _tier_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section:
    counts = tables.tier_counts_table(rows)
    current = rows.tier_history.filter(pl.col("survey_year") == rows.survey_year).sort("tier_order")
    labels = tables.tier_labels(rows)
    descriptions = dict(rows.tiers.select("tier_code", "description_zh").iter_rows())
    change_columns = [
        Column("画像", lambda r: labels.get(r["tier"], r["tier"])),
        Column("描述", lambda r: descriptions.get(r["tier"], "")),
        Column(f"{rows.survey_year}城市数", _field("n_cities", _int), numeric=True),
        Column("上次", _field("prev_n_cities", _int), numeric=True),
        Column("变化 %", _field("change_pct", lambda v: "–" if v is None else f"{v:+.1f}%"), numeric=True),
    ]
    count_columns = [Column(name, _field(name, _int), numeric=True) for name in counts.columns]
    return Section(
        "tiers",
        "城市画像分布",
        "数字经济城市画像",
        "Tier distribution across editions",
        [
            Row(
                [
                    *_figure(charts.get("tier_distribution"), chart_folder),
                    table(count_columns, counts.to_dicts(), "各年度城市画像分布 Cities per tier by edition"),
                ]
            ),
            table(
                change_columns,
                current.to_dicts(),
                f"{rows.survey_year}年各画像城市数及较上次评估的变化 Change since the previous edition",
            ),
        ],
    )


def _level1_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section | None:
    table_rows = tables.level1_by_tier(rows)
    if table_rows.height == 0:
        return None
    labels = tables.tier_labels(rows)
    published = dict(
        rows.reconciliation.filter(pl.col("category") == "level1_average")
        .select("item", "published")
        .iter_rows()
    )
    columns = [Column("一级指标", _field("name_zh"))]
    columns += [Column(labels[code], _field(code, _score), numeric=True) for code in rows.tiers["tier_code"]]
    columns.append(Column("综合平均", _field("all_cities", _score), numeric=True))
    if published:
        columns.append(
            Column("白皮书公布平均", lambda r: _score(published.get(r["node_code"])), numeric=True)
        )
    return Section(
        "level1",
        "一级指标",
        "一级指标：按城市画像",
        "Level-1 averages by tier",
        [*_figure(charts.get("level1_by_tier"), chart_folder), table(columns, table_rows.to_dicts())],
    )


def _industry_section(
    rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None
) -> Section | None:
    industries = tables.industry_averages(rows)
    if industries.height == 0:
        return None
    columns = [
        Column("产业", _field("name_zh")),
        Column("整体平均", _field("average", _score), numeric=True),
        Column("Top10平均", _field("top10_average", _score), numeric=True),
    ]
    if industries["published_average"].is_not_null().any():
        columns += [
            Column("白皮书：整体", _field("published_average", _score), numeric=True),
            Column("白皮书：Top10", _field("published_top10_average", _score), numeric=True),
        ]
    columns.append(Column("城市数", _field("n_cities", _int), numeric=True))
    return Section(
        "industries",
        "产业",
        "数字经济产业篇：产业平均得分",
        "Industry averages",
        [*_figure(charts.get("industry_averages"), chart_folder), table(columns, industries.to_dicts())],
    )


def _region_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section:
    section = Section("regions", "重点区域", "重点区域", "Key regions")
    regions = tables.region_summary(rows)
    if regions.height == 0:
        section.items.append(Paragraph("本年度无区域汇总 No regional rollup in this edition."))
        return section
    labels = tables.tier_labels(rows)
    columns = [
        Column("区域", _field("region_zh")),
        Column("成员/参评", lambda r: f"{r['n_members']}/{r['n_scored']}", numeric=True),
        Column("GDP加权得分", _field("gdp_weighted_score", _score), numeric=True),
    ]
    if regions["published_score"].is_not_null().any():
        columns += [
            Column("白皮书公布", _field("published_score", _score), numeric=True),
            Column(
                "差",
                lambda r: (
                    "–"
                    if r["published_score"] is None
                    else f"{r['gdp_weighted_score'] - r['published_score']:+.1f}"
                ),
                numeric=True,
            ),
        ]
    columns += [Column("算术平均", _field("mean_score", _score), numeric=True)]
    columns += [Column(labels[code], _field(code, _int), numeric=True) for code in rows.tiers["tier_code"]]
    columns += [
        Column(
            "GDP（亿元）",
            _field("gdp_total_100m_yuan", lambda v: "–" if v is None else f"{v:,.0f}"),
            numeric=True,
        ),
        Column("GDP年份", lambda r: f"{r['gdp_year']} {r['gdp_vintage']}"),
    ]
    section.items += [
        *_figure(charts.get("regions"), chart_folder),
        table(columns, regions.to_dicts()),
        Paragraph(
            "成员含未参评的香港、澳门（粤港澳大湾区11城中参评9城）。GDP加权得分以参评城市的GDP比重加权。"
            " Members include Hong Kong and Macao, which are not scored; the weighted score uses the scored members' GDP shares.",
            "muted",
        ),
    ]
    return section


def _movers_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section:
    if rows.previous_year is None:
        return Section(
            "movers",
            "排名变化",
            "排名变化",
            "Biggest movers",
            [
                Paragraph(
                    f"{rows.survey_year}年是仓库中最早的评估年度，无可比较的上一版。 No earlier edition to compare with."
                )
            ],
        )
    moved = tables.movers(rows)
    columns = [
        Column("城市", _field("name_zh")),
        Column(f"{rows.previous_year}名次", _field("prev_rank", _int), numeric=True),
        Column(f"{rows.survey_year}名次", _field("rank", _int), numeric=True),
        Column("名次变化", lambda r: _rank_change({**r, "status": "returning"}), numeric=True),
        Column(f"{rows.previous_year}评分", _field("prev_score", _score), numeric=True),
        Column(f"{rows.survey_year}评分", _field("score", _score), numeric=True),
        Column("评分变化", _field("score_change", lambda v: f"{v:+.1f}"), numeric=True),
    ]
    counts = dict(rows.city_changes.group_by("status").len().iter_rows())
    new, returning, dropped = (counts.get(status, 0) for status in ("new", "returning", "dropped"))
    return Section(
        "movers",
        "排名变化",
        "排名变化",
        f"Biggest movers since {rows.previous_year}",
        [
            Paragraph(
                f"与{rows.previous_year}年相比：新增{new}城，连续参评{returning}城，退出{dropped}城。名次变化只比较两次都参评的城市。"
                f" Against {rows.previous_year}: {new} new, {returning} returning, {dropped} dropped cities."
            ),
            *_figure(charts.get("movers"), chart_folder),
            table(columns, moved.to_dicts()),
        ],
    )


def _uncertainty_section(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> Section:
    section = Section("uncertainty", "排名不确定性", "排名的不确定性", "Rank uncertainty")
    chart = charts.get("rank_uncertainty")
    if chart is None:
        section.items.append(Paragraph(f"暂无 Not available: {rows.rank_intervals.note}", "muted"))
    else:
        section.items += [Figure(chart, chart_folder), Paragraph(rows.rank_intervals.note, "muted")]
    return section


def _county_section(rows: EditionRows) -> Section:
    section = Section("counties", "县域", "县域（市、区）", "Counties and districts")
    if rows.counties.height == 0:
        section.items.append(Paragraph("本年度无县域数据 No county units in this edition."))
        return section
    columns = [
        Column("排名", _field("rank", _int), numeric=True),
        Column("省份", _field("province")),
        Column("名称", _field("name_zh")),
        Column("评分", _field("score", _score), numeric=True),
    ]
    for kind, title, title_en in (
        ("district", "典型市辖区数字经济发展水平评分及排名", "Districts"),
        ("county", "典型县市数字经济发展水平评分及排名", "County-level units"),
    ):
        ranked = tables.county_ranking(rows, kind)
        if ranked.height:
            mean = number_or_none(ranked["score"].mean())
            section.items += [
                Heading(title, f"{title_en}: {ranked.height}, 平均 {_score(mean)}"),
                blocks(columns, ranked.to_dicts(), COUNTY_BLOCKS),
            ]
    return section


def _reconciliation_section(rows: EditionRows) -> Section:
    section = Section("reconciliation", "与白皮书核对", "与白皮书核对", "Reconciliation with the white paper")
    counts, noteworthy = tables.reconciliation_overview(rows)
    if counts.height == 0:
        section.items.append(Paragraph("本年度无公布数据可核对 No published figures for this edition."))
        return section
    pivot = counts.pivot("status", index="category", values="len").fill_null(0).sort("category")
    status_columns = [c for c in pivot.columns if c != "category"]
    columns = [Column("类别 category", _field("category"))] + [
        Column(s, _field(s, _int), numeric=True) for s in status_columns
    ]
    detail_columns = [
        Column("类别", _field("category")),
        Column("项目", _field("item")),
        Column("公布", _field("published", lambda v: "–" if v is None else f"{v:g}"), numeric=True),
        Column(
            "计算",
            _field(
                "computed",
                lambda v: "–" if v is None else (f"{v:g}" if float(v).is_integer() else f"{v:.2f}"),
            ),
            numeric=True,
        ),
        Column("状态", _field("status")),
        Column("说明", _field("note", lambda v: v or ""), wrap=True),
    ]
    section.items += [
        Paragraph(
            "每个公布数字与计算结果对照；不一致之处如实列出，不作修补。 tie_rule: equal printed scores share a rank here,"
            " the paper numbers them apart. Every published figure against the computed one; disagreements are listed, never patched."
        ),
        table(columns, pivot.to_dicts()),
    ]
    if noteworthy.height:
        section.items.append(
            table(
                detail_columns,
                noteworthy.to_dicts(),
                "不一致与白皮书自相矛盾之处 Disagreements and known contradictions",
            )
        )
    return section


def _cards(rows: EditionRows) -> list[tuple[str, str]]:
    """The key figures at the top of the page, as (value, label)."""
    key = tables.key_figures(rows)
    tier_counts = dict(
        rows.tier_history.filter(pl.col("survey_year") == rows.survey_year)
        .select("tier", "n_cities")
        .iter_rows()
    )
    first_tier = rows.tiers.sort("tier_order")["tier_code"][0]
    statuses = key.reconciliation_status
    agreeing = statuses.get("match", 0) + statuses.get("tie_rule", 0)
    cards = [
        (str(key.n_cities), "参评城市 cities"),
        (_score(key.mean_score), "平均得分 mean score"),
        (f"{key.top_city} {_score(key.top_score)}" if key.top_city else "–", "最高分 top score"),
        (
            str(tier_counts.get(first_tier, 0)),
            f"{tables.tier_labels(rows)[first_tier]}城市 first-tier cities",
        ),
        (f"{key.n_districts} + {key.n_counties}", "市辖区 + 县市 districts + counties"),
    ]
    if statuses:
        cards.append(
            (f"{agreeing}/{sum(statuses.values())}", "与白皮书公布数字一致 published figures reproduced")
        )
    return cards


def render_report(rows: EditionRows, charts: dict[str, Chart], chart_folder: str | None) -> str:
    """The whole page. ``chart_folder`` (relative to the page) is named under each chart when its SVG files exist."""
    sections = [
        _ranking_section(rows, charts, chart_folder),
        _tier_section(rows, charts, chart_folder),
        _level1_section(rows, charts, chart_folder),
        _industry_section(rows, charts, chart_folder),
        _region_section(rows, charts, chart_folder),
        _movers_section(rows, charts, chart_folder),
        _uncertainty_section(rows, charts, chart_folder),
        _county_section(rows),
        _reconciliation_section(rows),
    ]
    return TEMPLATES.get_template("report.html").render(
        title=f"中国城市数字经济指数 {rows.survey_year}",
        survey_year=rows.survey_year,
        data_note=rows.data_note,
        cards=_cards(rows),
        sections=[section for section in sections if section is not None],
        version=__version__,
        font_family=FONT_FAMILY,
    )
