"""Leave one out: how much each node of the framework moves the ranking (COINr's ``remove_elements``).

For every node with at least one sibling (an indicator, or a sub-index at any level), the index is
recomputed without it, its siblings' weights renormalised to sum to 1 within their parent, everything
else as published (weights, arithmetic means, display precision, ties); each unit's rank is then
compared with its rank in the full index. A node whose removal moves almost nothing adds little to the
ranking whatever its weight; one whose removal reshuffles it carries the ranking. An only child is not
removed: its parent would go with it.

Each removal is one "draw" of the rank-uncertainty simulation with the node's weight multiplier set to
0 (renormalising within the parent is what the simulation does to every draw), so all removals of an
edition are computed together, vectorised, and the baseline is the same computation with no node
removed (the published ranking, up to float32 rounding of a tie far below the display precision).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dei_pipeline.analysis.assumption_draws import AssumptionDraws
from dei_pipeline.analysis.draw_ranks import simulate_ranks
from dei_pipeline.analysis.ranking_problem import RankingProblem


def removable_nodes(problem: RankingProblem) -> np.ndarray:
    """Positions of the nodes that have at least one sibling."""
    tree = problem.tree
    siblings = tree.sibling_membership.sum(axis=0)[tree.sibling_group]
    return np.flatnonzero(siblings > 1)


def removal_impact(problem: RankingProblem) -> pl.DataFrame:
    """``marts.removal_impact`` rows of one edition and unit type (without survey_year and unit_type):
    per removable node, the rank changes of the units when it is left out: mean and largest absolute
    change, the share of units that move, and the unit that moves most (the first by code on a tie)."""
    tree = problem.tree
    removed = removable_nodes(problem)
    schema = {
        "node_code": pl.String,
        "level": pl.Int32,
        "mean_abs_rank_change": pl.Float64,
        "max_abs_rank_change": pl.Int32,
        "share_units_moved": pl.Float64,
        "most_moved_unit": pl.String,
        "most_moved_rank_change": pl.Int32,
        "n_units": pl.Int32,
    }
    if removed.size == 0 or problem.n_units == 0:
        return pl.DataFrame(schema=schema)
    # Row 0: nothing removed; row i: node removed[i - 1] with weight 0.
    multipliers = np.ones((removed.size + 1, tree.n_nodes))
    multipliers[np.arange(1, removed.size + 1), removed] = 0.0
    ranks = simulate_ranks(
        problem, AssumptionDraws(multipliers, np.zeros((removed.size + 1, tree.n_steps), dtype=bool))
    ).ranks
    # Positive: the unit moves up without the node (its rank number falls), as rank_change elsewhere.
    change = ranks[:1] - ranks[1:]  # (removed nodes, units)
    moved = np.abs(change)
    most = moved.argmax(axis=1)  # units are in code order: the first by code on a tie
    return (
        pl.DataFrame(
            {
                "node_code": [tree.node_codes[i] for i in removed],
                "level": tree.node_levels[removed].astype(np.int32),
                "mean_abs_rank_change": moved.mean(axis=1),
                "max_abs_rank_change": moved.max(axis=1).astype(np.int32),
                "share_units_moved": (moved > 0).mean(axis=1),
                "most_moved_unit": [problem.unit_codes[u] for u in most],
                "most_moved_rank_change": change[np.arange(removed.size), most].astype(np.int32),
                "n_units": np.full(removed.size, problem.n_units, dtype=np.int32),
            },
            schema=schema,
        )
        .with_columns(
            # Nothing moves: no unit to name.
            pl.when(pl.col("max_abs_rank_change") > 0).then(pl.col(c)).alias(c)
            for c in ("most_moved_unit", "most_moved_rank_change")
        )
        .sort("level", "node_code")
    )
