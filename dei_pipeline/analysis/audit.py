"""Statistical audit of an edition, in the manner of the JRC audits of composite indices (COINr).

Per node of the framework, over the units of one edition and unit type:

- its Pearson and Spearman (rank) correlations with its parent and with the composite: an indicator
  that correlates negatively with its aggregate works against it. The flags ``negative_corr_parent`` /
  ``negative_corr_composite`` need evidence, not just a sign: the one-sided p-value of a negative
  Pearson correlation (Fisher's z, normal approximation: p = Phi(atanh(r) sqrt(n - 3))) must be below
  ``NEGATIVE_CORR_ALPHA``; a correlation of -0.1 over 20 units is noise;
- its correlation with each sibling: |r| > 0.9 means two indicators measure nearly the same thing and
  the concept is counted twice (flag ``redundant``, with the siblings named);
- Cronbach's alpha of each group (a parent's children, the composite's level-1 nodes): the internal
  consistency of the group; below 0.7, the conventional threshold, the children do not move together
  (flag ``low_alpha`` on the parent);
- a principal component analysis of each group (children standardised, units with all of them): the
  share of the group's variance its first component explains (on the parent; high = one dimension),
  and each child's squared loading on it (``pca_weight``: the weights that would make the group's
  aggregate carry the most variance, summing to 1 within the group);
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

import numpy as np
import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE

REDUNDANT_CORRELATION = 0.9
NEGATIVE_CORR_ALPHA = 0.05  # one-sided significance behind a negative-correlation flag
LOW_ALPHA = 0.7
WEIGHT_RATIO_RANGE: tuple[float, float] = (0.5, 2.0)
MAX_MISSING_SHARE = 1 / 3
COMPOSITE_NAME_ZH = "综合指数"


def _tree(nodes: pl.DataFrame) -> pl.DataFrame:
    """The framework's nodes and the composite: node_code, parent_code ('composite' for level 1,
    null for the composite), level, name_zh, weight, effective_weight, is_leaf."""
    return pl.concat(
        [
            nodes.select(
                pl.col("code").alias("node_code"),
                pl.col("parent_code").fill_null(COMPOSITE_CODE),
                pl.col("level").cast(pl.Int32),
                "name_zh",
                "weight",
                "effective_weight",
                "is_leaf",
            ),
            pl.DataFrame(
                {
                    "node_code": [COMPOSITE_CODE],
                    "parent_code": [None],
                    "level": [0],
                    "name_zh": [COMPOSITE_NAME_ZH],
                    "weight": [1.0],
                    "effective_weight": [1.0],
                    "is_leaf": [False],
                },
                schema={
                    "node_code": pl.String,
                    "parent_code": pl.String,
                    "level": pl.Int32,
                    "name_zh": pl.String,
                    "weight": pl.Float64,
                    "effective_weight": pl.Float64,
                    "is_leaf": pl.Boolean,
                },
            ),
        ]
    )


def _wide(scores: pl.DataFrame, node_codes: list[str]) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Every unit of ``scores`` (unit_code, node_code, score) in code order, and their scores of
    ``node_codes`` as a units × nodes matrix (columns in that order) with the mask of the scores present.
    Absent and null scores alike are missing: 0 in the matrix, masked out."""
    units = scores["unit_code"].unique().sort()  # a fixed unit order: fixed summation order, identical reruns
    kept = scores.filter(pl.col("node_code").is_in(node_codes) & pl.col("score").is_not_null())
    # Enum codes are the positions in the category list: matrix indices without a join or a sort.
    row = kept["unit_code"].cast(pl.Enum(units)).to_physical().to_numpy()
    col = kept["node_code"].cast(pl.Enum(node_codes)).to_physical().to_numpy()
    values = np.zeros((len(units), len(node_codes)))
    present = np.zeros((len(units), len(node_codes)), dtype=bool)
    values[row, col] = kept["score"].to_numpy()
    present[row, col] = True
    return units, values, present


def _centred(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each column's deviations from its mean over the present entries (0 elsewhere)."""
    # Shifted by one of the column's own values (its largest) first: a constant column's deviations are
    # then exactly 0 (no variance, rather than rounding noise), and the sums keep more precision.
    shift = np.where(present, values, -np.inf).max(axis=0, initial=-np.inf)
    shifted = np.where(present, values - shift, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = shifted.sum(axis=0) / present.sum(axis=0)
    return np.where(present, shifted - mean, 0.0)


def _variance(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Sample variance of each column over its present entries (NaN with fewer than two)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (_centred(values, present) ** 2).sum(axis=0) / (present.sum(axis=0) - 1)


def _correlation(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Column-wise correlation of centred columns (0 where masked out). Column sums over the units in a
    fixed order (no BLAS): reruns give identical figures."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(axis=0) / (np.sqrt((dx * dx).sum(axis=0)) * np.sqrt((dy * dy).sum(axis=0)))


def _ranks(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each column's average ranks (ties share the mean rank) among its present entries; 0 elsewhere."""
    frame = pl.DataFrame(np.where(present, values, np.nan)).fill_nan(None)
    return (
        frame.select(pl.all().rank(method="average"))
        .fill_null(0.0)
        .to_numpy()
        .astype(np.float64)
        .reshape(values.shape)
    )


def _pair_ranks(
    values: np.ndarray, present: np.ndarray, ranks: np.ndarray, cols: np.ndarray, both: np.ndarray
) -> np.ndarray:
    """The ranks of columns ``cols`` among the units of ``both`` (each pair's common units): a column's
    own ``ranks`` where the pair leaves none of its units out, ranked again where it does."""
    pair_ranks = ranks[:, cols]
    again = (both != present[:, cols]).any(axis=0)
    if again.any():
        pair_ranks[:, again] = _ranks(values[:, cols[again]], both[:, again])
    return pair_ranks


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) from erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), vectorised."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _pearson(
    values: np.ndarray, present: np.ndarray, ranks: np.ndarray, pairs: pl.DataFrame, name: str
) -> pl.DataFrame:
    """``pairs`` (columns ``col`` and ``other_col`` of the wide matrix) with, over the units where both
    exist (null with fewer than three such units or no variance): ``name`` (Pearson), ``spearman_<name>``
    (the Pearson correlation of their ranks among those units) and ``<name>_p`` (the one-sided p-value
    of a negative correlation, Fisher's z). ``ranks``: each column's ranks among its present units."""
    x, y = pairs["col"].to_numpy(), pairs["other_col"].to_numpy()
    both = present[:, x] & present[:, y]
    n = both.sum(axis=0)
    r = _correlation(_centred(values[:, x], both), _centred(values[:, y], both))
    rho = _correlation(
        _centred(_pair_ranks(values, present, ranks, x, both), both),
        _centred(_pair_ranks(values, present, ranks, y, both), both),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p_negative = _normal_cdf(np.arctanh(np.clip(r, -1.0, 1.0)) * np.sqrt(np.maximum(n - 3, 0)))
    r[n < 3], rho[n < 3] = np.nan, np.nan
    p_negative[(n < 4) | np.isnan(r)] = np.nan  # Fisher's z needs n > 3
    return pairs.with_columns(
        pl.Series(name, r, pl.Float64).fill_nan(None),
        pl.Series(f"spearman_{name}", rho, pl.Float64).fill_nan(None),
        pl.Series(f"{name}_p", p_negative, pl.Float64).fill_nan(None),
    )


def audit_nodes(node_scores: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """``marts.audit`` rows of one edition and unit type (without survey_year and unit_type).

    ``node_scores``: unit_code, node_code, score for every node and the composite ('composite'), as in
    marts.subindex_scores. ``nodes``: the framework's node table.
    """
    tree = _tree(nodes)
    scores = node_scores.select("unit_code", "node_code", pl.col("score").cast(pl.Float64))
    # Every statistic comes from one units × nodes matrix, column i being the tree's node i.
    units, values, present = _wide(scores, tree["node_code"].to_list())
    ranks = _ranks(values, present)
    index = tree.select("node_code", "parent_code").with_row_index("col")
    parent_pairs = index.join(
        index.select(pl.col("node_code").alias("parent_code"), pl.col("col").alias("other_col")),
        on="parent_code",
    )
    corr_parent = _pearson(values, present, ranks, parent_pairs, "corr_with_parent")
    composite_col = index.filter(pl.col("node_code") == COMPOSITE_CODE)["col"].item()
    corr_composite = _pearson(
        values,
        present,
        ranks,
        index.filter(pl.col("node_code") != COMPOSITE_CODE).with_columns(
            pl.lit(composite_col, pl.UInt32).alias("other_col")
        ),
        "corr_with_composite",
    )
    pairs = _pearson(
        values,
        present,
        ranks,
        index.join(
            index.select(
                pl.col("node_code").alias("sibling_code"), pl.col("col").alias("other_col"), "parent_code"
            ),
            on="parent_code",
        ).filter(pl.col("node_code") != pl.col("sibling_code")),
        "corr",
    )
    sibling_summary = (
        pairs.group_by("node_code")
        .agg(
            pl.col("corr").abs().max().alias("max_abs_sibling_corr"),
            pl.col("sibling_code")
            .filter(pl.col("corr").abs() > REDUNDANT_CORRELATION)
            .sort()
            .str.join(",")
            .alias("redundant_with"),
        )
        .with_columns(
            pl.when(pl.col("redundant_with") != "").then(pl.col("redundant_with")).alias("redundant_with")
        )
    )
    presence = index.select("node_code", pl.Series("n_units", present.sum(axis=0), pl.Int32))

    audited = (
        tree.join(presence, on="node_code", how="left")
        .join(
            corr_parent.select(
                "node_code", "corr_with_parent", "spearman_corr_with_parent", "corr_with_parent_p"
            ),
            on="node_code",
            how="left",
        )
        .join(
            corr_composite.select(
                "node_code", "corr_with_composite", "spearman_corr_with_composite", "corr_with_composite_p"
            ),
            on="node_code",
            how="left",
        )
        .join(sibling_summary, on="node_code", how="left")
        .join(_cronbach_alpha(values, present, index), on="node_code", how="left")
        .join(_group_pca(values, present, index), on="node_code", how="left")
        .sort("node_code")  # a fixed order for the window sums below
        .with_columns(
            pl.col("n_units").fill_null(0),
            (1 - pl.col("n_units").fill_null(0) / max(len(units), 1)).alias("missing_share"),
            # The measured weights: squared correlations as shares within the siblings / the level.
            (
                pl.col("corr_with_parent") ** 2 / (pl.col("corr_with_parent") ** 2).sum().over("parent_code")
            ).alias("measured_weight"),
            (
                pl.col("corr_with_composite") ** 2 / (pl.col("corr_with_composite") ** 2).sum().over("level")
            ).alias("measured_effective_weight"),
            pl.len().over("parent_code").alias("n_siblings_and_self"),
        )
        .with_columns(
            pl.when(pl.col("n_siblings_and_self") > 1)
            .then(pl.col("measured_weight") / pl.col("weight"))
            .alias("weight_ratio"),
        )
    )
    low, high = WEIGHT_RATIO_RANGE
    flags = [
        pl.when((pl.col("corr_with_parent") < 0) & (pl.col("corr_with_parent_p") < NEGATIVE_CORR_ALPHA)).then(
            pl.lit("negative_corr_parent")
        ),
        pl.when(
            (pl.col("corr_with_composite") < 0) & (pl.col("corr_with_composite_p") < NEGATIVE_CORR_ALPHA)
        ).then(pl.lit("negative_corr_composite")),
        pl.when(pl.col("redundant_with").is_not_null()).then(pl.lit("redundant")),
        pl.when((pl.col("weight_ratio") < low) | (pl.col("weight_ratio") > high)).then(
            pl.lit("weight_mismatch")
        ),
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
            "node_code",
            "level",
            "parent_code",
            "name_zh",
            "n_units",
            "missing_share",
            "nominal_weight",
            "nominal_effective_weight",
            "measured_weight",
            "measured_effective_weight",
            "weight_ratio",
            "corr_with_parent",
            "corr_with_composite",
            pl.col("spearman_corr_with_parent").alias("spearman_with_parent"),
            pl.col("spearman_corr_with_composite").alias("spearman_with_composite"),
            pl.col("corr_with_parent_p").alias("negative_corr_parent_p"),
            pl.col("corr_with_composite_p").alias("negative_corr_composite_p"),
            "max_abs_sibling_corr",
            "redundant_with",
            "n_children",
            "cronbach_alpha",
            "pca_first_share",
            "pca_weight",
            "flags",
        )
        .sort("level", "node_code")
    )


def _cronbach_alpha(values: np.ndarray, present: np.ndarray, index: pl.DataFrame) -> pl.DataFrame:
    """Cronbach's alpha of every parent's children, over the units that have all of them:
    k / (k - 1) * (1 - sum of the children's variances / variance of their sum).

    ``index``: node_code, parent_code and col, the node's column in the wide matrix."""
    children = index.drop_nulls("parent_code").sort("parent_code", "node_code")  # fixed summation order
    groups = children.group_by("parent_code", maintain_order=True).agg(
        pl.len().cast(pl.Int32).alias("n_children")
    )
    k = groups["n_children"].to_numpy()
    starts = np.cumsum(k) - k  # each parent's children are contiguous columns
    cols = children["col"].to_numpy()
    complete = np.add.reduceat(present[:, cols].astype(np.int64), starts, axis=1) == k  # units × parents
    item_variance = np.add.reduceat(_variance(values[:, cols], np.repeat(complete, k, axis=1)), starts)
    total = np.add.reduceat(
        values[:, cols], starts, axis=1
    )  # of the complete units' children (missing ones are 0)
    n_complete = complete.sum(axis=0)
    return (
        groups.with_columns(
            pl.Series("total_variance", _variance(total, complete)),
            pl.Series("item_variance", item_variance),
            pl.Series("n_complete", n_complete),
        )
        .filter(pl.col("n_complete") > 0)  # no unit with all the children: no row (n_children null)
        .with_columns(
            # One complete unit gives NaN variances, and NaN > 0 holds in polars: hence n_complete > 1.
            pl.when((pl.col("n_children") > 1) & (pl.col("n_complete") > 1) & (pl.col("total_variance") > 0))
            .then(
                pl.col("n_children")
                / (pl.col("n_children") - 1)
                * (1 - pl.col("item_variance") / pl.col("total_variance"))
            )
            .alias("cronbach_alpha")
        )
        .select(pl.col("parent_code").alias("node_code"), "n_children", "cronbach_alpha")
    )


def first_component(data: np.ndarray) -> tuple[float, np.ndarray] | None:
    """PCA of the columns of ``data`` (units x variables, standardised: the eigen-decomposition of their
    correlation matrix): the share of variance of the first component and each variable's squared
    loading on it (summing to 1). None with fewer than three units or a column without variance."""
    if data.shape[0] < 3 or not (data.std(axis=0, ddof=1) > 0).all():
        return None
    eigenvalues, eigenvectors = np.linalg.eigh(np.corrcoef(data, rowvar=False))  # ascending
    return float(eigenvalues[-1] / eigenvalues.sum()), eigenvectors[:, -1] ** 2


def _group_pca(values: np.ndarray, present: np.ndarray, index: pl.DataFrame) -> pl.DataFrame:
    """Per group of two or more children, over the units that have all of them, a PCA of the
    standardised children (the eigen-decomposition of their correlation matrix): on the parent, the
    share of variance of the first component; on each child, its squared loading on that component.
    Groups without variance in a child, or with fewer than three complete units, have neither."""
    children = index.drop_nulls("parent_code").sort("parent_code", "node_code")
    parents: list[tuple[str, float]] = []
    loadings: list[tuple[str, float]] = []
    # A loop over the framework's groups (tens), each one small eigenproblem.
    for (parent,), group in children.group_by("parent_code", maintain_order=True):
        cols = group["col"].to_numpy()
        complete = present[:, cols].all(axis=1)
        if cols.size < 2 or complete.sum() < 3:
            continue
        found = first_component(values[np.ix_(complete, cols)])
        if found is None:
            continue
        parents.append((parent, found[0]))
        loadings.extend(zip(group["node_code"].to_list(), found[1].tolist(), strict=True))
    shares = pl.DataFrame(
        parents, schema={"node_code": pl.String, "pca_first_share": pl.Float64}, orient="row"
    )
    weights = pl.DataFrame(loadings, schema={"node_code": pl.String, "pca_weight": pl.Float64}, orient="row")
    return shares.join(weights, on="node_code", how="full", coalesce=True)


def audit_units(leaf_scores: pl.DataFrame, leaf_codes: list[str], composites: pl.DataFrame) -> pl.DataFrame:
    """``marts.audit_units`` rows of one edition and unit type (without survey_year and unit_type): per
    unit of the edition, how many of the framework's indicators it lacks, whether it has a composite,
    and a flag when it lacks more than MAX_MISSING_SHARE of them.

    ``leaf_scores``: unit_code, indicator_code, score (an absent row or a null score is missing).
    ``composites``: unit_code, score.
    """
    # The indicator codes as an Enum of the framework's (null for any other code): counting distinct
    # codes per unit on integers, hashing the strings once, is much cheaper than on the strings.
    indicator = pl.col("indicator_code").cast(pl.Enum(leaf_codes), strict=False)
    present = leaf_scores.group_by("unit_code").agg(
        indicator.filter(pl.col("score").is_not_null())
        .drop_nulls()
        .n_unique()
        .cast(pl.Int32)
        .alias("n_present")
    )
    return (
        present.join(
            composites.select("unit_code", pl.col("score").is_not_null().alias("has_composite")),
            on="unit_code",
            how="full",
            coalesce=True,
        )
        .with_columns(
            pl.lit(len(leaf_codes), pl.Int32).alias("n_indicators"),
            (len(leaf_codes) - pl.col("n_present").fill_null(0)).cast(pl.Int32).alias("n_missing"),
            pl.col("has_composite").fill_null(False),
        )
        .with_columns((pl.col("n_missing") / pl.col("n_indicators")).alias("missing_share"))
        .with_columns((pl.col("missing_share") > MAX_MISSING_SHARE).alias("too_many_missing"))
        .select(
            "unit_code", "n_indicators", "n_missing", "missing_share", "has_composite", "too_many_missing"
        )
        .sort("unit_code")
    )
