"""Leave one out: rank changes by hand, and only children kept."""

import polars as pl
import pytest

from dei_pipeline.analysis.leave_one_out import removal_impact
from dei_pipeline.analysis.ranking_problem import ranking_problem
from dei_pipeline_tests.test_aggregation import FIVE
from dei_pipeline_tests.test_uncertainty import METHOD, TWO, long_scores, ranked


def test_leaving_out_each_indicator_by_hand() -> None:
    # Composites (a + b) / 2: x 50, y 45, z 30 -> ranks x 1, y 2, z 3.
    scores = long_scores(
        {"x": {"a": 100.0, "b": 0.0}, "y": {"a": 45.0, "b": 45.0}, "z": {"a": 0.0, "b": 60.0}}
    )
    rows = {
        r["node_code"]: r
        for r in removal_impact(ranking_problem(scores, TWO, ranked(["x", "y", "z"]), METHOD, 1.0)).iter_rows(
            named=True
        )
    }
    # Without a: b alone, x 0, y 45, z 60 -> z 1, y 2, x 3: x falls 2, z rises 2, y stays.
    assert rows["a"]["mean_abs_rank_change"] == pytest.approx(4 / 3)
    assert (rows["a"]["max_abs_rank_change"], rows["a"]["share_units_moved"]) == (2, pytest.approx(2 / 3))
    assert (rows["a"]["most_moved_unit"], rows["a"]["most_moved_rank_change"]) == (
        "x",
        -2,
    )  # x before z on the tie
    # Without b: a alone, x 100, y 45, z 0: the same order, nothing moves.
    assert (
        rows["b"]["mean_abs_rank_change"],
        rows["b"]["max_abs_rank_change"],
        rows["b"]["most_moved_unit"],
    ) == (0.0, 0, None)
    assert rows["a"]["n_units"] == 3


def test_an_only_child_is_not_left_out() -> None:
    scores = long_scores(
        {u: {f"a{i}": float(10 * i + k) for i in range(1, 6)} for k, u in enumerate(["u", "v"])}
    )
    rows = removal_impact(ranking_problem(scores, FIVE, ranked(["u", "v"]), METHOD, 1.0))
    assert rows["node_code"].to_list() == [
        "a1",
        "a2",
        "a3",
        "a4",
        "a5",
    ]  # A, the composite's only child, is not
    assert rows.filter(pl.col("max_abs_rank_change") > 0).height == 0  # v is ahead on every indicator
