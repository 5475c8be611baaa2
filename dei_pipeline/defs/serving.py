"""The BI serving snapshot: the last step of every run publishes the marts to a separate file."""

from collections.abc import Sequence

import dagster as dg

from dei_pipeline.config import default_serving_path
from dei_pipeline.defs.assets import PARTITIONED
from dei_pipeline.defs.partitions import partition_editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.warehouse import publish_serving_snapshot


def serving_snapshot_asset(upstream: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """An asset downstream of every mart, so that it runs last; a failed run never reaches it and
    BI keeps the previous snapshot."""

    @dg.asset(
        name="serving_snapshot",
        group_name="exports",
        kinds={"duckdb"},
        deps=list(upstream),
        **PARTITIONED,
    )
    def serving_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """The marts, copied to data/warehouse/dei_serving.duckdb (DEI_SERVING overrides) and put in
        place with an atomic rename. BI tools connect to this file read-only; a run never waits for
        them and they never see a half-published state."""
        editions = partition_editions(context)
        serving = default_serving_path(warehouse.warehouse_file)
        with warehouse.connection() as con:
            counts = publish_serving_snapshot(con, serving, context.run.run_id)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(serving)),
            "rows_per_mart": dg.MetadataValue.json(counts),
            "dagster/row_count": sum(counts.values()),
            "editions_in_run": ", ".join(map(str, editions)),
        })

    return serving_snapshot
