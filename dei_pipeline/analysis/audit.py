"""Statistical audit of an edition, in the manner of the JRC audits of composite indices (COINr).

Per node of the framework, over the units of one edition and unit type:

- its Pearson correlation with its parent and with the composite: an indicator that correlates
  negatively with its aggregate works against it (flag ``negative_corr_parent`` /
  ``negative_corr_composite``);
- its correlation with each sibling: |r| > 0.9 means two indicators measure nearly the same thing and
  the concept is counted twice (flag ``redundant``, with the siblings named);
- Cronbach's alpha of each group (a parent's children, the composite's level-1 nodes): the internal
  consistency of the group; below 0.7, the conventional threshold, the children do not move together
  (flag ``low_alpha`` on the parent);
- its effective weight against its nominal one. The nominal weight is the framework's. The measured
  one is how much the node actually drives its aggregate: its squared correlation with the parent as
  a share of its siblings' (the linear form of the correlation ratio of Paruolo, Saisana and Saltelli
  2013, used in the JRC audits), and, for the whole index, its squared correlation with the composite
  as a share of all nodes of its level. A measured weight under half or over twice the nominal one
  is flagged ``weight_mismatch``: the node matters much less (or more) than its weight says.

Per unit: how many of the framework's indicators it lacks; a unit missing more than a third is flagged,
as composite indices (the Global Innovation Index among them) require about two thirds coverage.
"""

from __future__ import annotations

import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE

REDUNDANT_CORRELATION = 0.9
LOW_ALPHA = 0.7
WEIGHT_RATIO_RANGE: tuple[float, float] = (0.5, 2.0)
MAX_MISSING_SHARE = 1 / 3
COMPOSITE_NAME_ZH = "综合指数"


def _tree(nodes: pl.DataFrame) -> pl.DataFrame:
    """The framework's nodes and the composite: node_code, parent_code ('composite' for level 1,
    null for the composite), level, name_zh, weight, effective_weight, is_leaf."""
    return pl.concat([
        nodes.select(
            pl.col("code").alias("node_code"), pl.col("parent_code").fill_null(COMPOSITE_CODE), pl.col("level").cast(pl.Int32),
            "name_zh", "weight", "effective_weight", "is_leaf",
        ),
        pl.DataFrame(
            {"node_code": [COMPOSITE_CODE], "parent_code": [None], "level": [0], "name_zh": [COMPOSITE_NAME_ZH],
             "weight": [1.0], "effective_weight": [1.0], "is_leaf": [False]},
            schema={"node_code": pl.String, "parent_code": pl.String, "level": pl.Int32, "name_zh": pl.String,
                    "weight": pl.Float64, "effective_weight": pl.Float64, "is_leaf": pl.Boolean},
        ),
    ])


def _pearson(frame: pl.DataFrame, keys: list[str], x: str, y: str, name: str) -> pl.DataFrame:
    """Pearson correlation of x and y per group, over the rows where both exist (null with fewer than
    three such rows or no variance)."""
    # Sorted, and grouped in order: floating-point sums in a fixed order make reruns identical.
    pairs = frame.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null()).sort([*keys, "unit_code"])
    return pairs.group_by(keys, maintain_order=True).agg(
        pl.when(pl.len() >= 3).then(pl.corr(x, y)).otherwise(None).fill_nan(None).alias(name)
    )


def audit_nodes(node_scores: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """``marts.audit`` rows of one edition and unit type (without survey_year and unit_type).

    ``node_scores``: unit_code, node_code, score for every node and the composite ('composite'), as in
    marts.subindex_scores. ``nodes``: the framework's node table.
    """
    tree = _tree(nodes)
    scores = node_scores.select("unit_code", "node_code", pl.col("score").cast(pl.Float64))
    n_units = scores["unit_code"].n_unique()
    with_parent = scores.join(tree.select("node_code", "parent_code"), on="node_code").join(
        scores.select("unit_code", pl.col("node_code").alias("parent_code"), pl.col("score").alias("parent_score")),
        on=["unit_code", "parent_code"], how="left",
    )
    composite = scores.filter(pl.col("node_code") == COMPOSITE_CODE).select("unit_code", pl.col("score").alias("composite_score"))
    corr_parent = _pearson(with_parent, ["node_code"], "score", "parent_score", "corr_with_parent")
    corr_composite = _pearson(
        scores.filter(pl.col("node_code") != COMPOSITE_CODE).join(composite, on="unit_code"), ["node_code"], "score", "composite_score", "corr_with_composite"
    )
    siblings = with_parent.select("unit_code", "parent_code", "node_code", "score")
    pairs = _pearson(
        siblings.join(siblings.rename({"node_code": "sibling_code", "score": "sibling_score"}), on=["unit_code", "parent_code"])
        .filter(pl.col("node_code") != pl.col("sibling_code")),
        ["node_code", "sibling_code"], "score", "sibling_score", "corr",
    )
    sibling_summary = pairs.group_by("node_code").agg(
        pl.col("corr").abs().max().alias("max_abs_sibling_corr"),
        pl.col("sibling_code").filter(pl.col("corr").abs() > REDUNDANT_CORRELATION).sort().str.join(",").alias("redundant_with"),
    ).with_columns(pl.when(pl.col("redundant_with") != "").then(pl.col("redundant_with")).alias("redundant_with"))
    presence = scores.group_by("node_code").agg(pl.col("score").is_not_null().sum().cast(pl.Int32).alias("n_units"))

    audited = (
        tree.join(presence, on="node_code", how="left")
        .join(corr_parent, on="node_code", how="left")
        .join(corr_composite, on="node_code", how="left")
        .join(sibling_summary, on="node_code", how="left")
        .join(_cronbach_alpha(with_parent, tree), on="node_code", how="left")
        .sort("node_code")  # a fixed order for the window sums below
        .with_columns(
            pl.col("n_units").fill_null(0),
            (1 - pl.col("n_units").fill_null(0) / max(n_units, 1)).alias("missing_share"),
            # The measured weights: squared correlations as shares within the siblings / the level.
            (pl.col("corr_with_parent") ** 2 / (pl.col("corr_with_parent") ** 2).sum().over("parent_code")).alias("measured_weight"),
            (pl.col("corr_with_composite") ** 2 / (pl.col("corr_with_composite") ** 2).sum().over("level")).alias("measured_effective_weight"),
            pl.len().over("parent_code").alias("n_siblings_and_self"),
        )
        .with_columns(
            pl.when(pl.col("n_siblings_and_self") > 1).then(pl.col("measured_weight") / pl.col("weight")).alias("weight_ratio"),
        )
    )
    low, high = WEIGHT_RATIO_RANGE
    flags = [
        pl.when(pl.col("corr_with_parent") < 0).then(pl.lit("negative_corr_parent")),
        pl.when(pl.col("corr_with_composite") < 0).then(pl.lit("negative_corr_composite")),
        pl.when(pl.col("redundant_with").is_not_null()).then(pl.lit("redundant")),
        pl.when((pl.col("weight_ratio") < low) | (pl.col("weight_ratio") > high)).then(pl.lit("weight_mismatch")),
        pl.when(pl.col("cronbach_alpha") < LOW_ALPHA).then(pl.lit("low_alpha")),
    ]
    return (
        audited.with_columns(pl.concat_list(flags).list.drop_nulls().list.join(",").alias("flags"))
        .with_columns(
            pl.when(pl.col("flags") != "").then(pl.col("flags")).alias("flags"),
            pl.when(pl.col("parent_code").is_not_null()).then(pl.col("weight")).alias("nominal_weight"),
            pl.col("effective_weight").alias("nominal_effective_weight"),
        )
        .select(
            "node_code", "level", "parent_code", "name_zh", "n_units", "missing_share", "nominal_weight", "nominal_effective_weight",
            "measured_weight", "measured_effective_weight", "weight_ratio", "corr_with_parent", "corr_with_composite",
            "max_abs_sibling_corr", "redundant_with", "n_children", "cronbach_alpha", "flags",
        )
        .sort("level", "node_code")
    )


def _cronbach_alpha(with_parent: pl.DataFrame, tree: pl.DataFrame) -> pl.DataFrame:
    """Cronbach's alpha of every parent's children, over the units that have all of them:
    k / (k - 1) * (1 - sum of the children's variances / variance of their sum)."""
    n_children = tree.group_by("parent_code").agg(pl.len().cast(pl.Int32).alias("n_children")).drop_nulls("parent_code")
    children = (
        with_parent.select("unit_code", "parent_code", "node_code", "score").join(n_children, on="parent_code")
        .sort("parent_code", "node_code", "unit_code")  # fixed summation order
    )
    complete = (
        children.group_by("parent_code", "unit_code", maintain_order=True)
        .agg(pl.col("score").is_not_null().sum().alias("present"), pl.col("score").sum().alias("total"), pl.first("n_children"))
        .filter(pl.col("present") == pl.col("n_children"))
    )
    item_variance = (
        children.join(complete.select("parent_code", "unit_code"), on=["parent_code", "unit_code"], maintain_order="left")
        .group_by("parent_code", "node_code", maintain_order=True).agg(pl.col("score").var().alias("variance"))
        .group_by("parent_code", maintain_order=True).agg(pl.col("variance").sum().alias("item_variance"))
    )
    total_variance = complete.group_by("parent_code", maintain_order=True).agg(pl.col("total").var().alias("total_variance"), pl.first("n_children"))
    return (
        total_variance.join(item_variance, on="parent_code")
        .with_columns(
            pl.when((pl.col("n_children") > 1) & (pl.col("total_variance") > 0))
            .then(pl.col("n_children") / (pl.col("n_children") - 1) * (1 - pl.col("item_variance") / pl.col("total_variance")))
            .alias("cronbach_alpha")
        )
        .select(pl.col("parent_code").alias("node_code"), "n_children", "cronbach_alpha")
    )


def audit_units(leaf_scores: pl.DataFrame, leaf_codes: list[str], composites: pl.DataFrame) -> pl.DataFrame:
    """``marts.audit_units`` rows of one edition and unit type (without survey_year and unit_type): per
    unit of the edition, how many of the framework's indicators it lacks, whether it has a composite,
    and a flag when it lacks more than MAX_MISSING_SHARE of them.

    ``leaf_scores``: unit_code, indicator_code, score (an absent row or a null score is missing).
    ``composites``: unit_code, score.
    """
    present = (
        leaf_scores.filter(pl.col("indicator_code").is_in(leaf_codes) & pl.col("score").is_not_null())
        .group_by("unit_code").agg(pl.col("indicator_code").n_unique().cast(pl.Int32).alias("n_present"))
    )
    units = pl.concat([leaf_scores.select("unit_code"), composites.select("unit_code")]).unique()
    return (
        units.join(present, on="unit_code", how="left")
        .join(composites.select("unit_code", pl.col("score").is_not_null().alias("has_composite")), on="unit_code", how="left")
        .with_columns(
            pl.lit(len(leaf_codes), pl.Int32).alias("n_indicators"),
            (len(leaf_codes) - pl.col("n_present").fill_null(0)).cast(pl.Int32).alias("n_missing"),
            pl.col("has_composite").fill_null(False),
        )
        .with_columns((pl.col("n_missing") / pl.col("n_indicators")).alias("missing_share"))
        .with_columns((pl.col("missing_share") > MAX_MISSING_SHARE).alias("too_many_missing"))
        .select("unit_code", "n_indicators", "n_missing", "missing_share", "has_composite", "too_many_missing")
        .sort("unit_code")
    )
