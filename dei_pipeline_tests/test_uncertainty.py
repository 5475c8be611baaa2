"""Rank uncertainty and sensitivity, checked against cases derived by hand and against the pipeline's
own aggregation and ranking."""

import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from dei_pipeline.aggregation import aggregate_tiers
from dei_pipeline.analysis import sensitivity
from dei_pipeline.analysis.assumption_draws import (
    AssumptionDraws,
    draw_assumptions,
    edition_rng,
    load_uncertainty_settings,
    nominal_assumptions,
    parse_uncertainty_settings,
    settings_draws,
)
from dei_pipeline.analysis.draw_aggregation import nominal_composites, simulate_composites
from dei_pipeline.analysis.draw_ranks import rank_display_ticks
from dei_pipeline.analysis.index_tree import IndexTree
from dei_pipeline.analysis.rank_summaries import RankSummary, quantiles_from_counts, rank_distribution
from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty
from dei_pipeline.analysis.ranking_problem import ranking_problem
from dei_pipeline.analysis.sensitivity import (
    AGGREGATION_FACTOR,
    SobolIndices,
    factors,
    rank_sensitivity,
    saltelli_block,
    sensitivity_rows,
    sobol_indices,
    weights_factor,
)
from dei_pipeline.analysis.weight_draws import perturbed_weights, scheme_weights
from dei_pipeline.config import REPO_ROOT, MethodSettings, TieMethod, UncertaintySettings, load_settings
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.ranking import rank_units
from dei_pipeline.tiers import load_tiers
from dei_pipeline_tests.sample_scores import leaf_scores
from dei_pipeline_tests.test_aggregation import (
    FIVE,
    NODES,
)  # NODES: an unbalanced tree, leaves at depths 2 and 3

DATA = REPO_ROOT / "data"
METHOD = MethodSettings(
    display_decimals=1,
    score_min=0,
    score_max=100,
    tie_method="min",
    missing_rule="propagate",
    gdp_year_offset=-1,
    gdp_vintage="revised",
    score_tolerance=0.05,
)
TIERS = load_tiers(DATA)

# Two indicators straight under the composite, equal weights: the hand-derived case.
TWO = pl.DataFrame(
    {
        "code": ["a", "b"],
        "parent_code": [None, None],
        "level": [1, 1],
        "weight": [0.5, 0.5],
        "is_leaf": [True, True],
    },
    schema_overrides={"level": pl.Int32, "parent_code": pl.String},
)


def settings(**changes: object) -> UncertaintySettings:
    base = {
        "draws": 20_000,
        "seed": 7,
        "weight_range": 0.25,
        "methods": ["arithmetic"],
        "method_choice": "per_level",
        "geometric_floor": 1.0,
        "sensitivity_base_draws": 2_000,
        "sensitivity_bootstrap": 200,
        "sensitivity_level": 0.9,
        "sensitivity_resolution": 0.1,
    }
    return parse_uncertainty_settings({**base, **changes})


def long_scores(rows: dict[str, dict[str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"unit_code": unit, "indicator_code": code, "score": score}
            for unit, scores in rows.items()
            for code, score in scores.items()
        ],
        schema={"unit_code": pl.String, "indicator_code": pl.String, "score": pl.Float64},
    )


def ranked(units: list[str], group: str = "all") -> pl.DataFrame:
    return pl.DataFrame({"unit_code": units, "rank_group": [group] * len(units)})


def draws_with(
    tree: IndexTree, geometric: list[bool], multipliers: np.ndarray | None = None
) -> AssumptionDraws:
    return AssumptionDraws(
        np.ones((1, tree.n_nodes)) if multipliers is None else multipliers[None, :],
        np.array([geometric]),
    )


# ----------------------------------------------------------------------------------- settings


def test_the_repository_settings_load() -> None:
    loaded = load_uncertainty_settings(DATA)
    assert set(loaded.draws) == {"city", "county"} and min(loaded.draws.values()) >= 1
    assert 0 < loaded.weight_range < 1
    assert set(loaded.methods) == {"arithmetic", "geometric"} and loaded.geometric_floor > 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weight_range": 1.0}, "weight_range"),
        ({"methods": ["harmonic"]}, "methods"),
        ({"geometric_floor": 0}, "geometric_floor"),
        ({"method_choice": "per_draw"}, "method_choice"),
        ({"draws": 0}, "draws.city is 0: Input should be greater than 0"),
        ({"draws": {"city": 100}}, "draws is .*county missing"),
        (
            {"draws": {"city": 100, "county": 50, "town": 5}},
            "draws.town.*'town': Input should be 'city' or 'county'",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**change)


def test_draws_are_one_number_for_every_unit_type_or_one_each() -> None:
    assert settings(draws=300).draws == {"city": 300, "county": 300}
    each = settings(draws={"city": 300, "county": 100})
    assert (each.draws_for("city"), each.draws_for("county")) == (300, 100)
    assert settings(draws=300).draws_for(None) == 300
    with pytest.raises(ValueError, match="differs by unit type"):
        each.draws_for(None)
    assert each.with_draws(20).draws == {"city": 20, "county": 20}


# -------------------------------------------------------------------------------- aggregation


def test_nominal_draw_reproduces_the_pipeline_aggregation_on_an_unbalanced_tree() -> None:
    scores = long_scores(
        {
            "u": {"a1": 80, "a2": 40, "b1": 60, "b21": 100, "b22": 50},
            "v": {"a1": 10, "a2": 90, "b1": 30, "b21": 0, "b22": 70},
        }
    )
    problem = ranking_problem(scores, NODES, ranked(["u", "v"]), METHOD, 0.01)
    # Hand: u: A = 50, B2 = 60, B = 60, composite 0.6*50 + 0.4*60 = 54.
    assert nominal_composites(problem)[0] == pytest.approx(54.0)
    expected = (
        aggregate_tiers(scores, NODES).filter(pl.col("level") == 0).sort("unit_code")["score"].to_numpy()
    )
    np.testing.assert_allclose(nominal_composites(problem), expected, rtol=0, atol=1e-12)


def test_nominal_draw_reproduces_the_published_2020_composites() -> None:
    framework = resolve_framework(DATA, "city", 2020)
    scores = leaf_scores("city", 2020)
    composites = aggregate_tiers(scores, framework.nodes).filter(pl.col("level") == 0).sort("unit_code")
    problem = ranking_problem(
        scores, framework.nodes, ranked(composites["unit_code"].to_list()), load_settings(DATA), 0.01
    )
    np.testing.assert_allclose(nominal_composites(problem), composites["score"].to_numpy(), rtol=0, atol=1e-9)
    # The float32 simulation of the same draw agrees far below the display precision.
    nominal = nominal_assumptions(problem.tree)
    assert (
        np.max(np.abs(simulate_composites(problem, nominal, np.float32)[0] - composites["score"].to_numpy()))
        < 1e-3
    )


def rescaled(x: float) -> float:
    """A score of [0, 100] on the geometric mean's scale [1, 100] (floor 1)."""
    return 1 + 0.99 * x


def unscaled(r: float) -> float:
    return (r - 1) / 0.99


def test_geometric_and_mixed_methods_by_hand() -> None:
    scores = long_scores({"u": {"a1": 80, "a2": 40, "b1": 60, "b21": 100, "b22": 50}})
    problem = ranking_problem(scores, NODES, ranked(["u"]), METHOD, 1.0)
    tree = problem.tree
    # Steps: 0 = level 3 into B2, 1 = level 2 into A and B, 2 = level 1 into the composite. Every
    # geometric mean is taken on [1, 100] and mapped back to [0, 100].
    a_geo = unscaled(rescaled(80) ** 0.25 * rescaled(40) ** 0.75)
    b2_geo = unscaled(rescaled(100) ** 0.2 * rescaled(50) ** 0.8)
    b_geo = unscaled(rescaled(60) ** 0.5 * rescaled(b2_geo) ** 0.5)
    all_geometric = unscaled(rescaled(a_geo) ** 0.6 * rescaled(b_geo) ** 0.4)
    assert simulate_composites(problem, draws_with(tree, [True, True, True]))[0, 0] == pytest.approx(
        all_geometric, rel=1e-12
    )
    # Geometric at the bottom step only: B2 geometric, the rest arithmetic.
    mixed = 0.6 * 50 + 0.4 * (0.5 * 60 + 0.5 * b2_geo)
    assert simulate_composites(problem, draws_with(tree, [True, False, False]))[0, 0] == pytest.approx(
        mixed, rel=1e-12
    )
    # Arithmetic below, geometric at the top.
    top_geometric = unscaled(rescaled(50) ** 0.6 * rescaled(60) ** 0.4)
    assert simulate_composites(problem, draws_with(tree, [False, False, True]))[0, 0] == pytest.approx(
        top_geometric, rel=1e-12
    )


def test_a_zero_enters_a_geometric_mean_at_the_floor() -> None:
    scores = long_scores({"u": {"a": 100.0, "b": 0.0}})
    problem = ranking_problem(scores, TWO, ranked(["u"]), METHOD, 1.0)
    # On [1, 100]: sqrt(100 * 1) = 10, back on [0, 100]: 9 / 0.99 = 9.09. The zero pulls the mean far
    # below the arithmetic 50 without dominating it (a floor of 0.01 gave 1.0).
    assert simulate_composites(problem, draws_with(problem.tree, [True]))[0, 0] == pytest.approx(
        9 / 0.99, rel=1e-12
    )
    assert simulate_composites(problem, draws_with(problem.tree, [False]))[0, 0] == pytest.approx(50.0)
    floored = ranking_problem(scores, TWO, ranked(["u"]), METHOD, 0.01)
    assert simulate_composites(floored, draws_with(floored.tree, [True]))[0, 0] == pytest.approx(
        (math.sqrt(100 * 0.01) - 0.01) / 0.9999, rel=1e-12
    )
    with pytest.raises(ValueError, match="geometric_floor"):
        ranking_problem(scores, TWO, ranked(["u"]), METHOD, 100.0)


def test_reweight_rule_matches_the_pipeline_with_missing_scores() -> None:
    scores = long_scores(
        {
            "u": {"a1": 80, "a2": None, "b1": 60, "b21": 100, "b22": None},
            "v": {"a1": 10, "a2": 90, "b1": None, "b21": 20, "b22": 70},
        }
    )
    method = MethodSettings(**{**METHOD.__dict__, "missing_rule": "reweight"})
    problem = ranking_problem(scores, NODES, ranked(["u", "v"]), method, 0.01)
    expected = (
        aggregate_tiers(scores.drop_nulls(), NODES, missing="reweight")
        .filter(pl.col("level") == 0)
        .sort("unit_code")["score"]
        .to_numpy()
    )
    np.testing.assert_allclose(nominal_composites(problem), expected, atol=1e-12)
    # u: A = a1 alone = 80; B2 = b21 alone = 100; B = 0.5*60 + 0.5*100 = 80; composite 80.
    assert nominal_composites(problem)[0] == pytest.approx(80.0)
    with pytest.raises(ValueError, match="propagate"):
        ranking_problem(scores, NODES, ranked(["u", "v"]), METHOD, 0.01)


def test_perturbed_weights_stay_in_range_and_sum_to_one_per_parent() -> None:
    tree = IndexTree.from_nodes(NODES)
    draws = draw_assumptions(tree, 5_000, 0.25, ["arithmetic"], np.random.default_rng(1))
    weights = perturbed_weights(tree, draws.weight_multipliers)
    np.testing.assert_allclose(weights @ tree.sibling_membership, 1.0, atol=1e-12)
    ratio = weights / tree.nominal_weights
    assert ratio.min() >= 0.75 / 1.25 - 1e-12 and ratio.max() <= 1.25 / 0.75 + 1e-12
    assert draws.weight_multipliers.min() >= 0.75 and draws.weight_multipliers.max() <= 1.25


# ------------------------------------------------------------------------------------ ranking


@pytest.mark.parametrize("tie_method", ["min", "max", "dense"])
def test_counting_ranks_equal_polars_ranks_of_the_displayed_score(tie_method: TieMethod) -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(60, 8, size=(40, 300)), 2)  # two decimals: many ties at one decimal
    groups = rng.integers(0, 3, size=300)
    problem_ticks = np.rint(scores * 10).astype(np.int32)
    ranks = rank_display_ticks(problem_ticks, groups, 3, 0, 1001, tie_method)
    frame = pl.DataFrame(
        {"row": np.repeat(np.arange(40), 300), "group": np.tile(groups, 40), "score": scores.ravel()}
    )
    expected = rank_units(frame, ["row", "group"], 1, tie_method)["rank"].to_numpy().reshape(40, 300)
    np.testing.assert_array_equal(ranks, expected)


def test_display_rounding_is_the_same_as_polars_round() -> None:
    values = np.concatenate([np.arange(0, 100001) / 1000, np.random.default_rng(4).uniform(0, 100, 100_000)])
    problem = ranking_problem(long_scores({"u": {"a": 1.0, "b": 1.0}}), TWO, ranked(["u"]), METHOD, 0.01)
    np.testing.assert_array_equal(problem.display_ticks(values) / 10, pl.Series(values).round(1).to_numpy())


def test_quantiles_from_counts_are_numpy_inverted_cdf_quantiles() -> None:
    rng = np.random.default_rng(5)
    samples = rng.integers(1, 30, size=(25, 999))
    counts = np.stack([np.bincount(row, minlength=30) for row in samples])
    got = quantiles_from_counts(counts, (0.05, 0.5, 0.95))
    np.testing.assert_array_equal(got, np.quantile(samples, (0.05, 0.5, 0.95), axis=1, method="inverted_cdf"))


# -------------------------------------------------------------------- the two-indicator case by hand
#
# Composite = 100 w for unit "x" = (a 100, b 0), w = u_a / (u_a + u_b) with u_a, u_b ~ U(0.75, 1.25)
# independent; unit "y" = (45, 45) always scores 45. P(w < t) for t <= 1/2 is the area of
# {u_a < rho u_b} (rho = t / (1 - t)) in the square, over the square's area; w is symmetric about 1/2.

LOW, HIGH = 0.75, 1.25


def share_below(t: float) -> float:
    if t > 0.5:
        return 1 - share_below(1 - t)
    rho = t / (1 - t)
    if rho <= LOW / HIGH:
        return 0.0
    area = rho / 2 * (HIGH**2 - (LOW / rho) ** 2) - LOW * (HIGH - LOW / rho)
    return area / (HIGH - LOW) ** 2


def quantile_of_w(q: float) -> float:
    low, high = 0.375, 0.625
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if share_below(middle) < q else (low, middle)
    return (low + high) / 2


@pytest.fixture(scope="module")
def two_indicator_rows() -> pl.DataFrame:
    scores = long_scores({"x": {"a": 100.0, "b": 0.0}, "y": {"a": 45.0, "b": 45.0}})
    nominal = pl.DataFrame(
        {
            "unit_code": ["x", "y"],
            "rank_group": ["all", "all"],
            "score": [50.0, 45.0],
            "rank": [1, 2],
            "tier": ["tier2", "tier3"],
        }
    )
    rows, check = rank_uncertainty(scores, TWO, nominal, METHOD, settings(), np.random.default_rng(11), TIERS)
    assert check["nominal_max_abs_difference"] < 1e-12
    return rows


def test_each_unit_type_is_simulated_with_its_own_draws() -> None:
    scores = long_scores({"x": {"a": 100.0, "b": 0.0}, "y": {"a": 45.0, "b": 45.0}})
    nominal = pl.DataFrame(
        {"unit_code": ["x", "y"], "rank_group": ["all", "all"], "score": [50.0, 45.0], "rank": [1, 2]}
    )
    each = settings(draws={"city": 400, "county": 150})
    for unit_type, draws in (("city", 400), ("county", 150)):
        rows, _ = rank_uncertainty(
            scores, TWO, nominal, METHOD, each, np.random.default_rng(11), unit_type=unit_type
        )
        assert rows["n_draws"].to_list() == [draws, draws]
    with pytest.raises(ValueError, match="differs by unit type"):
        rank_uncertainty(scores, TWO, nominal, METHOD, each, np.random.default_rng(11))


def within_sampling_error(observed: float, expected: float, draws: int = 20_000) -> bool:
    return abs(observed - expected) <= 4.5 * math.sqrt(max(expected * (1 - expected), 1e-4) / draws)


def test_two_indicator_tier_probabilities_match_the_hand_derivation(two_indicator_rows: pl.DataFrame) -> None:
    x = two_indicator_rows.filter(pl.col("unit_code") == "x").row(0, named=True)
    # Shown score >= 50.0 (二线) when 100 w >= 49.95; < 40.0 (四线) when 100 w < 39.95; 三线 between.
    expected_tier2 = 1 - share_below(0.4995)
    expected_tier4 = share_below(0.3995)
    assert 0.48 < expected_tier2 < 0.52 and 0.015 < expected_tier4 < 0.025  # what the hand formulas give
    assert within_sampling_error(x["prob_tier2"], expected_tier2)
    assert within_sampling_error(x["prob_tier4"], expected_tier4)
    assert within_sampling_error(x["prob_tier3"], 1 - expected_tier2 - expected_tier4)
    assert x["prob_tier1"] == 0 and x["prob_new_tier1"] == 0  # 100 w <= 62.5
    assert x["prob_same_tier"] == x["prob_tier2"]
    assert sum(x[f"prob_{code}"] for code in TIERS["tier_code"]) == pytest.approx(1.0)


def test_two_indicator_rank_interval_matches_the_hand_derivation(two_indicator_rows: pl.DataFrame) -> None:
    x = two_indicator_rows.filter(pl.col("unit_code") == "x").row(0, named=True)
    y = two_indicator_rows.filter(pl.col("unit_code") == "y").row(0, named=True)
    # x is first (or shares first place) when its shown score is >= 45.0, i.e. 100 w >= 44.95.
    p_x_first = 1 - share_below(0.4495)
    # 0.82: P(rank 1) >= 0.5 and P(rank 2) > 0.05, so 5th percentile 1, median 1, 95th percentile 2.
    assert 0.5 < p_x_first < 0.95
    assert (x["rank_p05"], x["median_rank"], x["rank_p95"]) == (1, 1, 2)
    # y is first when x is shown at <= 45.0 (a tie shares first place): P = 0.18 -> 1, 2, 2.
    p_y_first = share_below(0.4505)
    assert 0.05 < p_y_first < 0.5
    assert (y["rank_p05"], y["median_rank"], y["rank_p95"]) == (1, 2, 2)
    # Mean absolute shift from the published ranks (x 1st, y 2nd): P(x second) and P(y first).
    assert within_sampling_error(x["mean_abs_rank_shift"], 1 - p_x_first)
    assert within_sampling_error(y["mean_abs_rank_shift"], p_y_first)
    # Score interval of x: 100 times the 5% and 95% quantiles of w, shown to one decimal.
    assert x["score_p05"] == pytest.approx(100 * quantile_of_w(0.05), abs=0.15)
    assert x["score_p95"] == pytest.approx(100 * quantile_of_w(0.95), abs=0.15)
    assert y["score_p05"] == y["score_p95"] == 45.0


def test_reweight_coverage_rule_matches_the_pipeline() -> None:
    scores = long_scores(
        {
            "u": {"a1": 90.0},
            "v": {"a1": 90.0, "a2": 60.0, "a3": 30.0},
            "w": {f"a{i}": 10.0 * i for i in range(1, 6)},
        }
    )
    method = MethodSettings(**{**METHOD.__dict__, "missing_rule": "reweight", "min_coverage": 0.5})
    problem = ranking_problem(scores, FIVE, ranked(["u", "v", "w"]), method, 1.0)
    expected = (
        aggregate_tiers(scores, FIVE, missing="reweight", min_coverage=0.5)
        .filter(pl.col("level") == 0)
        .sort("unit_code")["score"]
    )
    assert expected.to_list()[0] is None  # u: 1 of 5 indicators
    np.testing.assert_allclose(nominal_composites(problem), expected.fill_null(np.nan).to_numpy(), atol=1e-12)


def test_geometric_draws_put_the_unit_with_a_zero_last() -> None:
    scores = long_scores({"x": {"a": 100.0, "b": 0.0}, "y": {"a": 45.0, "b": 45.0}})
    nominal = pl.DataFrame(
        {
            "unit_code": ["x", "y"],
            "rank_group": ["all", "all"],
            "score": [50.0, 45.0],
            "rank": [1, 2],
            "tier": ["tier2", "tier3"],
        }
    )
    rows, _ = rank_uncertainty(
        scores,
        TWO,
        nominal,
        METHOD,
        settings(methods=["geometric"], draws=2_000),
        np.random.default_rng(2),
        TIERS,
    )
    x = rows.filter(pl.col("unit_code") == "x").row(0, named=True)
    # a's weight w = m_a / (m_a + m_b) lies in [0.375, 0.625]; on [1, 100], 100^w * 1^(1-w) lies in
    # [10^0.75, 10^1.25] = [5.62, 17.78], back on [0, 100] in [4.67, 16.95]: always 四线 and second.
    assert (x["rank_p05"], x["rank_p95"], x["prob_tier4"]) == (2, 2, 1.0)
    assert 4.6 <= x["score_p05"] and x["score_p95"] <= 17.0


def test_without_uncertainty_every_draw_is_the_published_index() -> None:
    framework = resolve_framework(DATA, "city", 2020)
    scores = leaf_scores("city", 2020)
    composites = (
        aggregate_tiers(scores, framework.nodes).filter(pl.col("level") == 0).select("unit_code", "score")
    )
    nominal = rank_units(composites.with_columns(rank_group=pl.lit("all")), ["rank_group"], 1).with_columns(
        tier=pl.lit("tier2")
    )
    rows, _ = rank_uncertainty(
        scores,
        framework.nodes,
        nominal,
        load_settings(DATA),
        settings(weight_range=0.0, draws=50),
        np.random.default_rng(0),
        None,
    )
    assert (rows["rank_p05"] == rows["nominal_rank"]).all() and (
        rows["rank_p95"] == rows["nominal_rank"]
    ).all()
    assert (rows["mean_abs_rank_shift"] == 0).all()
    assert (rows["score_median"] - rows["nominal_score"].round(1)).abs().max() == 0


def test_seeded_and_independent_of_threads() -> None:
    scores = long_scores(
        {
            f"u{i}": {"a1": 10 + 7 * i % 90, "a2": 90 - 3 * i, "b1": 20 + i, "b21": 5 * i % 100, "b22": 50}
            for i in range(25)
        }
    )
    problem = ranking_problem(scores, NODES, ranked([f"u{i}" for i in range(25)]), METHOD, 0.01)
    nominal_ranks = np.arange(1, 26, dtype=np.int32)
    config = settings(methods=["arithmetic", "geometric"], draws=3_000)

    def run(workers: int) -> RankSummary:
        draws = settings_draws(
            problem.tree, config, config.draws_for(None), edition_rng(7, 2020, "city", "test")
        )
        return rank_distribution(problem, draws, nominal_ranks, TIERS, workers=workers)

    one, two, again = run(1), run(2), run(1)
    for field in (
        "median_rank",
        "rank_p05",
        "rank_p95",
        "mean_abs_rank_shift",
        "score_p05",
        "tier_probabilities",
    ):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
        np.testing.assert_array_equal(getattr(one, field), getattr(again, field))


def test_whole_index_method_choice_uses_one_method_per_draw() -> None:
    tree = IndexTree.from_nodes(NODES)
    draws = draw_assumptions(
        tree, 1_000, 0.25, ["arithmetic", "geometric"], np.random.default_rng(0), "whole_index"
    )
    assert (draws.geometric.all(axis=1) | ~draws.geometric.any(axis=1)).all()
    assert 0.4 < draws.geometric[:, 0].mean() < 0.6


# -------------------------------------------------------------------------------- sensitivity


def saltelli_outputs(
    model: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f(A), f(B) and f(A_B^i) for every column i, as (N, 1) and (k, N, 1) arrays."""
    mixed = []
    for factor in range(a.shape[1]):
        ab = a.copy()
        ab[:, factor] = b[:, factor]
        mixed.append(model(ab)[:, None])
    return model(a)[:, None], model(b)[:, None], np.stack(mixed)


def ishigami(x: np.ndarray) -> np.ndarray:
    return np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])


def test_sobol_estimators_on_the_ishigami_function() -> None:
    # Analytic indices (a = 7, b = 0.1, X ~ U(-pi, pi)): V1 = (1 + b pi^4 / 5)^2 / 2, V2 = a^2 / 8,
    # V13 = b^2 pi^8 (1/18 - 1/50), V = V1 + V2 + V13; S3 = 0 and X3 acts only with X1.
    a_, b_ = 7.0, 0.1
    v1, v2, v13 = (1 + b_ * math.pi**4 / 5) ** 2 / 2, a_**2 / 8, b_**2 * math.pi**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    first, total = np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v
    assert first.round(4).tolist() == [0.3139, 0.4424, 0.0] and total.round(4).tolist() == [
        0.5576,
        0.4424,
        0.2437,
    ]
    rng = np.random.default_rng(8)
    a, b = rng.uniform(-math.pi, math.pi, size=(2, 20_000, 3))
    indices = sobol_indices(*saltelli_outputs(ishigami, a, b), 300, rng)
    assert indices.variance[0] == pytest.approx(v, rel=0.03)
    np.testing.assert_array_less(np.abs(indices.first_order[:, 0] - first), 4 * indices.first_order_se[:, 0])
    np.testing.assert_array_less(
        np.abs(indices.total_effect[:, 0] - total), 4 * indices.total_effect_se[:, 0]
    )
    assert (indices.first_order_low <= indices.first_order).all() and (
        indices.first_order <= indices.first_order_high
    ).all()
    assert indices.first_order_se.max() < 0.03 and indices.total_effect_se.max() < 0.03


def product(x: np.ndarray) -> np.ndarray:
    return x[:, 0] * x[:, 1]


def test_sobol_estimators_on_a_product_of_two_factors_by_hand() -> None:
    # Y = X1 X2, X ~ U(0, 1): Var Y = E[X^2]^2 - E[X]^4 = 1/9 - 1/16 = 7/144; E[Y | X1] = X1 / 2 has
    # variance 1/48 = 3/144, so S1 = S2 = 3/7; the interaction holds the remaining 1/144: ST = 4/7.
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=(2, 20_000, 2))
    indices = sobol_indices(*saltelli_outputs(product, a, b), 300, np.random.default_rng(4))
    assert indices.variance[0] == pytest.approx(7 / 144, rel=0.03)
    np.testing.assert_array_less(np.abs(indices.first_order[:, 0] - 3 / 7), 4 * indices.first_order_se[:, 0])
    np.testing.assert_array_less(
        np.abs(indices.total_effect[:, 0] - 4 / 7), 4 * indices.total_effect_se[:, 0]
    )
    # Centred: adding a constant to the output (a rank of 1000 instead of 0) changes nothing, where the
    # uncentred S estimator would gain a noise of 1000 x mean(f(A_B^i) - f(A)) / V.
    shifted = sobol_indices(
        *saltelli_outputs(lambda x: product(x) + 1000.0, a, b), 300, np.random.default_rng(4)
    )
    # (Up to the float32 rounding of the per-draw terms, ~1e-6; the uncentred S would move by tens.)
    np.testing.assert_allclose(shifted.first_order, indices.first_order, atol=1e-5)
    np.testing.assert_allclose(shifted.total_effect, indices.total_effect, atol=1e-5)
    np.testing.assert_allclose(shifted.first_order_high, indices.first_order_high, atol=1e-4)


def test_sobol_bootstrap_intervals_cover_the_true_indices() -> None:
    # 400 independent small designs (N = 256) of Y = X1 X2: the 90% intervals must hold the analytic
    # S = 3/7 and ST = 4/7 in about 90% of them (binomial sd 1.5%), the variance's error included;
    # the percentile bootstrap runs slightly short at so small an N (0.86-0.90 measured).
    rng = np.random.default_rng(11)
    hits = np.zeros((2, 2))
    reps = 400
    for _ in range(reps):
        a, b = rng.uniform(size=(2, 256, 2))
        found = sobol_indices(*saltelli_outputs(product, a, b), 200, rng)
        hits += [
            (found.first_order_low[:, 0] <= 3 / 7) & (3 / 7 <= found.first_order_high[:, 0]),
            (found.total_effect_low[:, 0] <= 4 / 7) & (4 / 7 <= found.total_effect_high[:, 0]),
        ]
    coverage = hits / reps
    assert ((coverage > 0.83) & (coverage < 0.95)).all(), coverage


def test_a_factor_that_cannot_move_the_ranks_has_zero_total_effect() -> None:
    # Within A and within B2 the leaves are equal, so the level-2 and level-3 weights change nothing;
    # only the level-1 weights (A against B) can reorder the units.
    scores = long_scores(
        {
            "u": {"a1": 80, "a2": 80, "b1": 20, "b21": 20, "b22": 20},
            "v": {"a1": 50, "a2": 50, "b1": 50, "b21": 50, "b22": 50},
            "w": {"a1": 30, "a2": 30, "b1": 75, "b21": 75, "b22": 75},
        }
    )
    problem = ranking_problem(scores, NODES, ranked(["u", "v", "w"]), METHOD, 0.01)
    config = settings(weight_range=0.5, sensitivity_base_draws=1_500)
    names, indices = rank_sensitivity(
        problem, np.array([2, 3, 1], dtype=np.int32), config, np.random.default_rng(9)
    )
    assert names == [weights_factor(1), weights_factor(2), weights_factor(3)]
    overall = indices.total_effect[:, -1]
    assert overall[1] == 0 and overall[2] == 0  # exactly: A_B^i gives the same ranks as A
    assert indices.first_order[0, -1] == pytest.approx(1.0, abs=4 * indices.first_order_se[0, -1] + 0.02)
    assert indices.total_effect[0, -1] == pytest.approx(1.0, abs=4 * indices.total_effect_se[0, -1] + 0.02)


def test_factors_follow_the_settings() -> None:
    problem = ranking_problem(long_scores({"u": {"a": 1.0, "b": 2.0}}), TWO, ranked(["u"]), METHOD, 0.01)
    assert [f.name for f in factors(problem, settings(methods=["arithmetic", "geometric"]))] == [
        weights_factor(1),
        AGGREGATION_FACTOR,
    ]
    assert [f.name for f in factors(problem, settings(weight_range=0.0))] == []
    draws_a = draw_assumptions(problem.tree, 3, 0.25, ["arithmetic", "geometric"], np.random.default_rng(0))
    draws_b = draw_assumptions(problem.tree, 3, 0.25, ["arithmetic", "geometric"], np.random.default_rng(1))
    block = saltelli_block(draws_a, draws_b, factors(problem, settings(methods=["arithmetic", "geometric"])))
    assert block.n_draws == 3 * 4
    # A_B^weights: A's methods with B's weights.
    np.testing.assert_array_equal(block.weight_multipliers[6:9], draws_b.weight_multipliers)
    np.testing.assert_array_equal(block.geometric[6:9], draws_a.geometric)


def test_an_index_is_resolved_only_when_narrow_and_plausible() -> None:
    problem = ranking_problem(
        long_scores({"u": {"a": 1.0, "b": 2.0}, "v": {"a": 2.0, "b": 1.0}, "w": {"a": 3.0, "b": 3.0}}),
        TWO,
        ranked(["u", "v", "w"]),
        METHOD,
        0.01,
    )
    # Outputs: u (narrow, plausible), v (S = 1.2: out of range), w (interval 0.25 wide), all units (no variance).

    def row(*values: float) -> np.ndarray:  # one factor
        return np.array([values])

    indices = SobolIndices(
        first_order=row(0.30, 1.20, 0.30, np.nan),
        total_effect=row(0.40, 1.00, 0.40, np.nan),
        first_order_se=row(0.02, 0.02, 0.08, np.nan),
        total_effect_se=row(0.02, 0.02, 0.02, np.nan),
        first_order_low=row(0.25, 1.15, 0.20, np.nan),
        first_order_high=row(0.35, 1.25, 0.45, np.nan),
        total_effect_low=row(0.35, 0.95, 0.35, np.nan),
        total_effect_high=row(0.45, 1.05, 0.45, np.nan),
        variance=np.array([4.0, 4.0, 4.0, 0.0]),
    )
    rows = sensitivity_rows(problem, [weights_factor(1)], indices, settings(sensitivity_resolution=0.2))
    flags = {
        unit: (resolved, out)
        for unit, resolved, out in rows.select("unit_code", "resolved", "out_of_range").iter_rows()
    }
    assert flags == {None: (None, None), "u": (True, False), "v": (False, True), "w": (False, False)}


# -------------------------------------------------------------------------------- weight schemes

# A over three indicators, nominal 0.5 / 0.25 / 0.25.
THREE = pl.DataFrame(
    {
        "code": ["A", "a1", "a2", "a3"],
        "parent_code": [None, "A", "A", "A"],
        "level": [1, 2, 2, 2],
        "weight": [1.0, 0.5, 0.25, 0.25],
        "is_leaf": [False, True, True, True],
    },
    schema_overrides={"level": pl.Int32, "parent_code": pl.String},
)


def test_equal_and_pca_weight_schemes_by_hand() -> None:
    # a2 duplicates a1 and a3 is uncorrelated with them (centred x = -1.5 .. 1.5, z = 1, -1, -1, 1):
    # the correlation matrix [[1, 1, 0], [1, 1, 0], [0, 0, 1]] has the first eigenvector (1, 1, 0) / sqrt 2,
    # so the PCA weights are 1/2, 1/2 and 0.
    x, z = [10.0, 20.0, 30.0, 40.0], [11.0, 9.0, 9.0, 11.0]
    units = ["p", "q", "r", "s"]
    scores = long_scores({u: {"a1": x[i], "a2": x[i], "a3": z[i]} for i, u in enumerate(units)})
    problem = ranking_problem(scores, THREE, ranked(units), METHOD, 1.0, ("nominal", "equal", "pca"))
    np.testing.assert_allclose(
        scheme_weights(problem.tree, problem.leaf_scores, "pca")[1:], [0.5, 0.5, 0.0], atol=1e-12
    )
    np.testing.assert_allclose(scheme_weights(problem.tree, problem.leaf_scores, "equal")[1:], [1 / 3] * 3)
    draws = AssumptionDraws(np.ones((3, 4)), np.zeros((3, 1), dtype=bool), np.array([0, 1, 2]))
    composites = simulate_composites(problem, draws)
    np.testing.assert_allclose(composites[0], [0.75 * v + 0.25 * w for v, w in zip(x, z)])  # nominal
    np.testing.assert_allclose(composites[1], [(2 * v + w) / 3 for v, w in zip(x, z)])  # equal
    np.testing.assert_allclose(composites[2], x, atol=1e-12)  # PCA: a1 and a2 only


def test_weight_schemes_are_a_sensitivity_factor() -> None:
    config = settings(weight_schemes=["nominal", "equal"])
    problem = ranking_problem(
        long_scores({"u": {"a": 1.0, "b": 2.0}}), TWO, ranked(["u"]), METHOD, 1.0, config.weight_schemes
    )
    assert [f.name for f in factors(problem, config)] == [weights_factor(1), "weight_scheme"]
    a = settings_draws(problem.tree, config, 4, np.random.default_rng(0))
    b = settings_draws(problem.tree, config, 4, np.random.default_rng(1))
    assert a.scheme is not None and b.scheme is not None
    block = saltelli_block(a, b, factors(problem, config))
    assert block.scheme is not None
    # A_B^weights keeps A's scheme; A_B^scheme takes B's scheme with A's multipliers.
    np.testing.assert_array_equal(block.scheme[8:12], a.scheme)
    np.testing.assert_array_equal(block.scheme[12:16], b.scheme)
    np.testing.assert_array_equal(block.weight_multipliers[12:16], a.weight_multipliers)
    # One scheme draws nothing more: the random stream, and so every earlier figure, is unchanged.
    one = settings_draws(problem.tree, settings(), 4, np.random.default_rng(0))
    assert one.scheme is None and np.array_equal(one.weight_multipliers, a.weight_multipliers)
    with pytest.raises(ValueError, match="weight_schemes"):
        settings(weight_schemes=["nominal", "budget"])


def test_bootstrap_percentiles_are_numpys() -> None:
    samples = np.random.default_rng(0).normal(size=(200, 3, 7))
    samples[5, 1, 2] = np.nan
    expected = np.quantile(samples, (0.05, 0.95), axis=0)
    np.testing.assert_allclose(sensitivity._percentiles(samples, (0.05, 0.95)), expected, rtol=0, atol=1e-12)
    assert np.isnan(sensitivity._percentiles(samples, (0.05, 0.95))[:, 1, 2]).all()


def test_sobol_figures_do_not_depend_on_the_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=(2, 300, 2))
    (p_a, p_b, p_ab), (x_a, x_b, x_ab) = (
        saltelli_outputs(product, a, b),
        saltelli_outputs(lambda x: x[:, 0], a, b),
    )
    f_a, f_b, f_ab = np.c_[p_a, x_a], np.c_[p_b, x_b], np.concatenate([p_ab, x_ab], axis=2)  # two outputs
    monkeypatch.setattr(sensitivity, "BOOTSTRAP_OUTPUTS", 1)  # one chunk per output, one per thread
    one = sobol_indices(f_a, f_b, f_ab, 100, np.random.default_rng(3), workers=1)
    two = sobol_indices(f_a, f_b, f_ab, 100, np.random.default_rng(3), workers=2)
    for field in ("first_order", "total_effect", "first_order_low", "total_effect_high", "first_order_se"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
