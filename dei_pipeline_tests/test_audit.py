"""Statistical audit on a small case computed by hand (and with numpy's own formulas)."""

import numpy as np
import polars as pl
import pytest

from dei_pipeline.analysis.audit import MAX_MISSING_SHARE, audit_nodes, audit_units

# P (0.5): x 0.5, y 0.25, z 0.25; Q (0.5): q alone.
NODES = pl.DataFrame({
    "code": ["P", "x", "y", "z", "Q", "q"],
    "parent_code": [None, "P", "P", "P", None, "Q"],
    "level": [1, 2, 2, 2, 1, 2],
    "name_zh": ["P", "x", "y", "z", "Q", "q"],
    "weight": [0.5, 0.5, 0.25, 0.25, 0.5, 1.0],
    "effective_weight": [0.5, 0.25, 0.125, 0.125, 0.5, 0.5],
    "is_leaf": [False, True, True, True, False, True],
}, schema_overrides={"level": pl.Int32, "parent_code": pl.String})
X = np.array([10.0, 20, 30, 40, 50])
Y = X.copy()  # a duplicate of x: redundant
Z = 60 - X  # x reversed: works against its parent
Q = np.array([5.0, 1, 4, 2, 3])
P = 0.5 * X + 0.25 * Y + 0.25 * Z
COMPOSITE = 0.5 * P + 0.5 * Q


def node_scores() -> pl.DataFrame:
    columns = {"x": X, "y": Y, "z": Z, "q": Q, "P": P, "Q": Q, "composite": COMPOSITE}
    return pl.DataFrame([
        {"unit_code": f"u{i}", "node_code": code, "score": float(values[i])} for code, values in columns.items() for i in range(5)
    ])


def cronbach(items: list[np.ndarray]) -> float:
    k = len(items)
    return k / (k - 1) * (1 - sum(np.var(item, ddof=1) for item in items) / np.var(np.sum(items, axis=0), ddof=1))


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
    assert ("negative_corr_composite" in audit["z"]["flags"]) == (np.corrcoef(Z, COMPOSITE)[0, 1] < 0)
    assert "redundant" in audit["x"]["flags"].split(",")
    # q drives its parent (an only child: r = 1) but, swamped by P, runs slightly against the composite.
    assert audit["q"]["corr_with_parent"] == pytest.approx(1.0)
    assert (audit["q"]["flags"] == "negative_corr_composite") == (np.corrcoef(Q, COMPOSITE)[0, 1] < 0)


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
    r2 = {code: np.corrcoef(values, COMPOSITE)[0, 1] ** 2 for code, values in (("x", X), ("y", Y), ("z", Z), ("q", Q))}
    assert audit["q"]["measured_effective_weight"] == pytest.approx(r2["q"] / sum(r2.values()))
    assert audit["x"]["nominal_effective_weight"] == 0.25


def test_units_missing_too_many_indicators_are_flagged() -> None:
    leaves = pl.DataFrame({
        "unit_code": ["a", "a", "a", "m", "n", "n"],
        "indicator_code": ["x", "y", "z", "x", "x", "y"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0, None],
    })
    composites = pl.DataFrame({"unit_code": ["a", "m", "n"], "score": [2.0, None, None]})
    rows = {r["unit_code"]: r for r in audit_units(leaves, ["x", "y", "z"], composites).iter_rows(named=True)}
    assert (rows["a"]["n_missing"], rows["a"]["too_many_missing"], rows["a"]["has_composite"]) == (0, False, True)
    assert (rows["m"]["n_missing"], rows["m"]["too_many_missing"]) == (2, True)
    # n lacks z and has a null y: 2 of 3 missing.
    assert rows["n"]["n_missing"] == 2 and rows["n"]["missing_share"] == pytest.approx(2 / 3)
    assert rows["n"]["too_many_missing"] and 2 / 3 > MAX_MISSING_SHARE
