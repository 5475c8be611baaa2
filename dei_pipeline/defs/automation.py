"""Jobs, the yearly schedule, the sensor that notices new or changed raw files, and declarative
automation for whatever a run makes stale.

Who starts what:
- a new or changed edition folder: ``raw_files_sensor`` runs ``index_job`` for it (several editions
  in one run), the yearly schedule runs the newest edition, a user runs anything from the UI;
- everything that a run makes stale follows by itself: every asset downstream of the raw files is
  ``AutomationCondition.eager()``, so the daemon brings up to date the later editions' comparisons, the
  analysis, the report and, once the editions agree, the publication (``edition_consistency`` and
  the exports), in one backfill per change.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import dagster as dg
import duckdb

from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS
from dei_pipeline.defs.assets import INDEX_ASSETS
from dei_pipeline.defs.dimension_assets import DIMENSION_ASSETS
from dei_pipeline.defs.partitions import Editions, contiguous_blocks, range_tags
from dei_pipeline.defs.report_assets import edition_report, report_pngs
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.defs.sources import current_versions, last_observed_versions, observations
from dei_pipeline.fingerprints import edition_fingerprints, fingerprint
from dei_pipeline.locking import WarehouseBusyError, warehouse_lock
from dei_pipeline.warehouse import connect, run

# The dimensions not split by edition are rewritten whole, from every edition, right before the publication.
WHOLE_DIMENSIONS = [asset for asset in DIMENSION_ASSETS if asset.partitions_def is None]
PUBLICATION = dg.AssetSelection.assets(
    *WHOLE_DIMENSIONS, "edition_consistency", "mart_parquet", "serving_snapshot"
)

# The white paper's method: raw files to the index marts. The yearly schedule, the raw-files sensor and
# `dei materialize` run it; it recomputes twenty years of history at national scale in about half a minute.
index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets(
        *INDEX_ASSETS, *(asset for asset in DIMENSION_ASSETS if asset.partitions_def is not None)
    ),
    description="The index for the selected editions: raw files to the index marts. What it makes stale in later "
    "editions, the analysis, the report and the publication follow by declarative automation.",
)

# Beyond the white paper (rank uncertainty, sensitivity, attribution, audit, unit profiles) and the
# edition report, from the index marts in the warehouse.
analysis_job = dg.define_asset_job(
    "analysis_job",
    selection=dg.AssetSelection.assets(*ANALYSIS_ASSETS, edition_report),
    description="The analysis marts and the edition report for the selected editions, from the index marts in the warehouse.",
)

# On request: PNGs of the report's charts, for slides.
report_png_job = dg.define_asset_job(
    "report_png_job",
    selection=dg.AssetSelection.assets(report_pngs),
    description="PNGs of the edition report's charts for the selected editions, for slides, drawn from the "
    "report's SVG files (nothing else starts it).",
)

# Every edition at once: the consistency checks, then Parquet and the BI serving snapshot.
publish_job = dg.define_asset_job(
    "publish_job",
    selection=PUBLICATION,
    description="Checks that the editions agree with each other and, if they do, publishes every edition as Parquet "
    "and as the BI serving snapshot; otherwise BI keeps the last consistent publication.",
)

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Brings up to date whatever a run made stale (later editions, analysis, report, publication).",
)


class WarehouseBusy(RuntimeError):
    """The warehouse exists but cannot be read now (a run holds it)."""


def ingested_fingerprints(warehouse: Path) -> dict[str, str]:
    """The fingerprint of the raw files each edition in the warehouse was ingested from (staging.raw_scores
    keeps every cell's file and hash); empty when there is no warehouse yet. Raises WarehouseBusy when
    the file exists but cannot be read now."""
    if not warehouse.exists():
        return {}
    try:
        # Under the warehouse lock, taken without waiting: a sensor must not wait for a run to finish,
        # and a run must not find the file held by the sensor (DuckDB refuses a second process at once).
        with warehouse_lock(warehouse, timeout=0), connect(warehouse, read_only=True) as con:
            files = run(con, "SELECT DISTINCT survey_year, source_file, content_hash FROM staging.raw_scores")
    except duckdb.CatalogException:
        return {}
    except (duckdb.Error, WarehouseBusyError) as error:
        raise WarehouseBusy(f"{warehouse}: {error}") from error
    by_edition: dict[str, list[tuple[str, str]]] = {}
    for year, source_file, content_hash in files:
        by_edition.setdefault(str(year), []).append((source_file, content_hash))
    return {year: fingerprint(pairs) for year, pairs in by_edition.items()}


# `make ui` sets it to the webserver's host:port: the raw-files sensor then reloads the definitions itself
# when a new edition folder appears (its partitions are the folders found when the definitions load).
WEBSERVER_ENV = "DEI_DAGSTER_WEBSERVER"
CODE_LOCATION = "dei_pipeline"  # workspace.yaml


def _reload_definitions_later(address: str) -> None:
    """Ask the webserver to reload this code location, from a thread of its own: the reload replaces
    the process this sensor runs in, so the sensor does not wait for it."""
    from dagster_graphql import DagsterGraphQLClient

    host, port = address.rsplit(":", 1)
    client = DagsterGraphQLClient(host, port_number=int(port), timeout=120)
    threading.Thread(target=client.reload_repository_location, args=(CODE_LOCATION,), daemon=True).start()


def _source_label(source: tuple[dg.AssetKey, str | None]) -> str:
    key, partition = source
    return f"{key.to_user_string()}/{partition or ''}"


def build_raw_files_sensor(editions: Editions) -> dg.SensorDefinition:
    """The sensor of the raw files, for the partitions of these editions."""

    @dg.sensor(job=index_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def raw_files_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Runs index_job for every edition whose raw files differ from what the warehouse ingested
        (compared on every tick; several editions in one run), and records the raw and reference
        files' data versions as observations, so that the UI marks what reads a changed file stale."""
        cursor = json.loads(context.cursor) if context.cursor else {}
        try:
            ingested = ingested_fingerprints(warehouse.warehouse_file)
        except WarehouseBusy as busy:
            return dg.SkipReason(f"the warehouse is busy, trying again on the next tick ({busy})")
        current = edition_fingerprints(warehouse.data_path)
        # An edition already requested with these files is not requested again (it may be running, or
        # have failed on them); once the warehouse holds them, the entry goes, so a revert is noticed.
        requested: dict[str, str] = {
            key: fp
            for key, fp in cursor.get("requested", {}).items()
            if key in current and current[key] != ingested.get(key)
        }
        changed = [
            key
            for key in editions.keys
            if key in current and current[key] != ingested.get(key) and requested.get(key) != current[key]
        ]
        requested.update({key: current[key] for key in changed})
        versions = current_versions(warehouse, editions.years, raw=current)
        # The versions last observed: from the cursor, or on the first tick from the instance.
        last_observed = (
            {
                source: version
                for source in versions
                if (version := cursor["observed"].get(_source_label(source)))
            }
            if "observed" in cursor
            else last_observed_versions(context.instance, versions)
        )
        unknown = sorted(set(current) - set(editions.keys))
        if unknown:
            folders = f"edition folder(s) {', '.join(unknown)} under {warehouse.data_path / 'raw'}"
            if address := os.environ.get(WEBSERVER_ENV):
                _reload_definitions_later(address)
                context.log.info(
                    f"{folders} have no partition yet: reloading the definitions; the next tick runs them"
                )
            else:
                context.log.warning(
                    f"{folders} have no partition yet: reload the definitions (Deployment > Reload) to add "
                    "them; the next tick runs them"
                )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=block[0] if len(block) == 1 else None, tags=range_tags(block))
                for block in contiguous_blocks(changed, editions.keys)
            ],
            asset_events=observations(versions, last_observed),
            cursor=json.dumps(
                {"requested": requested, "observed": {_source_label(s): v for s, v in versions.items()}},
                sort_keys=True,
            ),
        )

    return raw_files_sensor


def build_yearly_schedule(editions: Editions) -> dg.ScheduleDefinition:

    @dg.schedule(job=index_job, cron_schedule="0 6 1 4 *", execution_timezone="Asia/Shanghai")
    def yearly_index_schedule(
        context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Each year (1 April, 06:00 Beijing time) materialize the newest edition; what it makes stale
        follows by automation."""
        if not editions.years:
            return dg.SkipReason(f"no edition folder under {warehouse.data_path / 'raw'}")
        newest = editions.keys[-1]
        return dg.RunRequest(
            partition_key=newest, run_key=f"yearly:{newest}:{context.scheduled_execution_time:%Y-%m-%d}"
        )

    return yearly_index_schedule
