"""The Dagster pipeline end to end: the sample backfilled (the session's sample warehouse), and, on private
copies of the sample, materialize(), reruns and failures."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dei_pipeline.defs.assets import INDEX_ASSETS, indicator_scores, region_rollup
from dei_pipeline.registry import load_registry
from dei_pipeline.scalars import number
from dei_pipeline.warehouse import MART_TABLES, TABLES
from dei_pipeline_tests.conftest import Project


class Pipeline(Project):
    """A project whose tests run the index assets edition by edition and compare what they leave."""

    def materialize(
        self, partition_key: str, assets: list | None = None, raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets or INDEX_ASSETS,
            partition_key=partition_key,
            instance=self.instance,
            resources={"warehouse": self.resource},
            raise_on_error=raise_on_error,
        )

    def snapshot(self, year: int | None = None) -> dict[str, pl.DataFrame]:
        """Every mart's rows (of one edition: then the marts without editions, the dimensions of units,
        tiers and regions, are left out)."""
        names = [
            name
            for name in (*MART_TABLES, "core.indicator_scores")
            if year is None or "survey_year" in TABLES[name].column_names
        ]
        return {name: self.table(name, year) for name in names}


@pytest.fixture
def pipeline(data_dir_factory: Callable[..., Path], tmp_path: Path) -> Pipeline:
    return Pipeline.at(data_dir_factory(), tmp_path / "warehouse" / "dei.duckdb")


def test_single_run_backfill_materializes_every_edition_in_one_run(sample: Project) -> None:
    runs = sample.instance.get_runs()
    # every edition's index in one run, its analysis in one, then the publication
    assert sorted(run.job_name for run in runs) == ["analysis_job", "index_job", "publish_job"]
    counts = dict(
        sample.table("marts.city_index").group_by("survey_year").len().sort("survey_year").iter_rows()
    )
    assert counts == {2017: 40, 2018: 100, 2019: 113, 2020: 148}
    county_counts = dict(sample.table("marts.county_index").group_by("survey_year").len().iter_rows())
    assert county_counts == {2019: 100, 2020: 100}


def test_every_published_2020_figure_is_reproduced_from_the_sample(sample: Project) -> None:
    recon = sample.table("marts.reconciliation", 2020)
    status = {(c, s): n for c, s, n in recon.group_by("category", "status").len().iter_rows()}
    assert status[("city_score", "match")] == 148
    assert status[("county_score", "match")] == 100
    assert status[("tier_count", "match")] == 5
    assert status[("level1_average", "match")] == 4
    assert status[("industry_average", "match")] == 10
    # The white paper's own tier lists disagree with its scores for exactly four cities.
    tier_list = recon.filter(pl.col("category") == "tier_list")
    assert sorted(tier_list.filter(pl.col("status") != "match")["item"].to_list()) == sorted(
        ["丽水", "吉林", "六安", "达州"]
    )
    assert set(tier_list.filter(pl.col("status") != "match")["status"].to_list()) == {"known_contradiction"}
    statements = dict(recon.filter(pl.col("category") == "statement").select("item", "status").iter_rows())
    for statement in (
        "city_mean",
        "district_mean",
        "county_mean",
        "new_cities",
        "returning_mean",
        "returning_mean_prev",
        "new_tier1_growth_pct",
        "tier2_growth_pct",
    ):
        assert statements[statement] == "match", statement


def test_the_2020_cities_are_scored_from_measurements_through_the_scoring_marts(sample: Project) -> None:
    cells = sample.table("marts.measurement_scores")
    # Only the 2020 cities are given as measurements: every cell has its path, and every score goes on.
    assert cells.select("survey_year", "unit_type").unique().rows() == [(2020, "city")]
    assert cells.height == 148 * 46 and (cells["status"] == "scored").all()
    assert cells["imputed"].sum() == 3 and cells["treated"].sum() == 1
    treated = cells.filter(pl.col("treated")).row(0, named=True)
    assert (treated["unit_code"], treated["measurement"], treated["treated_value"], treated["score"]) == (
        "440300",
        1800.0,
        300.0,
        100.0,
    )
    scores = sample.table("core.indicator_scores", 2020).filter(pl.col("unit_type") == "city")
    joined = scores.join(cells, on=["unit_code", "indicator_code"], suffix="_measured")
    assert joined.height == 148 * 46 and (joined["score"] == joined["score_measured"]).all()
    summary = sample.table("marts.measurement_summary", 2020)
    assert summary.height == 46
    driving = summary.filter(pl.col("indicator_code") == "industry_digital_driving").row(0, named=True)
    assert driving["n_winsorised"] == 1 and driving["outliers_before"]
    assert driving["skewness_before"] > 2 and driving["kurtosis_before"] > 3.5
    assert driving["skewness_after"] < 2
    assert summary["n_imputed"].sum() == 3


def test_city_index_2020_matches_the_white_paper(sample: Project) -> None:
    index = sample.table("marts.city_index", 2020)
    top = index.sort("rank").head(3)
    assert top["name_zh"].to_list() == ["上海", "深圳", "北京"]
    assert [round(s, 1) for s in top["score"]] == [90.5, 90.2, 89.4]
    assert round(number(index["score"].mean()), 1) == 57.3
    assert dict(index.group_by("tier").len().iter_rows()) == {
        "tier1": 6,
        "new_tier1": 29,
        "tier2": 69,
        "tier3": 26,
        "tier4": 18,
    }


def test_region_rollup_is_the_gdp_weighted_mean_of_member_scores(sample: Project) -> None:
    registry = load_registry(sample.data_dir)
    scores = sample.table("marts.city_index", 2020).select("unit_code", "score")
    gdp = registry.city_gdp.filter((pl.col("year") == 2019) & (pl.col("vintage") == "revised")).select(
        "unit_code", "gdp_100m_yuan"
    )
    by_hand = (
        registry.region_members.drop_nulls("unit_code")
        .join(scores, on="unit_code")
        .join(gdp, on="unit_code")
        .group_by("region_code")
        .agg(
            ((pl.col("score") * pl.col("gdp_100m_yuan")).sum() / pl.col("gdp_100m_yuan").sum()).alias(
                "expected"
            )
        )
    )
    rollup = sample.table("marts.region_rollup", 2020).join(by_hand, left_on="region", right_on="region_code")
    assert rollup.height == 4
    assert number((rollup["gdp_weighted_score"] - rollup["expected"]).abs().max()) < 1e-9
    assert dict(rollup.select("region", "n_scored").iter_rows()) == {
        "jingjinji": 13,
        "yangtze_delta": 41,
        "greater_bay": 9,
        "chengyu": 16,
    }
    assert set(rollup["gdp_year"].to_list()) == {2019}


def test_yoy_2020_against_2019(sample: Project) -> None:
    summary = sample.table("marts.yoy_summary", 2020).filter(pl.col("unit_type") == "city").row(0, named=True)
    assert (summary["prev_year"], summary["n_new"], summary["n_returning"]) == (2019, 35, 113)
    assert round(summary["returning_prev_mean"], 1) == 57.6 and round(summary["returning_mean"], 1) == 61.8
    tiers = dict(sample.table("marts.tier_summary", 2020).select("tier", "prev_n_cities").iter_rows())
    assert (tiers["new_tier1"], tiers["tier2"]) == (22, 52)


def test_parquet_export_has_one_file_per_edition(sample: Project) -> None:
    folder = sample.warehouse.parent / "parquet" / "city_index"
    assert sorted(path.name for path in folder.iterdir()) == [
        f"city_index_{year}.parquet" for year in (2017, 2018, 2019, 2020)
    ]
    exported = pl.read_parquet(folder / "*.parquet")
    assert dict(exported.group_by("survey_year").len().iter_rows()) == {
        2017: 40,
        2018: 100,
        2019: 113,
        2020: 148,
    }
    assert [path.name for path in (folder.parent / "dim_tier").iterdir()] == [
        "dim_tier.parquet"
    ]  # a dimension without editions


def test_materializations_carry_versions_and_their_editions_rows_and_the_asset_its_schema(
    sample: Project,
) -> None:
    # One run wrote four editions; each edition's materialization counts its own rows (46 city and
    # 32 county indicators; the sample scores counties from 2019 on).
    expected_rows = {
        "2017": 40 * 46,
        "2018": 100 * 46,
        "2019": 113 * 46 + 100 * 32,
        "2020": 148 * 46 + 100 * 32,
    }
    for edition, rows in expected_rows.items():
        [record] = sample.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("indicator_scores"), asset_partitions=[edition]),
            limit=1,
        ).records
        assert record.asset_materialization is not None
        metadata = record.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == rows, edition
        assert metadata["registry_version"].value == load_registry(sample.data_dir).version
        versions = metadata["framework_versions"].value
        assert isinstance(versions, dict)
        assert "2020/city" in versions and "city_2020.csv@" in versions["2020/city"]
        assert "dagster/column_schema" not in metadata  # the definition's, not repeated per edition
        schema = indicator_scores.metadata_by_key[dg.AssetKey("indicator_scores")]["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema)
        assert [c.name for c in schema.columns][:3] == [
            "survey_year",
            "unit_type",
            "unit_code",
        ]
        assert schema.constraints.other == ["unique key: survey_year, unit_type, unit_code, indicator_code"]
    [record] = sample.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("city_index"), asset_partitions=["2020"]), limit=1
    ).records
    assert record.asset_materialization is not None
    top_ten = record.asset_materialization.metadata["top_ten"].value
    assert isinstance(top_ten, dg.TableMetadataValue)
    assert [c.name for c in top_ten.schema.columns] == ["edition", "rank", "city", "score", "tier"]
    assert top_ten.records[0].data == {
        "edition": 2020,
        "rank": 1,
        "city": "上海",
        "score": 90.5,
        "tier": "tier1",
    }


def test_every_tables_declared_key_identifies_its_rows(sample: Project) -> None:
    checked = []
    for name, table in TABLES.items():
        rows = sample.table(name)
        if table.key and rows.height:
            assert not rows.select(table.key).is_duplicated().any(), name
            checked.append(name)
    assert {
        "core.indicator_scores",
        "marts.subindex_scores",
        "marts.city_index",
        "marts.reconciliation",
        "marts.rank_uncertainty",
        "marts.sensitivity",
        "marts.dim_unit",
    } <= set(checked)


@pytest.mark.pipeline
def test_rerun_is_idempotent_and_touches_only_its_edition(pipeline: Pipeline) -> None:
    for year in ("2019", "2020"):
        pipeline.materialize(year)
    before = pipeline.snapshot()
    pipeline.materialize("2020")
    after = pipeline.snapshot()
    for name in before:
        assert before[name].equals(after[name]), name
    # Change one 2020 measurement; a rerun of 2020 changes 2020 and leaves 2019 byte-identical.
    path = pipeline.data_dir / "raw/2020/cities_measurements.csv"
    table = pl.read_csv(path, infer_schema=False)
    table = table.with_columns(
        pl.when(pl.col("unit_name") == "上海")
        .then(pl.lit("5.0000"))
        .otherwise(pl.col("infra_data_open"))
        .alias("infra_data_open")
    )
    table.write_csv(path)
    pipeline.materialize("2020")
    changed_2019 = pipeline.snapshot(2019)
    for name, frame in changed_2019.items():
        assert before[name].filter(pl.col("survey_year") == 2019).equals(frame), name
    assert (
        not before["marts.city_index"]
        .filter(pl.col("survey_year") == 2020)
        .equals(pipeline.table("marts.city_index", 2020))
    )


@pytest.mark.pipeline
def test_partial_rerun_of_the_rollups_after_a_gdp_fix(pipeline: Pipeline) -> None:
    pipeline.materialize("2020")
    before = pipeline.snapshot(2020)
    gdp_path = pipeline.data_dir / "registry/city_gdp.csv"
    gdp = pl.read_csv(gdp_path, infer_schema=False)
    gdp.with_columns(
        pl.when((pl.col("unit_code") == "110000") & (pl.col("year") == "2019"))
        .then(pl.lit("1.00"))
        .otherwise(pl.col("gdp_100m_yuan"))
        .alias("gdp_100m_yuan")
    ).write_csv(gdp_path)
    result = pipeline.materialize("2020", assets=[region_rollup])
    assert result.success
    after = pipeline.snapshot(2020)
    for name in before:
        if name != "marts.region_rollup":
            assert before[name].equals(after[name]), name
    jjj = after["marts.region_rollup"].filter(pl.col("region") == "jingjinji")["gdp_weighted_score"][0]
    assert (
        jjj != before["marts.region_rollup"].filter(pl.col("region") == "jingjinji")["gdp_weighted_score"][0]
    )


@pytest.mark.pipeline
def test_bad_input_fails_the_run_and_keeps_the_last_good_data(pipeline: Pipeline) -> None:
    pipeline.materialize("2020")
    before = pipeline.snapshot(2020)
    path = pipeline.data_dir / "raw/2020/cities_measurements.csv"
    table = pl.read_csv(path, infer_schema=False)
    table.with_columns(
        pl.when(pl.col("unit_name") == "杭州")
        .then(pl.lit("—"))
        .otherwise(pl.col("infra_data_open"))
        .alias("infra_data_open")
    ).write_csv(path)
    result = pipeline.materialize("2020", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "measurement_scores"
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure is not None and user_failure.description is not None
    description = user_failure.description
    line = 2 + table["unit_name"].to_list().index("杭州")
    assert (
        f"raw/2020/cities_measurements.csv line {line}, column infra_data_open: value '—' breaks rule: "
        "measurement is a number or blank" in description
    )
    after = pipeline.snapshot(2020)
    for name in before:
        assert before[name].equals(after[name]), name
    quarantine = pipeline.table("core.quarantine", 2020)
    assert quarantine.select("line_number", "column_name", "value").rows() == [(line, "infra_data_open", "—")]
