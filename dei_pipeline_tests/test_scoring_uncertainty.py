"""The scoring choices in the analysis: the method overrides (figures by hand), the alternatives a draw
picks from in the rank-uncertainty Monte Carlo, and the sensitivity factors normalisation, treatment and
imputation."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from dei_pipeline.analysis.assumption_draws import parse_uncertainty_settings, settings_draws
from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty
from dei_pipeline.analysis.ranking_problem import ranking_problem
from dei_pipeline.analysis.sensitivity import factors, rank_sensitivity, saltelli_block, weights_factor
from dei_pipeline.config import UncertaintySettings, load_settings
from dei_pipeline.defs.analysis_assets import ANALYSIS_ASSETS, _scoring_variants
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.scoring.variants import (
    ScoringChoice,
    override_methods,
    scoring_choices,
    scoring_strides,
    variant_scores,
)
from dei_pipeline.synthetic.sample import UNIT_FILES
from dei_pipeline.warehouse import read_table
from dei_pipeline_tests.conftest import Project
from dei_pipeline_tests.sample_scores import DATA, scored_cells
from dei_pipeline_tests.test_scoring import cells, method, methods, scores
from dei_pipeline_tests.test_uncertainty import METHOD, TWO, long_scores, ranked


def settings(**changes: object) -> UncertaintySettings:
    base = {
        "draws": 4_000,
        "seed": 7,
        "weight_range": 0.25,
        "methods": ["arithmetic"],
        "method_choice": "per_level",
        "geometric_floor": 1.0,
        "sensitivity_base_draws": 1_000,
        "sensitivity_bootstrap": 100,
        "sensitivity_level": 0.9,
        "sensitivity_resolution": 0.1,
    }
    return parse_uncertainty_settings({**base, **changes})


def variant_frame(frame: pl.DataFrame, choice: ScoringChoice) -> list[float | None]:
    out = variant_scores(cells([2.0, 4.0, 6.0, 10.0]), frame, [choice])[0]
    assert out is not None
    return [None if s is None else round(s, 6) for s in out["score"]]


# ------------------------------------------------------------------------------ overrides by hand


def test_overriding_the_normalisation_gives_the_hand_computed_scores() -> None:
    declared = methods(method())  # min-max: (x - 2) / 8
    assert variant_scores(cells([2.0, 4.0, 6.0, 10.0]), declared, [ScoringChoice()]) == [None]
    # rank: average ranks 1..4 -> (r - 1) / 3
    assert variant_frame(declared, ScoringChoice(normalisation="rank")) == [0.0, 33.333333, 66.666667, 100.0]
    # z-score: mean 5.5, sd sqrt(35 / 3) = 3.415650; z = -1.024695, -0.439155, 0.146385, 1.317465,
    # each mapped to 50 + 50 z / 3
    assert variant_frame(declared, ScoringChoice(normalisation="zscore")) == [
        32.921749,
        42.680749,
        52.43975,
        71.957752,
    ]
    # the direction is kept: lower is better reverses the ranks
    lower = methods(method(direction="lower"))
    assert variant_frame(lower, ScoringChoice(normalisation="rank")) == [100.0, 66.666667, 33.333333, 0.0]
    # and the override matches scoring with that method declared
    assert variant_frame(declared, ScoringChoice(normalisation="zscore")) == scores(
        [2, 4, 6, 10], normalisation="zscore"
    )


def test_overriding_imputation_and_treatment() -> None:
    # [1, blank, 3]: no imputation leaves the blank unscored; a group mean over all units imputes 2,
    # which min-max puts half way.
    declared = methods(method())
    frame = cells([1.0, None, 3.0])
    mean = variant_scores(frame, declared, [ScoringChoice(imputation="group_mean")])[0]
    assert mean is not None and mean["score"].to_list() == [0.0, 50.0, 100.0]
    imputing = methods(method(imputation="group_median", peer_group="all"))
    none = variant_scores(frame, imputing, [ScoringChoice(imputation="none")])[0]
    assert none is not None and none["score"].to_list() == [0.0, None, 100.0]
    overridden = override_methods(
        methods(method(), method(indicator_code="y", treatment="winsorise")), ScoringChoice(treatment="none")
    )
    assert overridden["treatment"].to_list() == ["none", "none"]
    assert override_methods(declared, ScoringChoice()).equals(declared)


def test_choices_are_every_combination_normalisation_slowest() -> None:
    choices = scoring_choices(["declared", "rank"], ["declared"], ["declared", "none"])
    assert [(c.normalisation, c.imputation) for c in choices] == [
        ("declared", "declared"),
        ("declared", "none"),
        ("rank", "declared"),
        ("rank", "none"),
    ]
    assert np.array([1, 0, 1]) @ scoring_strides((2, 1, 2)) == 3


def test_bad_scoring_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="normalisations"):
        settings(normalisations=["declared", "goalposts"])
    with pytest.raises(ValueError, match="imputations"):
        settings(imputations=["declared", "declared"])
    assert load_settings(DATA).uncertainty is not None


# ------------------------------------------------------------------------------ rank uncertainty

OPPOSITE = [
    long_scores({"u": {"a": 80.0, "b": 80.0}, "v": {"a": 20.0, "b": 20.0}}),
    long_scores({"u": {"a": 20.0, "b": 20.0}, "v": {"a": 80.0, "b": 80.0}}),
]
NOMINAL = pl.DataFrame(
    {"unit_code": ["u", "v"], "rank_group": ["all", "all"], "score": [80.0, 20.0], "rank": [1, 2]}
).with_columns(pl.lit(None, pl.String).alias("tier"))


def test_nothing_varied_gives_exactly_todays_figures() -> None:
    framework = resolve_framework(DATA, "city", 2020)
    leaves = scored_cells("city", 2020).select("unit_code", "indicator_code", "score")
    nominal = (
        pl.DataFrame({"unit_code": sorted(set(leaves["unit_code"]))})
        .with_columns(pl.lit("all").alias("rank_group"))
        .with_row_index("rank", offset=1)
        .with_columns(
            pl.col("rank").cast(pl.Int64), pl.lit(50.0).alias("score"), pl.lit(None, pl.String).alias("tier")
        )
    )
    config = settings(draws=500, methods=["arithmetic", "geometric"])
    today, _ = rank_uncertainty(leaves, framework.nodes, nominal, METHOD, config, np.random.default_rng(3))
    # The declared settings, explicitly.
    declared = settings(draws=500, methods=["arithmetic", "geometric"], normalisations=["declared"])
    same, _ = rank_uncertainty(
        leaves,
        framework.nodes,
        nominal,
        METHOD,
        declared,
        np.random.default_rng(3),
        None,
        [leaves],
        (1, 1, 1),
    )
    assert same.equals(today)
    # Two alternatives with the declared scores: the scoring choice is drawn after everything else,
    # so every draw keeps its weights and methods and the figures are today's.
    twice, _ = rank_uncertainty(
        leaves,
        framework.nodes,
        nominal,
        METHOD,
        config,
        np.random.default_rng(3),
        None,
        [leaves, leaves],
        (2, 1, 1),
    )
    assert twice.equals(today)


def test_two_normalisations_in_opposite_orders_give_both_ranks_equally_often() -> None:
    config = settings(weight_range=0.0, normalisations=["declared", "rank"])
    rows, _ = rank_uncertainty(
        OPPOSITE[0], TWO, NOMINAL, METHOD, config, np.random.default_rng(5), None, OPPOSITE, (2, 1, 1)
    )
    u = rows.filter(pl.col("unit_code") == "u").row(0, named=True)
    assert (u["rank_p05"], u["rank_p95"]) == (1, 2)
    # rank 2 in about half of 4,000 draws: mean shift 0.5 within 4 standard errors (0.5 / sqrt 4000)
    assert u["mean_abs_rank_shift"] == pytest.approx(0.5, abs=4 * 0.5 / np.sqrt(4_000))
    assert (u["score_p05"], u["score_p95"]) == (20.0, 80.0)


def test_a_missing_score_of_an_alternative_is_left_out_of_its_parent() -> None:
    # Imputation 'none' leaves u's b unscored: u is then scored from a alone (weights renormalised over
    # the children present), 30 against v's 50: rank 2 in that alternative, 1 in the declared one.
    declared = long_scores({"u": {"a": 30.0, "b": 90.0}, "v": {"a": 50.0, "b": 50.0}})
    gap = long_scores({"u": {"a": 30.0, "b": None}, "v": {"a": 50.0, "b": 50.0}})
    config = settings(weight_range=0.0, imputations=["declared", "none"])
    nominal = NOMINAL.with_columns(pl.Series("score", [60.0, 50.0]))
    rows, _ = rank_uncertainty(
        declared, TWO, nominal, METHOD, config, np.random.default_rng(5), None, [declared, gap], (1, 1, 2)
    )
    u = rows.filter(pl.col("unit_code") == "u").row(0, named=True)
    assert (u["rank_p05"], u["rank_p95"], u["score_p05"], u["score_p95"]) == (1, 2, 30.0, 60.0)


# ----------------------------------------------------------------------------------- sensitivity


def test_scoring_choices_are_sensitivity_factors() -> None:
    # Normalisation swaps the two units; the two imputations give the same scores, so imputation
    # cannot move anything: total effect exactly 0. Weights between two equal indicators change nothing.
    config = settings(normalisations=["declared", "rank"], imputations=["declared", "none"])
    problem = ranking_problem(
        OPPOSITE[0],
        TWO,
        ranked(["u", "v"]),
        METHOD,
        1.0,
        ("nominal",),
        [OPPOSITE[0], OPPOSITE[0], OPPOSITE[1], OPPOSITE[1]],
        (2, 1, 2),
    )
    assert [f.name for f in factors(problem, config)] == [weights_factor(1), "normalisation", "imputation"]
    names, indices = rank_sensitivity(
        problem, np.array([1, 2], dtype=np.int32), config, np.random.default_rng(1)
    )
    overall = dict(zip(names, indices.total_effect[:, -1], strict=True))
    assert overall[weights_factor(1)] == 0 and overall["imputation"] == 0
    assert overall["normalisation"] == pytest.approx(1.0, abs=4 * indices.total_effect_se[1, -1] + 0.02)
    assert indices.first_order[1, -1] == pytest.approx(1.0, abs=4 * indices.first_order_se[1, -1] + 0.02)
    # A unit type given as scores has no alternatives, hence no such factors.
    scores_only = ranking_problem(OPPOSITE[0], TWO, ranked(["u", "v"]), METHOD, 1.0)
    assert [f.name for f in factors(scores_only, config)] == [weights_factor(1)]


def test_saltelli_block_mixes_the_scoring_columns() -> None:
    config = settings(normalisations=["declared", "rank"], treatments=["declared", "none"])
    problem = ranking_problem(
        OPPOSITE[0], TWO, ranked(["u", "v"]), METHOD, 1.0, ("nominal",), OPPOSITE * 2, (2, 2, 1)
    )
    a = settings_draws(problem.tree, config, 6, np.random.default_rng(0), problem.scoring_shape)
    b = settings_draws(problem.tree, config, 6, np.random.default_rng(1), problem.scoring_shape)
    assert a.scoring is not None and b.scoring is not None
    block = saltelli_block(a, b, factors(problem, config))
    assert block.scoring is not None
    # [A; B; A_B^weights; A_B^normalisation; A_B^treatment]
    np.testing.assert_array_equal(block.scoring[12:18], a.scoring)
    np.testing.assert_array_equal(block.scoring[18:24, 0], b.scoring[:, 0])
    np.testing.assert_array_equal(block.scoring[18:24, 1], a.scoring[:, 1])
    np.testing.assert_array_equal(block.scoring[24:30, 1], b.scoring[:, 1])
    np.testing.assert_array_equal(block.weight_multipliers[18:24], a.weight_multipliers)


def sample_peers() -> pl.DataFrame:
    """The sample cities' provinces, as sample_scores.scored_cells scores them."""
    return pl.read_csv(DATA / "registry" / UNIT_FILES["city"], infer_schema=False).select(
        pl.lit(2020, pl.Int32).alias("survey_year"),
        pl.lit("city").alias("unit_type"),
        "unit_code",
        pl.col("province_code").alias("province"),
    )


def test_the_sample_cities_under_every_normalisation() -> None:
    # The sample's 2020 cities, given as measurements, scored under their declared methods and with
    # min-max, z-score and rank imposed: the declared alternative is the published scores, and a
    # sensitivity design over them gets a normalisation factor that moves the ranks.
    scored = scored_cells("city", 2020)
    leaves = scored.filter(pl.col("status") == "scored").select("unit_code", "indicator_code", "score")
    framework = resolve_framework(DATA, "city", 2020)
    assert framework.methods is not None
    config = settings(normalisations=["declared", "minmax", "zscore", "rank"], sensitivity_base_draws=200)
    cells_2020 = scored.select("survey_year", "unit_type", "unit_code", "indicator_code", "measurement")
    frames = variant_scores(
        cells_2020,
        framework.methods.with_columns(pl.lit("city").alias("unit_type")),
        scoring_choices(config.normalisations, config.treatments, config.imputations),
        sample_peers(),
        None,
        load_settings(DATA).scoring_rule,
    )
    assert frames[0] is None and all(frame is not None for frame in frames[1:])
    variants = [leaves if frame is None else frame for frame in frames]
    units = sorted(set(leaves["unit_code"]))
    problem = ranking_problem(
        leaves, framework.nodes, ranked(units), METHOD, 1.0, ("nominal",), variants, (4, 1, 1)
    )
    np.testing.assert_array_equal(problem.variant(0).leaf_scores, problem.leaf_scores)
    assert not np.allclose(problem.variant(3).leaf_scores, problem.leaf_scores)
    names, indices = rank_sensitivity(
        problem, np.arange(1, len(units) + 1, dtype=np.int32), config, np.random.default_rng(2)
    )
    assert "normalisation" in names
    assert indices.total_effect[names.index("normalisation"), -1] > 0


# ------------------------------------------------------------------------- in the sample warehouse


def test_the_assets_alternatives_from_the_warehouse(sample: Project) -> None:
    # What the rank_uncertainty and sensitivity assets score: the 2020 cities (given as measurements)
    # under every alternative, the declared one being core.indicator_scores; the 2020 counties (given
    # as scores) and the default settings have none.
    resource = sample.resource
    method = resource.settings()
    with resource.connection() as con:
        leaves = read_table(con, "core.indicator_scores", [2020])
    cities = leaves.filter(pl.col("unit_type") == "city")
    config = settings(normalisations=["declared", "rank"], imputations=["declared", "none"])
    variants, shape = _scoring_variants(resource, 2020, "city", cities, method, config)
    assert shape == (2, 1, 2) and len(variants) == 4 and variants[0] is cities
    expected = variant_scores(
        scored_cells("city", 2020).select(
            "survey_year", "unit_type", "unit_code", "indicator_code", "measurement"
        ),
        resolve_framework(DATA, "city", 2020).methods.with_columns(pl.lit("city").alias("unit_type")),  # type: ignore[union-attr]
        [ScoringChoice(normalisation="rank")],
        sample_peers(),
        None,
        method.scoring_rule,
    )[0]
    assert expected is not None
    got = variants[2].join(expected, on=["unit_code", "indicator_code"], suffix="_expected")
    assert got.height == expected.height
    np.testing.assert_allclose(got["score"].to_numpy(), got["score_expected"].to_numpy(), atol=1e-9)
    counties = leaves.filter(pl.col("unit_type") == "county")
    assert _scoring_variants(resource, 2020, "county", counties, method, config) == ([], (1, 1, 1))
    assert _scoring_variants(resource, 2020, "city", cities, method, settings()) == ([], (1, 1, 1))


def test_the_assets_with_the_normalisation_varied(sample: Project, tmp_path: Path) -> None:
    # The sample's analysis of 2020 rerun with normalisations [declared, rank]: the cities (given as
    # measurements) get a normalisation factor and other figures; the county units (given as scores)
    # have no such factor and exactly the figures they had.
    data_dir = shutil.copytree(sample.data_dir, tmp_path / "data")
    path = data_dir / "method" / "settings.yaml"
    settings_file = yaml.safe_load(path.read_text(encoding="utf-8"))
    settings_file["uncertainty"]["normalisations"] = ["declared", "rank"]
    path.write_text(yaml.safe_dump(settings_file, allow_unicode=True, sort_keys=False), encoding="utf-8")
    copy = sample.private_copy(tmp_path)
    rerun = Project(
        WarehouseResource(data_dir=str(data_dir), warehouse_path=copy.warehouse_path),
        dg.DagsterInstance.ephemeral(),
    )
    before = {name: rerun.table(name, 2020) for name in ("marts.rank_uncertainty", "marts.sensitivity")}
    assets = [asset for asset in ANALYSIS_ASSETS if asset.key.path[-1] in ("rank_uncertainty", "sensitivity")]
    result = dg.materialize(
        assets, partition_key="2020", instance=rerun.instance, resources={"warehouse": rerun.resource}
    )
    assert result.success
    after = {name: rerun.table(name, 2020) for name in before}
    sensitivity_rows = after["marts.sensitivity"]
    city_factors = set(sensitivity_rows.filter(pl.col("unit_type") == "city")["factor"])
    county_factors = set(sensitivity_rows.filter(pl.col("unit_type") == "county")["factor"])
    assert "normalisation" in city_factors and "normalisation" not in county_factors
    for name, rows in after.items():
        county = pl.col("unit_type") == "county"
        assert rows.filter(county).equals(before[name].filter(county)), name
    cities = pl.col("unit_type") == "city"
    assert (
        not after["marts.rank_uncertainty"]
        .filter(cities)
        .equals(before["marts.rank_uncertainty"].filter(cities))
    )
