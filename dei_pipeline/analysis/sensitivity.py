"""Which assumption moves the ranks most: first-order and total-effect Sobol indices.

The uncertain inputs of the Monte Carlo (``uncertainty``) form a few factors, each a group of inputs:
the weights of each level (``weights_level_1``, ``weights_level_2``, ...: the multipliers of that
level's nodes) and the aggregation method (``aggregation_method``: the method of every aggregation
step). For an output Y of the simulation (a unit's rank, or the mean absolute rank shift of all units
against the published ranking), the variance of Y is decomposed over the factors:

- first-order index S_i: the share of Var(Y) that factor i explains on its own;
- total-effect index ST_i: the share it explains with all its interactions (ST_i >= S_i, and
  ST_i = 0 means the factor does not matter at all).

Estimation follows Saltelli et al. (2010): two independent samples A and B of N draws (N =
``sensitivity_base_draws``) and, for every factor i, the sample A_B^i equal to A except for factor
i's inputs, taken from B; N x (k + 2) evaluations for k factors, streamed in blocks. Estimators:
S_i = mean(f(B) * (f(A_B^i) - f(A))) / V (Saltelli 2010) and ST_i = mean((f(A) - f(A_B^i))^2) / (2V)
(Jansen 1999), V the variance of f over A and B. Both are Monte Carlo estimates: a small S_i can come
out slightly negative, and each comes with the standard error of its numerator's mean (divided by V).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from dei_pipeline.analysis.uncertainty import (
    AssumptionDraws, RankingProblem, UncertaintySettings, settings_draws, simulate_ranks,
)

AGGREGATION_FACTOR = "aggregation_method"
OVERALL_TARGET = "mean_abs_rank_shift"
UNIT_TARGET = "rank"
# Rank evaluations per block of base draws (draws x units), so that memory stays bounded.
BLOCK_ELEMENTS = 1 << 22


def weights_factor(level: int) -> str:
    return f"weights_level_{level}"


@dataclass(frozen=True)
class Factor:
    """A group of the Monte Carlo's inputs that is varied together."""

    name: str
    multiplier_columns: np.ndarray  # node positions whose weight multipliers belong to the factor
    method_columns: np.ndarray  # aggregation steps whose method belongs to the factor


def factors(problem: RankingProblem, settings: UncertaintySettings) -> list[Factor]:
    """The factors that can move anything: the weights of each level that has siblings to trade weight
    with (a single child always gets weight 1), and the method when more than one is drawn."""
    tree = problem.tree
    found: list[Factor] = []
    if settings.weight_range > 0:
        siblings = tree.sibling_membership.sum(axis=0)[tree.sibling_group]
        for level in range(1, tree.depth + 1):
            columns = np.flatnonzero((tree.node_levels == level) & (siblings > 1))
            if columns.size:
                found.append(Factor(weights_factor(level), columns, np.array([], dtype=np.intp)))
    if len(settings.methods) > 1:
        found.append(Factor(AGGREGATION_FACTOR, np.array([], dtype=np.intp), np.arange(tree.n_steps)))
    return found


def saltelli_block(a: AssumptionDraws, b: AssumptionDraws, factor_list: Sequence[Factor]) -> AssumptionDraws:
    """The draws [A; B; A_B^1; ...; A_B^k] of one block of base draws."""
    multipliers, geometric = [a.weight_multipliers, b.weight_multipliers], [a.geometric, b.geometric]
    for factor in factor_list:
        mixed_multipliers, mixed_geometric = a.weight_multipliers.copy(), a.geometric.copy()
        mixed_multipliers[:, factor.multiplier_columns] = b.weight_multipliers[:, factor.multiplier_columns]
        mixed_geometric[:, factor.method_columns] = b.geometric[:, factor.method_columns]
        multipliers.append(mixed_multipliers)
        geometric.append(mixed_geometric)
    return AssumptionDraws(np.concatenate(multipliers), np.concatenate(geometric))


@dataclass
class SobolSums:
    """Running sums over base draws of every term of the estimators, per output column."""

    n: int
    sum_ab: np.ndarray  # (outputs,) sum of f(A) and f(B)
    sumsq_ab: np.ndarray  # (outputs,) sum of their squares
    first: np.ndarray  # (factors, outputs) sum of f(B) (f(A_B^i) - f(A))
    first_sq: np.ndarray  # sum of its squares
    total: np.ndarray  # (factors, outputs) sum of (f(A) - f(A_B^i))^2
    total_sq: np.ndarray

    @classmethod
    def of(cls, f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray) -> SobolSums:
        """``f_a``, ``f_b``: (n, outputs); ``f_ab``: (factors, n, outputs)."""
        first_terms = f_b[None] * (f_ab - f_a[None])
        total_terms = (f_a[None] - f_ab) ** 2
        return cls(
            n=f_a.shape[0],
            sum_ab=f_a.sum(axis=0) + f_b.sum(axis=0),
            sumsq_ab=(f_a**2).sum(axis=0) + (f_b**2).sum(axis=0),
            first=first_terms.sum(axis=1),
            first_sq=(first_terms**2).sum(axis=1),
            total=total_terms.sum(axis=1),
            total_sq=(total_terms**2).sum(axis=1),
        )

    def __add__(self, other: SobolSums) -> SobolSums:
        return SobolSums(
            self.n + other.n, self.sum_ab + other.sum_ab, self.sumsq_ab + other.sumsq_ab, self.first + other.first,
            self.first_sq + other.first_sq, self.total + other.total, self.total_sq + other.total_sq,
        )


@dataclass(frozen=True)
class SobolIndices:
    """Per factor and output: the indices and their standard errors; null (NaN) where Var(Y) = 0."""

    first_order: np.ndarray  # (factors, outputs)
    total_effect: np.ndarray
    first_order_se: np.ndarray
    total_effect_se: np.ndarray
    variance: np.ndarray  # (outputs,)


def sobol_indices(sums: SobolSums) -> SobolIndices:
    n = sums.n
    mean = sums.sum_ab / (2 * n)
    variance = (sums.sumsq_ab - 2 * n * mean**2) / (2 * n - 1)
    # Var(Y) = 0: the output never changes, nothing to apportion (and rounding noise must not divide).
    scale = np.where(variance > 1e-12 * np.maximum(1.0, mean**2), variance, np.nan)

    def mean_and_se(total: np.ndarray, total_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        term_mean = total / n
        term_var = np.maximum(total_sq / n - term_mean**2, 0.0) * n / max(n - 1, 1)
        return term_mean, np.sqrt(term_var / n)

    first_mean, first_se = mean_and_se(sums.first, sums.first_sq)
    total_mean, total_se = mean_and_se(sums.total, sums.total_sq)
    return SobolIndices(
        first_order=first_mean / scale,
        total_effect=total_mean / (2 * scale),
        first_order_se=first_se / scale,
        total_effect_se=total_se / (2 * scale),
        variance=variance,
    )


def rank_sensitivity(
    problem: RankingProblem,
    nominal_ranks: np.ndarray,
    settings: UncertaintySettings,
    rng: np.random.Generator,
    workers: int | None = None,
) -> tuple[list[str], SobolIndices]:
    """Sobol indices of every unit's rank and of the mean absolute rank shift (the last output
    column), over the factors of :func:`factors`. Blocks of base draws run on ``workers`` threads and
    their sums are added in block order, so the figures do not depend on the number of threads."""
    factor_list = factors(problem, settings)
    n = settings.sensitivity_base_draws
    n_outputs = problem.n_units + 1
    if not factor_list:
        empty = np.empty((0, n_outputs))
        return [], SobolIndices(empty, empty, empty, empty, np.zeros(n_outputs))
    a = settings_draws(problem.tree, settings, n, rng)
    b = settings_draws(problem.tree, settings, n, rng)
    block = max(1, BLOCK_ELEMENTS // ((len(factor_list) + 2) * max(problem.n_units, 1)))
    starts = list(range(0, n, block))

    def run(start: int) -> SobolSums:
        rows = np.arange(start, min(start + block, n))
        ranks = simulate_ranks(problem, saltelli_block(a.take(rows), b.take(rows), factor_list)).ranks.astype(np.float64)
        shift = np.abs(ranks - nominal_ranks[None, :]).mean(axis=1, keepdims=True)
        outputs = np.concatenate([ranks, shift], axis=1).reshape(len(factor_list) + 2, rows.size, n_outputs)
        return SobolSums.of(outputs[0], outputs[1], outputs[2:])

    workers = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    if workers == 1:
        parts = [run(start) for start in starts]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, starts))
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return [factor.name for factor in factor_list], sobol_indices(total)


def sensitivity_rows(problem: RankingProblem, factor_names: Sequence[str], indices: SobolIndices, settings: UncertaintySettings) -> pl.DataFrame:
    """``marts.sensitivity`` rows of one edition and unit type (without survey_year and unit_type): per
    target (each unit's rank, and the mean absolute rank shift) and factor, the indices and their
    standard errors, and the factors ordered by total effect (influence_rank 1 = moves it most)."""
    n_factors = len(factor_names)
    if n_factors == 0:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    targets = [UNIT_TARGET] * problem.n_units + [OVERALL_TARGET]
    units: list[str | None] = [*problem.unit_codes, None]
    n_outputs = len(targets)

    rows = pl.DataFrame({
        "target": np.tile(targets, n_factors),
        "unit_code": units * n_factors,
        "factor": np.repeat(list(factor_names), n_outputs),
        "first_order": indices.first_order.reshape(-1),
        "total_effect": indices.total_effect.reshape(-1),
        "first_order_se": indices.first_order_se.reshape(-1),
        "total_effect_se": indices.total_effect_se.reshape(-1),
        "output_variance": np.tile(indices.variance, n_factors),
    }, schema_overrides={"unit_code": pl.String}).with_columns(pl.col(pl.Float64).fill_nan(None))
    return (
        rows.with_columns(
            pl.when(pl.col("total_effect").is_not_null())
            .then(pl.col("total_effect").rank(method="ordinal", descending=True).over("target", "unit_code"))
            .cast(pl.Int32)
            .alias("influence_rank"),
            pl.lit(settings.sensitivity_base_draws, pl.Int32).alias("n_base_draws"),
            pl.lit(settings.sensitivity_base_draws * (n_factors + 2), pl.Int32).alias("n_evaluations"),
        )
        .select(list(_ROW_SCHEMA))
        .sort("target", "unit_code", "factor", nulls_last=False)
    )


_ROW_SCHEMA: dict[str, pl.DataType] = {
    "target": pl.String(), "unit_code": pl.String(), "factor": pl.String(), "first_order": pl.Float64(),
    "total_effect": pl.Float64(), "first_order_se": pl.Float64(), "total_effect_se": pl.Float64(),
    "output_variance": pl.Float64(), "influence_rank": pl.Int32(), "n_base_draws": pl.Int32(), "n_evaluations": pl.Int32(),
}
