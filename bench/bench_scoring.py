"""Scoring benchmark on the national data set: measurements to scores (``dei_pipeline/scoring/``) over
all editions at once, against the aggregation of the same scores and against the same normalisation
written in pandas.

The national data set holds scores; every edition of both unit types is turned into measurements in
memory, as the sample's 2020 cities are made (the affine or log-affine image of each score between the
indicator's goalposts: the city framework's method columns; county indicators get goalposts [0, 100],
every fourth one "lower is better"), with 0.5% of the cells blank (imputed: the previous edition's
value for cities, the median of the county kind for counties) and 0.1% of the cells of the winsorised
indicators made outliers (ten times the top goalpost). Timed, in rounds:

- ``scoring``: ``score_measurements`` over the 20 editions and both unit types (coverage, imputation,
  JRC treatment, normalisation);
- ``aggregation``: ``aggregate_tiers`` of the resulting scores, level 3 to the composite, per unit type;
- ``normalisation_polars`` / ``normalisation_pandas``: the normalisation step alone (goalposts and
  min-max, direction, log scale) on the same treated frame, checked to agree.

    python bench/bench_scoring.py --data-dir NATIONAL_DIR --json PART.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from harness import in_rounds, part_arguments, print_table, ratio, repeats_setting, write_json

from dei_pipeline.aggregation import aggregate_tiers
from dei_pipeline.config import load_settings
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.ingest import list_editions
from dei_pipeline.registry import load_registry
from dei_pipeline.scoring.method import METHOD_SCHEMA
from dei_pipeline.scoring.normalisation import normalise
from dei_pipeline.scoring.stage import score_measurements

FILES = {"city": "cities.csv", "county": "counties.csv"}
KEYS = ["survey_year", "unit_type", "unit_code"]
GROUP = ["survey_year", "unit_type", "indicator_code"]


def county_methods(leaves: list[str]) -> pl.DataFrame:
    rows = [
        {
            "indicator_code": code,
            "unit": "points",
            "direction": "lower" if i % 4 == 3 else "higher",
            "normalisation": "goalposts",
            "goal_low": 0.0,
            "goal_high": 100.0,
            "target": None,
            "log": False,
            "treatment": "winsorise" if i % 3 == 0 else "none",
            "imputation": "group_median",
            "peer_group": "county_kind",
        }
        for i, code in enumerate(leaves)
    ]
    return pl.DataFrame(rows, schema=METHOD_SCHEMA)


def measurements(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, pl.DataFrame]]:
    """(cells, methods, peers, nodes by unit type) of every edition, as measurements."""
    editions = list_editions(data_dir)
    frames, methods, nodes = [], [], {}
    for unit_type, name in FILES.items():
        fw = resolve_framework(data_dir, unit_type, editions[-1])
        nodes[unit_type] = fw.nodes
        method = fw.methods if fw.methods is not None else county_methods(fw.leaf_codes)
        if unit_type == "city":
            method = method.with_columns(
                pl.when(pl.col("imputation") == "none")
                .then(pl.lit("previous"))
                .otherwise(pl.col("imputation"))
                .alias("imputation")
            )
        methods.append(method.with_columns(pl.lit(unit_type).alias("unit_type")))
        for year in editions:
            path = data_dir / "raw" / str(year) / name
            if path.exists():
                wide = pl.read_csv(path, schema_overrides={"unit_code": pl.String, "unit_name": pl.String})
                frames.append(
                    wide.drop("unit_name")
                    .unpivot(index="unit_code", variable_name="indicator_code", value_name="score")
                    .with_columns(
                        pl.lit(year, pl.Int32).alias("survey_year"), pl.lit(unit_type).alias("unit_type")
                    )
                )
    all_methods = pl.concat(methods)
    scores = pl.concat(frames).join(all_methods, on=["unit_type", "indicator_code"])
    low = pl.when(pl.col("log")).then(pl.col("goal_low").log()).otherwise(pl.col("goal_low"))
    high = pl.when(pl.col("log")).then(pl.col("goal_high").log()).otherwise(pl.col("goal_high"))
    frac = pl.col("score") / 100
    image = (
        pl.when(pl.col("direction") == "lower")
        .then(high - (high - low) * frac)
        .otherwise(low + (high - low) * frac)
    )
    value = pl.when(pl.col("log")).then(image.exp()).otherwise(image)
    draw = (
        pl.concat_str("unit_code", "indicator_code", pl.col("survey_year").cast(pl.String)).hash(seed=2020)
        % 1000
    )
    measured = scores.select(
        "survey_year",
        "unit_type",
        "unit_code",
        "indicator_code",
        pl.when(draw < 5)
        .then(None)
        .when((draw == 999) & (pl.col("treatment") == "winsorise"))
        .then(pl.col("goal_high") * 10)
        .otherwise(value)
        .alias("measurement"),
    )
    registry = load_registry(data_dir)
    peer_units = pl.concat(
        [
            registry.cities.select(
                pl.lit("city").alias("unit_type"), "unit_code", pl.col("province_code").alias("province")
            ),
            registry.counties.select(
                pl.lit("county").alias("unit_type"),
                "unit_code",
                pl.col("province_code").alias("province"),
                pl.col("kind").alias("county_kind"),
            ),
        ],
        how="diagonal",
    )
    peers = pl.DataFrame({"survey_year": editions}, schema={"survey_year": pl.Int32}).join(
        peer_units, how="cross"
    )
    return measured, all_methods, peers, nodes


def pandas_normalise(frame: pd.DataFrame, score_min: float = 0.0, score_max: float = 100.0) -> np.ndarray:
    """Goalposts and min-max (direction, log scale) in pandas: the baseline of the normalisation."""
    log = frame["log"].to_numpy(dtype=bool)
    lower = (frame["direction"] == "lower").to_numpy()
    x = frame["treated"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(
            log, np.log(frame["goal_low"].to_numpy(dtype=float)), frame["goal_low"].to_numpy(dtype=float)
        )
        high = np.where(
            log, np.log(frame["goal_high"].to_numpy(dtype=float)), frame["goal_high"].to_numpy(dtype=float)
        )
        grouped = frame.groupby("__indicator", sort=False)["treated"]
        top, bottom = (
            grouped.transform("max").to_numpy(dtype=float),
            grouped.transform("min").to_numpy(dtype=float),
        )
        goal = np.clip(np.where(lower, high - x, x - low) / (high - low), 0.0, 1.0)
        span = top - bottom
        minmax = np.where(lower, top - x, x - bottom) / np.where(span > 0, span, np.nan)
        frac = np.where(frame["normalisation"].to_numpy() == "goalposts", goal, minmax)
    return score_min + (score_max - score_min) * frac


def main() -> int:
    args = part_arguments(__doc__.splitlines()[0])
    repeats = repeats_setting()
    data_dir: Path = args.data_dir
    settings = load_settings(data_dir)
    rule = settings.scoring_rule
    cells, methods, peers, nodes = measurements(data_dir)
    scored = score_measurements(cells, methods, peers, None, rule)
    leaf_scores = scored.filter(pl.col("status") == "scored").select(*KEYS, "indicator_code", "score")

    def aggregate() -> list[pl.DataFrame]:
        return [
            aggregate_tiers(leaf_scores.filter(pl.col("unit_type") == unit_type), nodes[unit_type], keys=KEYS)
            for unit_type in nodes
        ]

    # The normalisation step alone, on the treated frame (every method column joined, as the stage has it).
    treated = (
        scored.select(*KEYS, "indicator_code", "treated_value", "treatment_rule")
        .join(methods, on=["unit_type", "indicator_code"])
        .with_columns(
            pl.when(pl.col("log"))
            .then(pl.col("treated_value").log())
            .otherwise(pl.col("treated_value"))
            .alias("treated"),
            # The pandas baseline has no log fallback: compare on the methods as declared.
            pl.lit(None, pl.String).alias("treatment_applied"),
        )
        # Both group on one integer per (edition, unit type, indicator), as the stage does.
        .with_row_index("__indicator")
        .with_columns(pl.col("__indicator").first().over(GROUP))
    )
    treated_pd = treated.select(
        "__indicator", "treated", "direction", "normalisation", "goal_low", "goal_high", "log"
    ).to_pandas()
    polars_scores = normalise(treated, group=["__indicator"])["score"].to_numpy()
    pandas_scores = pandas_normalise(treated_pd)
    agree = bool(np.allclose(polars_scores, pandas_scores, rtol=0, atol=1e-9, equal_nan=True))

    figures = in_rounds(
        {
            "scoring": lambda: score_measurements(cells, methods, peers, None, rule),
            "aggregation": aggregate,
            "normalisation_polars": lambda: normalise(treated, group=["__indicator"]),
            "normalisation_pandas": lambda: pandas_normalise(treated_pd),
        },
        repeats,
    )
    summary: dict[str, Any] = {
        "cells": cells.height,
        "editions": cells["survey_year"].n_unique(),
        "imputed": int(scored["imputed"].sum()),
        "winsorised": int(scored["treatment_rule"].is_in(["winsorised_high", "winsorised_low"]).sum()),
        "log_transformed_cells": int((scored["treatment_rule"] == "log").sum()),
        "statuses": dict(scored.group_by("status").len().sort("status").iter_rows()),
        "normalisation_agrees_with_pandas": agree,
        "figures": {name: f.summary() for name, f in figures.items()},
        "scoring_vs_aggregation": ratio(figures["scoring"], figures["aggregation"]),
        "scoring_vs_aggregation_cpu": round(
            figures["scoring"].summary()["median_cpu_s"] / figures["aggregation"].summary()["median_cpu_s"], 3
        ),
        "pandas_vs_polars_normalisation": ratio(
            figures["normalisation_pandas"], figures["normalisation_polars"]
        ),
    }
    print_table(
        f"Measurements to scores, {cells.height:,} cells ({summary['editions']} editions, both unit types)",
        ["case", "median s", "median CPU s", "peak MiB"],
        [
            [name, f.summary()["median_s"], f.summary().get("median_cpu_s"), f.summary()["peak_rss_mib"]]
            for name, f in figures.items()
        ],
    )
    print(
        f"scoring / aggregation: {summary['scoring_vs_aggregation']}; pandas / polars normalisation: "
        f"{summary['pandas_vs_polars_normalisation']} (agree: {agree}); imputed {summary['imputed']:,}, "
        f"winsorised {summary['winsorised']:,}, log-transformed cells {summary['log_transformed_cells']:,}",
        flush=True,
    )
    write_json(args.json, summary)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
