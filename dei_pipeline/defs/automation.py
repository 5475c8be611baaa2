"""Jobs, the yearly schedule, the sensor that notices new or changed raw files and the sensor that runs
the analysis after the index."""


import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import duckdb

from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS
from dei_pipeline.defs.assets import ALL_ASSETS
from dei_pipeline.defs.dimension_assets import DIMENSION_ASSETS
from dei_pipeline.defs.partitions import register_editions, survey_year_partitions
from dei_pipeline.defs.report_assets import REPORT_ASSETS
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.ingest import edition_files, list_editions
from dei_pipeline.warehouse import connect, run

# One process for all steps: they are short and share one DuckDB file. Switch to multiprocess in
# the Launchpad if you like; the warehouse lock keeps writers in turn either way.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
# Both jobs end with the exports, so that Parquet and the BI snapshot follow every change of the marts.
EXPORTS = dg.AssetSelection.assets("mart_parquet", "serving_snapshot")
# Runs the command line launches carry this tag: it runs the analysis itself when asked (--job all),
# so the sensor below leaves them alone.
LAUNCHED_BY_TAG = "dei/launched_by"
PARTITION_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

# The white paper's method: raw files to the index marts, then the exports. This is the main job (the
# yearly schedule, the raw-files sensor, `dei materialize`): it recomputes twenty years of history
# after a method change in well under a minute at national scale (docs/performance.md).
index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets(*ALL_ASSETS, *DIMENSION_ASSETS) | EXPORTS,
    description="The index for the selected editions: raw files to the index marts, their Parquet export and the "
                "BI serving snapshot. analysis_job follows each successful run for the same editions.",
    config=IN_PROCESS,
)

# Beyond the white paper (rank uncertainty, sensitivity, attribution, audit, unit profiles) and the
# edition report. Its two Monte Carlos cost more than the whole index, so it runs as its own job,
# after the index (analysis_after_index_sensor), rather than holding the index back.
analysis_job = dg.define_asset_job(
    "analysis_job",
    selection=dg.AssetSelection.assets(*ANALYSIS_ASSETS, *REPORT_ASSETS) | EXPORTS,
    description="The analysis marts and the edition report for the selected editions, from the index marts in the "
                "warehouse, then Parquet and the BI serving snapshot again.",
    config=IN_PROCESS,
)


def _fingerprint(files: Iterable[tuple[str, str]]) -> str:
    """One hash over an edition's raw files' (relative path, SHA-256) pairs: it changes when any file does."""
    digest = hashlib.sha256()
    for relative_path, content_hash in sorted(files):
        digest.update(f"{relative_path}:{content_hash};".encode())
    return digest.hexdigest()[:16]


def edition_fingerprints(data_dir: Path) -> dict[str, str]:
    """The fingerprint of every edition's raw files as they are now under data/raw/."""
    return {
        str(year): _fingerprint((raw_file.relative_path, raw_file.content_hash) for raw_file in edition_files(data_dir, year))
        for year in list_editions(data_dir)
    }


def ingested_fingerprints(warehouse: Path) -> dict[str, str]:
    """The fingerprint of the raw files each edition in the warehouse was ingested from (staging.raw_scores
    keeps every cell's file and hash); empty when there is no warehouse yet or a run holds it."""
    if not warehouse.exists():
        return {}
    try:
        # Read-only and without the warehouse lock: a sensor must not wait for a run to finish.
        with connect(warehouse, read_only=True) as con:
            files = run(con, "SELECT DISTINCT survey_year, source_file, content_hash FROM staging.raw_scores")
    except duckdb.Error:
        return {}
    by_edition: dict[str, list[tuple[str, str]]] = {}
    for year, source_file, content_hash in files:
        by_edition.setdefault(str(year), []).append((source_file, content_hash))
    return {year: _fingerprint(pairs) for year, pairs in by_edition.items()}


@dg.sensor(job=index_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def raw_files_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Registers each new edition folder under data/raw/ as a partition and runs every edition whose
    raw files are new or changed since the last evaluation."""
    # The first evaluation starts from what the warehouse was ingested from, so that editions already
    # materialized (by `make run` or `dei materialize`) are not run again when the UI starts.
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else ingested_fingerprints(warehouse.warehouse_file)
    current = edition_fingerprints(warehouse.data_path)
    known = set(context.instance.get_dynamic_partitions(survey_year_partitions.name))
    new_keys = sorted(key for key in current if key not in known)
    changed = sorted(key for key, fingerprint in current.items() if seen.get(key) != fingerprint)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"{key}:{current[key]}") for key in changed],
        dynamic_partitions_requests=[survey_year_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(current, sort_keys=True),
    )


@dg.schedule(job=index_job, cron_schedule="0 6 1 4 *", execution_timezone="Asia/Shanghai")
def yearly_index_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource) -> dg.RunRequest | dg.SkipReason:
    """Each year (1 April, 06:00 Beijing time) materialize the newest edition found under data/raw/."""
    editions = list_editions(warehouse.data_path)
    if not editions:
        return dg.SkipReason(f"no edition folder under {warehouse.data_path / 'raw'}")
    register_editions(context.instance, editions)
    newest = str(max(editions))
    return dg.RunRequest(partition_key=newest, run_key=f"yearly:{newest}:{context.scheduled_execution_time:%Y-%m-%d}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[index_job], request_job=analysis_job,
    minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
)
def analysis_after_index_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """After each successful index_job run (schedule, raw-files sensor, UI), analysis_job for the same
    editions: one edition, or the same range of a single-run backfill."""
    index_run = context.dagster_run
    if index_run.tags.get(LAUNCHED_BY_TAG) == "cli":
        return dg.SkipReason(f"run {index_run.run_id} came from the command line, where `dei materialize --job all` runs the analysis")
    range_tags = {tag: index_run.tags[tag] for tag in PARTITION_RANGE_TAGS if tag in index_run.tags}
    return dg.RunRequest(run_key=index_run.run_id, partition_key=index_run.tags.get("dagster/partition"), tags=range_tags)
