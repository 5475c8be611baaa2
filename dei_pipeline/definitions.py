"""The Dagster definitions, loaded by the UI (workspace.yaml), the CLI and the tests alike."""

from __future__ import annotations

import dagster as dg

from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS
from dei_pipeline.defs.assets import INDEX_ASSETS, MART_ASSETS, reconciliation, reconciliation_asset
from dei_pipeline.defs.automation import (
    analysis_job,
    automation_sensor,
    build_raw_files_sensor,
    build_yearly_schedule,
    index_job,
    publish_job,
    report_png_job,
)
from dei_pipeline.defs.dimension_assets import DIMENSION_ASSETS
from dei_pipeline.defs.exports import edition_consistency_asset, mart_parquet_asset, serving_snapshot_asset
from dei_pipeline.defs.partitions import Editions, bind_editions
from dei_pipeline.defs.report_assets import REPORT_ASSETS
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.defs.sources import REFERENCE_SOURCES, raw_files_source
from dei_pipeline.ingest import list_editions


def build_definitions(
    warehouse: WarehouseResource | None = None,
    loggers: dict[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    """Definitions bound to one data directory and warehouse (default: from the environment): its
    edition folders are the partitions, in year order, and the cross-edition dependencies map them.

    Every run, whether launched by the CLI, the UI, the schedule, a sensor or the automation, runs its
    steps in one process: they are short and share one DuckDB file, and a process per step costs more
    than the step (the warehouse lock keeps writers in turn either way).
    """
    warehouse = warehouse or WarehouseResource.from_environment()
    editions = Editions.of(list_editions(warehouse.data_path))
    partitioned = [
        reconciliation_asset(editions) if asset is reconciliation else asset
        for asset in [*INDEX_ASSETS, *DIMENSION_ASSETS, *ANALYSIS_ASSETS, *REPORT_ASSETS]
    ]
    marts = [*MART_ASSETS, *DIMENSION_ASSETS, *ANALYSIS_ASSETS]  # what the exports publish
    consistency = edition_consistency_asset(marts)
    return dg.Definitions(
        assets=[
            raw_files_source(editions),
            *REFERENCE_SOURCES.values(),
            *bind_editions(partitioned, editions),
            consistency,
            mart_parquet_asset([*marts, consistency]),
            serving_snapshot_asset([*marts, consistency]),
        ],
        jobs=[index_job, analysis_job, publish_job, report_png_job],
        schedules=[build_yearly_schedule(editions)],
        sensors=[build_raw_files_sensor(editions), automation_sensor],
        resources={"warehouse": warehouse},
        executor=dg.in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
