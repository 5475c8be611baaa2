"""The raw-files sensor, the yearly schedule, the declared cross-edition lineage, the automation
conditions and the staleness of what reads a changed reference file."""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import dagster as dg
import pytest

from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.automation import build_raw_files_sensor
from dei_pipeline.defs.partitions import Editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.ingest import list_editions
from dei_pipeline_tests.lock_holder import holder


def resource(data_dir: Path) -> WarehouseResource:
    return WarehouseResource(data_dir=str(data_dir), warehouse_path=str(data_dir / "w.duckdb"))


def evaluate(
    cursor: str | None, instance: dg.DagsterInstance, data_dir: Path, editions: Editions | None = None
) -> dg.SensorResult:
    sensor = build_raw_files_sensor(editions or Editions.of(list_editions(data_dir)))
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": resource(data_dir)}
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult), result
    return result


def requested(result: dg.SensorResult) -> list[tuple[str | None, Mapping[str, str]]]:
    return [(request.partition_key, request.tags) for request in result.run_requests or []]


def ingest(data_dir: Path, instance: dg.DagsterInstance, *years: str) -> None:
    """What a run of the index leaves in the warehouse for these editions: their raw files ingested."""
    defs = build_definitions(resource(data_dir))
    job = defs.resolve_job_def("index_job")
    for year in years:
        assert job.execute_in_process(
            instance=instance, partition_key=year, asset_selection=[dg.AssetKey("raw_scores")]
        ).success


def touch_counties(data_dir: Path, year: int, text: str = "\n") -> None:
    counties = data_dir / "raw" / str(year) / "counties.csv"
    counties.write_text(counties.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.pipeline
def test_sensor_runs_what_the_warehouse_lacks_in_one_run_and_notices_a_revert(
    data_dir_factory: Callable[..., Path],
) -> None:
    data_dir = data_dir_factory((2019, 2020))
    instance = dg.DagsterInstance.ephemeral()
    # A new warehouse: both editions in one run (a single-run backfill over the range).
    first = evaluate(None, instance, data_dir)
    assert requested(first) == [
        (None, {"dagster/asset_partition_range_start": "2019", "dagster/asset_partition_range_end": "2020"})
    ]
    # Requested and not yet ingested (the run may be going on): not requested again.
    assert requested(evaluate(first.cursor, instance, data_dir)) == []

    ingest(data_dir, instance, "2019", "2020")
    quiet = evaluate(first.cursor, instance, data_dir)
    assert requested(quiet) == []

    # A change of 2019 is run; once ingested, going back to the earlier content is a change again.
    original = (data_dir / "raw" / "2019" / "counties.csv").read_bytes()
    touch_counties(data_dir, 2019)
    changed = evaluate(quiet.cursor, instance, data_dir)
    assert requested(changed) == [("2019", {})]
    ingest(data_dir, instance, "2019")
    (data_dir / "raw" / "2019" / "counties.csv").write_bytes(original)
    reverted = evaluate(changed.cursor, instance, data_dir)
    assert requested(reverted) == [("2019", {})]


@pytest.mark.pipeline
def test_sensor_leaves_alone_what_a_manual_run_already_ingested(
    data_dir_factory: Callable[..., Path],
) -> None:
    data_dir = data_dir_factory((2019, 2020))
    instance = dg.DagsterInstance.ephemeral()
    ingest(data_dir, instance, "2019", "2020")  # e.g. `make run` before the UI's daemon first runs the sensor
    assert requested(evaluate(None, instance, data_dir)) == []
    touch_counties(data_dir, 2020)
    ingest(data_dir, instance, "2020")  # the user reran 2020 by hand before the sensor's tick
    assert requested(evaluate(None, instance, data_dir)) == []


@pytest.mark.pipeline
def test_sensor_waits_for_a_busy_warehouse_instead_of_running_every_edition(
    data_dir_factory: Callable[..., Path],
) -> None:
    import duckdb

    data_dir = data_dir_factory((2019, 2020))
    instance = dg.DagsterInstance.ephemeral()
    ingest(data_dir, instance, "2019", "2020")
    sensor = build_raw_files_sensor(Editions.of([2019, 2020]))

    def tick() -> object:
        return sensor(dg.build_sensor_context(instance=instance, resources={"warehouse": resource(data_dir)}))

    writer = duckdb.connect(str(data_dir / "w.duckdb"))  # a process holds the file without the lock
    try:
        result = tick()
        assert isinstance(result, dg.SkipReason) and "the warehouse is busy" in (result.skip_message or "")
    finally:
        writer.close()
    # A run holds the lock: the sensor leaves the file alone (it would otherwise hold it while the run's
    # next step opens it, and DuckDB refuses that step at once).
    process = holder(data_dir / "w.duckdb", 60)
    try:
        result = tick()
        assert isinstance(result, dg.SkipReason) and "in use by pid" in (result.skip_message or "")
    finally:
        process.kill()
        process.wait()
    assert requested(evaluate(None, instance, data_dir)) == []


def test_sensor_records_data_versions_of_changed_sources(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2020,))
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(None, instance, data_dir)
    observed = {(event.asset_key.to_user_string(), event.partition) for event in first.asset_events}
    assert observed == {
        ("raw_files", "2020"),
        ("frameworks", None),
        ("registry", None),
        ("city_gdp", None),
        ("method_settings", None),
        ("published_figures", None),
    }
    assert (
        evaluate(first.cursor, instance, data_dir).asset_events == []
    )  # nothing changed: no new observation
    gdp = data_dir / "registry" / "city_gdp.csv"
    gdp.write_text(gdp.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    [event] = evaluate(first.cursor, instance, data_dir).asset_events
    assert isinstance(event, dg.AssetObservation) and first.cursor is not None
    assert (
        event.asset_key == dg.AssetKey("city_gdp")
        and event.tags["dagster/data_version"] != json.loads(first.cursor)["observed"]["city_gdp/"]
    )


def test_cross_edition_reads_are_declared_in_the_asset_graph(data_dir_factory: Callable[..., Path]) -> None:
    data_dir = data_dir_factory((2017, 2019, 2020))  # 2018 is a gap: 2019 is compared with 2017
    graph = build_definitions(resource(data_dir)).resolve_asset_graph()
    city_yoy, city_index = dg.AssetKey("city_yoy"), dg.AssetKey("city_index")
    partitions = graph.get(city_yoy).partitions_def
    assert partitions is not None and partitions.get_partition_keys() == ["2017", "2019", "2020"]
    mapping = graph.get_partition_mapping(city_yoy, city_index)
    assert isinstance(mapping, dg.StaticPartitionMapping)
    assert mapping.downstream_partition_keys_by_upstream_partition_key == {
        "2017": {"2017", "2019"},
        "2019": {"2019", "2020"},
        "2020": {"2020"},
    }
    history = graph.get_partition_mapping(dg.AssetKey("edition_report"), dg.AssetKey("tier_summary"))
    assert isinstance(history, dg.StaticPartitionMapping)
    assert history.downstream_partition_keys_by_upstream_partition_key["2017"] == {"2017", "2019", "2020"}
    for key in (dg.AssetKey("region_rollup"), dg.AssetKey("yoy_attribution")):
        condition = graph.get(key).automation_condition
        assert condition is not None and condition.get_label() == "eager"
    assert (
        graph.get(dg.AssetKey("raw_scores")).automation_condition is None
    )  # the sensor, the schedule or a user starts it
    assert dg.AssetKey("city_gdp") in graph.get(dg.AssetKey("region_rollup")).parent_keys


def test_code_versions_are_per_asset() -> None:
    from dei_pipeline.defs.assets import city_index, region_rollup, subindex_scores

    versions = {
        asset.key.to_user_string(): asset.code_versions_by_key[asset.key]
        for asset in (city_index, region_rollup, subindex_scores)
    }
    assert len(set(versions.values())) == 3 and all(versions.values())


SCHEDULE_CHECK = """
import sys
from datetime import datetime
import dagster as dg
from dei_pipeline.defs.automation import build_yearly_schedule
from dei_pipeline.defs.partitions import Editions
from dei_pipeline.defs.resources import WarehouseResource
data_dir = sys.argv[1]
with dg.instance_for_test() as instance:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2021, 4, 1, 6, 0),
        resources={"warehouse": WarehouseResource(data_dir=data_dir, warehouse_path=data_dir + "/w.duckdb")},
    )
    request = build_yearly_schedule(Editions.of([2019, 2020]))(context)
    assert isinstance(request, dg.RunRequest), request
    print(request.partition_key, request.run_key)
"""


def test_yearly_schedule_runs_the_newest_edition(data_dir_factory: Callable[..., Path]) -> None:
    # In a process of its own: a schedule context needs a persistent test instance, and Dagster
    # keeps a weak reference to it that breaks later Definitions loads in the same process.
    data_dir = data_dir_factory((2019, 2020))
    result = subprocess.run(
        [sys.executable, "-c", SCHEDULE_CHECK, str(data_dir)],
        check=False,  # asserted below, with its stderr
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2020", "yearly:2020:2021-04-01"]


def test_sensor_runs_only_editions_that_have_a_partition(data_dir_factory: Callable[..., Path]) -> None:
    # A folder that appeared after the definitions loaded becomes a partition when they reload
    # (the sensor asks the webserver to reload when `make ui` told it where it is).
    data_dir = data_dir_factory((2020,))
    shutil.copytree(data_dir / "raw" / "2020", data_dir / "raw" / "2021")
    result = evaluate(None, dg.DagsterInstance.ephemeral(), data_dir, Editions.of([2020]))
    assert requested(result) == [("2020", {})]
    assert requested(evaluate(None, dg.DagsterInstance.ephemeral(), data_dir)) == [
        (None, {"dagster/asset_partition_range_start": "2020", "dagster/asset_partition_range_end": "2021"})
    ]


def test_publication_waits_for_the_marts_requested_in_the_same_tick(
    data_dir_factory: Callable[..., Path],
) -> None:
    """An edition's index changes: what reads it is requested tick after tick (each run done before the
    next tick), and the exports only once nothing they cover is still due, never in the same tick as a
    mart (whose run of its own would not yet have written it)."""
    data_dir = data_dir_factory((2019, 2020))
    defs = build_definitions(resource(data_dir))
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()

    def materialize(key: dg.AssetKey, partitions: Iterable[str | None]) -> None:
        for partition in partitions:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

    for key in graph.materializable_asset_keys:
        partitions_def = graph.get(key).partitions_def
        materialize(key, partitions_def.get_partition_keys() if partitions_def else [None])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.total_requested == 0, "everything is up to date"

    materialize(dg.AssetKey("city_index"), ["2020"])
    exports = {
        dg.AssetKey("edition_consistency"),
        dg.AssetKey("mart_parquet"),
        dg.AssetKey("serving_snapshot"),
    }
    ticks: list[set[str]] = []
    for _ in range(10):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        requested = {r.key for r in result.results if r.true_subset.size and isinstance(r.key, dg.AssetKey)}
        if not requested:
            break
        ticks.append({key.to_user_string() for key in requested})
        assert not (requested & exports and requested - exports), (
            f"exports requested beside marts: {requested}"
        )
        for key in requested:
            materialize(key, result.get_requested_partitions(key))
    assert {"city_yoy", "yoy_summary"} <= ticks[0], ticks
    assert ticks[-1] == {key.to_user_string() for key in exports}, "published in one run, last"
    # A new report: its charts' PNGs are drawn on request only, never by the automation.
    materialize(dg.AssetKey("edition_report"), ["2020"])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    after_report = {r.key.to_user_string() for r in result.results if r.true_subset.size}
    assert "report_pngs" not in after_report and "mart_parquet" not in after_report, after_report
