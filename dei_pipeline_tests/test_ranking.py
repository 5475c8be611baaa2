"""Ranks (ties shared) and tiers at the documented boundaries."""

import polars as pl
import pytest

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.ranking import city_index, county_index
from dei_pipeline.tiers import load_tiers, tier_expr

TIERS = load_tiers(REPO_ROOT / "data")


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (90.5, "tier1"),
        (85.06, "tier1"),
        (85.04, "new_tier1"),
        (85.0, "new_tier1"),
        (65.0, "new_tier1"),
        (64.96, "new_tier1"),
        (64.94, "tier2"),
        (50.0, "tier2"),
        (49.96, "tier2"),
        (49.9, "tier3"),
        (40.0, "tier3"),
        (39.9, "tier4"),
        (0.0, "tier4"),
    ],
)
def test_tier_boundaries_on_the_displayed_score(score: float, tier: str) -> None:
    # 一线 is strictly above 85; the other lower bounds are inclusive; the comparison is made on the
    # score rounded to one decimal, so a city shown as 65.0 is 新一线.
    frame = pl.DataFrame({"score": [score]}).with_columns(tier_expr(pl.col("score"), TIERS, 1).alias("tier"))
    assert frame["tier"][0] == tier


def test_null_score_has_no_tier() -> None:
    frame = pl.DataFrame({"score": [None]}, schema={"score": pl.Float64})
    assert frame.with_columns(tier_expr(pl.col("score"), TIERS, 1).alias("t"))["t"][0] is None


def test_ties_share_the_best_rank_per_edition() -> None:
    composites = pl.DataFrame(
        {
            "survey_year": [2020] * 4 + [2019] * 2,
            "unit_code": ["a", "b", "c", "d", "a", "b"],
            "score": [70.04, 69.96, 71.0, 10.0, 50.0, 60.0],
        }
    )
    cities = pl.DataFrame(
        {
            "unit_code": ["a", "b", "c", "d"],
            "name_zh": list("甲乙丙丁"),
            "name_en": list("ABCD"),
            "province_zh": ["x"] * 4,
        }
    )
    result = city_index(composites, cities, TIERS, decimals=1)
    ranks = {(r["survey_year"], r["unit_code"]): r["rank"] for r in result.iter_rows(named=True)}
    # 70.04 and 69.96 are both shown as 70.0: they share rank 2, and the next rank is 4.
    assert (
        ranks[(2020, "c")] == 1
        and ranks[(2020, "a")] == 2
        and ranks[(2020, "b")] == 2
        and ranks[(2020, "d")] == 4
    )
    assert ranks[(2019, "b")] == 1 and ranks[(2019, "a")] == 2
    assert result.columns == [
        "survey_year",
        "unit_code",
        "name_zh",
        "name_en",
        "province",
        "score",
        "rank",
        "tier",
    ]


def test_county_units_are_ranked_within_their_kind() -> None:
    composites = pl.DataFrame(
        {"survey_year": [2020] * 3, "unit_code": ["d1", "d2", "c1"], "score": [60.0, 70.0, 65.0]}
    )
    counties = pl.DataFrame(
        {
            "unit_code": ["d1", "d2", "c1"],
            "name_zh": ["x区", "y区", "z市"],
            "province_zh": ["p"] * 3,
            "kind": ["district", "district", "county"],
        }
    )
    result = county_index(composites, counties, decimals=1)
    assert dict(result.select("unit_code", "rank").iter_rows()) == {"d2": 1, "d1": 2, "c1": 1}
