"""Rank uncertainty: a Monte Carlo over the index's assumptions, vectorised across draws.

The published ranking rests on two choices that the white paper states without a range: the weights of
the framework and the weighted arithmetic mean at every level. Each draw of the Monte Carlo

- multiplies every node's weight by a factor drawn uniformly in [1 - r, 1 + r] (r = ``weight_range``,
  0.25 by default: "within ±25% of its value") and renormalises the weights within each parent so that
  they sum to 1 again;
- draws the aggregation method of every aggregation step (level 3 into level 2, level 2 into level 1,
  level 1 into the composite) independently among ``methods`` (arithmetic or geometric mean, equally
  likely); with ``method_choice: whole_index``, one method per draw for every step.

Each unit's composite is then shown at display precision and ranked exactly as the published ranking
(ties share the best rank, county units within their kind), and each city is put in its tier with the
thresholds of ``data/method/tiers.csv``. The settings are the ``uncertainty:`` block of
``data/method/settings.yaml`` and the draws are seeded per edition and unit type, so a rerun, alone or in
a backfill, gives the same figures.

Geometric mean. ``exp(sum(w * log(x)))`` needs x > 0. As the JRC's practice has it (COINr, the JRC's
composite-indicator package, normalises indicators to [1, 100] before a geometric mean), the scores
entering a geometric mean are first rescaled linearly from [score_min, score_max] ([0, 100]) to
[geometric_floor, score_max] ([1, 100] with the default floor of 1), and each geometric mean is mapped
back to the score scale, so that arithmetic and geometric steps can follow one another and a composite
stays comparable with the published one. Since the maps are linear, the ranks are those of the whole
index computed on indicators normalised to [1, 100], as COINr would. A zero thus
counts as 1 on a scale to 100: it pulls its parent down (the mean is non-compensatory) without
dominating it as a floor of 0.01 did (a 0.01 and a 100 at equal weights gave 1.0; rescaled they give
9.1). Arithmetic means use the scores as they are.

Speed. Nothing is re-run per draw. Draws are grouped by their combination of methods (at most
2 ** levels groups) and processed in chunks of draws. Consecutive steps with the same method compose
into one weighted mean (linear in the values for arithmetic steps, in the logs for geometric ones), so
a chunk costs one product of "path weights" (draws x inputs) with the leaf scores (inputs x units) per
output node, plus one weighted sum over the previous outputs where the method changes, with the logs
or exponentials that change needs. Ranks come from counting display scores on their 10^-d grid
(``np.bincount``), not from sorting, and the per-unit distributions are streamed into count tables.
The loops left in Python run over tree nodes, method combinations and chunks, never over draws or
units; chunks are shared among threads (numpy releases the GIL in its loops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from dei_pipeline.analysis.assumption_draws import settings_draws
from dei_pipeline.analysis.draw_aggregation import nominal_composites
from dei_pipeline.analysis.rank_summaries import probability_column, rank_distribution
from dei_pipeline.analysis.ranking_problem import simulation_problem
from dei_pipeline.config import MethodSettings, UncertaintySettings

# The rank group of a city: cities are ranked all together.
ALL_UNITS_GROUP = "all"


def rank_uncertainty(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    nominal: pl.DataFrame,
    method: MethodSettings,
    settings: UncertaintySettings,
    rng: np.random.Generator,
    tiers: pl.DataFrame | None = None,
    variants: Sequence[pl.DataFrame] = (),
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
    unit_type: str | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """``marts.rank_uncertainty`` rows of one edition and unit type (without survey_year and unit_type),
    and a check of the simulation against the published index.

    ``nominal``: the published index of the ranked units: unit_code, rank_group, score, rank and, for
    cities, tier. ``tiers``: the tier table for cities, None for units without tiers (counties).
    ``variants``, ``scoring_shape``: the leaf scores under each scoring alternative (see
    :func:`ranking_problem`); none for a unit type given as scores. ``unit_type``: whose number of
    draws to take when the settings give each unit type its own.
    """
    ranked = nominal.filter(pl.col("rank").is_not_null())
    problem = simulation_problem(leaf_scores, nodes, ranked, method, settings, variants, scoring_shape)
    published = problem.in_unit_order(ranked)
    nominal_ranks = published["rank"].to_numpy().astype(np.int32)
    n_draws = settings.draws_for(unit_type)
    draws = settings_draws(problem.tree, settings, n_draws, rng, problem.scoring_shape)
    summary = rank_distribution(problem, draws, nominal_ranks, tiers)
    # The simulation's own nominal composite must be the published one: a check, not a figure.
    recomputed = nominal_composites(problem)
    check = {
        "nominal_max_abs_difference": float(
            np.max(np.abs(recomputed - published["score"].to_numpy()), initial=0.0)
        )
    }

    columns: dict[str, Any] = {
        "unit_code": list(problem.unit_codes),
        "rank_group": [problem.group_names[g] for g in problem.rank_groups],
        "n_ranked": np.bincount(problem.rank_groups, minlength=len(problem.group_names))[
            problem.rank_groups
        ].astype(np.int32),
        "nominal_score": published["score"].to_numpy(),
        "nominal_rank": nominal_ranks,
        "nominal_tier": published["tier"].to_list()
        if "tier" in published.columns
        else [None] * problem.n_units,
        "median_rank": summary.median_rank.astype(np.int32),
        "rank_p05": summary.rank_p05.astype(np.int32),
        "rank_p95": summary.rank_p95.astype(np.int32),
        "mean_abs_rank_shift": summary.mean_abs_rank_shift,
        "score_p05": summary.score_p05,
        "score_median": summary.score_median,
        "score_p95": summary.score_p95,
    }
    frame = pl.DataFrame(columns, schema_overrides={"nominal_tier": pl.String})
    if summary.tier_probabilities is not None:
        frame = frame.with_columns(
            pl.Series(probability_column(code), summary.tier_probabilities[:, i])
            for i, code in enumerate(summary.tier_codes)
        )
        same_tier = (
            pl.coalesce(
                [
                    pl.when(pl.col("nominal_tier") == code).then(pl.col(probability_column(code)))
                    for code in summary.tier_codes
                ]
            )
            if summary.tier_codes
            else pl.lit(None, pl.Float64)
        )
        frame = frame.with_columns(same_tier.alias("prob_same_tier"))
    else:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("prob_same_tier"))
    return frame.with_columns(pl.lit(n_draws, pl.Int32).alias("n_draws")), check
