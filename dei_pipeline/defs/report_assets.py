"""The edition report: what people look at. One self-contained HTML page per edition, made from the
marts, with a PNG of each chart beside it for slides (data/warehouse/reports/<edition>.html and
data/warehouse/reports/<edition>/<chart>.png). Partitioned by edition like the marts it reads."""

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
from dei_pipeline.report.publish import write_edition_report
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
    written as a PNG; both are rendered offline, no browser needed."""
    editions = partition_editions(context)
    tiers, region_names = warehouse.tiers(), warehouse.registry().regions
    note = data_provenance_note(warehouse.data_path)
    with warehouse.connection() as con:
        edition_rows = [read_edition_rows(con, year, tiers, region_names, note) for year in editions]
    reports_dir = warehouse.warehouse_file.parent / "reports"
    reports = [write_edition_report(rows, reports_dir) for rows in edition_rows]
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
    pngs = sum(len(r.png_paths) for r in reports)
    return dg.MaterializeResult(
        metadata={
            "chart_pngs": f"{pngs} PNG(s) rendered offline with vl-convert",
            "editions": ", ".join(map(str, editions)),
        }
    )


REPORT_ASSETS = [edition_report]
