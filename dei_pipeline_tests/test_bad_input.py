"""Every case of the bad-input corpus, run through the Dagster job against a good warehouse: the
error names file, line, column, value and rule; bad cells are quarantined; the warehouse and the BI
snapshot keep the last good data of every edition."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from dei_pipeline.cli import step_failures
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.definitions import build_definitions
from dei_pipeline.warehouse import MART_TABLES, TABLES
from dei_pipeline_tests.bad_inputs import CASES, CITIES, Case, line_of
from dei_pipeline_tests.conftest import copy_data_dir

GOOD_EDITIONS = ("2019", "2020")


def run_job(root: Path, partition_keys: tuple[str, ...], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
    resource = WarehouseResource(data_dir=str(root / "data"), warehouse_path=str(root / "warehouse" / "dei.duckdb"))
    instance = dg.DagsterInstance.ephemeral()
    job = build_definitions(resource).resolve_job_def("index_job")
    if partition_key is not None:
        return job.execute_in_process(instance=instance, partition_key=partition_key, raise_on_error=False)
    return job.execute_in_process(instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": partition_keys[0], "dagster/asset_partition_range_end": partition_keys[-1]})


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    copy_data_dir(root / "data", tuple(int(k) for k in GOOD_EDITIONS))
    assert run_job(root, GOOD_EDITIONS).success
    return root


def warehouse_contents(root: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
        return {
            name: con.sql(f"SELECT * FROM {name}").pl().sort(TABLES[name].column_names, nulls_last=True)
            for name in (*MART_TABLES, "core.indicator_scores", "core.edition_sources")
        }


def serving_digest(root: Path) -> str:
    return hashlib.sha256((root / "warehouse" / "dei_serving.duckdb").read_bytes()).hexdigest()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_case(case: Case, good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    line = line_of(root / "data", CITIES, case.unit_row)
    before, served = warehouse_contents(root), serving_digest(root)
    case.mutate(root / "data")
    keys = tuple(sorted({*GOOD_EDITIONS, *case.extra_partitions}))
    result = run_job(root, keys, partition_key=case.partition_key)

    if case.accepted:
        assert result.success, step_failures(result)
        after = warehouse_contents(root)
        for name in MART_TABLES:
            if name != "marts.reconciliation":
                assert before[name].equals(after[name]), f"{name} changed although the input means the same"
        return

    assert not result.success
    messages = step_failures(result)
    text = "\n".join(messages.values())
    for part in case.message:
        assert part.replace("{line}", str(line)) in text, text
    if case.failing_step is not None:
        assert case.failing_step in messages, messages
    if case.quarantine is not None:
        with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
            rows = con.sql("SELECT line_number, column_name, value FROM core.quarantine WHERE survey_year = 2020 ORDER BY ALL").fetchall()
        assert rows == sorted((line if q_line is None else q_line, column, value) for q_line, column, value in case.quarantine)
    after = warehouse_contents(root)
    for name, frame in before.items():
        assert frame.equals(after[name]), f"{name} changed after a failed run"
    assert serving_digest(root) == served, "the BI snapshot changed after a failed run"


def test_stray_blank_lines_keep_true_line_numbers(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    case = next(c for c in CASES if c.name == "stray blank lines")
    case.mutate(root / "data")
    assert run_job(root, GOOD_EDITIONS, partition_key="2020").success
    lines = (root / "data" / CITIES).read_text(encoding="utf-8").split("\n")
    with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
        recorded = dict(con.sql(
            "SELECT DISTINCT unit_code, line_number FROM core.indicator_scores WHERE survey_year = 2020 AND unit_type = 'city'").fetchall())
    for code, number in recorded.items():
        assert lines[number - 1].startswith(code + ","), (code, number)
    assert max(recorded.values()) == 149 + 2  # two blank lines inserted before the last rows


def test_gbk_file_records_its_encoding(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    next(c for c in CASES if c.name.startswith("GBK")).mutate(root / "data")
    result = run_job(root, GOOD_EDITIONS, partition_key="2020")
    materialization = result.asset_materializations_for_node("raw_scores")[0]
    assert materialization.metadata["encodings"].value[CITIES] == "gb18030"  # type: ignore[index]
