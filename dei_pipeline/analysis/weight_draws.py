"""The weights of the draws: the weight schemes a draw can start from (the framework's, equal, PCA) and
the nominal weights times each draw's multipliers, renormalised within every parent."""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

import numpy as np

from dei_pipeline.analysis.assumption_draws import AssumptionDraws
from dei_pipeline.analysis.audit import first_component
from dei_pipeline.analysis.index_tree import IndexTree
from dei_pipeline.config import WeightScheme

if TYPE_CHECKING:
    from dei_pipeline.analysis.ranking_problem import RankingProblem

# every parent, or each group's PCA weights (squared loadings of its first principal component).
NOMINAL, EQUAL, PCA = "nominal", "equal", "pca"
WEIGHT_SCHEMES: tuple[str, ...] = get_args(WeightScheme)


def draw_weights(problem: RankingProblem, draws: AssumptionDraws) -> np.ndarray:
    """(draws, nodes) weights of the draws: each draw's scheme (as a ratio to the nominal weights, which
    renormalising makes a change of base weights), times its multipliers, renormalised."""
    multipliers = (
        draws.weight_multipliers
        if draws.scheme is None
        else draws.weight_multipliers * problem.scheme_ratios[draws.scheme]
    )
    return perturbed_weights(problem.tree, multipliers)


def perturbed_weights(tree: IndexTree, multipliers: np.ndarray) -> np.ndarray:
    """(draws, nodes) weights: nominal times multiplier, renormalised to sum to 1 within every parent."""
    raw = multipliers * tree.nominal_weights
    sums = raw @ tree.sibling_membership
    return raw / sums[:, tree.sibling_group]


def node_scores(tree: IndexTree, leaf_scores: np.ndarray) -> np.ndarray:
    """(units, nodes) scores of every node under the nominal weights and arithmetic means (NaN where a
    child is missing), bottom-up: the inputs of the PCA weights."""
    scores = np.full((leaf_scores.shape[0], tree.n_nodes), np.nan)
    scores[:, [tree.node_codes.index(code) for code in tree.leaf_codes]] = leaf_scores
    for level in range(tree.depth - 1, 0, -1):  # a loop over the tree's inner nodes, deepest first
        for parent in tree.inner_nodes_at(level):
            children = np.flatnonzero(tree.node_parents == parent)
            scores[:, parent] = scores[:, children] @ tree.nominal_weights[children]
    return scores


def scheme_weights(tree: IndexTree, leaf_scores: np.ndarray, scheme: str) -> np.ndarray:
    """(nodes,) weights within each parent under a scheme: 'nominal' (the framework's), 'equal' (1 / the
    number of siblings) or 'pca' (per group of siblings, the squared loadings of the first principal
    component of their scores over the units that have them all, as marts.audit.pca_weight; a group
    without a PCA, e.g. an only child or a child without variance, keeps its nominal weights)."""
    if scheme == NOMINAL:
        return tree.nominal_weights.copy()
    n_siblings = tree.sibling_membership.sum(axis=0)[tree.sibling_group]
    if scheme == EQUAL:
        return 1.0 / n_siblings
    weights = tree.nominal_weights.copy()
    scores = node_scores(tree, leaf_scores)
    for group in range(tree.sibling_membership.shape[1]):  # a loop over the tree's groups of siblings
        members = np.flatnonzero(tree.sibling_group == group)
        data = scores[:, members]
        found = first_component(data[~np.isnan(data).any(axis=1)]) if members.size > 1 else None
        if found is not None:
            weights[members] = found[1]
    return weights
