"""Skewness and kurtosis as COINr computes them (``skew``/``kurt`` in R/treat.R, e1071 type 2, the
definition Excel uses), as polars expressions, so that they run over every indicator of an edition at
once with ``.over(...)``."""

from __future__ import annotations

import polars as pl


def skewness(value: pl.Expr) -> pl.Expr:
    """Sample skewness G1 = sqrt(n(n-1))/(n-2) * m3/m2^1.5 over the non-null values (null below 3
    values or when they are all equal)."""
    n = value.count().cast(pl.Float64)
    centred = value - value.mean()
    m2 = (centred**2).sum()
    m3 = (centred**3).sum()
    g1 = n.sqrt() * m3 / m2.pow(1.5)
    return pl.when((n >= 3) & (m2 > 0)).then(g1 * (n * (n - 1)).sqrt() / (n - 2)).otherwise(None)


def kurtosis(value: pl.Expr) -> pl.Expr:
    """Sample excess kurtosis G2 = ((n+1)(r-3)+6)(n-1)/((n-2)(n-3)), r = n*m4/m2^2 (null below 4
    values or when they are all equal)."""
    n = value.count().cast(pl.Float64)
    centred = value - value.mean()
    m2 = (centred**2).sum()
    r = n * (centred**4).sum() / m2.pow(2)
    g2 = ((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))
    return pl.when((n >= 4) & (m2 > 0)).then(g2).otherwise(None)
