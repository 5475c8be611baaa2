"""Regional rollups: GDP weights, members listed vs scored, the GDP year rule."""

import polars as pl
import pytest

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.rollups import RollupError, choose_gdp_year, region_rollup, region_tier_mix
from dei_pipeline.tiers import load_tiers

MEMBERS = pl.DataFrame(
    {
        "region_code": ["r"] * 3 + ["s"],
        "member_name_zh": ["A", "B", "香港", "A"],
        "unit_code": ["a", "b", None, "a"],
    }
)
GDP = pl.DataFrame(
    {
        "unit_code": ["a", "b", "a", "b"],
        "year": [2019, 2019, 2018, 2018],
        "vintage": ["revised"] * 4,
        "gdp_100m_yuan": [300.0, 100.0, 100.0, 100.0],
    }
)
YEARS = pl.DataFrame(
    {"survey_year": [2020], "gdp_year": [2019]}, schema={"survey_year": pl.Int32, "gdp_year": pl.Int64}
)


def test_gdp_weighted_and_plain_means_by_hand() -> None:
    scores = pl.DataFrame(
        {"survey_year": [2020, 2020], "unit_code": ["a", "b"], "score": [80.0, 40.0]},
        schema_overrides={"survey_year": pl.Int32},
    )
    result = region_rollup(scores, MEMBERS, GDP, YEARS, "revised")
    r = result.filter(pl.col("region") == "r").row(0, named=True)
    # (300*80 + 100*40) / 400 = 70; plain mean 60; Hong Kong listed but never scored.
    assert r["gdp_weighted_score"] == pytest.approx(70.0)
    assert r["mean_score"] == pytest.approx(60.0)
    assert (r["n_members"], r["n_scored"], r["gdp_year"], r["gdp_vintage"]) == (3, 2, 2019, "revised")
    assert result.filter(pl.col("region") == "s")["gdp_weighted_score"][0] == pytest.approx(80.0)


def test_member_without_gdp_is_a_clear_error() -> None:
    scores = pl.DataFrame(
        {"survey_year": [2020], "unit_code": ["b"], "score": [40.0]},
        schema_overrides={"survey_year": pl.Int32},
    )
    gdp = GDP.filter(~((pl.col("unit_code") == "b") & (pl.col("year") == 2019)))
    with pytest.raises(
        RollupError, match="region r: member b has no GDP for year 2019 \\(vintage revised\\)"
    ):
        region_rollup(scores, MEMBERS, gdp, YEARS, "revised")


def test_gdp_year_rule() -> None:
    assert choose_gdp_year([2017, 2018, 2019], 2020, -1) == 2019
    assert choose_gdp_year([2017, 2018, 2019], 2025, -1) == 2019  # latest available before
    assert choose_gdp_year([2017, 2018, 2019], 2016, -1) == 2017  # nothing before: the earliest
    with pytest.raises(RollupError):
        choose_gdp_year([], 2020, -1)


def test_tier_mix_keeps_empty_tiers() -> None:
    tiers = load_tiers(REPO_ROOT / "data")
    city_tiers = pl.DataFrame(
        {"survey_year": [2020, 2020], "unit_code": ["a", "b"], "tier": ["tier1", "tier1"]}
    )
    mix = region_tier_mix(city_tiers, MEMBERS, tiers)
    r = dict(mix.filter(pl.col("region") == "r").select("tier", "n_cities").iter_rows())
    assert r == {"tier1": 2, "new_tier1": 0, "tier2": 0, "tier3": 0, "tier4": 0}
