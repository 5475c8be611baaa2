"""Attribution of change: a unit's score change between two editions, split over the framework's nodes.

The composite is a weighted sum, so its change is the sum of each level-1 node's effective weight
times that node's change, and each level-1 node's change splits the same way over its level-2
children: ``contribution = effective_weight x score_change`` adds up exactly (up to floating-point
rounding, ~1e-13) to the change of the composite, level by level.

Comparable editions. When the two editions use different frameworks (weights, or indicators added or
dropped), part of the change is the method's, not the unit's. Write s(d, F) for the composite of the
data of one edition under one framework. Going from s(d0, F0) to s(d1, F1) takes two steps, and the
split depends on their order:

    method first:  method = s(d0, F1) - s(d0, F0),   data = s(d1, F1) - s(d0, F1)
    data first:    data   = s(d1, F0) - s(d0, F0),   method = s(d1, F1) - s(d1, F0)

(weights 0.8/0.2 -> 0.2/0.8 with A -20 and B +40 from A = 80, B = 20 give data/method 28/-36 in one
order and -8/0 in the other). The split published is the Shapley value of the two steps, the average
of both orders: exact (data + method = total change), unique, and symmetric in the two steps. Each
node's contribution is likewise the average of its weighted change under either framework,
1/2 [e1 (x(d1, F1) - x(d0, F1)) + e0 (x(d1, F0) - x(d0, F0))] (e the node's effective weight in that
framework, x its score), so the contributions of a level add up to the data change whenever both
frameworks have the same nodes at that level (a node of the earlier framework only has no row).

When either cross term is missing (an edition lacks an indicator the other framework needs, and the
missing-value rule gives no composite), the change cannot be split: the unit's status says so and
the contributions are null (likewise, under rule 'reweight', for a unit with missing indicators: its
weights are its own). With identical frameworks both orders agree and the method change is exactly 0;
editions before 2020 are computed under the 2020 framework (back-cast: the earliest published
framework), so their method change is 0 by construction.
"""

from __future__ import annotations

import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE, aggregate_tiers
from dei_pipeline.config import MissingRule

ATTRIBUTED_LEVELS: tuple[int, ...] = (0, 1, 2)  # the composite (the total), level 1 and level 2
COMPARABLE, NOT_COMPARABLE, INCOMPLETE = "comparable", "framework_not_comparable", "incomplete_data"


def _tree(
    leaf_scores: pl.DataFrame, nodes: pl.DataFrame, missing: MissingRule, min_coverage: float
) -> pl.DataFrame:
    return aggregate_tiers(
        leaf_scores.select("unit_code", "indicator_code", "score"),
        nodes,
        keys=("unit_code",),
        missing=missing,
        min_coverage=min_coverage,
    )


def _composite(tree: pl.DataFrame, name: str) -> pl.DataFrame:
    return tree.filter(pl.col("level") == 0).select("unit_code", pl.col("score").alias(name))


def attribute_changes(
    current_leaves: pl.DataFrame,
    previous_leaves: pl.DataFrame,
    current_nodes: pl.DataFrame,
    previous_nodes: pl.DataFrame,
    missing: MissingRule = "propagate",
    min_coverage: float = 0.0,
) -> pl.DataFrame:
    """``marts.yoy_attribution`` rows of one pair of editions and one unit type (without survey_year,
    unit_type and prev_year): one row per unit scored in both editions and node of the later framework
    at the attributed levels.

    ``*_leaves``: unit_code, indicator_code, score of each edition. ``*_nodes``: each edition's framework
    node table (code, parent_code, level, weight, effective_weight, is_leaf, name_zh).
    """
    current = _tree(current_leaves, current_nodes, missing, min_coverage)  # d1 under F1
    published = _tree(previous_leaves, previous_nodes, missing, min_coverage)  # d0 under F0
    if current_nodes.equals(previous_nodes):  # one framework: the cross terms are the trees above
        recomputed, current_then = published, current
    else:
        recomputed = _tree(
            previous_leaves, current_nodes, missing, min_coverage
        )  # d0 under F1 (indicators it lacks: missing)
        current_then = _tree(current_leaves, previous_nodes, missing, min_coverage)  # d1 under F0
    # Each node's weighted change under the earlier framework (the data-first order), by node code.
    earlier_weights = previous_nodes.select(
        pl.col("code").alias("node_code"), pl.col("effective_weight").alias("earlier_weight")
    )
    earlier_change = (
        current_then.select("unit_code", "node_code", pl.col("score").alias("now_then"))
        .join(
            published.select("unit_code", "node_code", pl.col("score").alias("before_then")),
            on=["unit_code", "node_code"],
        )
        .join(
            pl.concat(
                [earlier_weights, pl.DataFrame({"node_code": [COMPOSITE_CODE], "earlier_weight": [1.0]})]
            ),
            on="node_code",
        )
        .select(
            "unit_code",
            "node_code",
            (pl.col("earlier_weight") * (pl.col("now_then") - pl.col("before_then"))).alias(
                "earlier_contribution"
            ),
        )
    )
    comparable_previous = recomputed.select("unit_code", "node_code", pl.col("score").alias("prev_score"))
    leaf_codes = current_nodes.filter(pl.col("is_leaf"))["code"].to_list()
    complete_in_both = (
        pl.concat(
            [
                current_leaves.select("unit_code", "indicator_code", "score"),
                previous_leaves.select("unit_code", "indicator_code", "score"),
            ]
        )
        .filter(pl.col("indicator_code").is_in(leaf_codes) & pl.col("score").is_not_null())
        .group_by("unit_code")
        .agg((pl.len() == 2 * len(leaf_codes)).alias("complete"))
    )
    method_first = pl.col("prev_score_comparable") - pl.col("prev_score_published")
    data_first = pl.col("composite_score") - pl.col("current_score_earlier")
    units = (
        _composite(current, "composite_score")
        .join(_composite(published, "prev_score_published"), on="unit_code", how="inner")
        .join(_composite(recomputed, "prev_score_comparable"), on="unit_code", how="left")
        .join(_composite(current_then, "current_score_earlier"), on="unit_code", how="left")
        .join(complete_in_both, on="unit_code", how="left")
        .drop_nulls(["composite_score", "prev_score_published"])
        .with_columns(
            (pl.col("composite_score") - pl.col("prev_score_published")).alias("total_change"),
            # Shapley: the method step's effect averaged over its two positions; data is the rest.
            ((method_first + data_first) / 2).alias("method_change"),
        )
        .with_columns(
            (pl.col("total_change") - pl.col("method_change")).alias("data_change"),
            # Under rule 'reweight' a unit with missing indicators has weights of its own, and the
            # framework's effective weights would not add up to its change: no contributions then.
            pl.when(pl.col("prev_score_comparable").is_null() | pl.col("current_score_earlier").is_null())
            .then(pl.lit(NOT_COMPARABLE))
            .when(~pl.col("complete").fill_null(False))
            .then(pl.lit(INCOMPLETE))
            .otherwise(pl.lit(COMPARABLE))
            .alias("status"),
        )
    )
    nodes = pl.concat(
        [
            current_nodes.select(
                pl.col("code").alias("node_code"),
                pl.col("parent_code"),
                pl.col("level").cast(pl.Int32),
                "name_zh",
                "effective_weight",
            ),
            pl.DataFrame(
                {
                    "node_code": [COMPOSITE_CODE],
                    "parent_code": [None],
                    "level": [0],
                    "name_zh": ["综合指数"],
                    "effective_weight": [1.0],
                },
                schema={
                    "node_code": pl.String,
                    "parent_code": pl.String,
                    "level": pl.Int32,
                    "name_zh": pl.String,
                    "effective_weight": pl.Float64,
                },
            ),
        ]
    ).filter(pl.col("level").is_in(list(ATTRIBUTED_LEVELS)))
    comparable = pl.col("status") == COMPARABLE
    return (
        units.join(nodes, how="cross")
        .join(current.select("unit_code", "node_code", "score"), on=["unit_code", "node_code"], how="left")
        .join(comparable_previous, on=["unit_code", "node_code"], how="left")
        .with_columns(
            pl.when(pl.col("status") != NOT_COMPARABLE).then(pl.col("prev_score")).alias("prev_score"),
            pl.when(comparable).then(pl.col("score") - pl.col("prev_score")).alias("score_change"),
        )
        .join(earlier_change, on=["unit_code", "node_code"], how="left")
        .with_columns(
            # A node the earlier framework lacks has no weighted change under it: 0 in that order.
            pl.when(comparable)
            .then(
                (
                    pl.col("effective_weight") * pl.col("score_change")
                    + pl.col("earlier_contribution").fill_null(0.0)
                )
                / 2
            )
            .alias("contribution"),
        )
        .with_columns(
            pl.when(pl.col("data_change") != 0)
            .then(pl.col("contribution") / pl.col("data_change"))
            .alias("share_of_change"),
        )
        .select(
            "unit_code",
            "status",
            "node_code",
            "level",
            "parent_code",
            "name_zh",
            "effective_weight",
            "score",
            "prev_score",
            "score_change",
            "contribution",
            "share_of_change",
            "total_change",
            "data_change",
            "method_change",
            "prev_score_published",
        )
        .sort("unit_code", "level", "node_code")
    )
