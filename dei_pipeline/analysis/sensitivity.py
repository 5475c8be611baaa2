"""Which assumption moves the ranks most: first-order and total-effect Sobol indices.

The uncertain inputs of the Monte Carlo (``rank_uncertainty``) form a few factors, each a group of inputs:
the weights of each level (``weights_level_1``, ``weights_level_2``, ...: the multipliers of that
level's nodes), the aggregation method (``aggregation_method``: the method of every aggregation
step), when several are drawn, the weight scheme (``weight_scheme``: nominal, equal or PCA) and, for a
unit type given as measurements, each scoring choice the settings vary (``normalisation``,
``treatment``, ``imputation``: which alternative score matrix a draw uses). For an output Y of the simulation (a unit's rank, or the mean absolute rank shift of all units
against the published ranking), the variance of Y is decomposed over the factors:

- first-order index S_i: the share of Var(Y) that factor i explains on its own;
- total-effect index ST_i: the share it explains with all its interactions (ST_i >= S_i, and
  ST_i = 0 means the factor does not matter at all).

Estimation follows Saltelli et al. (2010): two independent samples A and B of N draws (N =
``sensitivity_base_draws``) and, for every factor i, the sample A_B^i equal to A except for factor
i's inputs, taken from B; N x (k + 2) evaluations for k factors, streamed in blocks. The outputs are
centred on their mean over A and B (g = f - mean), then S_i = mean(g(B) (g(A_B^i) - g(A))) / V
(Saltelli 2010) and ST_i = mean((g(A) - g(A_B^i))^2) / (2V) (Jansen 1999), V the variance of f over A
and B. Centring matters for a rank: uncentred, S_i carries the noise of mean(f) x mean(f(A_B^i) - f(A)),
and a rank of 70 with a variance of 4 turns that into standard errors near 0.5. Each index comes with a
bootstrap interval (resampling the N base draws, the centre and V recomputed in every resample, as
COINr's ``Nboot`` does for its indices but COINr holds V fixed) and a flag saying whether it is resolved:
its interval is at most ``sensitivity_resolution`` wide and it lies in [-0.05, 1.05].

Choice of N (``sensitivity_base_draws``: 500): each index known to about ±0.1 (90% interval at most
0.2 wide). At N = 500 on the national data set's 20 editions, 99.4% of the per-unit indices are
resolved and the all-unit indices' widest interval is 0.20 (99.7% and 0.14 at N = 1000, for 1.6 times
the CPU time; docs/analysis.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from dei_pipeline.analysis.assumption_draws import AssumptionDraws, settings_draws
from dei_pipeline.analysis.draw_ranks import simulate_ranks
from dei_pipeline.analysis.ranking_problem import RankingProblem, simulation_problem
from dei_pipeline.config import MethodSettings, UncertaintySettings

AGGREGATION_FACTOR = "aggregation_method"
SCHEME_FACTOR = "weight_scheme"
# The scoring choices, in the order of the columns of AssumptionDraws.scoring (unit types given as
# measurements only, and only those the settings vary).
SCORING_FACTORS: tuple[str, ...] = ("normalisation", "treatment", "imputation")
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
    scheme: bool = False  # the weight scheme (nominal, equal, PCA) a draw starts from
    scoring_columns: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.intp))


def factors(problem: RankingProblem, settings: UncertaintySettings) -> list[Factor]:
    """The factors that can move anything: the weights of each level that has siblings to trade weight
    with (a single child always gets weight 1), the method when more than one is drawn, the weight
    scheme when several are, and each scoring choice (normalisation, treatment, imputation) with more
    than one alternative for a unit type given as measurements."""
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
    if len(settings.weight_schemes) > 1:
        found.append(
            Factor(SCHEME_FACTOR, np.array([], dtype=np.intp), np.array([], dtype=np.intp), scheme=True)
        )
    for column, (name, size) in enumerate(zip(SCORING_FACTORS, problem.scoring_shape, strict=True)):
        if size > 1:
            none = np.array([], dtype=np.intp)
            found.append(Factor(name, none, none, scoring_columns=np.array([column], dtype=np.intp)))
    return found


def saltelli_block(a: AssumptionDraws, b: AssumptionDraws, factor_list: Sequence[Factor]) -> AssumptionDraws:
    """The draws [A; B; A_B^1; ...; A_B^k] of one block of base draws."""
    multipliers, geometric = [a.weight_multipliers, b.weight_multipliers], [a.geometric, b.geometric]
    schemes = None if a.scheme is None or b.scheme is None else [a.scheme, b.scheme]
    scoring = None if a.scoring is None or b.scoring is None else [a.scoring, b.scoring]
    for factor in factor_list:
        mixed_multipliers, mixed_geometric = a.weight_multipliers.copy(), a.geometric.copy()
        mixed_multipliers[:, factor.multiplier_columns] = b.weight_multipliers[:, factor.multiplier_columns]
        mixed_geometric[:, factor.method_columns] = b.geometric[:, factor.method_columns]
        multipliers.append(mixed_multipliers)
        geometric.append(mixed_geometric)
        if schemes is not None:
            schemes.append(schemes[1] if factor.scheme else schemes[0])  # b's scheme, or a's
        if scoring is not None:
            mixed_scoring = a.scoring.copy()  # type: ignore[union-attr]
            mixed_scoring[:, factor.scoring_columns] = scoring[1][:, factor.scoring_columns]
            scoring.append(mixed_scoring)
    return AssumptionDraws(
        np.concatenate(multipliers),
        np.concatenate(geometric),
        None if schemes is None else np.concatenate(schemes),
        None if scoring is None else np.concatenate(scoring),
    )


@dataclass(frozen=True)
class SobolIndices:
    """Per factor and output: the indices, their bootstrap standard errors and confidence bounds; null
    (NaN) where Var(Y) = 0, and NaN bounds where some resample has no variance."""

    first_order: np.ndarray  # (factors, outputs)
    total_effect: np.ndarray
    first_order_se: np.ndarray
    total_effect_se: np.ndarray
    first_order_low: np.ndarray
    first_order_high: np.ndarray
    total_effect_low: np.ndarray
    total_effect_high: np.ndarray
    variance: np.ndarray  # (outputs,)

    @classmethod
    def empty(cls, n_outputs: int) -> SobolIndices:
        none = np.empty((0, n_outputs))
        return cls(none, none, none, none, none, none, none, none, np.zeros(n_outputs))


# Outputs per bootstrap pass: the per-draw terms of that many outputs, (1 + 2k) x N of them each, are
# resampled together, so memory stays bounded on a national problem.
BOOTSTRAP_OUTPUTS = 256


def _estimates(means: np.ndarray, n_factors: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S, ST and V from the means (over base draws, plain or resampled) of the per-draw terms stacked
    by :func:`_terms`: ``means`` (..., 1 + 2k, outputs). V is the variance over A and B (2N values)
    around the centre of the whole sample: in a resample the centre moves by O(1/sqrt N), which changes
    V and the numerators by O(1/N) only, so it is not recomputed (it would cost 2k + 1 more terms)."""
    k = n_factors
    variance = means[..., 0, :] / 2 * (2 * n) / (2 * n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(variance > 0, variance, np.nan)[..., None, :]
        return means[..., 1 : 1 + k, :] / scale, means[..., 1 + k :, :] / 2 / scale, variance


def _terms(g_a: np.ndarray, g_b: np.ndarray, g_ab: np.ndarray) -> np.ndarray:
    """(N, 1 + 2k, outputs) float32: g_A^2 + g_B^2, then per factor g_B d_i and d_i^2, with
    d_i = g(A_B^i) - g(A). Every estimator is a function of their means, so a bootstrap resample of the
    base draws is one weighted mean of them. Written into one array, with one temporary (d)."""
    n, k = g_a.shape[0], g_ab.shape[0]
    terms = np.empty((n, 1 + 2 * k, g_a.shape[1]), dtype=np.float32)
    np.square(g_a, out=terms[:, 0])
    terms[:, 0] += np.square(g_b)
    d = np.subtract(np.moveaxis(g_ab, 0, 1), g_a[:, None], dtype=np.float32)
    np.multiply(g_b[:, None], d, out=terms[:, 1 : 1 + k])
    np.square(d, out=terms[:, 1 + k :])
    return terms


def _percentiles(samples: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """np.quantile(samples, quantiles, axis=0) (its default linear interpolation) by partial sorts of
    contiguous rows, several times faster on many short columns; NaN where a column has a NaN."""
    rows = samples.reshape(samples.shape[0], -1).T.copy()  # (columns, resamples)
    positions = [(len(samples) - 1) * q for q in quantiles]
    below = [int(np.floor(h)) for h in positions]
    kth = sorted({i for lo in below for i in (lo, min(lo + 1, len(samples) - 1))})
    ordered = np.partition(rows, kth, axis=1)
    found = np.stack(
        [
            ordered[:, lo] + (h - lo) * (ordered[:, min(lo + 1, len(samples) - 1)] - ordered[:, lo])
            for h, lo in zip(positions, below)
        ]
    )
    found[:, np.isnan(rows).any(axis=1)] = np.nan
    return found.reshape(len(quantiles), *samples.shape[1:])


def sobol_indices(
    f_a: np.ndarray,
    f_b: np.ndarray,
    f_ab: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.90,
    workers: int | None = None,
) -> SobolIndices:
    """Sobol indices from the outputs of a Saltelli design: ``f_a``, ``f_b`` (N, outputs) and ``f_ab``
    (factors, N, outputs). The outputs are first centred on their mean over A and B; then
    S_i = mean(g_B (g_{A_B^i} - g_A)) / V (Saltelli 2010 on centred outputs) and
    ST_i = mean((g_A - g_{A_B^i})^2) / 2V (Jansen 1999). Centring leaves ST unchanged and S unbiased, but
    removes from S the noise of mean(f) x mean(f_{A_B^i} - f_A), which dominates when the output is far
    from zero (a rank of 70 with a variance of 4). Confidence bounds: the ``level`` percentile interval
    of ``n_boot`` bootstrap resamples of the N base draws, each recomputing V and both indices (so the
    error of V is included); the standard errors are the resamples' standard deviation."""
    n, n_outputs = f_a.shape
    k = f_ab.shape[0]
    centre = (f_a.sum(axis=0, dtype=np.float64) + f_b.sum(axis=0, dtype=np.float64)) / (2 * n)
    # Bootstrap weights: how often each base draw is taken in each resample, as one (B, N) matrix, so a
    # resample of every term's mean is one matrix product.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float32) / n
    tails = ((1 - level) / 2, (1 + level) / 2)

    def chunk(start: int) -> tuple[np.ndarray, ...]:
        cols = slice(start, min(start + BOOTSTRAP_OUTPUTS, n_outputs))
        # Centred outputs are small numbers (deviations of a rank), so float32 terms and products lose
        # nothing that matters next to the Monte Carlo error, at twice the speed of float64.
        c = centre[cols].astype(np.float32)
        terms = _terms(f_a[:, cols] - c, f_b[:, cols] - c, f_ab[:, :, cols] - c)
        first, total, variance = _estimates(terms.mean(axis=0, dtype=np.float64), k, n)
        resampled = (counts @ terms.reshape(n, -1)).astype(np.float64).reshape(n_boot, 1 + 2 * k, -1)
        boot_first, boot_total, _ = _estimates(resampled, k, n)
        first_bounds = _percentiles(boot_first, tails)
        total_bounds = _percentiles(boot_total, tails)
        return (
            first,
            total,
            boot_first.std(axis=0, ddof=1),
            boot_total.std(axis=0, ddof=1),
            first_bounds[0],
            first_bounds[1],
            total_bounds[0],
            total_bounds[1],
            variance,
        )

    # Chunks of outputs on threads (numpy releases the GIL); the resamples are drawn above, once, so
    # the figures do not depend on the number of threads.
    starts = list(range(0, n_outputs, BOOTSTRAP_OUTPUTS))
    workers = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    if workers == 1:
        parts = [chunk(start) for start in starts]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(chunk, starts))
    stacked = [np.concatenate(column, axis=-1) for column in zip(*parts, strict=True)]
    return SobolIndices(*stacked)


def rank_sensitivity(
    problem: RankingProblem,
    nominal_ranks: np.ndarray,
    settings: UncertaintySettings,
    rng: np.random.Generator,
    workers: int | None = None,
) -> tuple[list[str], SobolIndices]:
    """Sobol indices of every unit's rank and of the mean absolute rank shift (the last output
    column), over the factors of :func:`factors`. Blocks of base draws run on ``workers`` threads; each
    writes its own rows of the outputs, so the figures do not depend on the number of threads."""
    factor_list = factors(problem, settings)
    n = settings.sensitivity_base_draws
    n_outputs = problem.n_units + 1
    if not factor_list:
        return [], SobolIndices.empty(n_outputs)
    a = settings_draws(problem.tree, settings, n, rng, problem.scoring_shape)
    b = settings_draws(problem.tree, settings, n, rng, problem.scoring_shape)
    for variant in range(len(problem.variant_scores)):  # built before threads share the problem
        problem.variant(variant)
    k = len(factor_list)
    block = max(1, BLOCK_ELEMENTS // ((k + 2) * max(problem.n_units, 1)))
    starts = list(range(0, n, block))
    # [A; B; A_B^1; ...; A_B^k] x base draws x outputs. Ranks are small integers: float32 is exact.
    outputs = np.empty((k + 2, n, n_outputs), dtype=np.float32)

    def run(start: int) -> None:
        rows = np.arange(start, min(start + block, n))
        ranks = simulate_ranks(problem, saltelli_block(a.take(rows), b.take(rows), factor_list)).ranks.astype(
            np.float32
        )
        shift = np.abs(ranks - nominal_ranks[None, :]).mean(axis=1, keepdims=True)
        outputs[:, rows] = np.concatenate([ranks, shift], axis=1).reshape(k + 2, rows.size, n_outputs)

    workers = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    if workers == 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    indices = sobol_indices(
        outputs[0],
        outputs[1],
        outputs[2:],
        settings.sensitivity_bootstrap,
        rng,
        settings.sensitivity_level,
        workers,
    )
    return [factor.name for factor in factor_list], indices


# An index outside this range is not a share of variance: noise, never published without a flag.
PLAUSIBLE_RANGE: tuple[float, float] = (-0.05, 1.05)


def sensitivity_rows(
    problem: RankingProblem, factor_names: Sequence[str], indices: SobolIndices, settings: UncertaintySettings
) -> pl.DataFrame:
    """``marts.sensitivity`` rows of one edition and unit type (without survey_year and unit_type): per
    target (each unit's rank, and the mean absolute rank shift) and factor, the indices with their
    bootstrap errors and bounds, whether they are resolved, and the factors ordered by total effect
    (influence_rank 1 = moves it most)."""
    n_factors = len(factor_names)
    if n_factors == 0:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    targets = [UNIT_TARGET] * problem.n_units + [OVERALL_TARGET]
    units: list[str | None] = [*problem.unit_codes, None]
    n_outputs = len(targets)
    low, high = PLAUSIBLE_RANGE

    def outside(column: str) -> pl.Expr:
        return ~pl.col(column).is_between(low, high)

    def narrow(index: str) -> pl.Expr:
        return (pl.col(f"{index}_ci_high") - pl.col(f"{index}_ci_low")) <= settings.sensitivity_resolution

    rows = pl.DataFrame(
        {
            "target": np.tile(targets, n_factors),
            "unit_code": units * n_factors,
            "factor": np.repeat(list(factor_names), n_outputs),
            "first_order": indices.first_order.reshape(-1),
            "total_effect": indices.total_effect.reshape(-1),
            "first_order_se": indices.first_order_se.reshape(-1),
            "total_effect_se": indices.total_effect_se.reshape(-1),
            "first_order_ci_low": indices.first_order_low.reshape(-1),
            "first_order_ci_high": indices.first_order_high.reshape(-1),
            "total_effect_ci_low": indices.total_effect_low.reshape(-1),
            "total_effect_ci_high": indices.total_effect_high.reshape(-1),
            "output_variance": np.tile(indices.variance, n_factors),
        },
        schema_overrides={"unit_code": pl.String},
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    return (
        rows.with_columns(
            pl.when(pl.col("total_effect").is_not_null())
            .then(pl.col("total_effect").rank(method="ordinal", descending=True).over("target", "unit_code"))
            .cast(pl.Int32)
            .alias("influence_rank"),
            (outside("first_order") | outside("total_effect")).alias("out_of_range"),
            # Null bounds (a resample without variance) leave the comparison null: not resolved.
            pl.when(pl.col("total_effect").is_not_null())
            .then(
                (
                    ~outside("first_order")
                    & ~outside("total_effect")
                    & narrow("first_order")
                    & narrow("total_effect")
                ).fill_null(False)
            )
            .alias("resolved"),
            pl.lit(settings.sensitivity_base_draws, pl.Int32).alias("n_base_draws"),
            pl.lit(settings.sensitivity_base_draws * (n_factors + 2), pl.Int32).alias("n_evaluations"),
            pl.lit(settings.sensitivity_bootstrap, pl.Int32).alias("n_bootstrap"),
        )
        .select(list(_ROW_SCHEMA))
        .sort("target", "unit_code", "factor", nulls_last=False)
    )


def edition_sensitivity(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    ranked: pl.DataFrame,
    method: MethodSettings,
    settings: UncertaintySettings,
    rng: np.random.Generator,
    variants: Sequence[pl.DataFrame] = (),
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
) -> pl.DataFrame:
    """``marts.sensitivity`` rows of one edition and unit type (without survey_year and unit_type).
    ``ranked``: the ranked units of the published index (unit_code, rank_group, rank); the other
    arguments as :func:`dei_pipeline.analysis.rank_uncertainty.rank_uncertainty` takes them."""
    problem = simulation_problem(leaf_scores, nodes, ranked, method, settings, variants, scoring_shape)
    names, indices = rank_sensitivity(
        problem, problem.in_unit_order(ranked)["rank"].to_numpy(), settings, rng
    )
    return sensitivity_rows(problem, names, indices, settings)


_ROW_SCHEMA = pl.Schema(
    {
        "target": pl.String(),
        "unit_code": pl.String(),
        "factor": pl.String(),
        "first_order": pl.Float64(),
        "total_effect": pl.Float64(),
        "first_order_se": pl.Float64(),
        "total_effect_se": pl.Float64(),
        "first_order_ci_low": pl.Float64(),
        "first_order_ci_high": pl.Float64(),
        "total_effect_ci_low": pl.Float64(),
        "total_effect_ci_high": pl.Float64(),
        "resolved": pl.Boolean(),
        "out_of_range": pl.Boolean(),
        "output_variance": pl.Float64(),
        "influence_rank": pl.Int32(),
        "n_base_draws": pl.Int32(),
        "n_evaluations": pl.Int32(),
        "n_bootstrap": pl.Int32(),
    }
)
