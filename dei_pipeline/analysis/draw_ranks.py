"""The Monte Carlo of ranks: every draw's composites shown at display precision and ranked as the
published ranking, by counting display scores on their 10^-d grid (``np.bincount``), not by sorting."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dei_pipeline.analysis.assumption_draws import AssumptionDraws
from dei_pipeline.analysis.draw_aggregation import SIMULATION_DTYPE, Chunk, chunks_of, composite_chunks
from dei_pipeline.analysis.ranking_problem import SUPPORTED_TIE_METHODS, RankingProblem
from dei_pipeline.analysis.weight_draws import draw_weights


def rank_display_ticks(
    ticks: np.ndarray, groups: np.ndarray, n_groups: int, tick_min: int, n_ticks: int, tie_method: str = "min"
) -> np.ndarray:
    """(draws, units) ranks of display scores given as grid integers (score x 10^d), by descending score
    within each group, in every row at once, with ranking.rank_expr's tie rules: 'min' (ties share
    the best rank), 'max' (the worst) or 'dense'."""
    slots = np.clip(ticks - tick_min, 0, n_ticks - 1).astype(np.int32)
    return _rank_slots(slots, groups, n_groups, n_ticks, tie_method)


def _bin_offsets(groups: np.ndarray, n_groups: int, n_ticks: int, n_rows: int) -> np.ndarray:
    """(rows, units) offset of each (row, unit)'s count table: the row's block plus the unit's group."""
    return (groups * n_ticks)[None, :] + (np.arange(n_rows) * (n_groups * n_ticks))[:, None]


def _rank_slots(
    slots: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    n_ticks: int,
    tie_method: str,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Ranks from grid positions: read off per-row counts of each display score (linear in the number
    of units, no sort). ``offsets``: _bin_offsets of this shape, when the caller keeps them."""
    n_rows, n_units = slots.shape
    # Bin of (row, group, display score): the offset of the row's group table plus the slot.
    bins = (slots + (_bin_offsets(groups, n_groups, n_ticks, n_rows) if offsets is None else offsets)).ravel()
    counts = np.bincount(bins, minlength=n_rows * n_groups * n_ticks).reshape(n_rows, n_groups, n_ticks)
    # Forward cumulative counts (contiguous: several times faster than a reversed cumsum).
    at_or_below = np.cumsum(counts, axis=-1)
    above = at_or_below[..., -1:] - at_or_below  # units of the group shown strictly higher
    table: np.ndarray
    if tie_method == "min":
        table = above + 1
    elif tie_method == "max":
        table = above + counts
    elif tie_method == "dense":
        occupied = np.cumsum(counts > 0, axis=-1, dtype=np.int64)
        table = occupied[..., -1:] - occupied + 1
    else:
        raise ValueError(f"tie method {tie_method!r} not among {list(SUPPORTED_TIE_METHODS)}")
    return table.astype(np.int32).ravel()[bins].reshape(n_rows, n_units)


@dataclass(frozen=True)
class SimulatedRanks:
    """Every draw's display score (as a grid integer, score x 10^d) and rank of every unit."""

    display_ticks: np.ndarray  # (draws, units) int32
    ranks: np.ndarray  # (draws, units) int32


def rank_chunks(
    problem: RankingProblem, weights: np.ndarray, chunks: Sequence[Chunk]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(draw indices, display-grid positions, ranks) chunk by chunk."""
    n_groups = len(problem.group_names)
    offsets: dict[int, np.ndarray] = {}  # per chunk height: few distinct ones, reused
    for index, composites in composite_chunks(problem, weights, chunks, SIMULATION_DTYPE):
        slots = problem.display_ticks(composites)
        slots -= problem.tick_min
        np.clip(
            slots, 0, problem.n_ticks - 1, out=slots
        )  # float32 rounding may step a hair outside the range
        if slots.shape[0] not in offsets:
            offsets[slots.shape[0]] = _bin_offsets(
                problem.rank_groups, n_groups, problem.n_ticks, slots.shape[0]
            )
        yield (
            index,
            slots,
            _rank_slots(
                slots,
                problem.rank_groups,
                n_groups,
                problem.n_ticks,
                problem.tie_method,
                offsets[slots.shape[0]],
            ),
        )


def simulate_ranks(problem: RankingProblem, draws: AssumptionDraws) -> SimulatedRanks:
    """Every draw's display score and rank, kept in memory (for a moderate number of draws)."""
    ticks = np.empty((draws.n_draws, problem.n_units), dtype=np.int32)
    ranks = np.empty((draws.n_draws, problem.n_units), dtype=np.int32)
    weights = draw_weights(problem, draws)
    for index, slots, chunk_ranks in rank_chunks(problem, weights, chunks_of(problem, draws)):
        ticks[index], ranks[index] = slots + problem.tick_min, chunk_ranks
    return SimulatedRanks(ticks, ranks)
