"""Imputation of missing measurements, over a whole edition at once (polars expressions).

Rules (per indicator, from its method): ``none`` (the cell stays missing; the aggregation's
``propagate``/``reweight`` rule then applies), ``group_mean`` / ``group_median`` (the mean or median of
the unit's peer group in the same edition: ``all``, ``province``, ``county_kind`` or ``tier``), and
``previous`` (the unit's last observed measurement in an earlier edition, carried forward and
flagged with that edition). Only observed measurements of units that are scored feed a peer statistic.
"""

from __future__ import annotations

import polars as pl

CELL_KEYS = ["survey_year", "unit_type", "unit_code", "indicator_code"]
INDICATOR_GROUP = ["survey_year", "unit_type", "indicator_code"]
SERIES = ["unit_type", "unit_code", "indicator_code"]


def unit_coverage(cells: pl.DataFrame, min_coverage: float) -> pl.DataFrame:
    """``cells`` with ``unit_coverage`` (the share of the unit's indicators measured, before any
    imputation) and ``covered`` (coverage at least ``min_coverage``: a unit below it is not scored)."""
    return cells.with_columns(
        pl.col("measurement")
        .is_not_null()
        .mean()
        .over("survey_year", "unit_type", "unit_code")
        .alias("unit_coverage")
    ).with_columns((pl.col("unit_coverage") >= min_coverage - 1e-12).alias("covered"))


PEER_COLUMNS: dict[str, str | None] = {
    "all": None,
    "province": "province",
    "county_kind": "county_kind",
    "tier": "tier",
}


def _peer_values(todo: pl.DataFrame, observed: pl.DataFrame) -> list[pl.DataFrame]:
    """__row, __value, __rule of the cells to impute from a peer group: the group's statistics are
    one group_by over the observed cells per kind of peer group (at most four), joined to the cells."""
    found = []
    for kind, column in PEER_COLUMNS.items():
        rows = todo.filter(
            pl.col("imputation").is_in(["group_mean", "group_median"]) & (pl.col("peer_group") == kind)
        )
        if not rows.height:
            continue
        keys = [*INDICATOR_GROUP, *([column] if column else [])]
        stats = observed.group_by(keys).agg(
            pl.col("measurement").mean().alias("__mean"),
            pl.col("measurement").median().alias("__median"),
            pl.len().alias("__peers"),
        )
        label = pl.lit("all") if column is None else pl.concat_str(pl.lit(f"{kind}="), pl.col(column))
        found.append(
            rows.join(stats, on=keys, how="left").select(
                "__row",
                pl.when(pl.col("imputation") == "group_mean")
                .then(pl.col("__mean"))
                .otherwise(pl.col("__median"))
                .alias("__value"),
                pl.concat_str(
                    pl.col("imputation"),
                    pl.lit(": "),
                    label,
                    pl.lit(" ("),
                    pl.col("__peers").cast(pl.String),
                    pl.lit(" peers)"),
                ).alias("__rule"),
            )
        )
    return found


def _previous_values(todo: pl.DataFrame, observed: pl.DataFrame) -> list[pl.DataFrame]:
    """__row, __value, __rule of the cells to impute with the unit's last earlier measurement."""
    rows = todo.filter(pl.col("imputation") == "previous")
    if not rows.height:
        return []
    earlier = observed.select(
        *SERIES, pl.col("survey_year").alias("__year"), pl.col("measurement").alias("__value")
    )
    last = (
        rows.select("__row", *SERIES, "survey_year")
        .join(earlier, on=SERIES)
        .filter(pl.col("__year") < pl.col("survey_year"))
        .sort("__year")
        .group_by("__row")
        .agg(pl.col("__value").last(), pl.col("__year").last())
    )
    return [
        last.select(
            "__row",
            "__value",
            pl.concat_str(pl.lit("previous: edition "), pl.col("__year").cast(pl.String)).alias("__rule"),
        )
    ]


def impute(cells: pl.DataFrame, history: pl.DataFrame | None = None) -> pl.DataFrame:
    """``cells`` (CELL_KEYS, measurement, covered, imputation, peer_group and the peer columns
    province, county_kind, tier) with ``imputed_value``, ``imputed`` and ``imputation_rule`` (how the
    value was imputed, null when it was measured or stays missing). ``history``: earlier editions'
    cells (CELL_KEYS, measurement) for rule ``previous``; ``cells`` count as history of their later
    editions. Peer statistics use the observed measurements of covered units only; a peer group that
    is unknown (a null tier) or has no measured peer leaves the cell missing.

    Only the cells to impute are joined to statistics, so the cost is one group_by per kind of peer
    group used plus a join of the missing cells, whatever the size of the edition."""
    frame = cells.with_row_index("__row")
    todo = frame.filter(
        pl.col("measurement").is_null()
        & pl.col("covered")
        & (pl.col("imputation").fill_null("none") != "none")
    )
    peer_columns = [c for c in ("province", "county_kind", "tier") if c in frame.columns]
    observed = frame.select(*CELL_KEYS, *peer_columns, "measurement", "covered").filter(
        pl.col("covered") & pl.col("measurement").is_not_null()
    )
    found = _peer_values(todo, observed) if todo.height else []
    if todo.height and history is not None and history.height:
        past = history.select(*CELL_KEYS, "measurement").filter(pl.col("measurement").is_not_null())
        observed_all = pl.concat([past, observed.select(*CELL_KEYS, "measurement")], how="vertical_relaxed")
    else:
        observed_all = observed
    if todo.height:
        found += _previous_values(todo, observed_all)
    filled = (
        pl.concat(found, how="vertical_relaxed").filter(pl.col("__value").is_not_null())
        if found
        else pl.DataFrame(schema={"__row": pl.UInt32, "__value": pl.Float64, "__rule": pl.String})
    )
    # The imputed values and rules put in place by row number (a scatter, not a join of every cell).
    n = frame.height
    value = pl.Series("__value", [None] * n, dtype=pl.Float64).scatter(filled["__row"], filled["__value"])
    rule = pl.Series("__rule", [None] * n, dtype=pl.String).scatter(filled["__row"], filled["__rule"])
    return (
        frame.with_columns(value, rule)
        .with_columns(
            pl.coalesce(pl.col("measurement"), pl.col("__value")).alias("imputed_value"),
            pl.col("__value").is_not_null().alias("imputed"),
            pl.col("__rule").alias("imputation_rule"),
        )
        .drop("__row", "__value", "__rule")
    )
