"""The edition report: what people look at. One self-contained HTML page per edition, made from the
marts, with an SVG file of each chart beside it for slides (data/warehouse/reports/<edition>.html and
data/warehouse/reports/<edition>/<chart>.svg), and PNGs of those charts on request
(<edition>/<chart>.png). Partitioned by edition like the marts it reads."""

import dagster as dg

from dei_pipeline import report
from dei_pipeline.config import data_provenance_note
from dei_pipeline.defs.analysis_assets import rank_uncertainty
from dei_pipeline.defs.assets import (
    REGISTRY,
    SETTINGS,
    city_index,
    city_yoy,
    county_index,
    edition_asset,
    framework,
    reconciliation,
    region_rollup,
    region_tier_mix,
    subindex_scores,
    tier_summary,
)
from dei_pipeline.defs.partitions import edition_history, partition_editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.report.publish import PNG_SCALE, write_chart_pngs, write_edition_reports
from dei_pipeline.report.rows import read_edition_rows
from dei_pipeline.report.tables import top_rows
from dei_pipeline.terminal import frame_table

# The report's tier chart shows every edition up to its own.
REPORTED_MARTS = [
    city_index,
    county_index,
    edition_history(tier_summary),
    region_rollup,
    region_tier_mix,
    subindex_scores,
    city_yoy,
    reconciliation,
    framework,
    rank_uncertainty,
    REGISTRY,
    SETTINGS,
]


@edition_asset("report", uses=[report], kinds={"html", "svg"}, deps=REPORTED_MARTS)
def edition_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The white paper's figures from the warehouse, one HTML page per edition: the city ranking with
    tiers, the county tables, the tier distribution across editions, the four regions, the level-1
    averages by tier, the industry averages, the biggest movers since the previous edition and the
    rank-uncertainty intervals where the analysis mart has them. Charts are inline SVG, each also
    written as an SVG file; rendered offline, no browser needed (PNGs: report_pngs)."""
    editions = partition_editions(context)
    tiers, region_names = warehouse.tiers(), warehouse.registry().regions
    note = data_provenance_note(warehouse.data_path)
    with warehouse.connection() as con:
        edition_rows = [read_edition_rows(con, year, tiers, region_names, note) for year in editions]
    reports = write_edition_reports(edition_rows, warehouse.reports_path)
    # Each edition's materialization carries its own page (a single-run backfill writes several).
    for rows, page in zip(edition_rows, reports, strict=True):
        context.add_asset_metadata(
            {
                # As Markdown: a table this short is shown inline in the UI, not behind a button.
                "top_of_ranking": dg.MetadataValue.md(frame_table(top_rows(rows), markdown=True)),
                "report": dg.MetadataValue.path(str(page.html_path)),
                "charts": dg.MetadataValue.json(page.chart_names),
                "rank_uncertainty": rows.rank_intervals.note,
            },
            partition_key=str(rows.survey_year),
        )
    svgs = sum(len(r.svg_paths) for r in reports)
    return dg.MaterializeResult(
        metadata={
            "chart_svgs": f"{svgs} SVG file(s) rendered offline with vl-convert",
            "editions": ", ".join(map(str, editions)),
        }
    )


# Not automated and in no job of the publication: drawing every chart of every edition as a PNG costs
# about half of what drawing the charts does, for files only slides need.
@edition_asset("report", uses=[report], kinds={"png"}, deps=[edition_report], automation_condition=None)
def report_pngs(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """PNGs of the edition report's charts for slides, on request (report_png_job, `dei materialize
    --job pngs`, or Materialize in the UI): `<edition>/<chart>.png` at twice the chart's size, drawn
    offline from the report's SVG files. A new report replaces its chart folder, PNGs included, so no
    PNG outlives its chart; the UI then shows this asset stale until it is materialized again."""
    editions = partition_editions(context)
    written = {year: write_chart_pngs(warehouse.reports_path, year) for year in editions}
    for year, pngs in written.items():
        context.add_asset_metadata(
            {"pngs": dg.MetadataValue.json([str(png) for png in pngs])}, partition_key=str(year)
        )
    return dg.MaterializeResult(
        metadata={
            "chart_pngs": f"{sum(map(len, written.values()))} PNG(s) at {PNG_SCALE:g}× rendered offline with vl-convert",
            "editions": ", ".join(map(str, editions)),
        }
    )


REPORT_ASSETS = [edition_report, report_pngs]
