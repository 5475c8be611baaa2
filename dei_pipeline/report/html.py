"""The edition report as one self-contained HTML page: tables and inline SVG charts, CSS inline, no
script, no external resource, so it opens offline, prints, and can be mailed as a single file."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import polars as pl

from dei_pipeline import __version__
from dei_pipeline.report import figures
from dei_pipeline.report.charts import FONT_FAMILY, Chart, tier_colors
from dei_pipeline.report.rows import EditionRows

RANKING_BLOCKS = 3  # the white paper prints its 148-city ranking in three side-by-side blocks
COUNTY_BLOCKS = 2  # and each county table in two

STYLE = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #eef2f6; color: #1f2933; font-family: {FONT_FAMILY}; line-height: 1.5; }}
main {{ max-width: 1280px; margin: 0 auto; padding: 28px 40px 48px; background: #fff; }}
h1 {{ font-size: 30px; margin: 0; }}
h1 small {{ display: block; font-size: 17px; font-weight: normal; color: #52606d; }}
h2 {{ font-size: 22px; margin: 44px 0 12px; padding-bottom: 6px; border-bottom: 3px solid #2c7fb8; }}
h2 small, h3 small {{ font-weight: normal; color: #52606d; font-size: 15px; }}
h3 {{ font-size: 17px; margin: 20px 0 8px; }}
p.lead {{ color: #3e4c59; margin: 4px 0 12px; }}
.note {{ background: #fff4e5; border-left: 6px solid #f28e2b; padding: 10px 16px; margin: 16px 0; font-size: 14px; }}
.muted {{ color: #616e7c; font-size: 13px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 18px 0; }}
.card {{ flex: 1 1 170px; border: 1px solid #d9e2ec; border-radius: 8px; padding: 10px 16px; }}
.card .value {{ font-size: 28px; font-weight: bold; color: #102a43; }}
.card .label {{ color: #52606d; font-size: 13px; }}
nav.toc {{ font-size: 14px; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 18px; }}
nav.toc a {{ color: #1f5f99; text-decoration: none; }}
.blocks {{ display: flex; gap: 22px; align-items: flex-start; flex-wrap: wrap; }}
table {{ border-collapse: collapse; font-size: 13.5px; margin: 6px 0 10px; }}
th {{ background: #f0f4f8; text-align: left; padding: 5px 9px; border-bottom: 2px solid #bcccdc; white-space: nowrap; }}
td {{ padding: 3px 9px; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }}
td.wrap {{ white-space: normal; max-width: 560px; font-size: 12.5px; color: #3e4c59; }}
tr:nth-child(even) td {{ background: #fafbfc; }}
th.num, td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.chip {{ display: inline-block; min-width: 3.2em; text-align: center; padding: 0 6px; border-radius: 4px; font-size: 12.5px; }}
.up {{ color: #2b8a3e; font-weight: bold; }}
.down {{ color: #c92a2a; font-weight: bold; }}
.new {{ color: #7b5ea7; }}
figure {{ margin: 14px 0 18px; }}
figure svg {{ max-width: 100%; height: auto; border: 1px solid #e4e7eb; }}
figcaption {{ color: #616e7c; font-size: 12.5px; }}
footer {{ margin-top: 48px; color: #616e7c; font-size: 12.5px; border-top: 1px solid #d9e2ec; padding-top: 10px; }}
@media print {{ body {{ background: #fff; }} main {{ padding: 0; }} h2 {{ break-after: avoid; }} figure, table {{ break-inside: avoid; }} }}
"""


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str]  # row -> cell HTML (already escaped)
    numeric: bool = False
    wrap: bool = False  # long text: let it wrap instead of widening the table

    @property
    def css_class(self) -> str:
        return "num" if self.numeric else "wrap" if self.wrap else ""


def _score(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _int(value: int | None) -> str:
    return "–" if value is None else str(value)


def _field(name: str, format_value: Callable[[Any], str] = lambda v: "–" if v is None else escape(str(v))) -> Callable[[dict[str, Any]], str]:
    return lambda row: format_value(row[name])


def table(columns: Sequence[Column], records: Sequence[dict[str, Any]], caption: str | None = None) -> str:
    head = "".join(f'<th class="{c.css_class}">{escape(c.header)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{c.css_class}">{c.cell(r)}</td>' for c in columns) + "</tr>" for r in records)
    title = f"<caption class='muted'>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def blocks(columns: Sequence[Column], records: Sequence[dict[str, Any]], n_blocks: int) -> str:
    """A long table cut into side-by-side blocks, read column by column like the white paper's."""
    size = max(1, math.ceil(len(records) / n_blocks))
    parts = [table(columns, records[start:start + size]) for start in range(0, len(records), size)]
    return f"<div class='blocks'>{''.join(parts)}</div>"


def _chip(rows: EditionRows) -> Callable[[dict[str, Any]], str]:
    colors = tier_colors(rows)

    def chip(row: dict[str, Any]) -> str:
        fill, text = colors.get(row["tier"], ("#e4e7eb", "#1f2933"))
        return f'<span class="chip" style="background:{fill};color:{text}">{escape(row["tier_zh"])}</span>'

    return chip


def _rank_change(row: dict[str, Any]) -> str:
    change, status = row["rank_change"], row["status"]
    if status == "new":
        return '<span class="new">新 new</span>'
    if change is None:
        return "–"
    if change > 0:
        return f'<span class="up">↑{change}</span>'
    if change < 0:
        return f'<span class="down">↓{-change}</span>'
    return "0"


def _figure(chart: Chart | None, png_folder: str | None) -> str:
    if chart is None:
        return ""
    png = f" · PNG: {escape(png_folder)}/{escape(chart.name)}.png" if png_folder else ""
    return f"<figure id='chart-{escape(chart.name)}'>{chart.svg}<figcaption>{escape(chart.title)}{png}</figcaption></figure>"


def _section(anchor: str, title_zh: str, title_en: str, content: str) -> str:
    return f"<section id='{anchor}'><h2>{escape(title_zh)} <small>{escape(title_en)}</small></h2>{content}</section>"


def _paragraph(text: str, css_class: str = "lead") -> str:
    return f"<p class='{css_class}'>{escape(text)}</p>"


# ----------------------------------------------------------------------------------- sections

def _ranking_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    ranked = figures.ranking(rows).to_dicts()
    if not ranked:
        return _section("ranking", "城市评分及排名", "City ranking", _paragraph("本年度无城市数据 No ranked cities in this edition."))
    compare = f"，与{rows.previous_year}年相比的名次变化" if rows.previous_year else ""
    columns = [
        Column("排名", _field("rank", _int), numeric=True),
        Column("城市", _field("name_zh")),
        Column("省份", _field("province")),
        Column("评分", _field("score", _score), numeric=True),
        Column("画像", _chip(rows)),
    ]
    if rows.previous_year:
        columns.append(Column(f"较{rows.previous_year}", _rank_change, numeric=True))
    intro = _paragraph(f"{len(ranked)}个城市按综合评分排名{compare}；同分同名次。"
                       f" All {len(ranked)} cities by composite score (ties share the best rank), with their tier (城市画像).")
    return _section("ranking", "城市评分及排名", "City ranking",
                    intro + blocks(columns, ranked, RANKING_BLOCKS) + _figure(charts.get("top_cities"), png_folder))


def _tier_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    counts = figures.tier_counts_table(rows)
    current = rows.tier_history.filter(pl.col("survey_year") == rows.survey_year).sort("tier_order")
    labels = figures.tier_labels(rows)
    descriptions = dict(rows.tiers.select("tier_code", "description_zh").iter_rows())
    change_columns = [
        Column("画像", lambda r: escape(labels.get(r["tier"], r["tier"]))),
        Column("描述", lambda r: escape(descriptions.get(r["tier"], ""))),
        Column(f"{rows.survey_year}城市数", _field("n_cities", _int), numeric=True),
        Column("上次", _field("prev_n_cities", _int), numeric=True),
        Column("变化 %", _field("change_pct", lambda v: "–" if v is None else f"{v:+.1f}%"), numeric=True),
    ]
    count_columns = [Column(name, _field(name, _int), numeric=True) for name in counts.columns]
    content = ("<div class='blocks'>" + _figure(charts.get("tier_distribution"), png_folder)
               + table(count_columns, counts.to_dicts(), "各年度城市画像分布 Cities per tier by edition") + "</div>"
               + table(change_columns, current.to_dicts(), f"{rows.survey_year}年各画像城市数及较上次评估的变化 Change since the previous edition"))
    return _section("tiers", "数字经济城市画像", "Tier distribution across editions", content)


def _level1_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    table_rows = figures.level1_by_tier(rows)
    if table_rows.height == 0:
        return ""
    labels = figures.tier_labels(rows)
    published = dict(rows.reconciliation.filter(pl.col("category") == "level1_average").select("item", "published").iter_rows())
    columns = [Column("一级指标", _field("name_zh"))]
    columns += [Column(labels[code], _field(code, _score), numeric=True) for code in rows.tiers["tier_code"]]
    columns.append(Column("综合平均", _field("all_cities", _score), numeric=True))
    if published:
        columns.append(Column("白皮书公布平均", lambda r: _score(published.get(r["node_code"])), numeric=True))
    return _section("level1", "一级指标：按城市画像", "Level-1 averages by tier",
                    _figure(charts.get("level1_by_tier"), png_folder) + table(columns, table_rows.to_dicts()))


def _industry_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    industries = figures.industry_averages(rows)
    if industries.height == 0:
        return ""
    has_published = industries["published_average"].is_not_null().any()
    columns = [
        Column("产业", _field("name_zh")),
        Column("整体平均", _field("average", _score), numeric=True),
        Column("Top10平均", _field("top10_average", _score), numeric=True),
    ]
    if has_published:
        columns += [Column("白皮书：整体", _field("published_average", _score), numeric=True),
                    Column("白皮书：Top10", _field("published_top10_average", _score), numeric=True)]
    columns.append(Column("城市数", _field("n_cities", _int), numeric=True))
    return _section("industries", "数字经济产业篇：产业平均得分", "Industry averages",
                    _figure(charts.get("industry_averages"), png_folder) + table(columns, industries.to_dicts()))


def _region_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    regions = figures.region_summary(rows)
    if regions.height == 0:
        return _section("regions", "重点区域", "Key regions", _paragraph("本年度无区域汇总 No regional rollup in this edition."))
    labels = figures.tier_labels(rows)
    columns = [
        Column("区域", _field("region_zh")),
        Column("成员/参评", lambda r: f"{r['n_members']}/{r['n_scored']}", numeric=True),
        Column("GDP加权得分", _field("gdp_weighted_score", _score), numeric=True),
    ]
    if regions["published_score"].is_not_null().any():
        columns += [Column("白皮书公布", _field("published_score", _score), numeric=True),
                    Column("差", lambda r: "–" if r["published_score"] is None else f"{r['gdp_weighted_score'] - r['published_score']:+.1f}", numeric=True)]
    columns += [Column("算术平均", _field("mean_score", _score), numeric=True)]
    columns += [Column(labels[code], _field(code, _int), numeric=True) for code in rows.tiers["tier_code"]]
    columns += [Column("GDP（亿元）", _field("gdp_total_100m_yuan", lambda v: "–" if v is None else f"{v:,.0f}"), numeric=True),
                Column("GDP年份", lambda r: f"{r['gdp_year']} {escape(str(r['gdp_vintage']))}")]
    note = _paragraph("成员含未参评的香港、澳门（粤港澳大湾区11城中参评9城）。GDP加权得分以参评城市的GDP比重加权。"
                      " Members include Hong Kong and Macao, which are not scored; the weighted score uses the scored members' GDP shares.", "muted")
    return _section("regions", "重点区域", "Key regions", _figure(charts.get("regions"), png_folder) + table(columns, regions.to_dicts()) + note)


def _movers_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    if rows.previous_year is None:
        return _section("movers", "排名变化", "Biggest movers",
                        _paragraph(f"{rows.survey_year}年是仓库中最早的评估年度，无可比较的上一版。 No earlier edition to compare with."))
    moved = figures.movers(rows)
    columns = [
        Column("城市", _field("name_zh")),
        Column(f"{rows.previous_year}名次", _field("prev_rank", _int), numeric=True),
        Column(f"{rows.survey_year}名次", _field("rank", _int), numeric=True),
        Column("名次变化", lambda r: _rank_change({**r, "status": "returning"}), numeric=True),
        Column(f"{rows.previous_year}评分", _field("prev_score", _score), numeric=True),
        Column(f"{rows.survey_year}评分", _field("score", _score), numeric=True),
        Column("评分变化", _field("score_change", lambda v: f"{v:+.1f}"), numeric=True),
    ]
    summary = rows.city_changes.group_by("status").len()
    counts = dict(summary.iter_rows())
    intro = _paragraph(f"与{rows.previous_year}年相比：新增{counts.get('new', 0)}城，连续参评{counts.get('returning', 0)}城，"
                       f"退出{counts.get('dropped', 0)}城。名次变化只比较两次都参评的城市。"
                       f" Against {rows.previous_year}: {counts.get('new', 0)} new, {counts.get('returning', 0)} returning,"
                       f" {counts.get('dropped', 0)} dropped cities.")
    return _section("movers", "排名变化", f"Biggest movers since {rows.previous_year}",
                    intro + _figure(charts.get("movers"), png_folder) + table(columns, moved.to_dicts()))


def _uncertainty_section(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    chart = charts.get("rank_uncertainty")
    if chart is None:
        return _section("uncertainty", "排名的不确定性", "Rank uncertainty",
                        _paragraph(f"暂无 Not available: {rows.rank_intervals.note}", "muted"))
    return _section("uncertainty", "排名的不确定性", "Rank uncertainty",
                    _figure(chart, png_folder) + _paragraph(rows.rank_intervals.note, "muted"))


def _county_section(rows: EditionRows) -> str:
    if rows.counties.height == 0:
        return _section("counties", "县域（市、区）", "Counties and districts", _paragraph("本年度无县域数据 No county units in this edition."))
    columns = [
        Column("排名", _field("rank", _int), numeric=True),
        Column("省份", _field("province")),
        Column("名称", _field("name_zh")),
        Column("评分", _field("score", _score), numeric=True),
    ]
    parts = []
    for kind, title in (("district", "典型市辖区数字经济发展水平评分及排名"), ("county", "典型县市数字经济发展水平评分及排名")):
        ranked = figures.county_ranking(rows, kind)
        if ranked.height:
            mean = ranked["score"].mean()
            parts.append(f"<h3>{escape(title)} <small>{'Districts' if kind == 'district' else 'County-level units'}: "
                         f"{ranked.height}, 平均 {_score(mean)}</small></h3>" + blocks(columns, ranked.to_dicts(), COUNTY_BLOCKS))  # type: ignore[arg-type]
    return _section("counties", "县域（市、区）", "Counties and districts", "".join(parts))


def _reconciliation_section(rows: EditionRows) -> str:
    counts, noteworthy = figures.reconciliation_overview(rows)
    if counts.height == 0:
        return _section("reconciliation", "与白皮书核对", "Reconciliation with the white paper",
                        _paragraph("本年度无公布数据可核对 No published figures for this edition."))
    pivot = counts.pivot("status", index="category", values="len").fill_null(0).sort("category")
    status_columns = [c for c in pivot.columns if c != "category"]
    columns = [Column("类别 category", _field("category"))] + [Column(s, _field(s, _int), numeric=True) for s in status_columns]
    detail_columns = [
        Column("类别", _field("category")), Column("项目", _field("item")),
        Column("公布", _field("published", lambda v: "–" if v is None else f"{v:g}"), numeric=True),
        Column("计算", _field("computed", lambda v: "–" if v is None else (f"{v:g}" if float(v).is_integer() else f"{v:.2f}")), numeric=True),
        Column("状态", _field("status")),
        Column("说明", _field("note", lambda v: escape(v or "")), wrap=True),
    ]
    intro = _paragraph("每个公布数字与计算结果对照；不一致之处如实列出，不作修补。 tie_rule: equal printed scores share a rank here,"
                       " the paper numbers them apart. Every published figure against the computed one; disagreements are listed, never patched.")
    detail = table(detail_columns, noteworthy.to_dicts(), "不一致与白皮书自相矛盾之处 Disagreements and known contradictions") if noteworthy.height else ""
    return _section("reconciliation", "与白皮书核对", "Reconciliation with the white paper", intro + table(columns, pivot.to_dicts()) + detail)


def _cards(rows: EditionRows) -> str:
    key = figures.key_figures(rows)
    tier_counts = dict(rows.tier_history.filter(pl.col("survey_year") == rows.survey_year).select("tier", "n_cities").iter_rows())
    first_tier = rows.tiers.sort("tier_order")["tier_code"][0]
    statuses = key.reconciliation_status
    agreeing = statuses.get("match", 0) + statuses.get("tie_rule", 0)
    cards = [
        (str(key.n_cities), "参评城市 cities"),
        (_score(key.mean_score), "平均得分 mean score"),
        (f"{key.top_city} {_score(key.top_score)}" if key.top_city else "–", "最高分 top score"),
        (str(tier_counts.get(first_tier, 0)), f"{figures.tier_labels(rows)[first_tier]}城市 first-tier cities"),
        (f"{key.n_districts} + {key.n_counties}", "市辖区 + 县市 districts + counties"),
    ]
    if statuses:
        cards.append((f"{agreeing}/{sum(statuses.values())}", "与白皮书公布数字一致 published figures reproduced"))
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='value'>{escape(value)}</div><div class='label'>{escape(label)}</div></div>" for value, label in cards
    ) + "</div>"


TOC = (("ranking", "城市排名"), ("tiers", "城市画像分布"), ("level1", "一级指标"), ("industries", "产业"),
       ("regions", "重点区域"), ("movers", "排名变化"), ("uncertainty", "排名不确定性"), ("counties", "县域"),
       ("reconciliation", "与白皮书核对"))


def render_report(rows: EditionRows, charts: dict[str, Chart], png_folder: str | None) -> str:
    """The whole page. ``png_folder`` (relative to the page) is named under each chart when its PNGs exist."""
    note = f"<div class='note'><strong>注意 Note:</strong> {escape(rows.data_note)}</div>" if rows.data_note else ""
    toc = "<nav class='toc'>" + "".join(f"<a href='#{anchor}'>{escape(label)}</a>" for anchor, label in TOC) + "</nav>"
    sections = [
        _ranking_section(rows, charts, png_folder),
        _tier_section(rows, charts, png_folder),
        _level1_section(rows, charts, png_folder),
        _industry_section(rows, charts, png_folder),
        _region_section(rows, charts, png_folder),
        _movers_section(rows, charts, png_folder),
        _uncertainty_section(rows, charts, png_folder),
        _county_section(rows),
        _reconciliation_section(rows),
    ]
    title = f"中国城市数字经济指数 {rows.survey_year}"
    footer = (f"<footer>由 dei-pipeline {escape(__version__)} 从数据仓库的 marts 生成（city_index, county_index, tier_summary, "
              f"region_rollup, region_tier_mix, subindex_scores, city_yoy, reconciliation）。分数保留一位小数显示，计算使用全精度。"
              f" Generated by dei-pipeline from the warehouse marts; scores shown to one decimal, computed at full precision.</footer>")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='zh-CN'>", "<head>", "<meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)} · City Digital Economy Index {rows.survey_year}</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>", "<main>",
        f"<header><h1>{escape(title)}<small>City Digital Economy Index · edition {rows.survey_year} · 城市数字经济指数报告</small></h1>",
        note, _cards(rows), toc, "</header>",
        *sections, footer, "</main>", "</body>", "</html>",
    ])
