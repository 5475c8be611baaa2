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


def previous_observations(cells: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """``cells`` with ``previous_value`` and ``previous_year``: the unit's last measurement of the
    indicator observed in an edition before the cell's (``history`` holds earlier editions' cells:
    survey_year, unit_type, unit_code, indicator_code, measurement; ``cells`` count as history of
    their later editions)."""
    current = cells.select(*CELL_KEYS, "measurement").with_columns(pl.lit(True).alias("__current"))
    earlier = (
        history.select(*CELL_KEYS, "measurement")
        .join(current.select(CELL_KEYS), on=CELL_KEYS, how="anti")
        .with_columns(pl.lit(False).alias("__current"))
    )
    panel = (
        pl.concat([earlier, current], how="vertical_relaxed")
        .sort("survey_year")
        .with_columns(
            pl.col("measurement").forward_fill().shift(1).over(SERIES).alias("previous_value"),
            pl.when(pl.col("measurement").is_not_null())
            .then(pl.col("survey_year"))
            .forward_fill()
            .shift(1)
            .over(SERIES)
            .alias("previous_year"),
        )
        .filter(pl.col("__current"))
        .select(*CELL_KEYS, "previous_value", "previous_year")
    )
    return cells.join(panel, on=CELL_KEYS, how="left")


def impute(cells: pl.DataFrame, history: pl.DataFrame | None = None) -> pl.DataFrame:
    """``cells`` (CELL_KEYS, measurement, covered, imputation, peer_group and the peer columns
    province, county_kind, tier) with ``imputed_value``, ``imputed`` and ``imputation_rule`` (how the
    value was imputed, null when it was measured or stays missing)."""
    if history is None:
        history = cells.clear().select(*CELL_KEYS, "measurement")
    frame = previous_observations(cells, history)
    peer = (
        pl.when(pl.col("peer_group") == "province")
        .then(pl.concat_str(pl.lit("province="), pl.col("province")))
        .when(pl.col("peer_group") == "county_kind")
        .then(pl.concat_str(pl.lit("county_kind="), pl.col("county_kind")))
        .when(pl.col("peer_group") == "tier")
        .then(pl.concat_str(pl.lit("tier="), pl.col("tier")))
        .otherwise(pl.lit("all"))
    )
    observed = pl.when(pl.col("covered")).then(pl.col("measurement"))
    group = [*INDICATOR_GROUP, "__peer"]
    frame = frame.with_columns(peer.alias("__peer")).with_columns(
        observed.mean().over(group).alias("__peer_mean"),
        observed.median().over(group).alias("__peer_median"),
        observed.count().over(group).alias("__peers"),
    )
    rule = pl.col("imputation")
    candidate = (
        pl.when(rule == "group_mean")
        .then(pl.col("__peer_mean"))
        .when(rule == "group_median")
        .then(pl.col("__peer_median"))
        .when(rule == "previous")
        .then(pl.col("previous_value"))
    )
    imputed = pl.col("measurement").is_null() & pl.col("covered") & candidate.is_not_null()
    described = (
        pl.when(rule == "previous")
        .then(pl.concat_str(pl.lit("previous: edition "), pl.col("previous_year").cast(pl.String)))
        .otherwise(
            pl.concat_str(
                rule,
                pl.lit(": "),
                pl.col("__peer"),
                pl.lit(" ("),
                pl.col("__peers").cast(pl.String),
                pl.lit(" peers)"),
            )
        )
    )
    return frame.with_columns(
        pl.when(imputed).then(candidate).otherwise(pl.col("measurement")).alias("imputed_value"),
        imputed.alias("imputed"),
        pl.when(imputed).then(described).alias("imputation_rule"),
    ).drop("__peer", "__peer_mean", "__peer_median", "__peers", "previous_value", "previous_year")
