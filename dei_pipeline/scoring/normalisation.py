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


METHOD_COLUMNS = ["direction", "normalisation", "goal_low", "goal_high", "target", "log"]


def normalise(
    frame: pl.DataFrame,
    score_min: float = 0.0,
    score_max: float = 100.0,
    zscore_clip: float = 3.0,
    value: str = "treated",
    group: list[str] = GROUP,
) -> pl.DataFrame:
    """``frame`` (``value`` on the analysed scale, method columns direction, normalisation, goal_low,
    goal_high, target, log, treatment_applied) with ``score`` and ``normalisation_rule``.

    The statistics of each indicator (min, max, mean, sd, count) and its rule are one group_by, joined
    back to the cells; only the methods present are computed."""
    x = pl.col(value)
    lower = pl.col("direction") == "lower"
    signed = pl.when(lower).then(-x).otherwise(x)
    stats = frame.group_by(group).agg(
        x.max().alias("__top"),
        x.min().alias("__bottom"),
        signed.mean().alias("__mean"),
        signed.std().alias("__sd"),
        x.count().alias("__n"),
        (pl.col("treatment_applied") == "log").any().alias("__fallback"),
        *(pl.col(column).first() for column in METHOD_COLUMNS),
    )
    fallback = pl.col("__fallback")
    stats = stats.with_columns(
        pl.when(fallback & pl.col("normalisation").is_in(["goalposts", "target"]))
        .then(pl.lit("minmax"))
        .otherwise(pl.col("normalisation"))
        .alias("__method")
    )
    stats = stats.with_columns(_rule(zscore_clip).alias("normalisation_rule")).drop(METHOD_COLUMNS)
    methods = set(stats["__method"].drop_nulls().to_list())
    joined = frame.join(stats, on=group, how="left")
    method, log = pl.col("__method"), pl.col("log")

    def scale(column: str) -> pl.Expr:
        return pl.when(log).then(pl.col(column).log()).otherwise(pl.col(column))

    top, bottom = pl.col("__top"), pl.col("__bottom")
    branches: list[tuple[str, pl.Expr]] = []
    if "minmax" in methods:
        span = top - bottom
        branches.append(
            ("minmax", pl.when(lower).then(top - x).otherwise(x - bottom) / pl.when(span > 0).then(span))
        )
    if "goalposts" in methods:
        low, high = scale("goal_low"), scale("goal_high")
        branches.append(
            ("goalposts", (pl.when(lower).then(high - x).otherwise(x - low) / (high - low)).clip(0.0, 1.0))
        )
    if "zscore" in methods:
        z = (signed - pl.col("__mean")) / pl.col("__sd")
        branches.append(("zscore", (z.clip(-zscore_clip, zscore_clip) + zscore_clip) / (2 * zscore_clip)))
    if "rank" in methods:
        rank = (signed.rank("average").over(group) - 1) / (pl.col("__n") - 1)
        branches.append(("rank", pl.when(pl.col("__n") > 1).then(rank)))
    if "target" in methods:
        target = scale("target")
        branches.append(
            (
                "target",
                pl.when(lower)
                .then((top - x) / (top - target))
                .otherwise((x - bottom) / (target - bottom))
                .clip(0.0, 1.0),
            )
        )
    frac: pl.Expr = pl.lit(None, pl.Float64)
    for name, expression in reversed(branches):
        frac = pl.when(method == name).then(expression).otherwise(frac)
    return joined.with_columns((score_min + (score_max - score_min) * frac).alias("score")).drop(
        "__top", "__bottom", "__mean", "__sd", "__n", "__fallback", "__method"
    )


def _rule(zscore_clip: float) -> pl.Expr:
    """The rule of an indicator, from its method and whether the log fallback applied."""
    method, log, lower = pl.col("__method"), pl.col("log"), pl.col("direction") == "lower"
    return pl.concat_str(
        method,
        pl.when(method == "goalposts")
        .then(pl.concat_str(pl.lit(" ["), _fmt("goal_low"), pl.lit(", "), _fmt("goal_high"), pl.lit("]")))
        .when(method == "target")
        .then(pl.concat_str(pl.lit(" (target "), _fmt("target"), pl.lit(")")))
        .when(method == "zscore")
        .then(pl.lit(f" (clipped to ±{zscore_clip:g} sd)"))
        .otherwise(pl.lit("")),
        pl.when(log).then(pl.lit(", log scale")).otherwise(pl.lit("")),
        pl.when(pl.col("__fallback") & (method != pl.col("normalisation")))
        .then(pl.concat_str(pl.lit(" (instead of "), pl.col("normalisation"), pl.lit(": log fallback)")))
        .otherwise(pl.lit("")),
        pl.when(lower).then(pl.lit(", lower is better")).otherwise(pl.lit(", higher is better")),
    )
