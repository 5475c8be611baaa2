"""Unit profiles by hand, `dei profile`, and the analysis assets end to end with Dagster (the session's
sample warehouse, and a private copy of it for reruns)."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dei_pipeline.analysis.profile import PROFILE_EXTREMES, STRENGTH, WEAKNESS, print_profile, unit_profiles
from dei_pipeline.cli import main
from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS
from dei_pipeline.scalars import number
from dei_pipeline_tests.conftest import LIGHT_DRAWS, Project

# ----------------------------------------------------------------------------------- by hand


def test_profile_by_hand() -> None:
    # Peers g: u, v, w. Indicator i1: 90, 60, 60; i2: 10, 20, 30 (u lowest). Peers h: one unit.
    scores = pl.DataFrame(
        {
            "unit_code": ["u", "v", "w", "u", "v", "w", "solo", "solo"],
            "node_code": ["i1", "i1", "i1", "i2", "i2", "i2", "i1", "i2"],
            "level": [2] * 8,
            "score": [90.0, 60.0, 60.0, 10.0, 20.0, 30.0, 50.0, 50.0],
        }
    )
    peers = pl.DataFrame({"unit_code": ["u", "v", "w", "solo"], "peer_group": ["g", "g", "g", "h"]})
    rows = {
        (r["unit_code"], r["node_code"]): r
        for r in unit_profiles(scores, peers, ["i1", "i2"], 1).iter_rows(named=True)
    }
    u1 = rows[("u", "i1")]
    assert u1["peer_n"] == 3 and u1["peer_mean"] == pytest.approx(70.0)
    assert u1["peer_sd"] == pytest.approx(np.std([90, 60, 60], ddof=1))
    assert u1["peer_z"] == pytest.approx(20.0 / np.std([90, 60, 60], ddof=1))
    assert u1["peer_rank"] == 1
    assert (
        rows[("v", "i1")]["peer_rank"] == rows[("w", "i1")]["peer_rank"] == 2
    )  # a tie shares the better rank
    assert rows[("u", "i2")]["peer_z"] == pytest.approx(-1.0) and rows[("u", "i2")]["peer_rank"] == 3
    # With two indicators, u's strength is i1 (z 1.15) and its weakness i2 (z -1).
    assert (u1["role"], u1["role_rank"]) == (STRENGTH, 1)
    assert (rows[("u", "i2")]["role"], rows[("u", "i2")]["role_rank"]) == (WEAKNESS, 1)
    # A unit alone in its peer group cannot be compared: no z, no role.
    assert rows[("solo", "i1")]["peer_z"] is None and rows[("solo", "i1")]["role"] is None


def test_strengths_and_weaknesses_are_the_extremes_of_z() -> None:
    codes = [f"i{k:02d}" for k in range(12)]
    rng = np.random.default_rng(0)
    values = rng.normal(50, 10, size=(6, 12))
    values[0] = np.linspace(20, 80, 12)  # unit u0: i11 its best against the others, i00 its worst
    scores = pl.DataFrame(
        [
            {"unit_code": f"u{i}", "node_code": code, "level": 3, "score": float(values[i, j])}
            for i in range(6)
            for j, code in enumerate(codes)
        ]
    )
    peers = pl.DataFrame({"unit_code": [f"u{i}" for i in range(6)], "peer_group": ["g"] * 6})
    rows = unit_profiles(scores, peers, codes, 1).filter(pl.col("unit_code") == "u0")
    by_z = rows.sort("peer_z", descending=True)["node_code"].to_list()
    strengths = rows.filter(pl.col("role") == STRENGTH).sort("role_rank")["node_code"].to_list()
    weaknesses = rows.filter(pl.col("role") == WEAKNESS).sort("role_rank")["node_code"].to_list()
    assert strengths == by_z[:PROFILE_EXTREMES]
    assert weaknesses == by_z[::-1][:PROFILE_EXTREMES]


def test_missing_scores_and_unranked_units() -> None:
    # x has no score for i2 (a null) and no i3 row; "gone" is not ranked, so it has no peers and no rows.
    scores = pl.DataFrame(
        {
            "unit_code": ["u", "v", "w", "x", "u", "v", "w", "x", "u", "v", "w", "gone"],
            "node_code": ["i2", "i2", "i2", "i2", "i3", "i3", "i3", "i1", "i1", "i1", "i1", "i1"],
            "level": [3] * 8 + [2] * 4,
            "score": [10.0, 20.0, 30.0, None, 5.0, 6.0, 7.0, 40.0, 10.0, 20.0, 30.0, 99.0],
        }
    )
    peers = pl.DataFrame({"unit_code": ["u", "v", "w", "x"], "peer_group": ["g"] * 4})
    shuffled = scores.sample(fraction=1.0, shuffle=True, seed=1)
    rows = unit_profiles(shuffled, peers, ["i2", "i3"], 1)
    assert rows.equals(unit_profiles(scores, peers, ["i2", "i3"], 1))  # the input's order does not matter
    # Rows by unit, level, code; only the rows given, of ranked units.
    assert rows.select("unit_code", "node_code").rows() == [
        ("u", "i1"),
        ("u", "i2"),
        ("u", "i3"),
        ("v", "i1"),
        ("v", "i2"),
        ("v", "i3"),
        ("w", "i1"),
        ("w", "i2"),
        ("w", "i3"),
        ("x", "i1"),
        ("x", "i2"),
    ]
    by_key = {(r["unit_code"], r["node_code"]): r for r in rows.iter_rows(named=True)}
    i2 = by_key[("u", "i2")]
    assert (i2["peer_n"], i2["peer_mean"], i2["peer_sd"]) == (3, pytest.approx(20.0), pytest.approx(10.0))
    missing = by_key[("x", "i2")]
    assert missing["peer_n"] == 3 and missing["score"] is None
    assert (missing["peer_z"], missing["peer_rank"], missing["role"]) == (None, None, None)
    assert by_key[("x", "i1")]["peer_rank"] == 1 and by_key[("x", "i1")]["peer_n"] == 4
    # x has no indicator with a z (i1 is not one of the indicators): no strength, no weakness.
    assert rows.filter(pl.col("unit_code") == "x")["role"].null_count() == 2


def test_ties_in_z_are_broken_by_code() -> None:
    # b and a have the same scores, so the same z for every unit: a comes first either way.
    values = {"u": [90.0, 90.0, 10.0, 50.0], "v": [50.0, 50.0, 50.0, 40.0], "w": [10.0, 10.0, 90.0, 60.0]}
    codes = ["b", "a", "c", "d"]
    scores = pl.DataFrame(
        [
            {"unit_code": unit, "node_code": code, "level": 3, "score": score}
            for unit, row in values.items()
            for code, score in zip(codes, row)
        ]
    )
    peers = pl.DataFrame({"unit_code": list(values), "peer_group": ["g"] * 3})
    u = {
        r["node_code"]: r
        for r in unit_profiles(scores, peers, codes, 1)
        .filter(pl.col("unit_code") == "u")
        .iter_rows(named=True)
    }
    assert (u["a"]["role"], u["a"]["role_rank"], u["b"]["role"], u["b"]["role_rank"]) == (
        STRENGTH,
        1,
        STRENGTH,
        2,
    )
    w = {
        r["node_code"]: r
        for r in unit_profiles(scores, peers, codes, 1)
        .filter(pl.col("unit_code") == "w")
        .iter_rows(named=True)
    }
    assert (w["a"]["role"], w["a"]["role_rank"], w["b"]["role"], w["b"]["role_rank"]) == (
        WEAKNESS,
        1,
        WEAKNESS,
        2,
    )


# ------------------------------------------------------------------------- the assets, end to end


def test_rank_uncertainty_mart(sample: Project) -> None:
    rows = sample.table("marts.rank_uncertainty", 2020)
    index = sample.table("marts.city_index", 2020)
    cities = rows.filter(pl.col("unit_type") == "city").join(
        index.select("unit_code", "rank", "tier", "score"), on="unit_code"
    )
    assert cities.height == 148 and rows.filter(pl.col("unit_type") == "county").height == 100
    assert (cities["nominal_rank"] == cities["rank"]).all() and (
        cities["nominal_tier"] == cities["tier"]
    ).all()
    assert (
        (cities["rank_p05"] <= cities["median_rank"]) & (cities["median_rank"] <= cities["rank_p95"])
    ).all()
    tier_sum = cities.select(
        pl.sum_horizontal(pl.col("^prob_(new_)?tier.*$").exclude("prob_same_tier")).alias("total")
    )["total"]
    assert number((tier_sum - 1).abs().max()) < 1e-12
    assert rows.filter(pl.col("unit_type") == "county")["prob_tier1"].null_count() == 100
    assert set(rows["n_draws"].to_list()) == {LIGHT_DRAWS}  # the settings' draws


def test_other_analysis_marts(sample: Project) -> None:
    sensitivity = sample.table("marts.sensitivity", 2020)
    assert set(sensitivity["factor"].to_list()) == {
        "weights_level_1",
        "weights_level_2",
        "weights_level_3",
        "aggregation_method",
    }
    assert (
        sensitivity.filter(pl.col("target") == "mean_abs_rank_shift").height == 2 * 4
    )  # per unit type and factor
    attribution = sample.table("marts.yoy_attribution", 2020)
    assert attribution.filter(pl.col("unit_type") == "city")["unit_code"].n_unique() == 113
    assert attribution.filter(pl.col("unit_type") == "county")["unit_code"].n_unique() == 100
    assert set(attribution["prev_year"].to_list()) == {2019}
    sums = (
        attribution.filter(pl.col("level") == 1)
        .group_by("unit_type", "unit_code")
        .agg(pl.col("contribution").sum(), pl.first("data_change"))
    )
    assert number((sums["contribution"] - sums["data_change"]).abs().max()) < 1e-9
    assert (
        sample.table("marts.yoy_attribution", 2017).height == 0
    )  # nothing before the sample's first edition
    audit = sample.table("marts.audit", 2020)
    assert audit.filter(pl.col("unit_type") == "city").height == 62 + 1  # every node and the composite
    assert sample.table("marts.audit_units", 2020).height == 248
    profile = sample.table("marts.unit_profile", 2020)
    assert (
        profile.filter((pl.col("unit_type") == "city") & (pl.col("role") == "strength")).height
        == 148 * PROFILE_EXTREMES
    )


def test_analysis_reruns_are_identical_alone_or_in_a_backfill(sample: Project, tmp_path: Path) -> None:
    rerun = Project(sample.private_copy(tmp_path), dg.DagsterInstance.ephemeral())
    analysis_marts = [*(f"marts.{asset.key.path[-1]}" for asset in ANALYSIS_ASSETS), "marts.audit_units"]
    before = {name: rerun.table(name, 2020) for name in analysis_marts}
    resources = {"warehouse": rerun.resource}
    alone = dg.materialize(
        ANALYSIS_ASSETS, partition_key="2020", instance=rerun.instance, resources=resources
    )
    in_a_backfill = dg.materialize(
        ANALYSIS_ASSETS,
        instance=rerun.instance,
        resources=resources,
        tags={"dagster/asset_partition_range_start": "2019", "dagster/asset_partition_range_end": "2020"},
    )
    assert alone.success and in_a_backfill.success
    for name in analysis_marts:
        assert before[name].equals(rerun.table(name, 2020)), name


def test_dei_profile_prints_strengths_and_weaknesses(
    sample: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "杭州", "--year", "2020", "--warehouse", str(sample.warehouse)]) == 0
    out = capsys.readouterr().out
    assert "杭州 (330100, city), edition 2020" in out and "Strengths" in out and "Weaknesses" in out
    assert "90% interval" in out
    assert print_profile("330100", 2020, sample.warehouse) == 0
    assert print_profile("不存在的城市", 2020, sample.warehouse) == 1
    assert print_profile("杭州", 1999, sample.warehouse) == 1
    capsys.readouterr()
    assert print_profile("州", 2020, sample.warehouse) == 2  # 杭州, 广州, 苏州, ...
    assert "give the full name or the code" in capsys.readouterr().out
