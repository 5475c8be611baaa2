"""Outlier treatment by the JRC rule, over a whole edition at once (polars expressions).

An indicator (in one edition and unit type) whose absolute skewness is above ``skew_threshold`` (2)
and whose kurtosis is above ``kurtosis_threshold`` (3.5) is winsorised point by point: the highest
value(s) are set to the next highest value (the lowest to the next lowest when the skew is negative),
and the test is repeated, until it passes or ``max_points`` points have been winsorised. An indicator
still failing is then log-transformed instead (COINr's ``log_CT`` of the untreated values:
``log(x - min + 0.01 (max - min))``), when ``log_fallback`` is on. This is COINr's ``Treat`` with
``winsorise`` (``winmax``) then ``log_CT``, with one difference: the limit counts every point
winsorised so far (COINr counts the points of the last step only). Statistics: :mod:`.statistics`.

The loop runs at most ``max_points`` times over the whole edition (each step winsorises at least one
point of every indicator that still fails); there is no loop over units or indicators.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dei_pipeline.scoring.statistics import kurtosis, skewness

GROUP = ["survey_year", "unit_type", "indicator_code"]


@dataclass(frozen=True)
class TreatmentRule:
    skew_threshold: float = 2.0
    kurtosis_threshold: float = 3.5
    max_points: int = 5
    log_fallback: bool = True


def fails(value: pl.Expr, rule: TreatmentRule, group: list[str]) -> pl.Expr:
    """True where the indicator's values are too skewed and too heavy-tailed (null statistics pass)."""
    return (
        (skewness(value).over(group).abs() > rule.skew_threshold)
        & (kurtosis(value).over(group) > rule.kurtosis_threshold)
    ).fill_null(False)


def treat(
    frame: pl.DataFrame, rule: TreatmentRule, value: str = "analysed", group: list[str] = GROUP
) -> pl.DataFrame:
    """``frame`` with ``treated`` (the treated ``value``) and ``treatment_applied``: 'winsorised_high',
    'winsorised_low', 'log' or null. Only rows whose ``treatment`` is 'winsorise' are treated; null
    values stay null and are left out of the statistics."""
    enabled = pl.col("treatment") == "winsorise"
    x = pl.col("treated")
    out = frame.with_columns(pl.col(value).alias("treated"))
    for _ in range(max(rule.max_points, 0)):
        changed = (x != pl.col(value)).fill_null(False).sum().over(group)
        active = enabled & fails(x, rule, group) & (changed < rule.max_points)
        if not out.select(active.any()).item():
            break
        high = skewness(x).over(group) >= 0
        top, bottom = x.max().over(group), x.min().over(group)
        next_top = pl.when(x < top).then(x).max().over(group)
        next_bottom = pl.when(x > bottom).then(x).min().over(group)
        out = out.with_columns(
            pl.when(active & high & (x == top) & next_top.is_not_null())
            .then(next_top)
            .when(active & ~high & (x == bottom) & next_bottom.is_not_null())
            .then(next_bottom)
            .otherwise(x)
            .alias("treated")
        )
    raw = pl.col(value)
    log_ct = (raw - raw.min().over(group) + 0.01 * (raw.max().over(group) - raw.min().over(group))).log()
    still = enabled & fails(x, rule, group) if rule.log_fallback else pl.lit(False)
    moved = (x != raw).fill_null(False)
    return (
        out.with_columns(still.alias("__log"))
        .with_columns(
            pl.when(pl.col("__log")).then(log_ct).otherwise(x).alias("treated"),
            pl.when(pl.col("__log"))
            .then(pl.lit("log"))
            .when(moved & (x > raw))
            .then(pl.lit("winsorised_low"))
            .when(moved)
            .then(pl.lit("winsorised_high"))
            .alias("treatment_applied"),
        )
        .drop("__log")
    )
