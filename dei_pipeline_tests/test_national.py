"""The SYNTHETIC national-scale data set (``dei sample-data --scale national``): size, determinism,
the project's loaders, and two editions through the Dagster job (the full 20 editions are for
``make bench``, not for the test suite)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml

from dei_pipeline.aggregation import aggregate_tiers, composite_scores
from dei_pipeline.cli import main as dei_main
from dei_pipeline.config import REPO_ROOT, load_settings
from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.ingest import ingest_edition, list_editions
from dei_pipeline.registry import load_registry, units
from dei_pipeline.scalars import number
from dei_pipeline.synthetic.national import NATIONAL_EDITIONS, write_national_data
from dei_pipeline.validation import Reference, validate_cells
from dei_pipeline_tests.conftest import with_light_monte_carlo

SUBSET = (2019, 2020)
TEST_DRAWS = 200

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("national") / "data"
    assert dei_main(["sample-data", "--scale", "national", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("national_subset") / "data"
    write_national_data(out, editions=SUBSET)
    return out


def files(data_dir: Path) -> dict[str, bytes]:
    return {
        path.relative_to(data_dir).as_posix(): path.read_bytes()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file()
    }


def test_size_is_national_with_20_editions(national: Path) -> None:
    registry = load_registry(national)
    assert 330 <= registry.cities.height <= 350
    assert 2800 <= registry.counties.height <= 2900
    assert set(registry.counties["kind"]) == {"district", "county"}
    assert list_editions(national) == list(NATIONAL_EDITIONS) == list(range(2001, 2021))
    assert not (national / "published").exists()
    for year in (2001, 2020):
        cities = pl.read_csv(national / "raw" / str(year) / "cities.csv", infer_schema=False)
        counties = pl.read_csv(national / "raw" / str(year) / "counties.csv", infer_schema=False)
        assert cities["unit_code"].to_list() == registry.cities["unit_code"].to_list()
        assert counties["unit_code"].to_list() == registry.counties["unit_code"].to_list()


def test_marked_synthetic_with_provenance(national: Path) -> None:
    manifest = yaml.safe_load((national / "raw" / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True and manifest["seed"] == 2020
    assert [entry["edition"] for entry in manifest["editions"]] == list(NATIONAL_EDITIONS)
    assert manifest["registry"]["cities"] == load_registry(national).cities.height
    assert (REPO_ROOT / "data" / "reference" / "admin_divisions" / "README.md").is_file()


def test_the_white_papers_units_keep_their_registry_rows(national: Path) -> None:
    ours, sample = load_registry(national), load_registry(REPO_ROOT / "data")
    joined = sample.cities.join(ours.cities, on="unit_code", how="left", suffix="_national")
    assert joined["name_zh_national"].null_count() == 0
    assert (joined["name_zh"] == joined["name_zh_national"]).all() and (
        joined["name_en"] == joined["name_en_national"]
    ).all()
    assert ours.region_members.equals(sample.region_members)


def test_every_city_has_gdp_for_every_year_an_edition_needs(national: Path) -> None:
    registry, settings = load_registry(national), load_settings(national)
    needed = {year + settings.gdp_year_offset for year in NATIONAL_EDITIONS}
    gdp = registry.city_gdp.filter(pl.col("vintage") == settings.gdp_vintage)
    per_city = gdp.group_by("unit_code").agg(pl.col("year").unique())
    assert per_city.height == registry.cities.height
    assert all(needed <= set(years) for years in per_city["year"])
    # Real figures are kept as they are; every other row says it is synthetic.
    real = load_registry(REPO_ROOT / "data").city_gdp
    kept = real.join(registry.city_gdp, on=["unit_code", "year", "vintage"], suffix="_national")
    assert kept.height == real.height and (kept["gdp_100m_yuan"] == kept["gdp_100m_yuan_national"]).all()
    invented = registry.city_gdp.join(real, on=["unit_code", "year", "vintage"], how="anti")
    assert invented["source"].str.starts_with("SYNTHETIC").all()


def test_deterministic_and_a_subset_is_the_same_as_the_full_set(national: Path, subset: Path) -> None:
    full, part = files(national), files(subset)
    shared = [name for name in part if name != "raw/manifest.yaml"]
    assert {name.split("/")[0] for name in shared} == {"frameworks", "method", "registry", "raw"}
    assert {name for name in shared if name.startswith("raw/")} == {
        f"raw/{year}/{f}" for year in SUBSET for f in ("cities.csv", "counties.csv")
    }
    for name in shared:
        assert part[name] == full[name], name


def test_another_seed_gives_other_scores(tmp_path: Path, subset: Path) -> None:
    write_national_data(tmp_path / "other", seed=7, editions=(2020,))
    assert (tmp_path / "other/raw/2020/cities.csv").read_bytes() != (
        subset / "raw/2020/cities.csv"
    ).read_bytes()


def test_refuses_to_overwrite_the_project_data() -> None:
    with pytest.raises(ValueError, match="refusing"):
        write_national_data(REPO_ROOT / "data")


def test_loads_and_validates_with_the_project_loaders(subset: Path) -> None:
    registry = load_registry(subset)
    cells = ingest_edition(subset, 2020).cells
    frameworks = {ut: resolve_framework(subset, ut, 2020) for ut in ("city", "county")}
    reference = Reference(
        {ut: fw.leaf_codes for ut, fw in frameworks.items()},
        units(registry).select("unit_type", "unit_code", "name_zh"),
    )
    validated = validate_cells(cells, reference)
    assert validated.height == registry.cities.height * len(
        frameworks["city"].leaf_codes
    ) + registry.counties.height * len(frameworks["county"].leaf_codes)
    city = composite_scores(
        aggregate_tiers(validated.filter(pl.col("unit_type") == "city"), frameworks["city"].nodes)
    )
    assert city["score"].null_count() == 0 and 20 < number(city["score"].mean()) < 80


def test_two_editions_materialize_end_to_end_through_the_job(subset: Path, tmp_path: Path) -> None:
    # the test is about national size through every step, not about the precision of the uncertainty marts
    data_dir = with_light_monte_carlo(
        Path(shutil.copytree(subset, tmp_path / "data")), TEST_DRAWS, TEST_DRAWS // 4
    )
    warehouse = tmp_path / "warehouse" / "dei.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    job = build_definitions(
        WarehouseResource(data_dir=str(data_dir), warehouse_path=str(warehouse))
    ).resolve_job_def("index_job")
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": str(SUBSET[0]),
            "dagster/asset_partition_range_end": str(SUBSET[-1]),
        },
    )
    assert result.success
    registry = load_registry(data_dir)
    with duckdb.connect(str(warehouse), read_only=True) as con:

        def count(table: str) -> dict[int, int]:
            return dict(con.sql(f"SELECT survey_year, count(*) FROM {table} GROUP BY 1").fetchall())

        assert count("marts.city_index") == {year: registry.cities.height for year in SUBSET}
        assert count("marts.county_index") == {year: registry.counties.height for year in SUBSET}
        assert count("marts.region_rollup") == {year: 4 for year in SUBSET}
        statuses = dict(
            con.sql(
                "SELECT status, count(*) FROM marts.city_yoy WHERE survey_year = 2020 GROUP BY 1"
            ).fetchall()
        )
    assert statuses == {"returning": registry.cities.height}
