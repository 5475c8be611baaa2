"""Every case of the bad-input corpus, run through the Dagster job against a good warehouse: the
error names file, line, column, value and rule; bad cells are quarantined; the warehouse and the BI
snapshot keep the last good data of every edition. Then the guard against mass removal, confirmed by
a run tag and by the command line's flag."""

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from dei_pipeline.cli import step_failures
from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.ingest import IngestError, ingest_edition
from dei_pipeline.removal import CONFIRM_REMOVAL_TAG
from dei_pipeline.warehouse import MART_TABLES, TABLES
from dei_pipeline_tests.bad_inputs import (
    CASES,
    CITIES,
    Case,
    damage_first_byte_of,
    damaged_offset,
    dangling_link,
    delete_cities,
    empty_edition_folder,
    header_and_first_rows,
    line_of,
)
from dei_pipeline_tests.conftest import copy_data_dir, dei
from dei_pipeline_tests.sample_scores import as_score_file

GOOD_EDITIONS = ("2019", "2020")

pytestmark = [pytest.mark.pipeline]


def run_job(
    root: Path,
    partition_keys: tuple[str, ...],
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """index_job for the editions, then, if it succeeded, the publication (as `dei materialize --job index`)."""
    resource = WarehouseResource(
        data_dir=str(root / "data"), warehouse_path=str(root / "warehouse" / "dei.duckdb")
    )
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(resource)
    job = defs.resolve_job_def("index_job")
    if partition_key is not None:
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key, raise_on_error=False, tags=tags
        )
    else:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                **(tags or {}),
                "dagster/asset_partition_range_start": partition_keys[0],
                "dagster/asset_partition_range_end": partition_keys[-1],
            },
        )
    if result.success:
        assert defs.resolve_job_def("publish_job").execute_in_process(instance=instance).success
    return result


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    copy_data_dir(root / "data", tuple(int(k) for k in GOOD_EDITIONS))
    as_score_file(root / "data")  # the cases below are about score files
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
    result = run_job(root, GOOD_EDITIONS, partition_key=case.partition_key)

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
    # A refusal says what is wrong, never that there are no problems, and stays readable.
    assert not re.search(r"\b0 problem", text), text
    assert len(text) < 5_000, f"{len(text):,} characters of failure message"
    if case.failing_step is not None:
        assert case.failing_step in messages, messages
    if case.quarantine is not None:
        with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
            rows = con.sql(
                "SELECT line_number, column_name, value FROM core.quarantine WHERE survey_year = 2020 ORDER BY ALL"
            ).fetchall()
        assert rows == sorted(
            (line if q_line is None else q_line, column, value) for q_line, column, value in case.quarantine
        )
    after = warehouse_contents(root)
    for name, frame in before.items():
        assert frame.equals(after[name]), f"{name} changed after a failed run"
    assert serving_digest(root) == served, "the BI snapshot changed after a failed run"


@pytest.mark.parametrize("key", ["2021", "2020'; drop table x", "../2020"])
def test_a_key_that_is_no_edition_folder_is_no_partition(key: str, good_root: Path, tmp_path: Path) -> None:
    # An empty edition folder, SQL or a path in the key: none is a partition, so no run for it starts.
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    empty_edition_folder(root / "data")
    before, served = warehouse_contents(root), serving_digest(root)
    with pytest.raises(dg.DagsterUnknownPartitionError, match="Could not find a partition with key"):
        run_job(root, GOOD_EDITIONS, partition_key=key)
    after = warehouse_contents(root)
    assert all(frame.equals(after[name]) for name, frame in before.items())
    assert serving_digest(root) == served


def test_stray_blank_lines_keep_true_line_numbers(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    case = next(c for c in CASES if c.name == "stray blank lines")
    case.mutate(root / "data")
    assert run_job(root, GOOD_EDITIONS, partition_key="2020").success
    lines = (root / "data" / CITIES).read_text(encoding="utf-8").split("\n")
    with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
        recorded = dict(
            con.sql(
                "SELECT DISTINCT unit_code, line_number FROM core.indicator_scores WHERE survey_year = 2020 AND unit_type = 'city'"
            ).fetchall()
        )
    for code, number in recorded.items():
        assert lines[number - 1].startswith(code + ","), (code, number)
    assert max(recorded.values()) == 149 + 2  # two blank lines inserted before the last rows


def test_gbk_file_records_its_encoding(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    next(c for c in CASES if c.name.startswith("GBK")).mutate(root / "data")
    result = run_job(root, GOOD_EDITIONS, partition_key="2020")
    materialization = result.asset_materializations_for_node("raw_scores")[0]
    encodings = materialization.metadata["encodings"].value
    assert isinstance(encodings, dict) and encodings[CITIES] == "gb18030"


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_damaged_byte_is_reported_at_its_line_and_byte_offset(
    encoding: str, data_dir_factory: Callable[..., Path]
) -> None:
    data_dir = data_dir_factory((2020,))
    as_score_file(data_dir)
    line = line_of(data_dir, CITIES, "杭州")
    offset = damaged_offset(
        (data_dir / CITIES).read_text(encoding="utf-8").encode(encoding), "杭州", encoding
    )
    damage_first_byte_of("杭州", encoding)(data_dir)
    with pytest.raises(IngestError) as error:
        ingest_edition(data_dir, 2020)
    assert f"{CITIES} line {line}, column unit_name: " in str(error.value)
    assert (
        f"(read as {encoding.upper()}, byte(s) 0xFF at byte offset {offset:,} of the file cannot be decoded)"
        in str(error.value)
    )
    assert error.value.failures.select("line_number", "column_name").rows() == [(line, "unit_name")]


def city_counts(database: Path) -> dict[int, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return dict(con.sql("SELECT survey_year, count(*) FROM marts.city_index GROUP BY 1").fetchall())


def test_a_confirmed_removal_goes_through(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    delete_cities(root / "data")
    result = run_job(root, GOOD_EDITIONS, partition_key="2020", tags={CONFIRM_REMOVAL_TAG: "true"})
    assert result.success, step_failures(result)
    assert city_counts(root / "warehouse" / "dei.duckdb") == {2019: 113}
    assert city_counts(root / "warehouse" / "dei_serving.duckdb") == {2019: 113}
    with duckdb.connect(str(root / "warehouse" / "dei.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM marts.county_index WHERE survey_year = 2020").fetchall() == [
            (100,)
        ]


def test_the_share_that_may_go_unconfirmed_is_a_setting(good_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    settings = root / "data" / "method" / "settings.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("max_share: 0.1", "max_share: 0.95"), encoding="utf-8"
    )
    header_and_first_rows(11)(root / "data")  # 138 of 148 cities go: 93%
    result = run_job(root, GOOD_EDITIONS, partition_key="2020")
    assert result.success, step_failures(result)
    assert city_counts(root / "warehouse" / "dei.duckdb") == {2019: 113, 2020: 10}


@pytest.mark.e2e
def test_the_command_line_refuses_an_unreadable_file_and_a_mass_removal_until_confirmed(
    good_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_root, root)
    warehouse = root / "warehouse" / "dei.duckdb"
    command = [
        "materialize",
        "--years",
        "2020",
        "--data-dir",
        str(root / "data"),
        "--warehouse",
        str(warehouse),
    ]
    before, served = warehouse_contents(root), serving_digest(root)

    dangling_link(root / "data")
    refused = dei(command, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{CITIES}: is a symbolic link to cities_2020_final.csv, which does not exist" in refused.stderr
    assert "materialized" not in refused.stdout and not re.search(r"\b0 problem", refused.stderr)

    (root / "data" / CITIES).unlink()  # the file is gone for good: every city of 2020 would go
    refused = dei(command, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "this run would remove all 148 cities of edition 2020" in refused.stderr
    assert "`dei materialize --years 2020 --confirm-removal`" in refused.stderr
    assert "the warehouse keeps the last good data" in refused.stderr
    after = warehouse_contents(root)
    for name, frame in before.items():
        assert frame.equals(after[name]), f"{name} changed after a refused run"
    assert serving_digest(root) == served

    confirmed = dei([*command, "--confirm-removal"], tmp_path)
    assert confirmed.returncode == 0, confirmed.stderr
    assert city_counts(warehouse) == city_counts(warehouse.with_name("dei_serving.duckdb")) == {2019: 113}
