"""``dei materialize`` as a user runs it: progress, summary, exit codes and reasons."""

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from dei_pipeline.cli import step_failures
from dei_pipeline.defs.partitions import contiguous_blocks
from dei_pipeline_tests.conftest import dei


@pytest.mark.e2e
def test_materialize_prints_progress_and_a_summary(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2019, 2020))
    result = dei(
        [
            "materialize",
            "--years",
            "all",
            "--job",
            "index",
            "--data-dir",
            str(data_dir),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "index_job for edition(s) 2019-2020" in out and "analysis_job for" not in out
    assert "done   reconciliation" in out
    assert "== Edition 2020: 148 cities, mean score 57.3 ==" in out
    assert "|    1 | 上海    | Shanghai  |  90.5 | tier1     |" in out
    assert "35 new, 113 returning, 0 dropped cities; returning cities' mean 57.6 -> 61.8" in out
    assert "Reconciliation with the published figures" in out
    # The sample says it is synthetic, in the summary and in the snapshot BI tools read.
    assert out.index("!! SYNTHETIC SAMPLE") < out.index("== Edition 2020")
    with duckdb.connect(str(tmp_path / "dei_serving.duckdb"), read_only=True) as con:
        [(note,)] = con.sql("SELECT data_note FROM marts.snapshot_info").fetchall()
    assert note is not None and note.startswith("SYNTHETIC SAMPLE")


def steps_done(stdout: str) -> set[str]:
    return set(re.findall(r"^\s+done\s+(\S+)", stdout, re.MULTILINE))


@pytest.mark.e2e
def test_the_index_runs_alone_and_the_analysis_after_it(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2020,))
    warehouse = tmp_path / "w.duckdb"
    options = ["--data-dir", str(data_dir), "--warehouse", str(warehouse)]

    # The analysis starts from the index: on a warehouse without it, it is refused with the reason.
    refused = dei(["materialize", "--job", "analysis", *options], tmp_path)
    assert (
        refused.returncode == 2
        and "has no index for edition(s) 2020" in refused.stderr
        and "--job all" in refused.stderr
    )

    index = dei(["materialize", "--job", "index", *options], tmp_path)
    assert index.returncode == 0, index.stderr
    assert {
        "indicator_scores",
        "city_index",
        "region_rollup",
        "reconciliation",
        "edition_consistency",
        "mart_parquet",
        "serving_snapshot",
    } <= steps_done(index.stdout)
    assert not steps_done(index.stdout) & {
        "rank_uncertainty",
        "sensitivity",
        "removal_impact",
        "audit",
        "unit_profile",
        "yoy_attribution",
        "edition_report",
    }
    assert "`dei materialize --job analysis`" in index.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM marts.city_index WHERE survey_year = 2020").fetchall() == [
            (148,)
        ]
        assert con.sql("SELECT count(*) FROM marts.rank_uncertainty").fetchall() == [(0,)]
    serving = warehouse.with_name("dei_serving.duckdb")
    with duckdb.connect(str(serving), read_only=True) as con:  # BI sees which job published the snapshot
        assert con.sql("SELECT job_name FROM marts.snapshot_info").fetchall() == [("publish_job",)]

    analysis = dei(["materialize", "--job", "analysis", *options], tmp_path)
    assert analysis.returncode == 0, analysis.stderr
    publication = {
        "dim_unit",
        "dim_tier",
        "dim_region",
        "edition_consistency",
        "mart_parquet",
        "serving_snapshot",
    }
    assert steps_done(analysis.stdout) == {
        "rank_uncertainty",
        "sensitivity",
        "removal_impact",
        "audit",
        "unit_profile",
        "yoy_attribution",
        "edition_report",
        *publication,
    }
    with duckdb.connect(str(serving), read_only=True) as con:
        assert dict(
            con.sql("SELECT unit_type, count(*) FROM marts.rank_uncertainty GROUP BY 1").fetchall()
        ) == {"city": 148, "county": 100}
        assert con.sql("SELECT job_name FROM marts.snapshot_info").fetchall() == [("publish_job",)]
    assert not list((tmp_path / "reports" / "2020").glob("*.png"))

    # The PNGs of the report's charts, on request: drawn beside the SVG files, and nothing published.
    published = hashlib.sha256(serving.read_bytes()).hexdigest()
    pngs = dei(["materialize", "--years", "2020", "--job", "pngs", *options], tmp_path)
    assert pngs.returncode == 0, pngs.stderr
    assert steps_done(pngs.stdout) == {"report_pngs"}
    charts = tmp_path / "reports" / "2020"
    assert {png.stem for png in charts.glob("*.png")} == {svg.stem for svg in charts.glob("*.svg")} != set()
    assert hashlib.sha256(serving.read_bytes()).hexdigest() == published


@pytest.mark.e2e
def test_unknown_or_malformed_years_are_refused(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2020,))
    missing = dei(["materialize", "--years", "2016", "--data-dir", str(data_dir)], tmp_path)
    assert (
        missing.returncode != 0
        and "edition 2016 has no folder with raw files under data/raw/ (found: 2020)" in missing.stderr
    )
    malformed = dei(["materialize", "--years", "2020;drop", "--data-dir", str(data_dir)], tmp_path)
    assert malformed.returncode != 0 and "is not a four-digit year" in malformed.stderr


@pytest.mark.e2e
def test_a_failing_run_exits_non_zero_with_the_reason(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2020,))
    path = data_dir / "raw/2020/counties.csv"
    table = pl.read_csv(path, infer_schema=False)
    table.with_columns(
        pl.when(pl.col("unit_name") == "江阴市")
        .then(pl.lit("12,5"))
        .otherwise(pl.col("infra_ops_structure"))
        .alias("infra_ops_structure")
    ).write_csv(path)
    result = dei(
        ["materialize", "--data-dir", str(data_dir), "--warehouse", str(tmp_path / "w.duckdb")], tmp_path
    )
    assert result.returncode == 1
    line = 2 + table["unit_name"].to_list().index("江阴市")
    assert (
        f"raw/2020/counties.csv line {line}, column infra_ops_structure: value '12,5' breaks rule: score is a number"
        in result.stderr
    )
    assert "the warehouse keeps the last good data" in result.stderr


def test_selected_editions_run_as_contiguous_partition_ranges() -> None:
    order = ["2017", "2018", "2019", "2020"]
    assert contiguous_blocks(order, order) == [order]
    assert contiguous_blocks(["2020", "2017", "2018"], order) == [["2017", "2018"], ["2020"]]


class EditionNotReportedError(FileNotFoundError):
    """An error class of a module, as the pipeline's are: Dagster qualifies its name in the message."""


def test_a_failed_step_names_its_error_class_once() -> None:
    @dg.asset
    def failing_step() -> None:
        raise EditionNotReportedError("edition 2016 has no report")

    result = dg.materialize([failing_step], raise_on_error=False)
    assert step_failures(result) == {"failing_step": "EditionNotReportedError: edition 2016 has no report"}
