"""Editions depend on each other, through the command line: a rerun of one edition refreshes what the
later editions read of it, an edition added later for an earlier year takes its place in time, and
nothing that disagrees is ever published. Each test asserts the warehouse and the serving snapshot,
edition by edition."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline_tests.conftest import dei
from dei_pipeline_tests.edition_checks import assert_editions_agree, lower_every_indicator, score, table

HANGZHOU = "330100"

pytestmark = [pytest.mark.e2e]


def test_a_rerun_of_one_edition_refreshes_the_later_editions_comparisons(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2018, 2019, 2020))
    warehouse, serving = tmp_path / "w.duckdb", tmp_path / "dei_serving.duckdb"
    options = ["--data-dir", str(data_dir), "--warehouse", str(warehouse)]
    first = dei(["materialize", *options], tmp_path)
    assert first.returncode == 0, first.stderr
    before = {
        name: table(warehouse, name)
        for name in ("marts.city_index", "marts.city_yoy", "marts.tier_summary", "marts.yoy_attribution")
    }
    old_2019, _ = score(warehouse, 2019, HANGZHOU)

    lower_every_indicator(data_dir, 2019, HANGZHOU, 20.0)
    rerun = dei(["materialize", "--years", "2019", *options], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "dei: 2019 changed: also refreshing what edition 2020 reads of it (city_yoy" in rerun.stdout
    assert "index_job for edition(s) 2018" not in rerun.stdout  # the earlier edition reads nothing of 2019

    for database in (warehouse, serving):
        new_2019, rank_2019 = score(database, 2019, HANGZHOU)
        assert new_2019 == pytest.approx(old_2019 - 20.0, abs=1e-9)  # weights sum to 1 within every parent
        [(prev_score, prev_rank)] = (
            table(database, "marts.city_yoy", 2020)
            .filter(pl.col("unit_code") == HANGZHOU)
            .select("prev_score", "prev_rank")
            .rows()
        )
        assert (prev_score, prev_rank) == (new_2019, rank_2019)
        assert_editions_agree(database, 2020, 2019)
        assert_editions_agree(database, 2019, 2018)
        attribution = table(database, "marts.yoy_attribution", 2020).filter(
            (pl.col("unit_code") == HANGZHOU) & (pl.col("level") == 0)
        )
        assert attribution["prev_score"][0] == pytest.approx(new_2019, abs=1e-9)
        # 2018 reads nothing of 2019, and 2020's own index is unchanged.
        for name, frame in before.items():
            assert table(database, name, 2018).equals(frame.filter(pl.col("survey_year") == 2018)), name
        assert table(database, "marts.city_index", 2020).equals(
            before["marts.city_index"].filter(pl.col("survey_year") == 2020)
        )


def test_without_propagation_the_snapshot_keeps_the_last_consistent_publication(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2019, 2020))
    warehouse, serving = tmp_path / "w.duckdb", tmp_path / "dei_serving.duckdb"
    options = ["--job", "index", "--data-dir", str(data_dir), "--warehouse", str(warehouse)]
    assert dei(["materialize", *options], tmp_path).returncode == 0
    published = serving.read_bytes()
    old_2019, _ = score(warehouse, 2019, HANGZHOU)

    lower_every_indicator(data_dir, 2019, HANGZHOU, 20.0)
    held_back = dei(["materialize", "--years", "2019", "--no-propagate", *options], tmp_path)
    assert held_back.returncode == 1
    assert "dei: check comparisons_match_index failed" in held_back.stderr
    assert f"first: marts.city_yoy 2020 unit {HANGZHOU} prev_score is " in held_back.stderr
    assert "dei: check tier_counts_match_index failed" in held_back.stderr
    assert "BI the last consistent publication" in held_back.stderr
    assert serving.read_bytes() == published  # untouched
    assert score(warehouse, 2019, HANGZHOU)[0] == pytest.approx(
        old_2019 - 20.0, abs=1e-9
    )  # the rerun itself landed

    caught_up = dei(["materialize", "--years", "2019", *options], tmp_path)
    assert caught_up.returncode == 0, caught_up.stderr
    assert score(serving, 2019, HANGZHOU)[0] == pytest.approx(old_2019 - 20.0, abs=1e-9)
    assert_editions_agree(serving, 2020, 2019)


def test_an_edition_added_for_an_earlier_year_takes_its_place_in_time(
    data_dir_factory: Callable[..., Path], tmp_path: Path
) -> None:
    data_dir = data_dir_factory((2017, 2018))
    warehouse, serving = tmp_path / "w.duckdb", tmp_path / "dei_serving.duckdb"
    options = ["--job", "index", "--data-dir", str(data_dir), "--warehouse", str(warehouse)]
    assert dei(["materialize", *options], tmp_path).returncode == 0
    assert set(table(serving, "marts.city_yoy", 2017)["status"].to_list()) == {"first_edition"}

    (data_dir / "raw" / "2016").mkdir()
    for raw_file in (data_dir / "raw" / "2017").iterdir():
        (data_dir / "raw" / "2016" / raw_file.name).write_bytes(raw_file.read_bytes())
    resource = WarehouseResource(data_dir=str(data_dir), warehouse_path=str(warehouse))
    graph = build_definitions(resource).resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("city_yoy")).partitions_def
    assert partitions is not None and partitions.get_partition_keys() == ["2016", "2017", "2018"]

    added = dei(["materialize", "--years", "2016", *options], tmp_path)
    assert added.returncode == 0, added.stderr
    assert "dei: 2016 changed: also refreshing what edition 2017 reads of it" in added.stdout
    for database in (warehouse, serving):
        assert set(table(database, "marts.city_yoy", 2016)["status"].to_list()) == {"first_edition"}
        assert set(table(database, "marts.city_yoy", 2017)["prev_year"].to_list()) == {2016}
        assert_editions_agree(database, 2017, 2016)
        assert_editions_agree(database, 2018, 2017)
