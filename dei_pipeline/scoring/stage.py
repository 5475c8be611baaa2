"""The whole stage, measurements to scores, for every cell of some editions at once:
unit coverage -> imputation -> (declared log) -> outlier treatment -> normalisation. Returns the rows of
``marts.measurement_scores`` (one per edition, unit and indicator, with each cell's path);
:func:`summarise` makes the rows of ``marts.measurement_summary`` from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from dei_pipeline.scoring.imputation import impute, unit_coverage
from dei_pipeline.scoring.normalisation import normalise
from dei_pipeline.scoring.statistics import kurtosis, skewness
from dei_pipeline.scoring.treatment import GROUP, TreatmentRule, treat

PEER_COLUMNS = ("province", "county_kind", "tier")


@dataclass(frozen=True)
class ScoringRule:
    """The settings of the stage (``scoring:`` in settings.yaml)."""

    min_unit_coverage: float = 0.0
    treatment: TreatmentRule = field(default_factory=TreatmentRule)
    zscore_clip: float = 3.0
    score_min: float = 0.0
    score_max: float = 100.0


def _on_log_scale(column: str) -> pl.Expr:
    """The column on the scale the outlier rule sees: its log for an indicator on a log scale."""
    return pl.when(pl.col("log")).then(pl.col(column).log()).otherwise(pl.col(column))


def score_measurements(
    cells: pl.DataFrame,
    methods: pl.DataFrame,
    peers: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
    rule: ScoringRule | None = None,
) -> pl.DataFrame:
    """``cells``: survey_year, unit_type, unit_code, indicator_code, measurement (null = blank), and
    optionally source_file, line_number. ``methods``: unit_type plus the method table of
    :mod:`.method`. ``peers``: survey_year, unit_type, unit_code and any of province, county_kind,
    tier. ``history``: earlier editions' cells (for imputation ``previous``)."""
    rule = rule or ScoringRule()
    frame = cells.with_row_index("__order").join(methods, on=["unit_type", "indicator_code"], how="left")
    if peers is not None:
        frame = frame.join(peers, on=["survey_year", "unit_type", "unit_code"], how="left")
    frame = frame.with_columns(
        pl.lit(None, pl.String).alias(column) for column in PEER_COLUMNS if column not in frame.columns
    )
    if "source_file" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("source_file"))
    if "line_number" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Int64).alias("line_number"))
    # One integer per (edition, unit type, indicator): the windows and group_bys of treatment and
    # normalisation run over it rather than over three text columns (docs/performance.md).
    frame = frame.with_row_index("__indicator").with_columns(pl.col("__indicator").first().over(GROUP))
    frame = impute(unit_coverage(frame, rule.min_unit_coverage), history)
    frame = frame.with_columns(
        pl.when(pl.col("covered")).then(_on_log_scale("imputed_value")).alias("analysed")
    )
    frame = treat(frame, rule.treatment, group=["__indicator"])
    frame = normalise(frame, rule.score_min, rule.score_max, rule.zscore_clip, group=["__indicator"])
    natural = (
        pl.when(pl.col("treatment_applied") == "log")
        .then(pl.col("treated"))
        .when(pl.col("log"))
        .then(pl.col("treated").exp())
        .otherwise(pl.col("treated"))
    )
    status = (
        pl.when(~pl.col("covered"))
        .then(pl.lit("unit_below_coverage"))
        .when(pl.col("score").is_null())
        .then(pl.lit("missing"))
        .otherwise(pl.lit("scored"))
    )
    return (
        frame.select(
            "survey_year",
            "unit_type",
            "unit_code",
            "indicator_code",
            pl.col("unit").alias("measure_unit"),
            "measurement",
            "unit_coverage",
            "imputed",
            "imputation_rule",
            pl.when(pl.col("covered")).then(pl.col("imputed_value")).alias("imputed_value"),
            pl.when(pl.col("covered")).then(natural).alias("treated_value"),
            pl.col("treatment_applied").is_not_null().alias("treated"),
            pl.col("treatment_applied").alias("treatment_rule"),
            pl.when(pl.col("covered")).then(pl.col("score")).alias("score"),
            "normalisation_rule",
            status.alias("status"),
            "source_file",
            "line_number",
            "__order",
        )
        .sort("__order")
        .drop("__order")
    )  # the order of ``cells``


def summarise(scored: pl.DataFrame, methods: pl.DataFrame, rule: TreatmentRule | None = None) -> pl.DataFrame:
    """Per edition, unit type and indicator: coverage, skewness and kurtosis before and after
    treatment (on the scale the rule sees: the log for a log indicator, log_CT after the fallback),
    points winsorised, imputed and left missing. ``scored``: rows of marts.measurement_scores."""
    rule = rule or TreatmentRule()
    frame = scored.join(
        methods.select("unit_type", "indicator_code", "log", "treatment"),
        on=["unit_type", "indicator_code"],
        how="left",
    )
    before = _on_log_scale("imputed_value")
    # log_CT (the fallback) is stored on its own scale already.
    after = (
        pl.when(pl.col("treatment_rule") == "log")
        .then(pl.col("treated_value"))
        .otherwise(_on_log_scale("treated_value"))
    )
    return (
        frame.with_columns(before.alias("__before"), after.alias("__after"))
        .group_by(GROUP, maintain_order=True)
        .agg(
            pl.len().cast(pl.Int32).alias("n_units"),
            pl.col("measurement").is_not_null().sum().cast(pl.Int32).alias("n_measured"),
            pl.col("measurement").is_not_null().mean().alias("coverage"),
            pl.col("imputed").sum().cast(pl.Int32).alias("n_imputed"),
            (pl.col("status") == "missing").sum().cast(pl.Int32).alias("n_missing"),
            (pl.col("status") == "unit_below_coverage").sum().cast(pl.Int32).alias("n_below_coverage"),
            pl.col("treatment_rule")
            .is_in(["winsorised_high", "winsorised_low"])
            .sum()
            .cast(pl.Int32)
            .alias("n_winsorised"),
            (pl.col("treatment_rule") == "log").any().alias("log_transformed"),
            skewness(pl.col("__before")).alias("skewness_before"),
            kurtosis(pl.col("__before")).alias("kurtosis_before"),
            skewness(pl.col("__after")).alias("skewness_after"),
            kurtosis(pl.col("__after")).alias("kurtosis_after"),
            pl.col("treatment").first().alias("treatment"),
            pl.col("normalisation_rule").drop_nulls().first().alias("normalisation_rule"),
        )
        .with_columns(
            (
                (pl.col("skewness_before").abs() > rule.skew_threshold)
                & (pl.col("kurtosis_before") > rule.kurtosis_threshold)
            )
            .fill_null(False)
            .alias("outliers_before")
        )
        .sort(GROUP)
    )
