"""Statistical audit on a small case computed by hand (and with numpy's own formulas)."""

import math

import numpy as np
import polars as pl
import pytest

from dei_pipeline.analysis.audit import MAX_MISSING_SHARE, audit_nodes, audit_units

# P (0.5): x 0.5, y 0.25, z 0.25; Q (0.5): q alone.
NODES = pl.DataFrame(
    {
        "code": ["P", "x", "y", "z", "Q", "q"],
        "parent_code": [None, "P", "P", "P", None, "Q"],
        "level": [1, 2, 2, 2, 1, 2],
        "name_zh": ["P", "x", "y", "z", "Q", "q"],
        "weight": [0.5, 0.5, 0.25, 0.25, 0.5, 1.0],
        "effective_weight": [0.5, 0.25, 0.125, 0.125, 0.5, 0.5],
        "is_leaf": [False, True, True, True, False, True],
    },
    schema_overrides={"level": pl.Int32, "parent_code": pl.String},
)
X = np.array([10.0, 20, 30, 40, 50])
Y = X.copy()  # a duplicate of x: redundant
Z = 60 - X  # x reversed: works against its parent
Q = np.array([5.0, 1, 4, 2, 3])
P = 0.5 * X + 0.25 * Y + 0.25 * Z
COMPOSITE = 0.5 * P + 0.5 * Q


def node_scores() -> pl.DataFrame:
    columns = {"x": X, "y": Y, "z": Z, "q": Q, "P": P, "Q": Q, "composite": COMPOSITE}
    return pl.DataFrame(
        [
            {"unit_code": f"u{i}", "node_code": code, "score": float(values[i])}
            for code, values in columns.items()
            for i in range(5)
        ]
    )


def cronbach(items: list[np.ndarray]) -> float:
    k = len(items)
    return (
        k
        / (k - 1)
        * (1 - sum(np.var(item, ddof=1) for item in items) / np.var(np.sum(items, axis=0), ddof=1))
    )


@pytest.fixture(scope="module")
def audit() -> dict[str, dict]:
    rows = audit_nodes(node_scores(), NODES)
    return {row["node_code"]: row for row in rows.iter_rows(named=True)}


def test_correlations_with_the_parent_and_the_composite(audit: dict[str, dict]) -> None:
    # P = 0.5 x + 15: x and y move with it exactly, z against it.
    assert audit["x"]["corr_with_parent"] == pytest.approx(1.0)
    assert audit["z"]["corr_with_parent"] == pytest.approx(-1.0)
    assert audit["q"]["corr_with_composite"] == pytest.approx(np.corrcoef(Q, COMPOSITE)[0, 1])
    assert audit["P"]["corr_with_composite"] == pytest.approx(np.corrcoef(P, COMPOSITE)[0, 1])
    assert audit["composite"]["corr_with_parent"] is None


def test_flags(audit: dict[str, dict]) -> None:
    # |r| > 0.9 either way: y duplicates x, and z is x reversed (r = -1).
    assert audit["x"]["redundant_with"] == "y,z" and audit["y"]["redundant_with"] == "x,z"
    assert audit["z"]["redundant_with"] == "x,y"
    assert "negative_corr_parent" in audit["z"]["flags"].split(",")
    # z against the composite: r = -0.98 over 5 units, z = atanh(r) sqrt(2) = -3.25, p = 0.0006: flagged.
    r_z = np.corrcoef(Z, COMPOSITE)[0, 1]
    assert (
        audit["z"]["negative_corr_composite_p"] == pytest.approx(0.5 * math.erfc(math.atanh(-r_z)), abs=1e-6)
        and r_z < -0.9
    )
    assert "negative_corr_composite" in audit["z"]["flags"].split(",")
    assert "redundant" in audit["x"]["flags"].split(",")
    # q drives its parent (an only child: r = 1) but, swamped by P, runs slightly against the composite.
    assert audit["q"]["corr_with_parent"] == pytest.approx(1.0)
    # r = -0.104 over 5 units is no evidence: Fisher's z = atanh(r) sqrt(5 - 3), one-sided p = Phi(z) = 0.44.
    r = np.corrcoef(Q, COMPOSITE)[0, 1]
    assert r == pytest.approx(-0.104, abs=5e-4)
    assert audit["q"]["negative_corr_composite_p"] == pytest.approx(
        0.5 * math.erfc(-math.atanh(r)), abs=1e-6
    )  # Phi(x) = erfc(-x / sqrt 2) / 2
    assert audit["q"]["flags"] is None
    assert audit["z"]["negative_corr_parent_p"] == 0.0  # r = -1: certain


def test_spearman_beside_pearson(audit: dict[str, dict]) -> None:
    def ranks(values: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(values)).astype(float)  # no ties here

    assert audit["z"]["spearman_with_parent"] == pytest.approx(-1.0)
    assert audit["q"]["spearman_with_composite"] == pytest.approx(
        np.corrcoef(ranks(Q), ranks(COMPOSITE))[0, 1]
    )
    assert audit["P"]["spearman_with_composite"] == pytest.approx(
        np.corrcoef(ranks(P), ranks(COMPOSITE))[0, 1]
    )


def test_spearman_ranks_ties_by_their_mean() -> None:
    # x = 1, 2, 2, 3 against its parent 1, 2, 3, 4: ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4.
    nodes = NODES.filter(pl.col("code").is_in(["Q", "q"]))
    rows = pl.DataFrame(
        [
            {"unit_code": f"u{i}", "node_code": code, "score": value}
            for code, values in {
                "q": [1.0, 2, 2, 3],
                "Q": [1.0, 2, 3, 4],
                "composite": [1.0, 2, 3, 4],
            }.items()
            for i, value in enumerate(values)
        ]
    )
    found = {r["node_code"]: r for r in audit_nodes(rows, nodes).iter_rows(named=True)}
    assert found["q"]["spearman_with_parent"] == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    )


def test_spearman_ranks_each_pair_among_its_common_units() -> None:
    # q is scored for five units, its parent Q for four (u1 has none): against Q, q is ranked among those
    # four (1, 2, 3, 4), not by its own ranks among five (1, 3, 4, 5). Q's ranks are 4, 1, 3, 2:
    # deviations (-1.5, -0.5, 0.5, 1.5) and (1.5, -1.5, 0.5, -0.5), products sum to -2, each square sum 5:
    # rho = -2 / 5 = -0.4 (with q's own ranks it would be -0.53).
    nodes = NODES.filter(pl.col("code").is_in(["Q", "q"]))
    columns: dict[str, list[float | None]] = {
        "q": [1.0, 2, 3, 4, 5],
        "Q": [4.0, None, 1, 3, 2],
        "composite": [4.0, None, 1, 3, 2],
    }
    rows = pl.DataFrame(
        [
            {"unit_code": f"u{i}", "node_code": code, "score": value}
            for code, values in columns.items()
            for i, value in enumerate(values)
            if value is not None
        ]
    )
    found = {r["node_code"]: r for r in audit_nodes(rows, nodes).iter_rows(named=True)}
    assert found["q"]["spearman_with_parent"] == pytest.approx(-0.4)
    assert found["q"]["spearman_with_composite"] == pytest.approx(-0.4)


def test_pca_of_each_group_by_hand(audit: dict[str, dict]) -> None:
    # x, y and z = 60 - x are perfectly (anti-)correlated: the correlation matrix has eigenvalues 3, 0, 0,
    # the first component explains everything and loads each child by 1/sqrt(3) (squared: 1/3).
    assert audit["P"]["pca_first_share"] == pytest.approx(1.0)
    assert [audit[c]["pca_weight"] for c in "xyz"] == pytest.approx([1 / 3] * 3)
    # P and Q at the top: their correlation r gives eigenvalues 1 + |r| and 1 - |r|.
    r = abs(np.corrcoef(P, Q)[0, 1])
    assert audit["composite"]["pca_first_share"] == pytest.approx((1 + r) / 2)
    assert audit["Q"]["pca_first_share"] is None and audit["q"]["pca_weight"] is None  # an only child


def test_cronbach_alpha_by_hand(audit: dict[str, dict]) -> None:
    # x, y, z have variance 250 each and x + y + z = x + 60 has variance 250: 3/2 * (1 - 750/250) = -3.
    assert audit["P"]["cronbach_alpha"] == pytest.approx(-3.0)
    assert "low_alpha" in audit["P"]["flags"].split(",")
    assert audit["composite"]["cronbach_alpha"] == pytest.approx(cronbach([P, Q]))
    assert audit["Q"]["cronbach_alpha"] is None  # one child: undefined
    assert audit["P"]["n_children"] == 3 and audit["composite"]["n_children"] == 2


def test_measured_against_nominal_weights(audit: dict[str, dict]) -> None:
    # r^2 with P is 1 for x, y and z: a third each, against nominal 0.5, 0.25, 0.25.
    for code, nominal in (("x", 0.5), ("y", 0.25), ("z", 0.25)):
        assert audit[code]["measured_weight"] == pytest.approx(1 / 3)
        assert audit[code]["weight_ratio"] == pytest.approx((1 / 3) / nominal)
        assert audit[code]["nominal_weight"] == nominal
    assert audit["q"]["weight_ratio"] is None  # an only child cannot be compared with siblings
    r2 = {
        code: np.corrcoef(values, COMPOSITE)[0, 1] ** 2
        for code, values in (("x", X), ("y", Y), ("z", Z), ("q", Q))
    }
    assert audit["q"]["measured_effective_weight"] == pytest.approx(r2["q"] / sum(r2.values()))
    assert audit["x"]["nominal_effective_weight"] == 0.25


def test_units_missing_too_many_indicators_are_flagged() -> None:
    leaves = pl.DataFrame(
        {
            "unit_code": ["a", "a", "a", "m", "n", "n"],
            "indicator_code": ["x", "y", "z", "x", "x", "y"],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0, None],
        }
    )
    composites = pl.DataFrame({"unit_code": ["a", "m", "n"], "score": [2.0, None, None]})
    rows = {r["unit_code"]: r for r in audit_units(leaves, ["x", "y", "z"], composites).iter_rows(named=True)}
    assert (rows["a"]["n_missing"], rows["a"]["too_many_missing"], rows["a"]["has_composite"]) == (
        0,
        False,
        True,
    )
    assert (rows["m"]["n_missing"], rows["m"]["too_many_missing"]) == (2, True)
    # n lacks z and has a null y: 2 of 3 missing.
    assert rows["n"]["n_missing"] == 2 and rows["n"]["missing_share"] == pytest.approx(2 / 3)
    assert rows["n"]["too_many_missing"] and 2 / 3 > MAX_MISSING_SHARE


def scores_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    n_units = len(next(iter(columns.values())))
    return pl.DataFrame(
        [
            {"unit_code": f"u{i}", "node_code": code, "score": float(values[i])}
            for code, values in columns.items()
            for i in range(n_units)
        ]
    )


def test_missing_scores_leave_out_only_the_units_that_lack_them() -> None:
    rng = np.random.default_rng(1)
    x, y, z, q = (rng.normal(50, 10, 6) for _ in range(4))
    p = 0.5 * x + 0.25 * y + 0.25 * z
    composite = 0.5 * p + 0.5 * q
    full = scores_frame({"x": x, "y": y, "z": z, "q": q, "P": p, "Q": q, "composite": composite})
    # u0 has no x row at all and u1 a null y: each correlation uses the units that have both scores,
    # alpha the units that have all of P's children (u2-u5).
    scores = full.filter(~((pl.col("unit_code") == "u0") & (pl.col("node_code") == "x"))).with_columns(
        pl.when((pl.col("unit_code") == "u1") & (pl.col("node_code") == "y"))
        .then(None)
        .otherwise(pl.col("score"))
        .alias("score")
    )
    rows = {
        row["node_code"]: row
        for row in audit_nodes(scores.sample(fraction=1.0, shuffle=True, seed=3), NODES).iter_rows(named=True)
    }
    assert rows["x"]["corr_with_parent"] == pytest.approx(np.corrcoef(x[1:], p[1:])[0, 1], abs=1e-12)
    assert rows["y"]["corr_with_composite"] == pytest.approx(
        np.corrcoef(np.delete(y, 1), np.delete(composite, 1))[0, 1], abs=1e-12
    )
    assert rows["z"]["corr_with_parent"] == pytest.approx(np.corrcoef(z, p)[0, 1], abs=1e-12)
    sibling_r = {"y": np.corrcoef(x[2:], y[2:])[0, 1], "z": np.corrcoef(x[1:], z[1:])[0, 1]}
    assert rows["x"]["max_abs_sibling_corr"] == pytest.approx(
        max(abs(r) for r in sibling_r.values()), abs=1e-12
    )
    assert rows["P"]["cronbach_alpha"] == pytest.approx(cronbach([x[2:], y[2:], z[2:]]), abs=1e-12)
    assert (rows["x"]["n_units"], rows["y"]["n_units"], rows["z"]["n_units"]) == (5, 5, 6)
    assert rows["x"]["missing_share"] == pytest.approx(1 / 6)
    # Fewer than three units with both scores: no correlation; no unit with all children: no alpha.
    sparse = scores.filter(~((pl.col("node_code") == "z") & (pl.col("unit_code") != "u0")))  # u0 lacks x
    sparse_rows = {row["node_code"]: row for row in audit_nodes(sparse, NODES).iter_rows(named=True)}
    assert sparse_rows["z"]["corr_with_parent"] is None and sparse_rows["z"]["corr_with_composite"] is None
    assert sparse_rows["P"]["cronbach_alpha"] is None and sparse_rows["P"]["n_children"] is None
    assert sparse_rows["z"]["missing_share"] == pytest.approx(5 / 6)


def test_a_node_without_variance_has_no_correlation() -> None:
    rng = np.random.default_rng(2)
    x, y, q = (rng.normal(50, 10, 7) for _ in range(3))
    z = np.full(7, 0.1)  # constant; 0.1 is not exact in binary, so a naive mean leaves rounding noise
    p = 0.5 * x + 0.25 * y + 0.25 * z
    composite = 0.5 * p + 0.5 * q
    rows = {
        row["node_code"]: row
        for row in audit_nodes(
            scores_frame({"x": x, "y": y, "z": z, "q": q, "P": p, "Q": q, "composite": composite}), NODES
        ).iter_rows(named=True)
    }
    z_row = rows["z"]
    assert (z_row["corr_with_parent"], z_row["corr_with_composite"], z_row["max_abs_sibling_corr"]) == (
        None,
        None,
        None,
    )
    assert (z_row["measured_weight"], z_row["weight_ratio"], z_row["flags"]) == (None, None, None)
    # x and y share the measured weight between them; their sibling correlation leaves z out.
    r2 = {code: np.corrcoef(values, p)[0, 1] ** 2 for code, values in (("x", x), ("y", y))}
    assert rows["x"]["measured_weight"] == pytest.approx(r2["x"] / (r2["x"] + r2["y"]), abs=1e-12)
    assert rows["x"]["max_abs_sibling_corr"] == pytest.approx(abs(np.corrcoef(x, y)[0, 1]), abs=1e-12)
    # Alpha still counts z: its variance is 0.
    assert rows["P"]["cronbach_alpha"] == pytest.approx(cronbach([x, y, z]), abs=1e-12)


def test_reruns_and_row_order_give_identical_figures() -> None:
    rng = np.random.default_rng(4)
    x, y, z, q = (rng.normal(50, 10, 40) for _ in range(4))
    p = 0.5 * x + 0.25 * y + 0.25 * z
    scores = scores_frame({"x": x, "y": y, "z": z, "q": q, "P": p, "Q": q, "composite": 0.5 * p + 0.5 * q})
    first = audit_nodes(scores, NODES)
    for seed in range(3):
        assert audit_nodes(scores.sample(fraction=1.0, shuffle=True, seed=seed), NODES).equals(first)


def test_units_count_each_indicator_once() -> None:
    leaves = pl.DataFrame(
        {
            "unit_code": ["b", "b", "b", "b", "a"],
            "indicator_code": ["x", "x", "other", "y", "x"],  # a duplicated x, a code outside the framework
            "score": [1.0, 1.0, 2.0, None, 3.0],
        }
    )
    composites = pl.DataFrame({"unit_code": ["a", "c"], "score": [2.0, 1.0]})  # c: a composite, no indicator
    rows = audit_units(leaves, ["x", "y"], composites)
    assert rows["unit_code"].to_list() == ["a", "b", "c"]
    assert rows["n_missing"].to_list() == [1, 1, 2]
    assert rows["has_composite"].to_list() == [True, False, True]
