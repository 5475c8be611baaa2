"""The sensor that notices new or changed raw files, the one that runs the analysis after the index, and
the yearly schedule."""

import json
import subprocess
import sys
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from dei_pipeline.defs.assets import raw_scores
from dei_pipeline.defs.automation import analysis_after_index_sensor, raw_files_sensor, yearly_index_schedule
from dei_pipeline.defs.resources import WarehouseResource


def evaluate(sensor_cursor: str | None, instance: dg.DagsterInstance, data_dir: Path) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=sensor_cursor,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir), warehouse_path=str(data_dir / "w.duckdb"))},
    )
    return raw_files_sensor(context)


def test_sensor_registers_new_editions_and_requests_runs_for_changed_files(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2019, 2020))
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(None, instance, data_dir)
    assert [request.partition_key for request in first.run_requests] == ["2019", "2020"]
    assert first.dynamic_partitions_requests[0].partition_keys == ["2019", "2020"]
    instance.add_dynamic_partitions("survey_year", ["2019", "2020"])

    # Nothing changed: nothing to do.
    quiet = evaluate(first.cursor, instance, data_dir)
    assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == []

    # A new edition folder appears and one 2019 file is corrected.
    shutil.copytree(data_dir / "raw" / "2020", data_dir / "raw" / "2021")
    with (data_dir / "raw" / "2019" / "cities.csv").open("a", encoding="utf-8") as handle:
        handle.write("")  # same bytes: not a change
    counties = data_dir / "raw" / "2019" / "counties.csv"
    counties.write_text(counties.read_text(encoding="utf-8").replace(",", ",", 1) + "\n", encoding="utf-8")
    later = evaluate(quiet.cursor, instance, data_dir)
    assert sorted(request.partition_key for request in later.run_requests) == ["2019", "2021"]
    assert later.dynamic_partitions_requests[0].partition_keys == ["2021"]
    assert set(json.loads(later.cursor)) == {"2019", "2020", "2021"}


def test_first_evaluation_skips_editions_the_warehouse_already_ingested(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2019, 2020))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey_year", ["2019", "2020"])
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir), warehouse_path=str(data_dir / "w.duckdb"))}
    for year in ("2019", "2020"):  # what `make run` leaves before the UI's daemon first runs the sensor
        assert dg.materialize([raw_scores], partition_key=year, instance=instance, resources=resources).success
    assert evaluate(None, instance, data_dir).run_requests == []

    # A file changed since it was ingested is still noticed on the first evaluation.
    counties = data_dir / "raw" / "2020" / "counties.csv"
    counties.write_text(counties.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert [request.partition_key for request in evaluate(None, instance, data_dir).run_requests] == ["2020"]


def follow_up(index_run_tags: dict[str, str]) -> dg.RunRequest | dg.SkipReason:
    """What analysis_after_index_sensor asks for after a successful index_job run with these tags."""
    index_run = dg.DagsterRun(job_name="index_job", run_id="index-run-1", tags=index_run_tags)
    success = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name="index_job")
    context = dg.build_run_status_sensor_context(
        sensor_name=analysis_after_index_sensor.name, dagster_event=success,
        dagster_instance=dg.DagsterInstance.ephemeral(), dagster_run=index_run,
    )
    return analysis_after_index_sensor(context)


def test_analysis_follows_each_index_run_for_the_same_editions() -> None:
    one = follow_up({"dagster/partition": "2020", "dagster/schedule_name": "yearly_index_schedule"})
    assert isinstance(one, dg.RunRequest)
    assert (one.partition_key, one.tags, one.run_key) == ("2020", {}, "index-run-1")  # one request per index run

    backfill = follow_up({"dagster/asset_partition_range_start": "2017", "dagster/asset_partition_range_end": "2020"})
    assert isinstance(backfill, dg.RunRequest) and backfill.partition_key is None
    assert backfill.tags == {"dagster/asset_partition_range_start": "2017", "dagster/asset_partition_range_end": "2020"}

    # The command line decides itself (--job all); the daemon must not run the analysis a second time.
    from_cli = follow_up({"dagster/partition": "2020", "dei/launched_by": "cli"})
    assert isinstance(from_cli, dg.SkipReason) and "command line" in (from_cli.skip_message or "")
    assert analysis_after_index_sensor.job_name == "analysis_job"


SCHEDULE_CHECK = """
import sys
from datetime import datetime
import dagster as dg
from dei_pipeline.defs.automation import yearly_index_schedule
from dei_pipeline.defs.resources import WarehouseResource
data_dir = sys.argv[1]
with dg.instance_for_test() as instance:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2021, 4, 1, 6, 0),
        resources={"warehouse": WarehouseResource(data_dir=data_dir, warehouse_path=data_dir + "/w.duckdb")},
    )
    request = yearly_index_schedule(context)
    assert isinstance(request, dg.RunRequest), request
    print(request.partition_key, ",".join(instance.get_dynamic_partitions("survey_year")))
"""


def test_yearly_schedule_runs_the_newest_edition(data_dir_factory: Callable[..., Path]) -> None:
    # In a process of its own: a schedule context needs a persistent test instance, and Dagster
    # keeps a weak reference to it that breaks later Definitions loads in the same process.
    data_dir = data_dir_factory((2019, 2020))
    result = subprocess.run([sys.executable, "-c", SCHEDULE_CHECK, str(data_dir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2020", "2019,2020"]
