"""``dei materialize`` as a user runs it: progress, summary, exit codes and reasons."""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from dei_pipeline.cli import contiguous_blocks


def dei(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    return subprocess.run([sys.executable, "-m", "dei_pipeline.cli", *args], capture_output=True, text=True, env=env, timeout=300)


def test_materialize_prints_progress_and_a_summary(data_dir_factory: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = data_dir_factory((2019, 2020))
    result = dei(["materialize", "--years", "all", "--data-dir", str(data_dir), "--warehouse", str(tmp_path / "w.duckdb")], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "materializing edition(s) 2019-2020" in out
    assert "done   reconciliation" in out
    assert "== Edition 2020: 148 cities, mean score 57.3 ==" in out
    assert "| 1    | 上海    | Shanghai  | 90.5  | tier1     |" in out
    assert "35 new, 113 returning, 0 dropped cities; returning cities' mean 57.6 -> 61.8" in out
    assert "Reconciliation with the published figures" in out
    # The sample says it is synthetic, in the summary and in the snapshot BI tools read.
    assert out.index("!! SYNTHETIC SAMPLE") < out.index("== Edition 2020")
    with duckdb.connect(str(tmp_path / "dei_serving.duckdb"), read_only=True) as con:
        [(note,)] = con.sql("SELECT data_note FROM marts.snapshot_info").fetchall()
    assert note is not None and note.startswith("SYNTHETIC SAMPLE")


def test_index_only_runs_the_index_and_leaves_the_analysis_and_snapshot_alone(data_dir_factory: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = data_dir_factory((2020,))
    warehouse = tmp_path / "w.duckdb"
    result = dei(["materialize", "--index-only", "--data-dir", str(data_dir), "--warehouse", str(warehouse)], tmp_path)
    assert result.returncode == 0, result.stderr
    steps = set(re.findall(r"^\s+done\s+(\S+)", result.stdout, re.MULTILINE))
    assert {"indicator_scores", "city_index", "region_rollup", "reconciliation", "mart_parquet"} <= steps
    assert not steps & {"rank_uncertainty", "sensitivity", "audit", "edition_report", "serving_snapshot"}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {f"{schema}.{name}" for schema, name in con.sql("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        assert con.sql("SELECT count(*) FROM marts.city_index WHERE survey_year = 2020").fetchall() == [(148,)]
        if "marts.rank_uncertainty" in tables:  # created empty with the warehouse's other tables
            assert con.sql("SELECT count(*) FROM marts.rank_uncertainty").fetchall() == [(0,)]
    assert not warehouse.with_name("dei_serving.duckdb").exists()


def test_unknown_or_malformed_years_are_refused(data_dir_factory: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = data_dir_factory((2020,))
    missing = dei(["materialize", "--years", "2016", "--data-dir", str(data_dir)], tmp_path)
    assert missing.returncode != 0 and "edition 2016 has no folder with raw files under data/raw/ (found: 2020)" in missing.stderr
    malformed = dei(["materialize", "--years", "2020;drop", "--data-dir", str(data_dir)], tmp_path)
    assert malformed.returncode != 0 and "is not a four-digit year" in malformed.stderr


def test_a_failing_run_exits_non_zero_with_the_reason(data_dir_factory: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = data_dir_factory((2020,))
    path = data_dir / "raw/2020/counties.csv"
    table = pl.read_csv(path, infer_schema=False)
    table.with_columns(pl.when(pl.col("unit_name") == "江阴市").then(pl.lit("12,5")).otherwise(pl.col("infra_ops_structure")).alias("infra_ops_structure")).write_csv(path)
    result = dei(["materialize", "--data-dir", str(data_dir), "--warehouse", str(tmp_path / "w.duckdb")], tmp_path)
    assert result.returncode == 1
    line = 2 + table["unit_name"].to_list().index("江阴市")
    assert f"raw/2020/counties.csv line {line}, column infra_ops_structure: value '12,5' breaks rule: score is a number" in result.stderr
    assert "the warehouse keeps the last good data" in result.stderr


def test_selected_editions_run_as_contiguous_partition_ranges() -> None:
    order = ["2017", "2018", "2019", "2020"]
    assert contiguous_blocks([2017, 2018, 2019, 2020], order) == [order]
    assert contiguous_blocks([2020, 2017, 2018], order) == [["2017", "2018"], ["2020"]]
