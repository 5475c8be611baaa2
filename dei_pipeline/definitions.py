"""The Dagster definitions, loaded by the UI (workspace.yaml), the CLI and the tests alike."""

from __future__ import annotations

import dagster as dg

from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS
from dei_pipeline.defs.assets import ALL_ASSETS
from dei_pipeline.defs.dimension_assets import DIMENSION_ASSETS
from dei_pipeline.defs.automation import analysis_after_index_sensor, analysis_job, index_job, raw_files_sensor, yearly_index_schedule
from dei_pipeline.defs.report_assets import REPORT_ASSETS
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.defs.exports import mart_parquet_asset, serving_snapshot_asset


def build_definitions(
    warehouse: WarehouseResource | None = None,
    loggers: dict[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    """Definitions bound to one data directory and warehouse (default: from the environment).

    Runs launched from the UI use Dagster's default executor (a process per step); writers take the
    warehouse lock in turn (locking.py). ``index_job``, ``analysis_job`` and the CLI run their steps in one
    process, which saves a process start-up per step.
    """
    marts = [*ALL_ASSETS, *DIMENSION_ASSETS, *ANALYSIS_ASSETS]
    return dg.Definitions(
        assets=[*marts, mart_parquet_asset(marts), serving_snapshot_asset(marts), *REPORT_ASSETS],
        jobs=[index_job, analysis_job],
        schedules=[yearly_index_schedule],
        sensors=[raw_files_sensor, analysis_after_index_sensor],
        resources={"warehouse": warehouse or WarehouseResource.from_environment()},
        loggers=loggers,
    )


defs = build_definitions()
