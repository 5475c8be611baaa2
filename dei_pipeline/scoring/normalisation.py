"""Normalisation of treated measurements to scores, over a whole edition at once (polars expressions).

Methods (per indicator; ``frac`` is then mapped to [score_min, score_max], 0-100):

- ``minmax``: (x - min) / (max - min) within the edition and unit type;
- ``goalposts``: (x - low) / (high - low) with the indicator's fixed goalposts, capped to [0, 1], so a
  score means the same in every edition;
- ``zscore``: z = (x - mean) / sd (sample sd), clipped to [-k, k] and mapped linearly to [0, 1]
  (k = ``scoring.zscore_clip``, 3: the mean scores 50, three standard deviations 0 and 100);
- ``rank``: percentile rank, (average rank - 1) / (n - 1): the lowest 0, the highest 1;
- ``target``: distance to a target, (x - min) / (target - min) capped at 1 (COINr's ``n_dist2targ``).

``direction`` 'lower' reverses every method (goalposts: (high - x) / (high - low); target:
(max - x) / (max - target); the others on -x). With ``log`` the measure, goalposts and target are
normalised as natural logarithms. After treatment's log fallback (values on the ``log_CT`` scale), the
fixed goalposts and target no longer apply: such an indicator is normalised min-max, and its rule says so.
"""

from __future__ import annotations

import polars as pl

GROUP = ["survey_year", "unit_type", "indicator_code"]


def _fmt(column: str) -> pl.Expr:
    return pl.col(column).round(6).cast(pl.String)


def normalise(
    frame: pl.DataFrame,
    score_min: float = 0.0,
    score_max: float = 100.0,
    zscore_clip: float = 3.0,
    value: str = "treated",
    group: list[str] = GROUP,
) -> pl.DataFrame:
    """``frame`` (``value`` on the analysed scale, method columns direction, normalisation, goal_low,
    goal_high, target, log, treatment_applied) with ``score`` and ``normalisation_rule``."""
    x = pl.col(value)
    lower = pl.col("direction") == "lower"
    log = pl.col("log")
    fallback = (pl.col("treatment_applied") == "log").any().over(group)
    method = (
        pl.when(fallback & pl.col("normalisation").is_in(["goalposts", "target"]))
        .then(pl.lit("minmax"))
        .otherwise(pl.col("normalisation"))
    )

    def scale(column: str) -> pl.Expr:
        return pl.when(log).then(pl.col(column).log()).otherwise(pl.col(column))

    low, high, target = scale("goal_low"), scale("goal_high"), scale("target")
    top, bottom = x.max().over(group), x.min().over(group)
    signed = pl.when(lower).then(-x).otherwise(x)
    z = (signed - signed.mean().over(group)) / signed.std().over(group)
    n = x.count().over(group)
    rank = (signed.rank("average").over(group) - 1) / (n - 1)
    span = top - bottom
    frac = (
        pl.when(method == "minmax")
        .then(pl.when(lower).then(top - x).otherwise(x - bottom) / pl.when(span > 0).then(span))
        .when(method == "goalposts")
        .then((pl.when(lower).then(high - x).otherwise(x - low) / (high - low)).clip(0.0, 1.0))
        .when(method == "zscore")
        .then((z.clip(-zscore_clip, zscore_clip) + zscore_clip) / (2 * zscore_clip))
        .when(method == "rank")
        .then(pl.when(n > 1).then(rank))
        .when(method == "target")
        .then(
            pl.when(lower)
            .then((top - x) / (top - target))
            .otherwise((x - bottom) / (target - bottom))
            .clip(0.0, 1.0)
        )
    )
    rule = pl.concat_str(
        method,
        pl.when(method == "goalposts")
        .then(pl.concat_str(pl.lit(" ["), _fmt("goal_low"), pl.lit(", "), _fmt("goal_high"), pl.lit("]")))
        .when(method == "target")
        .then(pl.concat_str(pl.lit(" (target "), _fmt("target"), pl.lit(")")))
        .when(method == "zscore")
        .then(pl.lit(f" (clipped to ±{zscore_clip:g} sd)"))
        .otherwise(pl.lit("")),
        pl.when(log).then(pl.lit(", log scale")).otherwise(pl.lit("")),
        pl.when(fallback & (method != pl.col("normalisation")))
        .then(pl.concat_str(pl.lit(" (instead of "), pl.col("normalisation"), pl.lit(": log fallback)")))
        .otherwise(pl.lit("")),
        pl.when(lower).then(pl.lit(", lower is better")).otherwise(pl.lit(", higher is better")),
    )
    return frame.with_columns(
        (score_min + (score_max - score_min) * frac).alias("score"), rule.alias("normalisation_rule")
    )
