"""One edition and unit type as a simulation problem: the tree, the leaf scores of the ranked units as a
matrix, their rank groups and the display rules of the published ranking, with the cached layouts the
aggregation of the draws reuses."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from dei_pipeline.analysis.index_tree import IndexTree, Segment, build_segment
from dei_pipeline.analysis.weight_draws import NOMINAL, scheme_weights
from dei_pipeline.config import MethodSettings, UncertaintySettings
from dei_pipeline.scoring.variants import scoring_strides

SUPPORTED_TIE_METHODS: tuple[str, ...] = ("min", "max", "dense")


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
    # The leaf scores under each scoring alternative (scoring/variants.py: every combination of the varied
    # normalisations, treatments and imputations, normalisation varying slowest), and how many of each;
    # empty and (1, 1, 1) for a unit type given as scores, or when nothing is varied.
    variant_scores: tuple[np.ndarray, ...] = ()
    scoring_shape: tuple[int, int, int] = (1, 1, 1)
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def in_unit_order(self, ranked: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``ranked`` (unit_code and its figures, e.g. the published rank) in the order of
        the problem's units."""
        return pl.DataFrame({"unit_code": list(self.unit_codes)}).join(
            ranked, on="unit_code", how="left", maintain_order="left"
        )

    @property
    def scoring_strides(self) -> np.ndarray:
        """Per varied choice, its step in the variant index (normalisation slowest)."""
        return scoring_strides(self.scoring_shape)

    def variant(self, index: int) -> RankingProblem:
        """The problem with the leaf scores of scoring alternative ``index`` (itself without alternatives).
        A leaf an alternative leaves without a score (imputation 'none') is left out of its parent, whose
        weights are renormalised over the children present (COINr's default), whatever the missing-value
        rule of the published index; a composite still missing counts as the scale's minimum."""
        if not self.variant_scores:
            return self
        key = ("variant", index)
        if key not in self._cache:
            scores = self.variant_scores[index]
            self._cache[key] = dataclasses.replace(
                self,
                leaf_scores=scores,
                complete=not bool(np.isnan(scores).any()),
                min_coverage=0.0,
                variant_scores=(),
                scoring_shape=(1, 1, 1),
                _cache={},
            )
        return self._cache[key]

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
        as polars' ``round`` does (the rounding of ranking.rank_expr and tiers.tier_expr)."""
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
    variants: Sequence[pl.DataFrame] = (),
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
) -> RankingProblem:
    """The problem of one edition and unit type (``weight_schemes``: see :func:`scheme_weights`).
    ``variants``: the leaf scores (as ``leaf_scores``) under each scoring alternative, in the order of
    :func:`dei_pipeline.scoring.variants.scoring_choices`, ``scoring_shape`` of them; none when nothing
    is varied or the unit type is given as scores.

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
    units = (
        ranked_units.select("unit_code", pl.col("rank_group").cast(pl.String))
        .unique("unit_code")
        .sort("unit_code")
    )
    scores = _score_matrix(leaf_scores, tree, units)
    complete = not bool(np.isnan(scores).any())
    if method.missing_rule == "propagate" and not complete:
        raise ValueError(
            "a ranked unit lacks leaf scores, which rule 'propagate' cannot score: the inputs disagree"
        )
    if math.prod(scoring_shape) > 1 and len(variants) != math.prod(scoring_shape):
        raise ValueError(f"{len(variants)} scoring alternatives for a scoring shape {scoring_shape}")
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
        variant_scores=tuple(_score_matrix(frame, tree, units) for frame in variants)
        if math.prod(scoring_shape) > 1
        else (),
        scoring_shape=scoring_shape if math.prod(scoring_shape) > 1 else (1, 1, 1),
    )


def _score_matrix(leaf_scores: pl.DataFrame, tree: IndexTree, units: pl.DataFrame) -> np.ndarray:
    """(units, leaves) scores of ``units`` in the order of ``tree.leaf_codes``, NaN where missing."""
    code_column = "indicator_code" if "indicator_code" in leaf_scores.columns else "node_code"
    wide = leaf_scores.filter(pl.col(code_column).is_in(list(tree.leaf_codes))).pivot(
        on=code_column, index="unit_code", values="score", aggregate_function="first"
    )
    matrix = units.join(wide, on="unit_code", how="left", maintain_order="left")
    matrix = matrix.with_columns(
        pl.lit(None, pl.Float64).alias(code) for code in tree.leaf_codes if code not in matrix.columns
    )
    return (
        matrix.select(pl.col(list(tree.leaf_codes)).cast(pl.Float64))
        .to_numpy()
        .astype(np.float64)
        .reshape(units.height, len(tree.leaf_codes))
    )


def simulation_problem(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    ranked_units: pl.DataFrame,
    method: MethodSettings,
    settings: UncertaintySettings,
    variants: Sequence[pl.DataFrame] = (),
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
) -> RankingProblem:
    """The problem the Monte Carlos (rank uncertainty and sensitivity) draw from: :func:`ranking_problem`
    with the geometric floor and weight schemes of the ``uncertainty`` settings."""
    return ranking_problem(
        leaf_scores,
        nodes,
        ranked_units,
        method,
        settings.geometric_floor,
        settings.weight_schemes,
        variants,
        scoring_shape,
    )
