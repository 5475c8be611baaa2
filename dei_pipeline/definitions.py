"""The Dagster definitions, loaded by the UI (workspace.yaml), the CLI and the tests alike."""

from __future__ import annotations

import dagster as dg

from dei_pipeline.defs.assets import ALL_ASSETS
from dei_pipeline.defs.automation import index_job, raw_files_sensor, yearly_index_schedule
from dei_pipeline.defs.resources import WarehouseResource


def build_definitions(
    warehouse: WarehouseResource | None = None,
    loggers: dict[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    """Definitions bound to one data directory and warehouse (default: from the environment).

    Steps run in one process: they share the DuckDB file (one writer at a time) and are short, so
    a process per step would cost more in start-up than it saves.
    """
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[index_job],
        schedules=[yearly_index_schedule],
        sensors=[raw_files_sensor],
        resources={"warehouse": warehouse or WarehouseResource.from_environment()},
        executor=dg.in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
