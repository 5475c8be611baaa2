"""Per unit, the distribution of its rank, display score and tier over the draws, streamed into count
tables (memory proportional to units x (ranks + display scores), whatever the number of draws), and the
quantiles, mean rank shift and tier probabilities read off them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from dei_pipeline.analysis.assumption_draws import AssumptionDraws
from dei_pipeline.analysis.draw_aggregation import SIMULATION_DTYPE, Chunk, chunks_of
from dei_pipeline.analysis.draw_ranks import rank_chunks
from dei_pipeline.analysis.index_tree import method_segments
from dei_pipeline.analysis.ranking_problem import RankingProblem
from dei_pipeline.analysis.weight_draws import draw_weights
from dei_pipeline.tiers import tier_expr

RANK_QUANTILES: tuple[float, float, float] = (0.05, 0.5, 0.95)
# Unit-draws gathered before their ranks and scores are counted, and bins per np.bincount call.
BATCH_ELEMENTS = 1 << 22
BINCOUNT_BINS = 1 << 16


def quantiles_from_counts(counts: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(quantiles, rows): per row of a (rows, values) count table, the smallest value k with
    F(k) >= q. This is numpy's 'inverted_cdf' quantile, so an interval bound is a value actually drawn."""
    cumulative = counts.cumsum(axis=1)
    totals = cumulative[:, -1:]
    # q * n rounded to 9 decimals so that 0.05 * 10000 is 500, not 500.00000000000006.
    thresholds = np.ceil(np.round(np.asarray(quantiles)[:, None, None] * totals[None], 9))
    return np.argmax(cumulative[None] >= thresholds, axis=2)


def tier_lookup(tiers: pl.DataFrame, problem: RankingProblem) -> tuple[tuple[str, ...], np.ndarray]:
    """Tier codes in tier order and the tier of every point of the display grid (index len(codes) where
    no tier applies), computed with tiers.tier_expr on the grid's display scores."""
    codes = tuple(tiers.sort("tier_order")["tier_code"].to_list())
    grid = pl.DataFrame(
        {"score": (np.arange(problem.n_ticks) + problem.tick_min) / 10.0**problem.display_decimals}
    )
    tier_of_grid = grid.select(tier_expr(pl.col("score"), tiers, problem.display_decimals).alias("tier"))[
        "tier"
    ]
    index = tier_of_grid.replace_strict(
        list(codes), list(range(len(codes))), default=len(codes), return_dtype=pl.Int64
    )
    return codes, index.to_numpy()


@dataclass(frozen=True)
class RankSummary:
    """Per unit: the distribution of its rank, display score and tier over the draws."""

    n_draws: int
    median_rank: np.ndarray
    rank_p05: np.ndarray
    rank_p95: np.ndarray
    mean_abs_rank_shift: np.ndarray
    score_p05: np.ndarray
    score_median: np.ndarray
    score_p95: np.ndarray
    tier_codes: tuple[str, ...]
    tier_probabilities: np.ndarray | None  # (units, tiers)


def _add_counts(counts: np.ndarray, values: np.ndarray) -> None:
    """counts[u, v] += the number of rows of ``values`` (draws, units) where unit u has value v.

    By blocks of units, so that each ``np.bincount`` works on a small table that stays in cache, and
    its output is small (a big fresh array costs more in page faults than the counting itself)."""
    n_units, n_values = counts.shape
    block = max(1, BINCOUNT_BINS // n_values)
    for start in range(0, n_units, block):
        stop = min(start + block, n_units)
        flat = (values[:, start:stop] + (np.arange(stop - start, dtype=np.intp) * n_values)[None, :]).ravel()
        counts[start:stop] += np.bincount(flat, minlength=(stop - start) * n_values).reshape(
            stop - start, n_values
        )


class _DistributionCounter:
    """Per-unit counts of ranks and display scores, added draw batch by draw batch. Results wait in a
    batch until there are at least as many draws as count bins per unit, so that counting costs about
    one pass over the results, not over the count tables."""

    def __init__(self, problem: RankingProblem, n_draws: int) -> None:
        n_units = problem.n_units
        max_rank = int(np.bincount(problem.rank_groups).max(initial=0))
        self.rank_counts = np.zeros((n_units, max_rank + 1), dtype=np.int64)
        self.score_counts = np.zeros((n_units, problem.n_ticks), dtype=np.int64)  # tiers are read off these
        widest = max(max_rank, problem.n_ticks) + 1
        small = np.int16 if widest < np.iinfo(np.int16).max else np.int32
        self.batch_draws = int(min(n_draws, max(BATCH_ELEMENTS // max(n_units, 1), 2 * widest)))
        self.batch_ranks = np.empty((self.batch_draws, n_units), dtype=small)
        self.batch_slots = np.empty((self.batch_draws, n_units), dtype=small)
        self.filled = 0

    def add(self, slots: np.ndarray, ranks: np.ndarray) -> None:
        done = 0
        while done < slots.shape[0]:  # a chunk may straddle two batches
            take = min(slots.shape[0] - done, self.batch_draws - self.filled)
            rows = slice(self.filled, self.filled + take)
            self.batch_ranks[rows] = ranks[done : done + take]
            self.batch_slots[rows] = slots[done : done + take]
            self.filled, done = self.filled + take, done + take
            if self.filled == self.batch_draws:
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        _add_counts(self.rank_counts, self.batch_ranks[: self.filled])
        _add_counts(self.score_counts, self.batch_slots[: self.filled])
        self.filled = 0

    def merge(self, other: _DistributionCounter) -> None:
        other.flush()
        self.rank_counts += other.rank_counts
        self.score_counts += other.score_counts


def rank_distribution(
    problem: RankingProblem,
    draws: AssumptionDraws,
    nominal_ranks: np.ndarray,
    tiers: pl.DataFrame | None,
    workers: int | None = None,
) -> RankSummary:
    """Simulate the draws and summarise each unit's rank, display score and tier over them.

    Streaming: memory stays proportional to units x (ranks + display scores), whatever the number of
    draws. The chunks are shared among ``workers`` threads (default: one per CPU): numpy releases the
    GIL in its loops, and each thread counts into its own tables, summed at the end, so the figures do
    not depend on the number of threads."""
    tier_codes: tuple[str, ...] = ()
    tier_of_slot = None
    if tiers is not None:
        tier_codes, tier_of_slot = tier_lookup(tiers, problem)
    weights = draw_weights(problem, draws)
    chunks = chunks_of(problem, draws)
    _prepare(problem, chunks)
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))

    def run(share: Sequence[Chunk]) -> _DistributionCounter:
        counter = _DistributionCounter(problem, draws.n_draws)
        for _, slots, ranks in rank_chunks(problem, weights, share):
            counter.add(slots, ranks)
        counter.flush()
        return counter

    if workers == 1:
        counter = run(chunks)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            counter, *others = pool.map(run, [chunks[start::workers] for start in range(workers)])
        for other in others:
            counter.merge(other)
    n_units = problem.n_units
    rank_quantiles = np.empty((len(RANK_QUANTILES), n_units), dtype=np.int64)
    score_slots = np.empty((len(RANK_QUANTILES), n_units), dtype=np.int64)
    shift_sum = np.empty(n_units)
    # By blocks of units, so the temporaries over the count tables stay small.
    block = max(1, BINCOUNT_BINS // counter.rank_counts.shape[1])
    for start in range(0, n_units, block):
        rows = slice(start, min(start + block, n_units))
        rank_counts = counter.rank_counts[rows]
        rank_quantiles[:, rows] = quantiles_from_counts(rank_counts, RANK_QUANTILES)
        score_slots[:, rows] = quantiles_from_counts(counter.score_counts[rows], RANK_QUANTILES)
        # Mean |rank - published rank|, read off the rank counts.
        shift_sum[rows] = (
            rank_counts * np.abs(np.arange(rank_counts.shape[1])[None, :] - nominal_ranks[rows, None])
        ).sum(axis=1)
    scores = (score_slots + problem.tick_min) / 10.0**problem.display_decimals
    return RankSummary(
        n_draws=draws.n_draws,
        median_rank=rank_quantiles[1],
        rank_p05=rank_quantiles[0],
        rank_p95=rank_quantiles[2],
        mean_abs_rank_shift=shift_sum / draws.n_draws,
        score_p05=scores[0],
        score_median=scores[1],
        score_p95=scores[2],
        tier_codes=tier_codes,
        tier_probabilities=None
        if tier_of_slot is None
        else _tier_counts(counter.score_counts, tier_of_slot, len(tier_codes)) / draws.n_draws,
    )


def _tier_counts(score_counts: np.ndarray, tier_of_slot: np.ndarray, n_tiers: int) -> np.ndarray:
    """(units, tiers) draws in each tier: the display-score counts summed over each tier's scores."""
    membership = np.zeros((tier_of_slot.size, n_tiers + 1), dtype=np.int64)  # last column: no tier applies
    membership[np.arange(tier_of_slot.size), tier_of_slot] = 1
    return (score_counts @ membership)[:, :n_tiers]


def _prepare(problem: RankingProblem, chunks: Sequence[Chunk]) -> None:
    """Build every scoring alternative, segment and leaf block the chunks need before threads share the
    problem."""
    for methods, variant in {(methods, variant) for methods, variant, _ in chunks}:
        scored = problem.variant(variant)
        for first, last in method_segments(methods, merge=scored.complete):
            for index, _ in enumerate(scored.segment(first, last).leaf_groups):
                scored.leaf_block(first, last, index, SIMULATION_DTYPE)
        _ = scored.has_scores_below_min


def probability_column(tier_code: str) -> str:
    return f"prob_{tier_code}"
