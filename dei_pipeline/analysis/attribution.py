"""Attribution of change: a unit's score change between two editions, split over the framework's nodes.

The composite is a weighted sum, so its change is the sum of each level-1 node's effective weight
times that node's change, and each level-1 node's change splits the same way over its level-2
children: ``contribution = effective_weight x score_change`` adds up exactly (up to floating-point
rounding, ~1e-13) to the change of the composite, level by level.

Comparable editions. When the two editions use different frameworks (weights, or indicators added or
dropped), part of the change is the method's, not the unit's. As the Global Innovation Index does, the
earlier edition is recomputed under the later framework from its own indicator scores:

    total change  = score(t, F_t) - score(t-1, F_t-1)
                  = [score(t, F_t) - score(t-1, F_t)]  +  [score(t-1, F_t) - score(t-1, F_t-1)]
                  =          data change               +            method change

and the data change is the one attributed to the nodes. When the earlier edition lacks an indicator
the later framework needs (and the missing-value rule gives no recomputed composite), the change
cannot be split: the unit's status says so and the contributions are null (likewise, under rule
'reweight', for a unit with missing indicators: its weights are its own). With identical frameworks
the method change is exactly 0.
"""

from __future__ import annotations

import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE, MissingRule, aggregate_tiers

ATTRIBUTED_LEVELS: tuple[int, ...] = (0, 1, 2)  # the composite (the total), level 1 and level 2
COMPARABLE, NOT_COMPARABLE, INCOMPLETE = "comparable", "framework_not_comparable", "incomplete_data"


def _tree(leaf_scores: pl.DataFrame, nodes: pl.DataFrame, missing: MissingRule) -> pl.DataFrame:
    return aggregate_tiers(leaf_scores.select("unit_code", "indicator_code", "score"), nodes, keys=("unit_code",), missing=missing)


def _composite(tree: pl.DataFrame, name: str) -> pl.DataFrame:
    return tree.filter(pl.col("level") == 0).select("unit_code", pl.col("score").alias(name))


def attribute_changes(
    current_leaves: pl.DataFrame,
    previous_leaves: pl.DataFrame,
    current_nodes: pl.DataFrame,
    previous_nodes: pl.DataFrame,
    missing: MissingRule = "propagate",
) -> pl.DataFrame:
    """``marts.yoy_attribution`` rows of one pair of editions and one unit type (without survey_year,
    unit_type and prev_year): one row per unit scored in both editions and node of the later framework
    at the attributed levels.

    ``*_leaves``: unit_code, indicator_code, score of each edition. ``*_nodes``: each edition's framework
    node table (code, parent_code, level, weight, effective_weight, is_leaf, name_zh).
    """
    current = _tree(current_leaves, current_nodes, missing)
    published_previous = _composite(_tree(previous_leaves, previous_nodes, missing), "prev_score_published")
    # The earlier edition's indicators under the later framework (indicators it lacks count as missing).
    recomputed = _tree(previous_leaves, current_nodes, missing)
    comparable_previous = recomputed.select("unit_code", "node_code", pl.col("score").alias("prev_score"))
    leaf_codes = current_nodes.filter(pl.col("is_leaf"))["code"].to_list()
    complete_in_both = (
        pl.concat([current_leaves.select("unit_code", "indicator_code", "score"), previous_leaves.select("unit_code", "indicator_code", "score")])
        .filter(pl.col("indicator_code").is_in(leaf_codes) & pl.col("score").is_not_null())
        .group_by("unit_code")
        .agg((pl.len() == 2 * len(leaf_codes)).alias("complete"))
    )
    units = (
        _composite(current, "composite_score")
        .join(published_previous, on="unit_code", how="inner")
        .join(_composite(recomputed, "prev_score_comparable"), on="unit_code", how="left")
        .join(complete_in_both, on="unit_code", how="left")
        .drop_nulls(["composite_score", "prev_score_published"])
        .with_columns(
            (pl.col("composite_score") - pl.col("prev_score_published")).alias("total_change"),
            (pl.col("composite_score") - pl.col("prev_score_comparable")).alias("data_change"),
            (pl.col("prev_score_comparable") - pl.col("prev_score_published")).alias("method_change"),
            # Under rule 'reweight' a unit with missing indicators has weights of its own, and the
            # framework's effective weights would not add up to its change: no contributions then.
            pl.when(pl.col("prev_score_comparable").is_null()).then(pl.lit(NOT_COMPARABLE))
            .when(~pl.col("complete").fill_null(False)).then(pl.lit(INCOMPLETE))
            .otherwise(pl.lit(COMPARABLE)).alias("status"),
        )
    )
    nodes = pl.concat([
        current_nodes.select(
            pl.col("code").alias("node_code"), pl.col("parent_code"), pl.col("level").cast(pl.Int32), "name_zh", "effective_weight",
        ),
        pl.DataFrame(
            {"node_code": [COMPOSITE_CODE], "parent_code": [None], "level": [0], "name_zh": ["综合指数"], "effective_weight": [1.0]},
            schema={"node_code": pl.String, "parent_code": pl.String, "level": pl.Int32, "name_zh": pl.String, "effective_weight": pl.Float64},
        ),
    ]).filter(pl.col("level").is_in(list(ATTRIBUTED_LEVELS)))
    comparable = pl.col("status") == COMPARABLE
    return (
        units.join(nodes, how="cross")
        .join(current.select("unit_code", "node_code", "score"), on=["unit_code", "node_code"], how="left")
        .join(comparable_previous, on=["unit_code", "node_code"], how="left")
        .with_columns(
            pl.when(pl.col("status") != NOT_COMPARABLE).then(pl.col("prev_score")).alias("prev_score"),
            pl.when(comparable).then(pl.col("score") - pl.col("prev_score")).alias("score_change"),
        )
        .with_columns(
            (pl.col("effective_weight") * pl.col("score_change")).alias("contribution"),
        )
        .with_columns(
            pl.when(pl.col("data_change") != 0).then(pl.col("contribution") / pl.col("data_change")).alias("share_of_change"),
        )
        .select(
            "unit_code", "status", "node_code", "level", "parent_code", "name_zh", "effective_weight", "score", "prev_score",
            "score_change", "contribution", "share_of_change", "total_change", "data_change", "method_change",
            "prev_score_published",
        )
        .sort("unit_code", "level", "node_code")
    )
