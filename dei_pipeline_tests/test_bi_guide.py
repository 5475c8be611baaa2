"""The generated documentation against what it documents: docs/bi.md against the serving snapshot of
the sample (the marts' COMMENT ON text; each example query runs read-only and answers its question),
and the diagrams of docs/architecture.md against the Dagster definitions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import duckdb
import polars as pl
import pytest

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.definitions import defs
from dei_pipeline.docgen import architecture
from dei_pipeline.docgen.bi_guide import EXAMPLE_QUERIES, ExampleQuery, generated_sections, update_bi_guide
from dei_pipeline.published import load_published
from dei_pipeline.scalars import number
from dei_pipeline_tests.conftest import Project

GUIDE = REPO_ROOT / "docs" / "bi.md"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def serving(sample: Project) -> Iterator[duckdb.DuckDBPyConnection]:
    """The snapshot as a BI tool opens it: read-only."""
    assert sample.serving.is_file(), "the run did not publish the serving snapshot"
    con = duckdb.connect(str(sample.serving), read_only=True)
    yield con
    con.close()


def test_committed_guide_matches_the_generator(serving: duckdb.DuckDBPyConnection) -> None:
    committed = GUIDE.read_text(encoding="utf-8")
    regenerated = update_bi_guide(committed, generated_sections(serving))
    assert regenerated == committed, (
        "docs/bi.md is stale: run `make run` and `.venv/bin/python scripts/bi_guide.py`"
    )


def test_every_mart_of_the_snapshot_is_documented(serving: duckdb.DuckDBPyConnection) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    marts = [
        name
        for (name,) in serving.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()
    ]
    assert "city_index" in marts and "snapshot_info" in marts
    for mart in marts:
        assert f"### `marts.{mart}`" in guide, mart


def test_generator_script_checks_the_committed_guide(sample: Project) -> None:
    check = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bi_guide.py"),
            "--check",
            "--serving",
            str(sample.serving),
        ],
        check=False,  # asserted below, with its output
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert check.returncode == 0, check.stderr


def test_architecture_diagrams_match_the_definitions() -> None:
    committed = ARCHITECTURE.read_text(encoding="utf-8")
    regenerated = architecture.update_architecture(committed, architecture.generated_sections(defs))
    assert regenerated == committed, (
        "docs/architecture.md is stale: run `.venv/bin/python scripts/architecture_diagram.py`"
    )
    for node in architecture.asset_nodes(defs):
        assert f"a_{node.name}[{node.name}]" in committed, node.name


def test_a_guide_without_the_generated_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="BEGIN GENERATED: marts"):
        update_bi_guide("# a guide someone rewrote by hand\n", {"marts": "..."})


def test_the_snapshot_opened_read_only_refuses_writes(sample: Project) -> None:
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{sample.serving}' AS dei (READ_ONLY)")  # the guide's fallback for any tool
        assert con.execute(
            "SELECT count(*) FROM dei.marts.city_index WHERE survey_year = 2020"
        ).fetchall() == [(148,)]
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE dei.marts.scratch AS SELECT 1 AS x")
    finally:
        con.close()


# -------------------------------------------------------------------------------- the examples


def _marts(serving: duckdb.DuckDBPyConnection, table: str, year: int | None = None) -> pl.DataFrame:
    where = "" if year is None else f" WHERE survey_year = {int(year)}"
    return serving.sql(f"SELECT * FROM marts.{table}{where}").pl()


def check_top_movers(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    returning = _marts(serving, "city_yoy", 2020).filter(pl.col("status") == "returning")
    assert answer.height == 10
    assert answer["rank_change"].abs().max() == returning["rank_change"].abs().max()
    assert answer["rank_change"].abs().to_list() == sorted(
        answer["rank_change"].abs().to_list(), reverse=True
    )
    assert "乌鲁木齐" in answer["city"].to_list() and "抚顺" in answer["city"].to_list()


def check_region_tier_mix(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    assert answer["survey_year"].to_list() == [2017, 2018, 2019, 2020]
    tiers = ["一线", "新一线", "二线", "三线", "四线"]
    assert answer.select(pl.sum_horizontal(tiers)).to_series().to_list() == answer["scored_cities"].to_list()
    latest = answer.filter(pl.col("survey_year") == 2020).row(0, named=True)
    assert (
        latest["scored_cities"] == 41 and latest["gdp_weighted_score"] == 70.6
    )  # the white paper's 长三角 70.6


def check_city_profile(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    assert answer.height == 5  # composite + four level-1 domains
    composite = answer.row(0, named=True)
    assert (
        composite["city"],
        composite["indicator"],
        composite["score"],
        composite["rank_among_cities"],
    ) == ("杭州", "综合指数", 89.1, 5)
    assert composite["all_city_mean"] == 57.3


def check_tier_changes(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    changed = _marts(serving, "city_yoy", 2020).filter(
        (pl.col("status") == "returning") & (pl.col("tier") != pl.col("prev_tier"))
    )
    assert answer.height == changed.height > 0
    assert set(answer["direction"]) <= {"up", "down"}
    assert answer.filter(pl.col("city") == "广州").select("prev_tier", "tier", "direction").row(0) == (
        "new_tier1",
        "tier1",
        "up",
    )


def check_industry_averages(
    answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project
) -> None:
    published = load_published(sample.resource.data_path, 2020)
    assert published is not None
    expected = published.industry_averages.select(
        pl.col("name_zh").alias("industry"), "average", "top10_average"
    )
    compared = answer.join(expected, on="industry", suffix="_published")
    assert compared.height == expected.height == 10
    assert number((compared["average"] - compared["average_published"]).abs().max()) < 0.05
    assert number((compared["top10_average"] - compared["top10_average_published"]).abs().max()) < 0.05


def check_top_n_with_tier_names(
    answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project
) -> None:
    ranked = _marts(serving, "city_index", 2020).filter(pl.col("rank") <= 10)
    assert answer.height == ranked.height >= 10
    assert answer["rank"].to_list() == sorted(answer["rank"].to_list())
    assert answer.select("city", "tier").head(7).rows() == [
        ("上海", "一线"),
        ("深圳", "一线"),
        ("北京", "一线"),
        ("成都", "一线"),
        ("杭州", "一线"),
        ("广州", "一线"),
        ("无锡", "新一线"),
    ]
    assert answer["score_range"][0] == "score > 85"


def check_region_members(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    assert set(answer["region"]) == {"京津冀", "长三角", "粤港澳大湾区", "成渝"}
    regions = _marts(serving, "region_rollup", 2020)
    counted = answer.group_by("region").agg(
        pl.len().alias("n_members"), pl.col("score").is_not_null().sum().alias("n_scored")
    )
    expected = regions.join(
        _marts(serving, "dim_region").rename({"region_code": "region"}), on="region"
    ).select(pl.col("name_zh").alias("region"), "n_members", "n_scored")
    assert (
        counted.sort("region").rows()
        == expected.cast({"n_members": pl.UInt32, "n_scored": pl.UInt32}).sort("region").rows()
    )
    bay = answer.filter(pl.col("region") == "粤港澳大湾区")
    assert bay.filter(pl.col("score").is_null())["member"].to_list() == ["香港", "澳门"]


def check_tier_migration(answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project) -> None:
    returning = _marts(serving, "city_yoy", 2020).filter(pl.col("status") == "returning")
    assert answer["cities"].sum() == returning.height
    names = dict(serving.execute("SELECT tier_code, name_zh FROM marts.dim_tier").fetchall())
    moved = returning.group_by("prev_tier", "tier").len()
    assert sorted((names[p], names[t], n) for p, t, n in moved.iter_rows()) == sorted(answer.rows())
    assert ("新一线", "一线", 1) in answer.rows()  # 广州


def check_unit_subindex_profile(
    answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project
) -> None:
    framework = _marts(serving, "framework", 2020).filter(
        (pl.col("unit_type") == "city") & (pl.col("level") <= 2)
    )
    assert answer.height == framework.height + 1
    composite = answer.row(0, named=True)
    assert (
        composite["indicator"],
        composite["name_en"],
        composite["weight_in_composite"],
        composite["score"],
        composite["rank_among_cities"],
    ) == ("综合指数", "Composite index", 1.0, 89.1, 5)  # 杭州's published score and rank
    assert answer.filter(pl.col("level") == 1)["weight_in_composite"].sum() == pytest.approx(1.0)


def check_county_top_n_by_kind(
    answer: pl.DataFrame, serving: duckdb.DuckDBPyConnection, sample: Project
) -> None:
    assert answer.group_by("kind_zh").len().sort("kind_zh").rows() == [
        ("县市", 6),
        ("市辖区", 5),
    ]  # the tie at rank 5
    tied = answer.filter((pl.col("kind_zh") == "县市") & (pl.col("rank") == 5))
    assert tied["score"].n_unique() == 1 and tied.height == 2
    assert answer.filter(pl.col("rank") == 1)["unit"].sort().to_list() == ["江阴市", "深圳市南山区"]


CHECKS: dict[str, Callable[[pl.DataFrame, duckdb.DuckDBPyConnection, Project], None]] = {
    "top_n_with_tier_names": check_top_n_with_tier_names,
    "region_members": check_region_members,
    "tier_migration": check_tier_migration,
    "unit_subindex_profile": check_unit_subindex_profile,
    "county_top_n_by_kind": check_county_top_n_by_kind,
    "top_movers": check_top_movers,
    "region_tier_mix": check_region_tier_mix,
    "city_profile": check_city_profile,
    "tier_changes": check_tier_changes,
    "industry_averages": check_industry_averages,
}


def test_every_example_has_a_check() -> None:
    assert len(EXAMPLE_QUERIES) == 10
    assert {query.slug for query in EXAMPLE_QUERIES} == set(CHECKS)


@pytest.mark.parametrize("query", EXAMPLE_QUERIES, ids=lambda query: query.slug)
def test_example_query_answers_its_question(
    query: ExampleQuery, serving: duckdb.DuckDBPyConnection, sample: Project
) -> None:
    answer = serving.sql(query.sql).pl()
    assert answer.height > 0, query.slug
    CHECKS[query.slug](answer, serving, sample)
    for mart in query.marts:
        assert mart in query.sql, f"{query.slug} lists {mart} but does not use it"
