"""The composites of the draws: every draw's weights and aggregation methods applied to the leaf scores,
vectorised across draws. Draws are grouped by their combination of methods and processed in chunks;
consecutive steps with the same method compose into one weighted mean (linear in the values for
arithmetic steps, in the logs for geometric ones), so a chunk costs one product of path weights
(draws x inputs) with the leaf scores (inputs x units) per output node."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from dei_pipeline.aggregation import covered
from dei_pipeline.analysis.assumption_draws import AssumptionDraws
from dei_pipeline.analysis.index_tree import Segment, method_segments
from dei_pipeline.analysis.ranking_problem import RankingProblem
from dei_pipeline.analysis.weight_draws import draw_weights

# Units x draws per chunk: small enough that a chunk's (parents, draws, units) arrays stay in the CPU
# cache (allocating and faulting in large fresh arrays costs more than the arithmetic on them), large
# enough that numpy's per-call overhead does not matter.
CHUNK_ELEMENTS = 1 << 17
# The draws are evaluated in float32: numpy's float32 exp and log are vectorised (several times faster
# than float64 without AVX-512). Against float64, a composite differs by 1e-5 points on average and
# below 2e-4 at most (measured on the sample), so about 1 unit-draw in 10,000 is shown 0.1 off: far
# below the Monte Carlo error. The nominal check runs in float64.
SIMULATION_DTYPE: type[np.floating] = np.float32


def _composite_block(
    problem: RankingProblem, weights: np.ndarray, geometric_steps: Sequence[bool], dtype: type[np.floating]
) -> np.ndarray:
    """(draws, units) composites of a chunk of draws that share their methods; ``weights`` is the
    chunk's (draws, nodes) renormalised weight matrix."""
    n_draws = weights.shape[0]
    # A last column of ones pads the path tables (the paths of upper leaves are shorter).
    padded = np.concatenate([weights, np.ones((n_draws, 1))], axis=1).astype(dtype)
    below: np.ndarray | None = None  # the previous segment's (outputs, draws, units)
    below_in_logs = False
    # With missing scores (rule 'reweight') every parent renormalises over the children present, which
    # does not compose across levels: then every step is a segment of its own.
    for first, last in method_segments(geometric_steps, merge=problem.complete):
        segment = problem.segment(first, last)
        geometric = bool(geometric_steps[first])
        path_weights = padded[:, segment.paths].prod(axis=2)
        children = None
        if segment.inner_groups:
            assert below is not None
            # Consecutive geometric steps stay in rescaled logs: undoing the rescaling after one step
            # and redoing it before the next cancel out.
            if geometric:
                children = below if below_in_logs else problem.rescaled_logs(below)
            else:
                children = problem.from_rescaled_logs(below) if below_in_logs else below
        if problem.complete:
            below = _segment_outputs(problem, first, last, segment, path_weights, children, geometric, dtype)
        else:
            below = _segment_outputs_with_missing(
                problem, first, last, segment, path_weights, children, geometric, dtype
            )
        below_in_logs = geometric
    assert below is not None
    return problem.from_rescaled_logs(below[0]) if below_in_logs else below[0]


def _segment_outputs(
    problem: RankingProblem,
    first: int,
    last: int,
    segment: Segment,
    path_weights: np.ndarray,
    children: np.ndarray | None,
    geometric: bool,
    dtype: type[np.floating],
) -> np.ndarray:
    """(outputs, draws, units): each output the path-weighted sum of its inputs (in log space when
    geometric). einsum rather than matmul: the products are small, and BLAS threads fight for the
    cores with everything else; einsum runs on one thread at a steady speed."""
    total = np.empty((len(segment.output_codes), path_weights.shape[0], problem.n_units), dtype=dtype)
    written: set[int] = set()
    for index, group in enumerate(segment.leaf_groups):
        block = problem.leaf_block(first, last, index, dtype)
        np.einsum(
            "ck,ku->cu",
            path_weights[:, group.inputs],
            block.logs if geometric else block.values,
            out=total[group.output],
        )
        written.add(group.output)
    for group in segment.inner_groups:
        assert children is not None
        rows = group.source_slice if group.source_slice is not None else group.sources
        if group.output in written:
            total[group.output] += np.einsum("cr,rcu->cu", path_weights[:, group.inputs], children[rows])
        else:
            np.einsum("cr,rcu->cu", path_weights[:, group.inputs], children[rows], out=total[group.output])
    return total


def _segment_outputs_with_missing(
    problem: RankingProblem,
    first: int,
    last: int,
    segment: Segment,
    path_weights: np.ndarray,
    children: np.ndarray | None,
    geometric: bool,
    dtype: type[np.floating],
) -> np.ndarray:
    """As _segment_outputs for a one-step segment, where a parent is the weighted mean of the children
    that have a score (rule 'reweight'), and has none when no child has one or fewer than
    ``min_coverage`` of its children have one (as :func:`dei_pipeline.aggregation.covered`)."""
    shape = (len(segment.output_codes), path_weights.shape[0], problem.n_units)
    total, present_weight, present = (
        np.zeros(shape, dtype=dtype),
        np.zeros(shape, dtype=dtype),
        np.zeros(shape, dtype=dtype),
    )
    n_children = np.zeros(len(segment.output_codes))
    for index, group in enumerate(segment.leaf_groups):
        block = problem.leaf_block(first, last, index, dtype)
        group_weights = path_weights[:, group.inputs]
        total[group.output] += np.einsum(
            "ck,ku->cu", group_weights, block.logs if geometric else block.values
        )
        assert block.present is not None
        present_weight[group.output] += np.einsum("ck,ku->cu", group_weights, block.present)
        present[group.output] += block.present.sum(axis=0)
        n_children[group.output] += len(group.inputs)
    for group in segment.inner_groups:
        assert children is not None
        for input_row, source_row in zip(group.inputs, group.sources):
            weight = path_weights[:, input_row, None]
            known = ~np.isnan(children[source_row])
            total[group.output] += np.where(known, children[source_row], 0.0) * weight
            present_weight[group.output] += known * weight
            present[group.output] += known
        n_children[group.output] += len(group.inputs)
    enough = (present_weight > 0) & covered(present, n_children[:, None, None], problem.min_coverage)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(enough, total / present_weight, np.nan).astype(dtype)


# A chunk of draws that share their aggregation methods and scoring alternative: (methods, alternative
# index, draw indices).
Chunk = tuple[tuple[bool, ...], int, np.ndarray]


def _method_chunks(
    geometric: np.ndarray, chunk_draws: int, variants: np.ndarray | None = None, n_variants: int = 1
) -> Iterator[Chunk]:
    """Draw indices grouped by method combination and scoring alternative (``variants``: (draws,) index,
    None: all the first), in chunks of at most ``chunk_draws``."""
    combination = geometric.astype(np.int64) @ (1 << np.arange(geometric.shape[1], dtype=np.int64))
    if variants is not None:
        combination = combination * n_variants + variants
    order = np.argsort(combination, kind="stable")
    boundaries = np.flatnonzero(np.diff(combination[order])) + 1
    for same_methods in np.split(order, boundaries):
        if same_methods.size == 0:
            continue
        methods = tuple(bool(g) for g in geometric[same_methods[0]])
        variant = 0 if variants is None else int(variants[same_methods[0]])
        for start in range(0, same_methods.size, chunk_draws):
            yield methods, variant, same_methods[start : start + chunk_draws]


def _chunk_draws(n_units: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(n_units, 1))


def composite_chunks(
    problem: RankingProblem,
    weights: np.ndarray,
    chunks: Sequence[Chunk],
    dtype: type[np.floating],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(draw indices, (chunk draws, units) composites) chunk by chunk; ``weights``: (draws, nodes).
    A composite that a scoring alternative leaves missing counts as the scale's minimum."""
    for methods, variant, index in chunks:
        scored = problem.variant(variant)
        composites = _composite_block(scored, weights[index], methods, dtype)
        if not scored.complete:
            np.nan_to_num(composites, copy=False, nan=problem.score_min)
        yield index, composites


def chunks_of(problem: RankingProblem, draws: AssumptionDraws) -> list[Chunk]:
    variants = None if draws.scoring is None else draws.scoring @ problem.scoring_strides
    return list(
        _method_chunks(
            draws.geometric, _chunk_draws(problem.n_units), variants, max(1, len(problem.variant_scores))
        )
    )


def simulate_composites(
    problem: RankingProblem, draws: AssumptionDraws, dtype: type[np.floating] = np.float64
) -> np.ndarray:
    """(draws, units) composite scores at full precision."""
    composites = np.empty((draws.n_draws, problem.n_units))
    weights = draw_weights(problem, draws)
    for index, chunk in composite_chunks(problem, weights, chunks_of(problem, draws), dtype):
        composites[index] = chunk
    return composites


def nominal_composites(problem: RankingProblem) -> np.ndarray:
    """(units,) composites under the published assumptions (nominal weights, arithmetic means), in float64."""
    tree = problem.tree
    return _composite_block(problem, tree.nominal_weights[None, :], (False,) * tree.n_steps, np.float64)[0]
