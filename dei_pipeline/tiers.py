"""City tiers (城市画像): thresholds from ``data/method/tiers.csv``, applied as one polars expression."""

from __future__ import annotations

from pathlib import Path

import polars as pl

TIER_SCHEMA = {
    "tier_code": pl.String,
    "tier_order": pl.Int32,
    "name_zh": pl.String,
    "name_en": pl.String,
    "lower_bound": pl.Float64,
    "lower_inclusive": pl.Boolean,
    "description_zh": pl.String,
}


def tiers_path(data_dir: Path) -> Path:
    return data_dir / "method" / "tiers.csv"


def load_tiers(data_dir: Path) -> pl.DataFrame:
    """The tier table, highest tier first. Each tier holds scores above its lower bound (inclusive or
    not, as the file says) and below the next higher tier's bound."""
    path = tiers_path(data_dir)
    tiers = pl.read_csv(path, schema_overrides=TIER_SCHEMA).sort("lower_bound", descending=True)
    if tiers["lower_bound"].n_unique() != tiers.height:
        raise ValueError(f"{path}: two tiers share a lower bound")
    return tiers


def tier_expr(score: pl.Expr, tiers: pl.DataFrame, decimals: int) -> pl.Expr:
    """The tier code of each score, compared at display precision (the white paper's one decimal)."""
    shown = score.round(decimals)
    expr: pl.Expr = pl.lit(None, pl.String)
    # Build the chain lowest tier first so that the highest matching bound wins.
    for tier in tiers.sort("lower_bound").iter_rows(named=True):
        above = shown >= tier["lower_bound"] if tier["lower_inclusive"] else shown > tier["lower_bound"]
        expr = pl.when(above).then(pl.lit(tier["tier_code"])).otherwise(expr)
    return expr
