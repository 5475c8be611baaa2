"""Weighted aggregation tier by tier, checked against sums done by hand."""

from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.aggregation import aggregate_tiers, batches_by_framework
from dei_pipeline.frameworks import Framework

# Two level-1 nodes: A (0.6) with leaves a1 (0.25) and a2 (0.75); B (0.4) with b1 (0.5) and a
# level-2 node B2 (0.5) whose leaves are b21 (0.2) and b22 (0.8): leaves at depths 2 and 3.
NODES = pl.DataFrame(
    {
        "code": ["A", "a1", "a2", "B", "b1", "B2", "b21", "b22"],
        "parent_code": [None, "A", "A", None, "B", "B", "B2", "B2"],
        "level": [1, 2, 2, 1, 2, 2, 3, 3],
        "weight": [0.6, 0.25, 0.75, 0.4, 0.5, 0.5, 0.2, 0.8],
        "is_leaf": [False, True, True, False, True, False, True, True],
    },
    schema_overrides={"level": pl.Int32},
)


def leaves(unit: str, scores: Mapping[str, float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"unit_code": [unit] * len(scores), "indicator_code": list(scores), "score": list(scores.values())},
        schema={"unit_code": pl.String, "indicator_code": pl.String, "score": pl.Float64},
    )


def scores_of(result: pl.DataFrame, unit: str) -> dict[str, float | None]:
    return dict(result.filter(pl.col("unit_code") == unit).select("node_code", "score").iter_rows())


def test_hand_computed_example() -> None:
    result = aggregate_tiers(leaves("u", {"a1": 80, "a2": 40, "b1": 60, "b21": 100, "b22": 50}), NODES)
    got = scores_of(result, "u")
    # A = 0.25*80 + 0.75*40 = 50; B2 = 0.2*100 + 0.8*50 = 60; B = 0.5*60 + 0.5*60 = 60
    # composite = 0.6*50 + 0.4*60 = 54
    assert got["A"] == pytest.approx(50.0)
    assert got["B2"] == pytest.approx(60.0)
    assert got["B"] == pytest.approx(60.0)
    assert got["composite"] == pytest.approx(54.0)
    levels = dict(result.select("node_code", "level").unique().iter_rows())
    assert levels["composite"] == 0 and levels["A"] == 1 and levels["B2"] == 2 and levels["b21"] == 3


def test_missing_value_propagates_by_default() -> None:
    # b22 is absent and b21 is null-free: B2, B and the composite are missing; A is still computed.
    result = aggregate_tiers(leaves("u", {"a1": 80, "a2": 40, "b1": 60, "b21": 100}), NODES)
    got = scores_of(result, "u")
    assert got["b22"] is None
    assert got["B2"] is None and got["B"] is None and got["composite"] is None
    assert got["A"] == pytest.approx(50.0)


def test_explicit_null_is_missing_too() -> None:
    result = aggregate_tiers(leaves("u", {"a1": None, "a2": 40, "b1": 60, "b21": 100, "b22": 50}), NODES)
    assert scores_of(result, "u")["A"] is None


def test_reweight_rule_renormalises_over_present_children() -> None:
    result = aggregate_tiers(
        leaves("u", {"a1": 80, "a2": 40, "b1": 60, "b21": 100}), NODES, missing="reweight"
    )
    got = scores_of(result, "u")
    # B2 from b21 alone = 100; B = 0.5*60 + 0.5*100 = 80; composite = 0.6*50 + 0.4*80 = 62
    assert got["B2"] == pytest.approx(100.0)
    assert got["composite"] == pytest.approx(62.0)


# One level-1 node A over five equally weighted indicators.
FIVE = pl.DataFrame(
    {
        "code": ["A", "a1", "a2", "a3", "a4", "a5"],
        "parent_code": [None, "A", "A", "A", "A", "A"],
        "level": [1, 2, 2, 2, 2, 2],
        "weight": [1.0, 0.2, 0.2, 0.2, 0.2, 0.2],
        "is_leaf": [False, True, True, True, True, True],
    },
    schema_overrides={"level": pl.Int32},
)


def test_reweight_needs_a_minimum_share_of_children() -> None:
    one_of_five = leaves("u", {"a1": 90.0})
    three_of_five = leaves("v", {"a1": 90.0, "a2": 60.0, "a3": 30.0})
    # Without a coverage rule 1 of 5 indicators makes a composite of 90.0.
    assert scores_of(aggregate_tiers(one_of_five, FIVE, missing="reweight"), "u")[
        "composite"
    ] == pytest.approx(90.0)
    both = pl.concat([one_of_five, three_of_five])
    result = aggregate_tiers(both, FIVE, missing="reweight", min_coverage=0.5)
    assert scores_of(result, "u")["A"] is None and scores_of(result, "u")["composite"] is None  # 1/5 < 0.5
    assert scores_of(result, "v")["composite"] == pytest.approx((90 + 60 + 30) / 3)  # 3/5 >= 0.5
    # A share met exactly counts (3 of 5 at 0.6); a share just above it does not.
    assert scores_of(aggregate_tiers(three_of_five, FIVE, missing="reweight", min_coverage=0.6), "v")[
        "A"
    ] == pytest.approx(60.0)
    assert (
        scores_of(aggregate_tiers(three_of_five, FIVE, missing="reweight", min_coverage=0.61), "v")["A"]
        is None
    )


def test_units_are_independent_and_keys_are_kept() -> None:
    both = pl.concat(
        [
            leaves("u", {"a1": 80, "a2": 40, "b1": 60, "b21": 100, "b22": 50}),
            leaves("v", {"a1": 0, "a2": 0, "b1": 100, "b21": 100, "b22": 100}),
        ]
    ).with_columns(pl.lit(2020).alias("survey_year"))
    result = aggregate_tiers(both, NODES, keys=("survey_year", "unit_code"))
    assert set(result.columns) == {"survey_year", "unit_code", "node_code", "level", "score"}
    assert scores_of(result, "v")["composite"] == pytest.approx(0.4 * 100)
    assert scores_of(result, "u")["composite"] == pytest.approx(54.0)


def test_unknown_missing_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown missing-value rule 'drop'"):
        aggregate_tiers(leaves("u", {"a1": 1}), NODES, missing="drop")  # type: ignore[arg-type]  # a rule the type forbids, refused at run time


def test_several_editions_in_one_call_equal_one_call_per_edition() -> None:
    """The asset aggregates every edition of a framework in one call; each edition keeps its own
    layout: leaf blocks (as files are read), unit by unit, or a unit without a leaf row."""

    def edition(year: int, units: Mapping[str, Mapping[str, float | None]], by_leaf: bool) -> pl.DataFrame:
        rows = pl.concat([leaves(unit, scores) for unit, scores in units.items()]).with_columns(
            pl.lit(year).alias("survey_year")
        )
        return rows.sort("indicator_code", maintain_order=True) if by_leaf else rows

    full = {"a1": 80.0, "a2": 40.0, "b1": 60.0, "b21": 100.0, "b22": 50.0}
    editions = pl.concat(
        [
            edition(2018, {"u": full, "v": {code: score / 2 for code, score in full.items()}}, by_leaf=True),
            edition(2019, {"v": full, "u": {**full, "a1": 0.0}, "w": full}, by_leaf=False),
            edition(
                2020,
                {"u": {code: score for code, score in full.items() if code != "b22"}, "v": full},
                by_leaf=False,
            ),
        ],
        how="vertical_relaxed",
    )
    keys = ("survey_year", "unit_code")
    together = aggregate_tiers(editions, NODES, keys=keys)
    one_by_one = pl.concat(
        [
            aggregate_tiers(rows, NODES, keys=keys)
            for _, rows in editions.group_by("survey_year", maintain_order=True)
        ]
    )
    assert together.sort(*keys, "node_code").equals(one_by_one.sort(*keys, "node_code"))
    composite = {
        (year, unit): score for year, unit, _, _, score in together.filter(pl.col("level") == 0).iter_rows()
    }
    assert composite.pop((2020, "u")) is None  # b22 missing: propagates to the composite
    # 54 by hand (test_hand_computed_example); half the scores give half; a1 = 0 takes 0.6 * 0.25 * 80 off.
    assert composite == pytest.approx(
        {
            (2018, "u"): 54.0,
            (2018, "v"): 27.0,
            (2019, "u"): 42.0,
            (2019, "v"): 54.0,
            (2019, "w"): 54.0,
            (2020, "v"): 54.0,
        }
    )


def test_editions_are_batched_by_the_framework_they_use() -> None:
    def framework(unit_type: str, version: str) -> Framework:
        return Framework(unit_type, 2020, Path(f"{unit_type}.csv"), version, NODES)

    # The city framework changed in 2020; the county one did not.
    versions = {
        ("city", 2018): "c@1",
        ("city", 2019): "c@1",
        ("city", 2020): "c@2",
        ("county", 2019): "k@1",
        ("county", 2020): "k@1",
    }
    scores = pl.concat(
        [
            leaves(f"{unit_type}-{year}", {"a1": 1.0}).with_columns(
                pl.lit(year).alias("survey_year"), pl.lit(unit_type).alias("unit_type")
            )
            for unit_type, year in versions
        ]
    )
    batches = [
        (fw.version, sorted(set(batch["survey_year"])))
        for fw, batch in batches_by_framework(scores, lambda ut, year: framework(ut, versions[(ut, year)]))
    ]
    assert batches == [("c@1", [2018, 2019]), ("c@2", [2020]), ("k@1", [2019, 2020])]
