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

import math
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE, covered
from dei_pipeline.analysis.audit import first_component
from dei_pipeline.config import (
    AggregationMethod,
    MethodChoice,
    MethodSettings,
    SettingsError,
    UncertaintySettings,
    WeightScheme,
    load_settings,
    settings_path,
    validated,
)
from dei_pipeline.tiers import tier_expr

ARITHMETIC, GEOMETRIC = "arithmetic", "geometric"
AGGREGATION_METHODS: tuple[str, ...] = get_args(AggregationMethod)
PER_LEVEL, WHOLE_INDEX = "per_level", "whole_index"
# Weight schemes a draw can start from before its multipliers: the framework's, equal weights within
# every parent, or each group's PCA weights (squared loadings of its first principal component).
NOMINAL, EQUAL, PCA = "nominal", "equal", "pca"
WEIGHT_SCHEMES: tuple[str, ...] = get_args(WeightScheme)
METHOD_CHOICES: tuple[str, ...] = get_args(MethodChoice)
SUPPORTED_TIE_METHODS: tuple[str, ...] = ("min", "max", "dense")
RANK_QUANTILES: tuple[float, float, float] = (0.05, 0.5, 0.95)
# Units x draws per chunk: small enough that a chunk's (parents, draws, units) arrays stay in the CPU
# cache (allocating and faulting in large fresh arrays costs more than the arithmetic on them), large
# enough that numpy's per-call overhead does not matter.
CHUNK_ELEMENTS = 1 << 17
# Unit-draws gathered before their ranks and scores are counted, and bins per np.bincount call.
BATCH_ELEMENTS = 1 << 22
BINCOUNT_BINS = 1 << 16
# The draws are evaluated in float32: numpy's float32 exp and log are vectorised (several times faster
# than float64 without AVX-512). Against float64, a composite differs by 1e-5 points on average and
# below 2e-4 at most (measured on the sample), so about 1 unit-draw in 10,000 is shown 0.1 off: far
# below the Monte Carlo error. The nominal check runs in float64.
SIMULATION_DTYPE: type[np.floating] = np.float32
# The rank group of a city: cities are ranked all together.
ALL_UNITS_GROUP = "all"


# ------------------------------------------------------------------------------------- settings


def load_uncertainty_settings(data_dir: Path) -> UncertaintySettings:
    """The ``uncertainty:`` block of ``<data_dir>/method/settings.yaml``, validated with the rest of the file."""
    settings = load_settings(data_dir).uncertainty
    if settings is None:
        raise SettingsError(
            f"{settings_path(data_dir)}: no 'uncertainty:' block (draws, seed, weight_range, methods, geometric_floor, sensitivity_*)"
        )
    return settings


def parse_uncertainty_settings(block: Mapping[str, Any], where: str = "uncertainty") -> UncertaintySettings:
    """An ``uncertainty:`` block given as a mapping (tests, benchmarks), validated as the file's is."""
    return validated(UncertaintySettings, block, where)


def edition_rng(seed: int, survey_year: int, unit_type: str, purpose: str) -> np.random.Generator:
    """The random stream of one edition, unit type and analysis: independent of which other editions
    are computed in the same run, so a partition's figures do not depend on the backfill it is in."""
    return np.random.default_rng(
        [seed, survey_year, zlib.crc32(unit_type.encode()), zlib.crc32(purpose.encode())]
    )


# ------------------------------------------------------------------------------- the tree as arrays


@dataclass(frozen=True)
class IndexTree:
    """A framework tree as index arrays, for vectorised aggregation (any depth, leaves at any level)."""

    node_codes: tuple[str, ...]
    node_levels: np.ndarray  # (nodes,) level of each node, 1 = top
    node_parents: (
        np.ndarray
    )  # (nodes,) position of the parent, -1 for a level-1 node (child of the composite)
    node_is_leaf: np.ndarray  # (nodes,) bool
    nominal_weights: np.ndarray  # (nodes,) weight within the parent
    sibling_membership: np.ndarray  # (nodes, parents) 1 where the node is a child of the parent
    sibling_group: np.ndarray  # (nodes,) column of the node's parent in sibling_membership
    leaf_codes: tuple[str, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.node_codes)

    @property
    def depth(self) -> int:
        return int(self.node_levels.max())

    @property
    def n_steps(self) -> int:
        """Aggregation steps: level ``depth`` into ``depth - 1``, ..., level 1 into the composite."""
        return self.depth

    @classmethod
    def from_nodes(cls, nodes: pl.DataFrame) -> IndexTree:
        """Build from a framework's node table (code, parent_code, level, weight, is_leaf)."""
        codes: list[str] = nodes["code"].to_list()
        position = {code: i for i, code in enumerate(codes)}
        parents = [position[p] if p else -1 for p in nodes["parent_code"].to_list()]
        is_leaf = np.array(nodes["is_leaf"].to_list(), dtype=bool)
        groups = [-1, *np.flatnonzero(~is_leaf).tolist()]  # the composite, then every inner node
        group_of = {node: column for column, node in enumerate(groups)}
        sibling_group = np.array([group_of[p] for p in parents], dtype=np.intp)
        membership = np.zeros((len(codes), len(groups)))
        membership[np.arange(len(codes)), sibling_group] = 1.0
        return cls(
            node_codes=tuple(codes),
            node_levels=np.array(nodes["level"].to_list(), dtype=np.int64),
            node_parents=np.array(parents, dtype=np.intp),
            node_is_leaf=is_leaf,
            nominal_weights=np.array(nodes["weight"].to_list(), dtype=np.float64),
            sibling_membership=membership,
            sibling_group=sibling_group,
            leaf_codes=tuple(code for code, leaf in zip(codes, is_leaf) if leaf),
        )

    def inner_nodes_at(self, level: int) -> list[int]:
        """Positions of the nodes that have children at a level; level 0 is the composite (-1)."""
        if level == 0:
            return [-1]
        return np.flatnonzero((self.node_levels == level) & ~self.node_is_leaf).tolist()

    def ancestor_at(self, node: int, level: int) -> int:
        while node != -1 and self.node_levels[node] > level:
            node = int(self.node_parents[node])
        return node


@dataclass(frozen=True)
class InputGroup:
    """The inputs of one output node of a segment."""

    output: int  # row of the output among the segment's outputs
    inputs: np.ndarray  # rows of the inputs in the segment's path table
    sources: np.ndarray  # leaf columns (leaf inputs) or rows of the previous segment's output (inner inputs)
    source_slice: slice | None = None  # the same rows as a slice when consecutive (a view, not a copy)


@dataclass(frozen=True)
class Segment:
    """Consecutive aggregation steps that use the same method, applied as one weighted mean.

    A run of arithmetic steps is linear in the values, a run of geometric steps linear in the logs, so
    the run maps its inputs to its outputs with "path weights": the product of the (renormalised)
    weights from an input up to, not including, its output. The inputs are the leaves of the levels
    the run spans and, above the first run, the previous run's outputs.
    """

    output_codes: tuple[str, ...]
    paths: (
        np.ndarray
    )  # (inputs, longest path) node positions from an input upwards; padded with n_nodes (weight 1)
    leaf_groups: tuple[InputGroup, ...]
    inner_groups: tuple[InputGroup, ...]


def build_segment(tree: IndexTree, first_step: int, last_step: int) -> Segment:
    """The segment of steps ``first_step..last_step`` (step 0 aggregates the deepest level)."""
    bottom = tree.depth - first_step  # deepest level of the inputs
    top = tree.depth - last_step - 1  # level of the outputs (0 = composite)
    outputs = tree.inner_nodes_at(top)
    output_row = {node: row for row, node in enumerate(outputs)}
    below_rows = {node: row for row, node in enumerate(tree.inner_nodes_at(bottom))} if first_step > 0 else {}
    leaf_column = {node: column for column, node in enumerate(np.flatnonzero(tree.node_is_leaf).tolist())}
    inputs = [
        node
        for node in range(tree.n_nodes)
        if top < tree.node_levels[node] <= bottom
        and (tree.node_is_leaf[node] or (tree.node_levels[node] == bottom and first_step > 0))
    ]
    longest = bottom - top
    paths = np.full((len(inputs), longest), tree.n_nodes, dtype=np.intp)
    for row, node in enumerate(inputs):
        step = 0
        while node != -1 and tree.node_levels[node] > top:
            paths[row, step] = node
            node, step = int(tree.node_parents[node]), step + 1
    leaf_groups, inner_groups = [], []
    for output in outputs:
        mine = [row for row, node in enumerate(inputs) if tree.ancestor_at(node, top) == output]
        leaves = [row for row in mine if tree.node_is_leaf[inputs[row]]]
        inner = [row for row in mine if not tree.node_is_leaf[inputs[row]]]
        if leaves:
            leaf_groups.append(
                InputGroup(
                    output_row[output], np.array(leaves), np.array([leaf_column[inputs[r]] for r in leaves])
                )
            )
        if inner:
            sources = np.array([below_rows[inputs[r]] for r in inner])
            consecutive = bool(np.all(np.diff(sources) == 1))
            inner_groups.append(
                InputGroup(
                    output_row[output],
                    np.array(inner),
                    sources,
                    slice(int(sources[0]), int(sources[-1]) + 1) if consecutive else None,
                )
            )
    return Segment(
        output_codes=tuple(COMPOSITE_CODE if node == -1 else tree.node_codes[node] for node in outputs),
        paths=paths,
        leaf_groups=tuple(leaf_groups),
        inner_groups=tuple(inner_groups),
    )


def method_segments(geometric_steps: Sequence[bool], merge: bool = True) -> list[tuple[int, int]]:
    """(first, last) steps of each run of equal methods; every step alone when ``merge`` is off."""
    runs: list[tuple[int, int]] = []
    for step, geometric in enumerate(geometric_steps):
        if merge and runs and geometric_steps[runs[-1][0]] == geometric:
            runs[-1] = (runs[-1][0], step)
        else:
            runs.append((step, step))
    return runs


# ------------------------------------------------------------------------------------- the draws


@dataclass(frozen=True)
class AssumptionDraws:
    """The random inputs of a set of draws."""

    weight_multipliers: np.ndarray  # (draws, nodes): factor applied to each node's nominal weight
    geometric: np.ndarray  # (draws, steps) bool: the step aggregates by geometric mean
    scheme: np.ndarray | None = None  # (draws,) index into the problem's weight schemes; None: the nominal

    @property
    def n_draws(self) -> int:
        return int(self.weight_multipliers.shape[0])

    def take(self, index: np.ndarray) -> AssumptionDraws:
        return AssumptionDraws(
            self.weight_multipliers[index],
            self.geometric[index],
            None if self.scheme is None else self.scheme[index],
        )


def draw_assumptions(
    tree: IndexTree,
    n_draws: int,
    weight_range: float,
    methods: Sequence[str],
    rng: np.random.Generator,
    method_choice: str = PER_LEVEL,
    n_schemes: int = 1,
) -> AssumptionDraws:
    """Independent draws: a uniform factor in [1 - weight_range, 1 + weight_range] per node, a method
    uniform among ``methods`` for every aggregation step ('per_level') or for the whole index, and with
    several weight schemes, one of them uniformly (drawn last: one scheme leaves the stream as it was)."""
    multipliers = rng.uniform(1.0 - weight_range, 1.0 + weight_range, size=(n_draws, tree.n_nodes))
    choice = rng.integers(0, len(methods), size=(n_draws, tree.n_steps if method_choice == PER_LEVEL else 1))
    geometric = np.broadcast_to(
        np.array([method == GEOMETRIC for method in methods])[choice], (n_draws, tree.n_steps)
    ).copy()
    scheme = rng.integers(0, n_schemes, size=n_draws) if n_schemes > 1 else None
    return AssumptionDraws(multipliers, geometric, scheme)


def settings_draws(
    tree: IndexTree, settings: UncertaintySettings, n_draws: int, rng: np.random.Generator
) -> AssumptionDraws:
    return draw_assumptions(
        tree,
        n_draws,
        settings.weight_range,
        settings.methods,
        rng,
        settings.method_choice,
        len(settings.weight_schemes),
    )


def nominal_assumptions(tree: IndexTree) -> AssumptionDraws:
    """The published index as a single draw: nominal weights, arithmetic means."""
    return AssumptionDraws(np.ones((1, tree.n_nodes)), np.zeros((1, tree.n_steps), dtype=bool))


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


# ------------------------------------------------------------------------------------ the problem


@dataclass(frozen=True)
class LeafBlock:
    """The leaf inputs of one output of a segment, laid out for products with path weights (leaves x units)."""

    values: np.ndarray  # missing scores as 0 (they carry no weight)
    logs: np.ndarray  # log of the score raised to the geometric floor; missing as 0
    present: np.ndarray | None  # 1 where a score exists; None when no score is missing


@dataclass(frozen=True)
class RankingProblem:
    """Everything a simulation needs about one edition and unit type: the tree, the leaf scores of the
    ranked units, their rank groups and the display rules of the published ranking."""

    tree: IndexTree
    unit_codes: tuple[str, ...]
    leaf_scores: np.ndarray  # (units, leaves), NaN where missing
    rank_groups: np.ndarray  # (units,) index into group_names
    group_names: tuple[str, ...]
    display_decimals: int
    tie_method: str
    tick_min: int  # display grid: score = tick / 10**display_decimals, tick_min .. tick_min + n_ticks - 1
    n_ticks: int
    geometric_floor: float  # a score of score_min enters a geometric mean as this value
    score_min: float
    score_max: float
    complete: bool  # no leaf score is missing
    min_coverage: float  # rule 'reweight': the smallest share of a node's children with a score
    scheme_ratios: np.ndarray  # (schemes, nodes): each weight scheme over the nominal weights (row of ones: nominal) (always so under the missing-value rule 'propagate')
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_units(self) -> int:
        return len(self.unit_codes)

    @property
    def geometric_shift(self) -> float:
        """c such that a geometric mean on the rescaled scale, mapped back, is exp(sum w log(x + c)) - c.

        The rescaling r = a + b x takes [score_min, score_max] onto [geometric_floor, score_max]; since
        the weights sum to 1, (GM_w(a + b x) - a) / b = GM_w(x + a / b) - a / b: the rescaling is a
        shift by c = a / b (1.0101 for [0, 100] onto [1, 100]), one addition rather than two passes."""
        b = (self.score_max - self.geometric_floor) / (self.score_max - self.score_min)
        return (self.geometric_floor - b * self.score_min) / b

    @property
    def has_scores_below_min(self) -> bool:
        key = ("below_min",)
        if key not in self._cache:
            self._cache[key] = bool(np.nanmin(self.leaf_scores, initial=np.inf) < self.score_min)
        return self._cache[key]

    def rescaled_logs(self, values: np.ndarray) -> np.ndarray:
        """log(x + c) of scores entering a geometric mean (a new array). Scores below the scale's minimum
        (none in a validated edition) are first raised to it, so that the log stays finite."""
        out = np.add(values, self.geometric_shift)
        if self.has_scores_below_min:
            np.maximum(out, self.score_min + self.geometric_shift, out=out)
        return np.log(out, out=out)

    def from_rescaled_logs(self, logs: np.ndarray) -> np.ndarray:
        """The score of a geometric mean computed in shifted logs: exp(logs) - c (a new array)."""
        out = np.exp(logs)
        out -= self.geometric_shift
        return out

    def display_ticks(self, scores: np.ndarray) -> np.ndarray:
        """Scores shown at display precision, as integers on the 10^-d grid. ``rint`` rounds half to even,
        as polars' ``round`` does (the rounding of composite.rank_expr and tiers.tier_expr)."""
        shown = np.multiply(scores, 10.0**self.display_decimals)
        return np.rint(shown, out=shown).astype(np.int32)

    def segment(self, first_step: int, last_step: int) -> Segment:
        key = ("segment", first_step, last_step)
        if key not in self._cache:
            self._cache[key] = build_segment(self.tree, first_step, last_step)
        return self._cache[key]

    def leaf_block(
        self, first_step: int, last_step: int, group_index: int, dtype: type[np.floating]
    ) -> LeafBlock:
        key = ("leaves", first_step, last_step, group_index, np.dtype(dtype).str)
        if key not in self._cache:
            columns = self.segment(first_step, last_step).leaf_groups[group_index].sources
            scores = self.leaf_scores[:, columns].T
            present = ~np.isnan(scores)
            filled = np.where(present, scores, 0.0)
            self._cache[key] = LeafBlock(
                values=np.ascontiguousarray(filled, dtype=dtype),
                logs=np.ascontiguousarray(np.where(present, self.rescaled_logs(filled), 0.0), dtype=dtype),
                present=None if self.complete else np.ascontiguousarray(present, dtype=dtype),
            )
        return self._cache[key]


def ranking_problem(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    ranked_units: pl.DataFrame,
    method: MethodSettings,
    geometric_floor: float,
    weight_schemes: Sequence[str] = (NOMINAL,),
) -> RankingProblem:
    """The problem of one edition and unit type (``weight_schemes``: see :func:`scheme_weights`).

    ``leaf_scores``: unit_code, indicator_code (or node_code), score. ``nodes``: the framework's node
    table. ``ranked_units``: unit_code and rank_group of the units the published index ranks (a unit
    without a composite under the missing-value rule has no rank and is left out, as it is there).
    """
    if method.tie_method not in SUPPORTED_TIE_METHODS:
        raise ValueError(
            f"ranking.tie_method {method.tie_method!r}: the simulation supports {list(SUPPORTED_TIE_METHODS)}"
        )
    if not 0 < geometric_floor < method.score_max:
        raise ValueError(
            f"uncertainty.geometric_floor {geometric_floor} must lie in (0, scores.max = {method.score_max})"
        )
    tree = IndexTree.from_nodes(nodes)
    code_column = "indicator_code" if "indicator_code" in leaf_scores.columns else "node_code"
    units = (
        ranked_units.select("unit_code", pl.col("rank_group").cast(pl.String))
        .unique("unit_code")
        .sort("unit_code")
    )
    wide = leaf_scores.filter(pl.col(code_column).is_in(list(tree.leaf_codes))).pivot(
        on=code_column, index="unit_code", values="score", aggregate_function="first"
    )
    matrix = units.join(wide, on="unit_code", how="left", maintain_order="left")
    matrix = matrix.with_columns(
        pl.lit(None, pl.Float64).alias(code) for code in tree.leaf_codes if code not in matrix.columns
    )
    scores = (
        matrix.select(pl.col(list(tree.leaf_codes)).cast(pl.Float64))
        .to_numpy()
        .astype(np.float64)
        .reshape(units.height, len(tree.leaf_codes))
    )
    complete = not bool(np.isnan(scores).any())
    if method.missing_rule == "propagate" and not complete:
        raise ValueError(
            "a ranked unit lacks leaf scores, which rule 'propagate' cannot score: the inputs disagree"
        )
    group_names = tuple(sorted(set(units["rank_group"].to_list())))
    scale = 10**method.display_decimals
    tick_min = math.floor(method.score_min * scale)
    return RankingProblem(
        tree=tree,
        unit_codes=tuple(units["unit_code"].to_list()),
        leaf_scores=scores,
        rank_groups=np.array([group_names.index(g) for g in units["rank_group"].to_list()], dtype=np.int64),
        group_names=group_names,
        display_decimals=method.display_decimals,
        tie_method=method.tie_method,
        tick_min=tick_min,
        n_ticks=math.ceil(method.score_max * scale) - tick_min + 1,
        geometric_floor=geometric_floor,
        score_min=method.score_min,
        score_max=method.score_max,
        min_coverage=method.min_coverage,
        scheme_ratios=np.stack(
            [scheme_weights(tree, scores, scheme) / tree.nominal_weights for scheme in weight_schemes]
        ),
        complete=complete,
    )


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


# ------------------------------------------------------------------------------------ aggregation


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


def _method_chunks(geometric: np.ndarray, chunk_draws: int) -> Iterator[tuple[tuple[bool, ...], np.ndarray]]:
    """Draw indices grouped by method combination, in chunks of at most ``chunk_draws``."""
    combination = geometric.astype(np.int64) @ (1 << np.arange(geometric.shape[1], dtype=np.int64))
    order = np.argsort(combination, kind="stable")
    boundaries = np.flatnonzero(np.diff(combination[order])) + 1
    for same_methods in np.split(order, boundaries):
        if same_methods.size == 0:
            continue
        methods = tuple(bool(g) for g in geometric[same_methods[0]])
        for start in range(0, same_methods.size, chunk_draws):
            yield methods, same_methods[start : start + chunk_draws]


def _chunk_draws(n_units: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(n_units, 1))


def _composite_chunks(
    problem: RankingProblem,
    weights: np.ndarray,
    chunks: Sequence[tuple[tuple[bool, ...], np.ndarray]],
    dtype: type[np.floating],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(draw indices, (chunk draws, units) composites) chunk by chunk; ``weights``: (draws, nodes)."""
    for methods, index in chunks:
        yield index, _composite_block(problem, weights[index], methods, dtype)


def _chunks_of(problem: RankingProblem, draws: AssumptionDraws) -> list[tuple[tuple[bool, ...], np.ndarray]]:
    return list(_method_chunks(draws.geometric, _chunk_draws(problem.n_units)))


def simulate_composites(
    problem: RankingProblem, draws: AssumptionDraws, dtype: type[np.floating] = np.float64
) -> np.ndarray:
    """(draws, units) composite scores at full precision."""
    composites = np.empty((draws.n_draws, problem.n_units))
    weights = draw_weights(problem, draws)
    for index, chunk in _composite_chunks(problem, weights, _chunks_of(problem, draws), dtype):
        composites[index] = chunk
    return composites


def nominal_composites(problem: RankingProblem) -> np.ndarray:
    """(units,) composites under the published assumptions (nominal weights, arithmetic means), in float64."""
    tree = problem.tree
    return _composite_block(problem, tree.nominal_weights[None, :], (False,) * tree.n_steps, np.float64)[0]


# ---------------------------------------------------------------------------------------- ranking


def rank_display_ticks(
    ticks: np.ndarray, groups: np.ndarray, n_groups: int, tick_min: int, n_ticks: int, tie_method: str = "min"
) -> np.ndarray:
    """(draws, units) ranks of display scores given as grid integers (score x 10^d), by descending score
    within each group, in every row at once, with composite.rank_expr's tie rules: 'min' (ties share
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


def _rank_chunks(
    problem: RankingProblem, weights: np.ndarray, chunks: Sequence[tuple[tuple[bool, ...], np.ndarray]]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(draw indices, display-grid positions, ranks) chunk by chunk."""
    n_groups = len(problem.group_names)
    offsets: dict[int, np.ndarray] = {}  # per chunk height: few distinct ones, reused
    for index, composites in _composite_chunks(problem, weights, chunks, SIMULATION_DTYPE):
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
    for index, slots, chunk_ranks in _rank_chunks(problem, weights, _chunks_of(problem, draws)):
        ticks[index], ranks[index] = slots + problem.tick_min, chunk_ranks
    return SimulatedRanks(ticks, ranks)


# -------------------------------------------------------------------------------------- summaries


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
    chunks = _chunks_of(problem, draws)
    _prepare(problem, chunks)
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))

    def run(share: Sequence[tuple[tuple[bool, ...], np.ndarray]]) -> _DistributionCounter:
        counter = _DistributionCounter(problem, draws.n_draws)
        for _, slots, ranks in _rank_chunks(problem, weights, share):
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


def _prepare(problem: RankingProblem, chunks: Sequence[tuple[tuple[bool, ...], np.ndarray]]) -> None:
    """Build every segment and leaf block the chunks need before threads share the problem."""
    for methods in {methods for methods, _ in chunks}:
        for first, last in method_segments(methods, merge=problem.complete):
            for index, _ in enumerate(problem.segment(first, last).leaf_groups):
                problem.leaf_block(first, last, index, SIMULATION_DTYPE)
    _ = problem.has_scores_below_min


def probability_column(tier_code: str) -> str:
    return f"prob_{tier_code}"


def rank_uncertainty(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    nominal: pl.DataFrame,
    method: MethodSettings,
    settings: UncertaintySettings,
    rng: np.random.Generator,
    tiers: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """``marts.rank_uncertainty`` rows of one edition and unit type (without survey_year and unit_type),
    and a check of the simulation against the published index.

    ``nominal``: the published index of the ranked units: unit_code, rank_group, score, rank and, for
    cities, tier. ``tiers``: the tier table for cities, None for units without tiers (counties).
    """
    ranked = nominal.filter(pl.col("rank").is_not_null())
    problem = ranking_problem(
        leaf_scores, nodes, ranked, method, settings.geometric_floor, settings.weight_schemes
    )
    published = pl.DataFrame({"unit_code": list(problem.unit_codes)}).join(
        ranked, on="unit_code", how="left", maintain_order="left"
    )
    nominal_ranks = published["rank"].to_numpy().astype(np.int32)
    draws = settings_draws(problem.tree, settings, settings.draws, rng)
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
    return frame.with_columns(pl.lit(settings.draws, pl.Int32).alias("n_draws")), check
