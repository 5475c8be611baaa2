"""Weighted aggregation tier by tier (level 3 -> level 2 -> level 1 -> composite).

One generic function walks any framework tree bottom-up: each parent's score is the weighted sum of
its children's scores, with the weights of the framework file (which sum to 1 within every parent).

Missing values. Rule ``propagate`` (the default, in ``data/method/settings.yaml``): a parent is
computed only when every one of its children has a score; otherwise it is null, and so is everything
above it, so a unit with a missing indicator gets no composite and is not ranked. The white paper
scores every unit on every indicator, and a silent re-weighting would change what a score means.
Rule ``reweight`` (available, not the default): a parent is the weighted mean of the children that
have a score, with their weights renormalised to sum to 1; null only when all children are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import polars as pl

COMPOSITE_CODE = "composite"
MissingRule = Literal["propagate", "reweight"]


def aggregate_tiers(
    leaf_scores: pl.DataFrame,
    nodes: pl.DataFrame,
    keys: Sequence[str] = ("unit_code",),
    missing: MissingRule = "propagate",
) -> pl.DataFrame:
    """Scores of every node of the tree, plus the composite, for every unit.

    ``leaf_scores``: the ``keys`` columns, ``indicator_code`` and ``score`` (one row per unit and
    leaf; an absent row counts as missing). ``nodes``: a framework's node table (code, parent_code,
    level, weight, is_leaf). Returns the ``keys`` columns, ``node_code``, ``level`` (0 for the
    composite) and ``score`` (Float64, null where missing).
    """
    keys = list(keys)
    tree = nodes.select(
        "code",
        pl.col("parent_code").fill_null(COMPOSITE_CODE),
        "level",
        "weight",
        "is_leaf",
    )
    units = leaf_scores.select(keys).unique()
    leaf_grid = (
        units.join(tree.filter(pl.col("is_leaf")).select("code", "level"), how="cross")
        .join(
            leaf_scores.select(*keys, pl.col("indicator_code").alias("code"), pl.col("score").cast(pl.Float64)),
            on=[*keys, "code"],
            how="left",
        )
    )
    computed = [leaf_grid]
    depth = int(tree["level"].max())  # type: ignore[arg-type]
    for level in range(depth, 0, -1):
        children = pl.concat([frame.filter(pl.col("level") == level) for frame in computed])
        parents = (
            children.join(tree.select("code", "parent_code", "weight"), on="code")
            # A fixed order of the children makes the floating-point sums, and so reruns, identical.
            .sort([*keys, "parent_code", "code"])
            .group_by([*keys, "parent_code"], maintain_order=True)
            .agg(_parent_score(missing))
            .select(*keys, pl.col("parent_code").alias("code"), pl.lit(level - 1, pl.Int32).alias("level"), "score")
        )
        computed.append(parents)
    return (
        pl.concat([frame.select(*keys, "code", pl.col("level").cast(pl.Int32), "score") for frame in computed])
        .rename({"code": "node_code"})
        .sort([*keys, "level", "node_code"])
    )


def _parent_score(missing: MissingRule) -> pl.Expr:
    weighted_sum = (pl.col("weight") * pl.col("score")).sum()
    if missing == "propagate":
        return pl.when(pl.col("score").is_null().any()).then(None).otherwise(weighted_sum).alias("score")
    if missing == "reweight":
        present_weight = pl.col("weight").filter(pl.col("score").is_not_null()).sum()
        return pl.when(present_weight > 0).then(weighted_sum / present_weight).otherwise(None).alias("score")
    raise ValueError(f"unknown missing-value rule {missing!r}: expected 'propagate' or 'reweight'")


def composite_scores(tree_scores: pl.DataFrame, keys: Sequence[str] = ("unit_code",)) -> pl.DataFrame:
    """The composite (level 0) rows of :func:`aggregate_tiers`, one per unit."""
    return tree_scores.filter(pl.col("level") == 0).select(*keys, "score")
