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
    values stay null and are left out of the statistics. The rule is tested once per indicator with a
    group_by; the loop then runs over the rows of the indicators that fail it only."""
    out = frame.with_columns(
        pl.col(value).alias("treated"), pl.lit(None, pl.String).alias("treatment_applied")
    )
    candidates = out.with_row_index("__row").filter(pl.col("treatment") == "winsorise")
    if not candidates.height:
        return out
    x = pl.col(value)
    failing = (
        candidates.group_by(group)
        .agg(
            ((skewness(x).abs() > rule.skew_threshold) & (kurtosis(x) > rule.kurtosis_threshold))
            .fill_null(False)
            .alias("__fails")
        )
        .filter(pl.col("__fails"))
        .select(group)
    )
    if not failing.height:
        return out
    treated = _winsorise(candidates.join(failing, on=group, how="semi"), rule, value, group)
    return (
        out.with_row_index("__row")
        .join(
            treated.select(
                "__row", pl.col("treated").alias("__treated"), pl.col("treatment_applied").alias("__applied")
            ),
            on="__row",
            how="left",
        )
        .with_columns(
            pl.when(pl.col("__applied").is_not_null())
            .then(pl.col("__treated"))
            .otherwise(pl.col("treated"))
            .alias("treated"),
            pl.col("__applied").alias("treatment_applied"),
        )
        .drop("__row", "__treated", "__applied")
    )


def _winsorise(frame: pl.DataFrame, rule: TreatmentRule, value: str, group: list[str]) -> pl.DataFrame:
    """The JRC loop on the rows of failing indicators (``treated`` starts as ``value``). Each step is
    one group_by of the indicators still failing (their statistics, the value to winsorise and its
    replacement) joined back to their rows; an indicator that passes, or reaches the limit, leaves the
    loop, so later steps touch only the indicators still being treated."""
    x, raw = pl.col("treated"), pl.col(value)
    working, settled = frame, []
    for _ in range(max(rule.max_points, 0)):
        stats = working.group_by(group).agg(
            skewness(x).alias("__skew"),
            kurtosis(x).alias("__kurt"),
            (x != raw).fill_null(False).sum().alias("__changed"),
            x.max().alias("__top"),
            pl.when(x < x.max()).then(x).max().alias("__next_top"),
            x.min().alias("__bottom"),
            pl.when(x > x.min()).then(x).min().alias("__next_bottom"),
        )
        active = stats.filter(
            (
                (pl.col("__skew").abs() > rule.skew_threshold)
                & (pl.col("__kurt") > rule.kurtosis_threshold)
                & (pl.col("__changed") < rule.max_points)
            ).fill_null(False)
        )
        settled.append(working.join(active.select(group), on=group, how="anti"))
        working = working.join(active, on=group, how="semi")
        if not working.height:
            break
        high = pl.col("__skew") >= 0
        working = (
            working.join(active, on=group, how="left")
            .with_columns(
                pl.when(high & (x == pl.col("__top")) & pl.col("__next_top").is_not_null())
                .then(pl.col("__next_top"))
                .when(~high & (x == pl.col("__bottom")) & pl.col("__next_bottom").is_not_null())
                .then(pl.col("__next_bottom"))
                .otherwise(x)
                .alias("treated")
            )
            .drop(active.columns[len(group) :])
        )
    out = pl.concat([*settled, working], how="vertical_relaxed")
    log_ct = (raw - raw.min().over(group) + 0.01 * (raw.max().over(group) - raw.min().over(group))).log()
    still = fails(x, rule, group) if rule.log_fallback else pl.lit(False)
    moved = (x != raw).fill_null(False)
    return (
        out.with_columns(still.alias("__log"))
        .with_columns(
            pl.when(pl.col("__log")).then(log_ct).otherwise(x).alias("treated"),
            pl.when(pl.col("__log") & raw.is_not_null())
            .then(pl.lit("log"))
            .when(moved & (x > raw))
            .then(pl.lit("winsorised_low"))
            .when(moved)
            .then(pl.lit("winsorised_high"))
            .alias("treatment_applied"),
        )
        .drop("__log")
    )
