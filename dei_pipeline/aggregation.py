"""Weighted aggregation tier by tier (level 3 -> level 2 -> level 1 -> composite).

One generic function walks any framework tree bottom-up: each parent's score is the weighted sum of
its children's scores, with the weights of the framework file (which sum to 1 within every parent).

Missing values. Rule ``propagate`` (the default, in ``data/method/settings.yaml``): a parent is
computed only when every one of its children has a score; otherwise it is null, and so is everything
above it, so a unit with a missing indicator gets no composite and is not ranked. The white paper
scores every unit on every indicator, and a silent re-weighting would change what a score means.
Rule ``reweight`` (available, not the default): a parent is the weighted mean of the children that
have a score, with their weights renormalised to sum to 1, provided at least ``min_coverage`` of its
children (by count) have one; below that share it is null. Without such a rule a unit with 1 of 5
indicators would get a composite from that one indicator alone; with a share of 0.5, a parent needs at
least half its children. The share is COINr's ``dat_thresh`` (the fraction of a row's children that
are not missing, the aggregate missing below it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import add
from typing import Any

import polars as pl

from dei_pipeline.config import MissingRule
from dei_pipeline.frameworks import Framework

COMPOSITE_CODE = "composite"
# Working columns of the wide layout.
LEAF_INDEX, N_LEAVES, N_ROWS = "__leaf_index", "__n_leaves", "__n_rows"


def aggregate_tiers(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    keys: Sequence[str] = ("unit_code",),
    missing: MissingRule = "propagate",
    min_coverage: float = 0.0,
) -> pl.DataFrame:
    """Scores of every node of the tree, plus the composite, for every unit (``min_coverage``: see
    rule ``reweight`` above; no effect under ``propagate``, which needs every child).

    ``leaf_scores``: the ``keys`` columns, ``indicator_code`` and ``score`` (one row per unit and
    leaf; an absent row counts as missing). ``nodes``: a framework's node table (code, parent_code,
    level, weight, is_leaf). Returns the ``keys`` columns, ``node_code``, ``level`` (0 for the
    composite) and ``score`` (Float64, null where missing), sorted by the keys, level and node_code.

    The units are laid out wide (one row per unit, one column per node), so each tier is one
    ``with_columns`` of one expression per parent over the columns of its children, in a fixed order
    (children by code), which makes the floating-point sums, and so reruns, identical. Indicator
    codes must not coincide with a key column name.
    """
    keys = list(keys)
    plan = tier_plan(nodes, missing, min_coverage)
    if leaf_scores.height == 0:
        return pl.DataFrame(
            schema={
                **leaf_scores.select(keys).schema,
                "node_code": pl.String,
                "level": pl.Int32,
                "score": pl.Float64,
            }
        )
    # Key columns with one value throughout (the edition and unit type of a per-edition call) are
    # put back at the end rather than grouped on.
    constant = [key for key in keys[:-1] if leaf_scores[key].eq_missing(leaf_scores[key][0]).all()]
    varying = [key for key in keys if key not in constant]
    wide = _wide_leaf_scores(leaf_scores, varying, plan.leaf_codes)
    for tier in plan.tiers:
        wide = wide.with_columns(tier)
    return _long_node_scores(wide.sort(varying), varying, plan).select(
        *[
            pl.lit(leaf_scores[key][0], leaf_scores.schema[key]).alias(key)
            if key in constant
            else pl.col(key)
            for key in keys
        ],
        "node_code",
        "level",
        "score",
    )


def batches_by_framework(
    leaf_scores: pl.DataFrame, framework_of: Callable[[str, int], Framework]
) -> Iterator[tuple[Framework, pl.DataFrame]]:
    """Leaf scores of several editions (``survey_year``, ``unit_type`` columns) in batches of the
    editions that share one framework, per unit type: aggregate each batch in one call, since the fixed
    cost of a call dwarfs the work of one edition. ``framework_of(unit_type, survey_year)``."""
    for (unit_type,), of_type in leaf_scores.partition_by(
        "unit_type", as_dict=True, maintain_order=True
    ).items():
        frameworks = {
            year: framework_of(str(unit_type), year)
            for year in of_type["survey_year"].unique(maintain_order=True).to_list()
        }
        years_of: dict[str, list[int]] = {}
        for year, fw in frameworks.items():
            years_of.setdefault(fw.version, []).append(year)
        for years in years_of.values():
            batch = (
                of_type
                if len(years) == len(frameworks)
                else of_type.filter(pl.col("survey_year").is_in(years))
            )
            yield frameworks[years[0]], batch


def _wide_leaf_scores(
    leaf_scores: pl.DataFrame, keys: Sequence[str], leaf_codes: Sequence[str]
) -> pl.DataFrame:
    """One row per unit (``keys``) and one column per leaf, null where the unit has no score. Several
    editions in one call (any key before the last that varies) are laid out one at a time and stacked,
    so that each keeps the layout of its own file."""
    keys = list(keys)
    parts = leaf_scores.partition_by(keys[:-1], maintain_order=True) if len(keys) > 1 else [leaf_scores]
    return (
        pl.concat([_wide_block(part, keys, leaf_codes) for part in parts])
        if len(parts) > 1
        else _wide_block(leaf_scores, keys, leaf_codes)
    )


def _wide_block(leaf_scores: pl.DataFrame, keys: list[str], leaf_codes: Sequence[str]) -> pl.DataFrame:
    """The wide layout of one edition (or of any rows, more slowly).

    Usually every unit has each leaf exactly once (validation makes sure of it). Then, when the rows
    come leaf by leaf with the same units in the same order under every leaf (as ingestion writes an
    edition's file and the warehouse reads it back), each leaf's block of rows is a column as it is;
    in any other order each unit's scores, ordered by leaf, are its row. Otherwise (a leaf absent, or
    an indicator that is no leaf of the framework) each score is placed by its indicator code.
    """
    indexed = leaf_scores.select(
        *keys,
        pl.col("indicator_code")
        .replace_strict({code: i for i, code in enumerate(leaf_codes)}, default=None, return_dtype=pl.UInt32)
        .alias(LEAF_INDEX),
        pl.col("score").cast(pl.Float64),
    )
    if indexed[LEAF_INDEX].null_count() == 0:
        in_blocks = _wide_from_leaf_blocks(indexed, keys, leaf_codes)
        if in_blocks is not None:
            return in_blocks
        by_unit = indexed.group_by(keys).agg(
            pl.col("score").sort_by(LEAF_INDEX),
            pl.col(LEAF_INDEX).n_unique().alias(N_LEAVES),
            pl.len().alias(N_ROWS),
        )
        if by_unit.select(
            ((pl.col(N_ROWS) == len(leaf_codes)) & (pl.col(N_LEAVES) == len(leaf_codes))).all()
        ).item():
            return by_unit.select(
                *keys, *[pl.col("score").list.get(i).alias(code) for i, code in enumerate(leaf_codes)]
            )
    wide = leaf_scores.select(*keys, "indicator_code", pl.col("score").cast(pl.Float64)).pivot(
        on="indicator_code", index=keys, values="score", aggregate_function=None
    )
    return wide.select(
        *keys,
        *[
            pl.col(code) if code in wide.columns else pl.lit(None, pl.Float64).alias(code)
            for code in leaf_codes
        ],
    )


def _wide_from_leaf_blocks(
    indexed: pl.DataFrame, keys: list[str], leaf_codes: Sequence[str]
) -> pl.DataFrame | None:
    """The wide layout without grouping, if the rows are one block per leaf, every block listing the
    same units in the same order (each unit once); None if they are not."""
    n_leaves = len(leaf_codes)
    if indexed.height == 0 or indexed.height % n_leaves:
        return None
    n_units = indexed.height // n_leaves
    block_leaves = indexed[LEAF_INDEX].gather_every(n_units).to_list()
    if sorted(block_leaves) != list(range(n_leaves)):
        return None
    row = pl.int_range(pl.len())
    same_layout = indexed.select(
        pl.all_horizontal(
            (pl.col(LEAF_INDEX) == pl.col(LEAF_INDEX).gather(row // n_units * n_units)).all(),
            *[pl.col(key).eq_missing(pl.col(key).gather(row % n_units)).all() for key in keys],
        )
    ).item()
    units = indexed.slice(0, n_units).select(keys)
    if not same_layout or not units.is_unique().all():
        return None
    scores = indexed["score"]
    by_leaf = {
        leaf_codes[leaf]: scores.slice(block * n_units, n_units) for block, leaf in enumerate(block_leaves)
    }
    return units.hstack([by_leaf[code].alias(code) for code in leaf_codes])


def _long_node_scores(wide: pl.DataFrame, keys: list[str], plan: TierPlan) -> pl.DataFrame:
    """Back to one row per unit and node, each unit's nodes together in level and code order.

    ``unpivot`` stacks the node columns one after the other (row r holds node r // n_units of unit
    r % n_units), so one gather puts every unit's nodes together without sorting.
    """
    n_units, n_nodes = wide.height, len(plan.level_of)
    stacked = wide.unpivot(index=keys, on=list(plan.level_of), variable_name="node_code", value_name="score")
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    node = row % n_nodes
    return stacked.select(
        pl.col(*keys, "node_code").gather(node * n_units + row // n_nodes),
        pl.lit(pl.Series(list(plan.level_of.values()), dtype=pl.Int32)).gather(node).alias("level"),
        pl.col("score").gather(node * n_units + row // n_nodes),
    )


@dataclass(frozen=True)
class TierPlan:
    """How a framework's tree is aggregated: its leaves, one list of parent expressions per tier
    (deepest first) and every node's level, in output order (level, then code)."""

    leaf_codes: tuple[str, ...]
    tiers: tuple[tuple[pl.Expr, ...], ...]
    level_of: dict[str, int]


def tier_plan(nodes: pl.DataFrame, missing: MissingRule = "propagate", min_coverage: float = 0.0) -> TierPlan:
    """The aggregation plan of a framework (built once per framework and rule, then reused)."""
    rows = nodes.select(
        "code", "parent_code", pl.col("level").cast(pl.Int32), pl.col("weight").cast(pl.Float64), "is_leaf"
    ).rows()
    return _tier_plan(tuple(rows), missing, min_coverage)


@lru_cache(maxsize=64)
def _tier_plan(
    rows: tuple[tuple[str, str | None, int, float, bool], ...], missing: MissingRule, min_coverage: float
) -> TierPlan:
    parent_score = _parent_score(missing, min_coverage)
    children: dict[
        tuple[int, str], list[tuple[str, float]]
    ] = {}  # (child level, parent) -> [(child, weight)]
    for code, parent, level, weight, _ in sorted(rows, key=lambda row: row[0]):
        children.setdefault((level, parent or COMPOSITE_CODE), []).append((code, weight))
    depth = max(level for _, _, level, _, _ in rows)
    tiers = tuple(
        tuple(
            parent_score(kids).alias(parent)
            for (level, parent), kids in children.items()
            if level == tier_level
        )
        for tier_level in range(depth, 0, -1)
    )
    level_of = dict(
        sorted(
            [(COMPOSITE_CODE, 0), *((code, level) for code, _, level, _, _ in rows)],
            key=lambda item: (item[1], item[0]),
        )
    )
    return TierPlan(tuple(code for code, _, _, _, is_leaf in rows if is_leaf), tiers, level_of)


def covered(present: Any, n_children: Any, min_coverage: float) -> Any:
    """Whether ``present`` of ``n_children`` children meet the minimum share (a tolerance keeps shares
    such as 2/3 from failing on rounding)."""
    return present >= min_coverage * n_children - 1e-9


def _parent_score(
    missing: MissingRule, min_coverage: float = 0.0
) -> Callable[[list[tuple[str, float]]], pl.Expr]:
    """The expression of a parent's score over its children's columns, given (code, weight) pairs."""
    if missing == "propagate":
        # ``+`` is null as soon as one term is: a parent with a missing child is missing.
        return lambda children: reduce(add, [pl.lit(weight) * pl.col(code) for code, weight in children])
    if missing == "reweight":

        def reweighted(children: list[tuple[str, float]]) -> pl.Expr:
            weighted_sum = pl.sum_horizontal([pl.lit(weight) * pl.col(code) for code, weight in children])
            present_weight = pl.sum_horizontal(
                [pl.when(pl.col(code).is_not_null()).then(pl.lit(weight)) for code, weight in children]
            )
            present = pl.sum_horizontal([pl.col(code).is_not_null() for code, _ in children])
            enough = (present_weight > 0) & covered(present, len(children), min_coverage)
            return pl.when(enough).then(weighted_sum / present_weight).otherwise(None)

        return reweighted
    raise ValueError(f"unknown missing-value rule {missing!r}: expected 'propagate' or 'reweight'")


def composite_scores(tree_scores: pl.DataFrame, keys: Sequence[str] = ("unit_code",)) -> pl.DataFrame:
    """The composite (level 0) rows of :func:`aggregate_tiers`, one per unit."""
    return tree_scores.filter(pl.col("level") == 0).select(*keys, "score")
