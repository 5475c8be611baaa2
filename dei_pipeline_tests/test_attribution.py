"""Attribution of change: contributions by hand, exact sums, and the split into data and method change."""

import polars as pl
import pytest

from dei_pipeline.analysis.attribution import COMPARABLE, NOT_COMPARABLE, attribute_changes
from dei_pipeline.config import REPO_ROOT
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.scalars import number
from dei_pipeline_tests.sample_scores import leaf_scores

DATA = REPO_ROOT / "data"


def framework(weights: dict[str, tuple[str | None, float, bool]]) -> pl.DataFrame:
    """Node table from {code: (parent, weight, is_leaf)} with levels and effective weights derived."""

    def level(code: str) -> int:
        parent = weights[code][0]
        return 1 if parent is None else 1 + level(parent)

    def effective(code: str) -> float:
        parent, weight, _ = weights[code]
        return weight if parent is None else weight * effective(parent)

    return pl.DataFrame(
        {
            "code": list(weights),
            "parent_code": [p for p, _, _ in weights.values()],
            "level": [level(c) for c in weights],
            "name_zh": list(weights),
            "weight": [w for _, w, _ in weights.values()],
            "effective_weight": [effective(c) for c in weights],
            "is_leaf": [leaf for _, _, leaf in weights.values()],
        },
        schema_overrides={"level": pl.Int32, "parent_code": pl.String},
    )


# A (0.6): a1, a2 (0.5 each); B (0.4): b1 (0.25), b2 (0.75).
BEFORE = framework(
    {
        "A": (None, 0.6, False),
        "a1": ("A", 0.5, True),
        "a2": ("A", 0.5, True),
        "B": (None, 0.4, False),
        "b1": ("B", 0.25, True),
        "b2": ("B", 0.75, True),
    }
)
# The same indicators, level-1 weights changed to 0.5 / 0.5.
AFTER = framework(
    {
        "A": (None, 0.5, False),
        "a1": ("A", 0.5, True),
        "a2": ("A", 0.5, True),
        "B": (None, 0.5, False),
        "b1": ("B", 0.25, True),
        "b2": ("B", 0.75, True),
    }
)


def leaves(scores: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"unit_code": ["u"] * len(scores), "indicator_code": list(scores), "score": list(scores.values())},
        schema={"unit_code": pl.String, "indicator_code": pl.String, "score": pl.Float64},
    )


PREVIOUS = leaves({"a1": 50, "a2": 60, "b1": 40, "b2": 80})  # A = 55, B = 70
CURRENT = leaves({"a1": 60, "a2": 60, "b1": 40, "b2": 84})  # A = 60, B = 73


def by_node(rows: pl.DataFrame, column: str) -> dict[str, float]:
    return dict(rows.select("node_code", column).iter_rows())


def test_same_framework_contributions_by_hand() -> None:
    rows = attribute_changes(CURRENT, PREVIOUS, BEFORE, BEFORE)
    # Composite 0.6*55 + 0.4*70 = 61 -> 0.6*60 + 0.4*73 = 65.2: change 4.2, all of it data.
    total = rows.row(0, named=True)
    assert total["total_change"] == pytest.approx(4.2) and total["data_change"] == pytest.approx(4.2)
    assert total["method_change"] == 0 and total["status"] == COMPARABLE
    contribution = by_node(rows, "contribution")
    # Level 1: A 0.6 * 5 = 3, B 0.4 * 3 = 1.2. Level 2: a1 0.3 * 10 = 3, b2 0.3 * 4 = 1.2, the others 0.
    assert contribution["A"] == pytest.approx(3.0) and contribution["B"] == pytest.approx(1.2)
    assert contribution["a1"] == pytest.approx(3.0) and contribution["b2"] == pytest.approx(1.2)
    assert contribution["a2"] == 0 and contribution["b1"] == 0
    assert contribution["composite"] == pytest.approx(4.2)
    assert by_node(rows, "share_of_change")["A"] == pytest.approx(3.0 / 4.2)


def test_changed_framework_splits_data_and_method_change_by_hand() -> None:
    rows = attribute_changes(CURRENT, PREVIOUS, AFTER, BEFORE)
    total = rows.filter(pl.col("level") == 0).row(0, named=True)
    # Published before: 61; now: 0.5*60 + 0.5*73 = 66.5. Cross terms: before under the new weights
    # 0.5*55 + 0.5*70 = 62.5; now under the old weights 0.6*60 + 0.4*73 = 65.2.
    # Method first: method 1.5, data 4.0. Data first: data 4.2, method 1.3. Shapley: 1.4 and 4.1.
    assert total["prev_score_published"] == pytest.approx(61.0)
    assert total["method_change"] == pytest.approx(1.4)
    assert total["data_change"] == pytest.approx(4.1)
    assert total["total_change"] == pytest.approx(5.5)
    contribution = by_node(rows, "contribution")
    # A: (0.5*5 + 0.6*5) / 2 = 2.75; B: (0.5*3 + 0.4*3) / 2 = 1.35.
    assert contribution["A"] == pytest.approx(2.75) and contribution["B"] == pytest.approx(1.35)
    assert contribution["a1"] + contribution["a2"] + contribution["b1"] + contribution["b2"] == pytest.approx(
        4.1
    )


def test_the_split_does_not_depend_on_the_order_of_the_steps() -> None:
    # Weights 0.8/0.2 -> 0.2/0.8; A 80 -> 60 (-20), B 20 -> 60 (+40). Composite 68 -> 60: -8.
    # Method first: 0.2*80 + 0.8*20 = 32, so method -36 and data 28. Data first: 0.8*60 + 0.2*60 = 60,
    # so data -8 and method 0. Shapley: data (28 - 8) / 2 = 10, method (-36 + 0) / 2 = -18.
    heavy_a = framework(
        {"A": (None, 0.8, False), "a": ("A", 1.0, True), "B": (None, 0.2, False), "b": ("B", 1.0, True)}
    )
    heavy_b = framework(
        {"A": (None, 0.2, False), "a": ("A", 1.0, True), "B": (None, 0.8, False), "b": ("B", 1.0, True)}
    )
    rows = attribute_changes(leaves({"a": 60, "b": 60}), leaves({"a": 80, "b": 20}), heavy_b, heavy_a)
    total = rows.filter(pl.col("level") == 0).row(0, named=True)
    assert (total["total_change"], total["data_change"], total["method_change"]) == pytest.approx(
        (-8.0, 10.0, -18.0)
    )
    contribution = by_node(rows, "contribution")
    # A: (0.2 * -20 + 0.8 * -20) / 2 = -10; B: (0.8 * 40 + 0.2 * 40) / 2 = 20; together the data change.
    assert contribution["A"] == pytest.approx(-10.0) and contribution["B"] == pytest.approx(20.0)
    # Symmetric: going back (60 under heavy_b to 68 under heavy_a) splits into the opposite amounts.
    back = (
        attribute_changes(leaves({"a": 80, "b": 20}), leaves({"a": 60, "b": 60}), heavy_a, heavy_b)
        .filter(pl.col("level") == 0)
        .row(0, named=True)
    )
    assert (back["data_change"], back["method_change"]) == pytest.approx((-10.0, 18.0))


def test_an_indicator_the_earlier_edition_lacks_leaves_the_change_unsplit() -> None:
    later = framework(
        {
            "A": (None, 0.6, False),
            "a1": ("A", 0.5, True),
            "a3": ("A", 0.5, True),
            "B": (None, 0.4, False),
            "b1": ("B", 0.25, True),
            "b2": ("B", 0.75, True),
        }
    )
    current = leaves({"a1": 60, "a3": 70, "b1": 40, "b2": 84})
    rows = attribute_changes(current, PREVIOUS, later, BEFORE)
    total = rows.filter(pl.col("level") == 0).row(0, named=True)
    assert total["status"] == NOT_COMPARABLE
    assert total["total_change"] == pytest.approx(0.6 * 65 + 0.4 * 73 - 61)
    assert total["data_change"] is None and total["method_change"] is None
    assert rows["contribution"].null_count() == rows.height


def test_an_indicator_the_later_edition_dropped_leaves_the_change_unsplit_too() -> None:
    # The later framework drops a2 and the later edition has no a2: the data-first order (today's data
    # under the earlier framework) cannot be computed, so neither can the Shapley split.
    later = framework(
        {
            "A": (None, 0.6, False),
            "a1": ("A", 1.0, True),
            "B": (None, 0.4, False),
            "b1": ("B", 0.25, True),
            "b2": ("B", 0.75, True),
        }
    )
    rows = attribute_changes(leaves({"a1": 60, "b1": 40, "b2": 84}), PREVIOUS, later, BEFORE)
    total = rows.filter(pl.col("level") == 0).row(0, named=True)
    assert total["status"] == NOT_COMPARABLE and total["data_change"] is None
    assert total["total_change"] == pytest.approx(0.6 * 60 + 0.4 * 73 - 61)


def test_units_in_one_edition_only_are_not_attributed() -> None:
    newcomer = pl.concat([CURRENT, CURRENT.with_columns(pl.lit("v").alias("unit_code"))])
    rows = attribute_changes(newcomer, PREVIOUS, BEFORE, BEFORE)
    assert rows["unit_code"].unique().to_list() == ["u"]


def test_on_the_sample_contributions_add_up_exactly_at_every_level() -> None:
    nodes = resolve_framework(DATA, "city", 2020).nodes

    def edition(year: int) -> pl.DataFrame:
        return leaf_scores("city", year)

    rows = attribute_changes(edition(2020), edition(2019), nodes, nodes)
    assert rows["unit_code"].n_unique() == 113  # the returning cities
    assert rows["method_change"].abs().max() == 0
    sums = (
        rows.filter(pl.col("level") > 0)
        .group_by("unit_code", "level")
        .agg(pl.col("contribution").sum(), pl.first("data_change"))
    )
    assert number((sums["contribution"] - sums["data_change"]).abs().max()) < 1e-9
    # Each level-1 node's contribution is the sum of its level-2 children's.
    level2 = (
        rows.filter(pl.col("level") == 2)
        .group_by("unit_code", "parent_code")
        .agg(pl.col("contribution").sum().alias("children"))
    )
    level1 = rows.filter(pl.col("level") == 1).join(
        level2, left_on=["unit_code", "node_code"], right_on=["unit_code", "parent_code"]
    )
    assert number((level1["contribution"] - level1["children"]).abs().max()) < 1e-9
