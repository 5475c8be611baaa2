"""The sample's leaf scores of an edition, whichever way the edition is given: read from a score file,
or made from a measurement file by the scoring stage as the pipeline makes them (the framework's
methods, the settings' thresholds, provinces as peer groups)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

from dei_pipeline.config import REPO_ROOT, load_settings
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.scoring.stage import score_measurements
from dei_pipeline.synthetic.sample import MEASUREMENT_EDITIONS, MEASUREMENT_FILES, UNIT_FILES

DATA = REPO_ROOT / "data"


def raw_path(unit_type: str, edition: int, data_dir: Path = DATA) -> Path:
    names = MEASUREMENT_FILES if (unit_type, edition) in MEASUREMENT_EDITIONS else UNIT_FILES
    return data_dir / "raw" / str(edition) / names[unit_type]


@cache
def scored_cells(unit_type: str, edition: int) -> pl.DataFrame:
    """marts.measurement_scores of an edition given as measurements, as the pipeline makes it."""
    table = pl.read_csv(raw_path(unit_type, edition), infer_schema=False)
    cells = table.unpivot(index=["unit_code", "unit_name"], variable_name="indicator_code").select(
        pl.lit(edition, pl.Int32).alias("survey_year"),
        pl.lit(unit_type).alias("unit_type"),
        "unit_code",
        "indicator_code",
        pl.col("value").cast(pl.Float64).alias("measurement"),
    )
    peers = pl.read_csv(DATA / "registry" / UNIT_FILES[unit_type], infer_schema=False).select(
        pl.lit(edition, pl.Int32).alias("survey_year"),
        pl.lit(unit_type).alias("unit_type"),
        "unit_code",
        pl.col("province_code").alias("province"),
    )
    methods = resolve_framework(DATA, unit_type, edition).methods
    assert methods is not None
    settings = load_settings(DATA)
    return score_measurements(
        cells,
        methods.with_columns(pl.lit(unit_type).alias("unit_type")),
        peers,
        None,
        settings.scoring_rule,
    )


@cache
def wide_scores(unit_type: str, edition: int) -> pl.DataFrame:
    """unit_code, unit_name and one Float64 column of scores per leaf, in file order."""
    table = pl.read_csv(raw_path(unit_type, edition), infer_schema=False)
    codes = [c for c in table.columns if c not in ("unit_code", "unit_name")]
    if (unit_type, edition) not in MEASUREMENT_EDITIONS:
        return table.with_columns(pl.col(codes).cast(pl.Float64))
    return (
        table.select("unit_code", "unit_name")
        .join(
            scored_cells(unit_type, edition).pivot("indicator_code", index="unit_code", values="score"),
            on="unit_code",
        )
        .select("unit_code", "unit_name", *codes)
    )


def leaf_scores(unit_type: str, edition: int) -> pl.DataFrame:
    """unit_code, indicator_code, score (long)."""
    return (
        wide_scores(unit_type, edition)
        .drop("unit_name")
        .unpivot(index="unit_code", variable_name="indicator_code", value_name="score")
    )


def as_score_file(data_dir: Path, unit_type: str = "city", edition: int = 2020) -> None:
    """Give an edition's unit type as a score file (2 decimals, as the scores the stage makes of the
    sample's measurements) instead of measurements: for tests of score files' validation and of the
    runs around it, written before the sample's 2020 cities became measurements."""
    measured = raw_path(unit_type, edition, data_dir)
    if measured.name != MEASUREMENT_FILES[unit_type] or not measured.exists():
        return
    scores = wide_scores(unit_type, edition)
    codes = [c for c in scores.columns if c not in ("unit_code", "unit_name")]
    text = scores.with_columns(
        pl.col(codes).round(2).map_elements(lambda v: f"{v:.2f}", return_dtype=pl.String)
    )
    text.write_csv(data_dir / "raw" / str(edition) / UNIT_FILES[unit_type], line_terminator="\n")
    measured.unlink()
