"""The exports: the marts as Parquet, and the BI serving snapshot. Both are built over the marts they
export (the index's and the analysis marts), so that a run writes them last, from current marts."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from dei_pipeline.config import data_provenance_note, default_serving_path
from dei_pipeline.defs.assets import PARTITIONED
from dei_pipeline.defs.partitions import partition_editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.warehouse import export_parquet, publish_serving_snapshot

EXPORTS_GROUP = "exports"


def _exported(path: Path, rows_per_mart: dict[str, int], editions: Sequence[int]) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "rows_per_mart": dg.MetadataValue.json(rows_per_mart),
        "dagster/row_count": sum(rows_per_mart.values()),
        "editions": ", ".join(map(str, editions)),
    })


def mart_parquet_asset(upstream: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The Parquet export, downstream of every mart it writes."""

    @dg.asset(name="mart_parquet", group_name=EXPORTS_GROUP, kinds={"parquet", "duckdb"}, deps=list(upstream), **PARTITIONED)
    def mart_parquet(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """The BI marts as Parquet, partitioned by edition (data/warehouse/parquet/<mart>/survey_year=<YYYY>/),
        for tools that read Parquet rather than DuckDB (Spark, Trino, pandas)."""
        editions = partition_editions(context)
        out_dir = warehouse.warehouse_file.parent / "parquet"
        with warehouse.connection() as con:
            counts = export_parquet(con, out_dir, editions)
        return _exported(out_dir, counts, editions)

    return mart_parquet


def serving_snapshot_asset(upstream: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """An asset downstream of every mart, so that it runs last; a failed run never reaches it and
    BI keeps the previous snapshot."""

    @dg.asset(name="serving_snapshot", group_name=EXPORTS_GROUP, kinds={"duckdb"}, deps=list(upstream), **PARTITIONED)
    def serving_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """The marts, copied to data/warehouse/dei_serving.duckdb (DEI_SERVING overrides) and put in
        place with an atomic rename. BI tools connect to this file read-only; a run never waits for
        them and they never see a half-published state."""
        editions = partition_editions(context)
        serving = default_serving_path(warehouse.warehouse_file)
        with warehouse.connection() as con:
            counts = publish_serving_snapshot(con, serving, context.run.run_id, data_provenance_note(warehouse.data_path), context.run.job_name)
        return _exported(serving, counts, editions)

    return serving_snapshot
