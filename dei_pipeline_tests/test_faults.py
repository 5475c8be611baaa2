"""Faults and concurrency: a run killed mid-write, BI readers holding the snapshot open, two runs at
once, and a multiprocess run whose steps compete for the DuckDB file."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.automation import PUBLICATION

pytestmark = [pytest.mark.e2e]


def dei_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), **extra}


def start_dei(
    data_dir: Path, warehouse: Path, env: dict[str, str], years: str = "all"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dei_pipeline.cli",
            "materialize",
            "--years",
            years,
            "--data-dir",
            str(data_dir),
            "--warehouse",
            str(warehouse),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def city_scores(path: Path) -> dict[str, float]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(
            con.sql("SELECT unit_code, score FROM marts.city_index WHERE survey_year = 2020").fetchall()
        )


def lower_shanghai(data_dir: Path) -> None:
    """An analyst's correction: 上海's open data sets in 2020 drop to the bottom goalpost (score 0)."""
    path = data_dir / "raw/2020/cities_measurements.csv"
    table = pl.read_csv(path, infer_schema=False)
    table.with_columns(
        pl.when(pl.col("unit_name") == "上海")
        .then(pl.lit("5.0000"))
        .otherwise(pl.col("infra_data_open"))
        .alias("infra_data_open")
    ).write_csv(path)


@pytest.fixture
def materialized(data_dir_factory: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    data_dir = data_dir_factory((2020,))
    warehouse = tmp_path / "warehouse" / "dei.duckdb"
    done = start_dei(data_dir, warehouse, dei_env(tmp_path))
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
    return data_dir, warehouse


def test_a_run_killed_mid_write_leaves_the_previous_results(
    materialized: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, warehouse = materialized
    before = city_scores(warehouse)
    lower_shanghai(data_dir)
    run = start_dei(
        data_dir,
        warehouse,
        dei_env(tmp_path, DEI_FAULT_PAUSE_IN_WRITE="marts.city_index", DEI_FAULT_PAUSE_SECONDS="120"),
    )
    assert run.stdout is not None
    for line in run.stdout:  # wait until the run is inside the transaction, old rows already deleted
        if "paused inside the write transaction of marts.city_index" in line:
            break
    else:
        pytest.fail(f"the run never reached the write: {run.stderr.read() if run.stderr else ''}")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    # The warehouse opens, and the city index is the one before the run (the corrected 上海 is not in it).
    assert city_scores(warehouse) == before
    # The killed run left no lock behind: the next run goes through and applies the correction.
    rerun = start_dei(data_dir, warehouse, dei_env(tmp_path))
    assert rerun.wait(timeout=300) == 0
    assert city_scores(warehouse)["310000"] < before["310000"]


def test_bi_reader_holding_the_snapshot_open_neither_blocks_nor_sees_a_half_state(
    materialized: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, warehouse = materialized
    serving = warehouse.with_name("dei_serving.duckdb")
    before = city_scores(serving)
    # A BI tool in another process opens the snapshot read-only and keeps its connection.
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time\n"
                f"con = duckdb.connect({str(serving)!r}, read_only=True)\n"
                'q = "SELECT round(sum(score), 6) FROM marts.city_index WHERE survey_year = 2020"\n'
                "print(con.sql(q).fetchall()[0][0], flush=True)\n"
                "sys.stdin.readline()\n"
                "print(con.sql(q).fetchall()[0][0], flush=True)\n"
                "con.close()\n"  # reconnect, as a BI tool does on refresh
                f"print(duckdb.connect({str(serving)!r}, read_only=True).sql(q).fetchall()[0][0], flush=True)\n"
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None and reader.stdout is not None
    first = float(reader.stdout.readline())
    lower_shanghai(data_dir)
    started = time.monotonic()
    run = start_dei(data_dir, warehouse, dei_env(tmp_path))
    assert run.wait(timeout=300) == 0, run.stderr.read() if run.stderr else ""
    assert time.monotonic() - started < 120
    reader.stdin.write("\n")
    reader.stdin.flush()
    same_connection, reconnected = float(reader.stdout.readline()), float(reader.stdout.readline())
    reader.wait(timeout=30)
    assert first == pytest.approx(sum(before.values()))
    assert same_connection == first  # the open connection still reads the complete old snapshot
    assert reconnected < first  # a new connection sees the published correction
    assert reconnected == pytest.approx(sum(city_scores(serving).values()))


def test_two_runs_at_once_take_turns(data_dir_factory: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = data_dir_factory((2019, 2020))
    warehouse = tmp_path / "warehouse" / "dei.duckdb"
    first = start_dei(data_dir, warehouse, dei_env(tmp_path))
    second = start_dei(data_dir, warehouse, dei_env(tmp_path))
    outcomes = [process.wait(timeout=600) for process in (first, second)]
    errors = [process.stderr.read() if process.stderr else "" for process in (first, second)]
    assert outcomes == [0, 0], errors
    assert any("waiting for the warehouse" in text for text in errors)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = dict(con.sql("SELECT survey_year, count(*) FROM marts.city_index GROUP BY 1").fetchall())
    assert counts == {2019: 113, 2020: 148}


def ui_asset_job() -> dg.JobDefinition:
    """Every edition asset with a process per step, as a user may choose in the Launchpad (resources
    from the DEI_* variables)."""
    every_asset = dg.define_asset_job(
        "every_asset_default_executor",
        selection=dg.AssetSelection.all() - PUBLICATION,
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions.merge(build_definitions(), dg.Definitions(jobs=[every_asset])).resolve_job_def(
        "every_asset_default_executor"
    )


def test_multiprocess_backfill_has_no_lock_errors(
    data_dir_factory: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = data_dir_factory((2019, 2020))
    warehouse = tmp_path / "warehouse" / "dei.duckdb"
    monkeypatch.setenv("DEI_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DEI_WAREHOUSE", str(warehouse))
    # A persistent instance (multiprocess steps reopen it), not entered as a context manager: Dagster
    # would otherwise keep a weak reference to it that breaks later Definitions loads in this process.
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home"))
    try:
        result = dg.execute_job(
            dg.reconstructable(ui_asset_job),
            instance=instance,
            tags={"dagster/asset_partition_range_start": "2019", "dagster/asset_partition_range_end": "2020"},
        )
        assert result.success
        step_starts = [
            e
            for e in instance.all_logs(result.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
        ]
        assert (
            len({e.dagster_event.pid for e in step_starts if e.dagster_event}) > 1
        )  # the steps really ran in separate processes
    finally:
        instance.dispose()
    assert city_scores(warehouse)["310000"] == pytest.approx(90.5, abs=0.05)
