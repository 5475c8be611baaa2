"""Warehouse I/O: the DuckDB tables, their documentation (``COMMENT ON``) and transactional writes.

Layout: ``staging`` holds raw cells as ingested, ``core`` the validated indicator table, the
quarantine of rejected cells and the sources of each edition, ``marts`` the stable BI contract.
Every table but the edition-independent dimensions has a ``survey_year`` column, and every write
replaces whole editions in one transaction, so a rerun of one edition touches no other edition
(a dimension without editions is replaced whole).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from dei_pipeline.config import serving_storage_version
from dei_pipeline.locking import warehouse_lock

# The polars dtype of each SQL type the tables use: frames bound for a table, or read from one, carry
# these, so ingestion, validation and the marts never keep a schema of their own.
POLARS_DTYPES: dict[str, pl.DataType] = {
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "VARCHAR": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP": pl.Datetime("us"),
    "INTEGER[]": pl.List(pl.Int32()),
}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    comment: str

    def __post_init__(self) -> None:
        if self.sql_type not in POLARS_DTYPES:
            raise ValueError(
                f"column {self.name}: SQL type {self.sql_type} has no polars dtype in POLARS_DTYPES"
            )

    @property
    def dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.sql_type]


@dataclass(frozen=True)
class Table:
    name: str  # schema.table
    comment: str
    columns: tuple[Column, ...]
    # The columns that identify a row (unique together, nulls compared as values); () when rows have no
    # natural identity (e.g. the quarantine, which may hold the same cell twice).
    key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.key if name not in self.column_names]
        if unknown:
            raise ValueError(f"{self.name}: key column(s) {', '.join(unknown)} are not columns of the table")

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def polars_schema(self, exclude: Iterable[str] = ()) -> pl.Schema:
        """The table's columns and their polars dtypes, in table order (less the ``exclude``d ones)."""
        left_out = set(exclude)
        return pl.Schema(
            {column.name: column.dtype for column in self.columns if column.name not in left_out}
        )

    def empty(self) -> pl.DataFrame:
        """No rows, with the table's columns and dtypes."""
        return pl.DataFrame(schema=self.polars_schema())

    def conform(self, frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
        """The frames as one frame with exactly the table's columns and dtypes, in its order (a column
        that no frame has is null), so that frames made per edition or per unit type, with or without
        some optional column, are written alike; no rows (or no frames) gives :meth:`empty`."""
        rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        if not rows.height:
            return self.empty()
        return rows.select(
            (pl.col(name) if name in rows.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in self.polars_schema().items()
        )


def _c(name: str, sql_type: str, comment: str) -> Column:
    return Column(name, sql_type, comment)


YEAR = _c("survey_year", "INTEGER", "Survey edition (年度), e.g. 2020")
UNIT_TYPE = _c("unit_type", "VARCHAR", "'city' (城市) or 'county' (县域: 市辖区 and 县市)")
UNIT_CODE = _c("unit_code", "VARCHAR", "6-digit GB/T 2260 administrative code of the unit as of the edition")
SCORE = _c("score", "DOUBLE", "Score 0-100 at full precision (round to one decimal for display)")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "staging.raw_scores",
            "Raw indicator cells as ingested from data/raw/<edition>/, text values, with lineage",
            (
                YEAR,
                UNIT_TYPE,
                _c("source_file", "VARCHAR", "Raw file path relative to the data directory"),
                _c("content_hash", "VARCHAR", "SHA-256 of the raw file's bytes"),
                _c("line_number", "BIGINT", "Line of the row in the file (header = 1)"),
                UNIT_CODE,
                _c("unit_name", "VARCHAR", "Unit name as written in the raw file"),
                _c("indicator_code", "VARCHAR", "Column name in the raw file (a level-3 indicator code)"),
                _c("raw_value", "VARCHAR", "Cell text as read"),
                _c(
                    "value_kind",
                    "VARCHAR",
                    "'score' (a 0-100 score, file <unit type>.csv) or 'measurement' (natural units, file <unit type>_measurements.csv, scored by marts.measurement_scores)",
                ),
            ),
            key=("survey_year", "source_file", "line_number", "indicator_code"),
        ),
        Table(
            "core.indicator_scores",
            "Validated level-3 indicator scores (long form), one row per unit and indicator",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("indicator_code", "VARCHAR", "Level-3 indicator code of the edition's framework"),
                SCORE,
                _c("source_file", "VARCHAR", "Raw file the score came from"),
                _c("line_number", "BIGINT", "Line of the unit's row in the raw file"),
            ),
            key=("survey_year", "unit_type", "unit_code", "indicator_code"),
        ),
        Table(
            "core.quarantine",
            "Raw cells rejected by validation in the latest failed attempt of each edition",
            (
                YEAR,
                _c("source_file", "VARCHAR", "Raw file path relative to the data directory"),
                _c("line_number", "BIGINT", "Line in the file (header = 1)"),
                _c("column_name", "VARCHAR", "Column of the bad cell"),
                _c("value", "VARCHAR", "The offending value as written"),
                _c("rule", "VARCHAR", "The rule it breaks"),
                _c("recorded_at", "TIMESTAMP", "When the failure was recorded"),
            ),
        ),
        Table(
            "core.edition_sources",
            "Which raw files, framework and registry produced each edition",
            (
                YEAR,
                UNIT_TYPE,
                _c("source_file", "VARCHAR", "Raw file path relative to the data directory"),
                _c("content_hash", "VARCHAR", "SHA-256 of the raw file's bytes"),
                _c(
                    "framework_file",
                    "VARCHAR",
                    "Framework file used (an edition without its own uses the nearest earlier one)",
                ),
                _c("framework_version", "VARCHAR", "Framework file name and content hash"),
                _c("registry_version", "VARCHAR", "Content hash of data/registry/"),
                _c("n_units", "INTEGER", "Units in the file"),
            ),
            key=("survey_year", "unit_type"),
        ),
        # Measurements to scores (scoring/): every cell's path, and each indicator's treatment.
        Table(
            "marts.measurement_scores",
            "Measurements to scores: for every edition, unit and indicator given as a measurement in natural units, the measurement, the imputed and treated values, how the cell was imputed or winsorised, the normalised score and the rule applied; the scores go on to core.indicator_scores",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("indicator_code", "VARCHAR", "Level-3 indicator code of the edition's framework"),
                _c("measure_unit", "VARCHAR", "Natural unit of the measurement (framework column unit)"),
                _c(
                    "measurement",
                    "DOUBLE",
                    "The measurement as read from the raw file; null where the cell is blank",
                ),
                _c(
                    "unit_coverage",
                    "DOUBLE",
                    "Share of the unit's indicators measured in this edition (before imputation); below scoring.min_unit_coverage the unit is not scored",
                ),
                _c("imputed", "BOOLEAN", "True when the measurement was missing and imputed"),
                _c(
                    "imputation_rule",
                    "VARCHAR",
                    "How it was imputed: 'group_mean: province=44 (12 peers)', 'group_median: tier=tier2 (…)', 'previous: edition 2019'; null when not imputed",
                ),
                _c(
                    "imputed_value",
                    "DOUBLE",
                    "The measurement, or the imputed value (natural units); null when missing",
                ),
                _c(
                    "treated_value",
                    "DOUBLE",
                    "The value after outlier treatment, in natural units (a winsorised point takes its neighbour's value); on the log_CT scale when treatment_rule is 'log'",
                ),
                _c("treated", "BOOLEAN", "True when outlier treatment changed the value"),
                _c(
                    "treatment_rule",
                    "VARCHAR",
                    "'winsorised_high', 'winsorised_low' (JRC rule, scoring thresholds in settings.yaml), 'log' (the indicator still failed the rule after winsorisation: log_CT), or null",
                ),
                _c(
                    "score",
                    "DOUBLE",
                    "Normalised score in [scores.min, scores.max] (0-100), full precision; null when not scored",
                ),
                _c(
                    "normalisation_rule",
                    "VARCHAR",
                    "The normalisation applied, with its goalposts or target, scale and direction, e.g. 'goalposts [20, 95], higher is better'",
                ),
                _c(
                    "status",
                    "VARCHAR",
                    "'scored', 'missing' (blank and not imputed: the aggregation's missing rule applies) or 'unit_below_coverage' (the unit is not scored)",
                ),
                _c("source_file", "VARCHAR", "Raw file the measurement came from"),
                _c("line_number", "BIGINT", "Line of the unit's row in the raw file"),
            ),
            key=("survey_year", "unit_type", "unit_code", "indicator_code"),
        ),
        Table(
            "marts.measurement_summary",
            "Measurements to scores, per indicator: coverage, skewness and kurtosis before and after outlier treatment, and how many points were winsorised, imputed or left missing",
            (
                YEAR,
                UNIT_TYPE,
                _c("indicator_code", "VARCHAR", "Level-3 indicator code of the edition's framework"),
                _c("n_units", "INTEGER", "Units of the edition's measurement file"),
                _c("n_measured", "INTEGER", "Units with a measurement (not blank)"),
                _c("coverage", "DOUBLE", "n_measured / n_units"),
                _c("n_imputed", "INTEGER", "Cells imputed"),
                _c("n_missing", "INTEGER", "Cells blank and not imputed (no score)"),
                _c(
                    "n_below_coverage",
                    "INTEGER",
                    "Cells of units below scoring.min_unit_coverage (not scored)",
                ),
                _c("n_winsorised", "INTEGER", "Points winsorised by the JRC rule"),
                _c(
                    "log_transformed",
                    "BOOLEAN",
                    "True when the indicator still failed the rule after winsorisation and was log-transformed (log_CT)",
                ),
                _c(
                    "skewness_before",
                    "DOUBLE",
                    "Skewness before treatment (COINr/e1071 type 2; on the log scale for a log indicator)",
                ),
                _c("kurtosis_before", "DOUBLE", "Excess kurtosis before treatment (COINr/e1071 type 2)"),
                _c("skewness_after", "DOUBLE", "Skewness after treatment"),
                _c("kurtosis_after", "DOUBLE", "Excess kurtosis after treatment"),
                _c(
                    "outliers_before",
                    "BOOLEAN",
                    "True when |skewness| > skew_threshold and kurtosis > kurtosis_threshold before treatment",
                ),
                _c("treatment", "VARCHAR", "The indicator's treatment: 'none' or 'winsorise'"),
                _c(
                    "normalisation_rule",
                    "VARCHAR",
                    "The normalisation applied (as in marts.measurement_scores)",
                ),
            ),
            key=("survey_year", "unit_type", "indicator_code"),
        ),
        # Dimensions (dimensions.py): the labels of the codes the facts carry, from data/registry,
        # data/method/tiers.csv and data/frameworks, so that a dashboard joins instead of hard-coding them.
        Table(
            "marts.dim_unit",
            "Units (dimension): every city and county unit of the registry with its names, province, prefecture, kind, the editions it was scored in and a later change of its code",
            (
                UNIT_TYPE,
                _c(
                    "unit_code",
                    "VARCHAR",
                    "6-digit GB/T 2260 code as the editions use it; city codes end in 00, county codes never do, so the code alone identifies the unit",
                ),
                _c(
                    "name_zh",
                    "VARCHAR",
                    "Chinese name as the white paper prints it (上海, 深圳市南山区, 江阴市)",
                ),
                _c(
                    "full_name_zh",
                    "VARCHAR",
                    "Official Chinese name (上海市; for county units the printed name)",
                ),
                _c(
                    "name_en",
                    "VARCHAR",
                    "English name; not unique (Suzhou is 苏州 and 宿州): label with it, join on unit_code",
                ),
                _c("province_code", "VARCHAR", "2-digit province code"),
                _c("province_zh", "VARCHAR", "Province, short form (广东, 内蒙古)"),
                _c(
                    "prefecture_code",
                    "VARCHAR",
                    "Prefecture-level city the unit belongs to (a city: itself); null for county-level cities administered by their province (仙桃, 琼海)",
                ),
                _c("prefecture_zh", "VARCHAR", "Short name of that prefecture-level city"),
                _c(
                    "kind",
                    "VARCHAR",
                    "As on the facts: 'city' (地级及以上城市), 'district' (市辖区) or 'county' (县市); county units are ranked within their kind",
                ),
                _c("kind_zh", "VARCHAR", "地级及以上城市, 市辖区 or 县市"),
                _c(
                    "kind_en",
                    "VARCHAR",
                    "'prefecture-level city', 'urban district' or 'county or county-level city' (the kind 'county' also holds county-level cities and banners)",
                ),
                _c(
                    "editions_scored",
                    "VARCHAR",
                    "Editions in which the unit has a composite score (marts.city_index / county_index), comma-separated, e.g. '2019,2020'; empty when never scored",
                ),
                _c("n_editions_scored", "INTEGER", "Number of those editions"),
                _c("first_edition", "INTEGER", "First edition scored (null when never scored)"),
                _c("last_edition", "INTEGER", "Latest edition scored (null when never scored)"),
                _c(
                    "current_code",
                    "VARCHAR",
                    "The unit's code today when it changed after the editions (data/registry/code_changes.csv); null when unchanged",
                ),
                _c("current_name_zh", "VARCHAR", "The unit's name today when its code changed"),
                _c("code_change_year", "INTEGER", "Year of the code change"),
                _c(
                    "code_change_note",
                    "VARCHAR",
                    "What changed (merger, county-level city turned district), with the source",
                ),
            ),
            key=("unit_code",),
        ),
        Table(
            "marts.dim_tier",
            "City tiers (dimension, 城市画像): the white paper's five tiers with names and score bounds; a city's tier is assigned on its score rounded to one decimal",
            (
                _c(
                    "tier_code", "VARCHAR", "Tier code as on the facts: tier1, new_tier1, tier2, tier3, tier4"
                ),
                _c("tier_order", "INTEGER", "1 = highest tier; sort tiers by it"),
                _c("name_zh", "VARCHAR", "一线, 新一线, 二线, 三线, 四线"),
                _c("name_en", "VARCHAR", "English name (First tier, New first tier, ...)"),
                _c("lower_bound", "DOUBLE", "Lowest score of the tier (see lower_inclusive)"),
                _c(
                    "lower_inclusive",
                    "BOOLEAN",
                    "true: a score equal to lower_bound is in the tier (>=); false: it is not (>)",
                ),
                _c("upper_bound", "DOUBLE", "The next higher tier's lower bound; null for the highest tier"),
                _c(
                    "upper_inclusive",
                    "BOOLEAN",
                    "true: a score equal to upper_bound is still in this tier (the higher tier's bound is exclusive); null for the highest tier",
                ),
                _c("score_range", "VARCHAR", "The bounds as text, e.g. '65 <= score <= 85' or 'score > 85'"),
                _c("description_zh", "VARCHAR", "The white paper's description of the tier"),
            ),
            key=("tier_code",),
        ),
        Table(
            "marts.dim_region",
            "Key regions (dimension, 重点区域): code, names and the number of members the white paper lists",
            (
                _c(
                    "region_code",
                    "VARCHAR",
                    "Region code as on the facts: jingjinji, yangtze_delta, greater_bay, chengyu",
                ),
                _c("name_zh", "VARCHAR", "京津冀, 长三角, 粤港澳大湾区, 成渝"),
                _c("name_en", "VARCHAR", "English name"),
                _c(
                    "n_members",
                    "INTEGER",
                    "Members listed by the white paper (incl. Hong Kong and Macao for 粤港澳大湾区)",
                ),
            ),
            key=("region_code",),
        ),
        Table(
            "marts.dim_region_member",
            "Members of each key region per edition (dimension): filter facts by region with it; Hong Kong and Macao are members without a code, never scored",
            (
                YEAR,
                _c("region_code", "VARCHAR", "Region code (marts.dim_region)"),
                _c("member_order", "INTEGER", "Position in the white paper's list of the region's members"),
                _c("member_name_zh", "VARCHAR", "Member as listed (北京, 香港)"),
                _c(
                    "unit_code",
                    "VARCHAR",
                    "The member city's code (marts.dim_unit); null for Hong Kong and Macao",
                ),
                _c(
                    "is_scored",
                    "BOOLEAN",
                    "The member has a composite score in this edition (is in marts.city_index)",
                ),
            ),
            key=("survey_year", "region_code", "member_name_zh"),
        ),
        Table(
            "marts.dim_indicator",
            "Indicators (dimension, 指标体系) of each edition and unit type as one tree: the composite (level 0) at the root, then levels 1-3 of the edition's framework",
            (
                YEAR,
                UNIT_TYPE,
                _c(
                    "node_code",
                    "VARCHAR",
                    "Indicator code as on the facts; 'composite' for the composite index",
                ),
                _c("parent_code", "VARCHAR", "Parent node: 'composite' for level 1, null for the composite"),
                _c(
                    "level", "INTEGER", "0 = composite, 1-3 = indicator level (level 3 are the scored leaves)"
                ),
                _c("name_zh", "VARCHAR", "Chinese name (综合指数 for the composite)"),
                _c("name_en", "VARCHAR", "English name"),
                _c("weight", "DOUBLE", "Weight within its parent (1 for the composite)"),
                _c(
                    "effective_weight",
                    "DOUBLE",
                    "Weight in the composite: product of the weights from level 1 down (1 for the composite)",
                ),
                _c("is_leaf", "BOOLEAN", "A level-3 indicator, scored from the raw data"),
                _c(
                    "sort_order",
                    "INTEGER",
                    "Position in the framework file (0 for the composite): tree order for display",
                ),
                _c("framework_file", "VARCHAR", "Framework file the edition uses"),
            ),
            key=("survey_year", "unit_type", "node_code"),
        ),
        Table(
            "marts.framework",
            "Indicator system (指标体系) used by each edition: nodes, weights and effective weights",
            (
                YEAR,
                UNIT_TYPE,
                _c("node_code", "VARCHAR", "Stable ASCII code of the indicator"),
                _c("parent_code", "VARCHAR", "Code of the parent indicator (null for level 1)"),
                _c("level", "INTEGER", "1, 2 or 3 (level-3 indicators are the scored leaves)"),
                _c("name_zh", "VARCHAR", "Chinese name"),
                _c("name_en", "VARCHAR", "English name"),
                _c("weight", "DOUBLE", "Weight within its parent (sums to 1 per parent)"),
                _c(
                    "effective_weight",
                    "DOUBLE",
                    "Weight in the composite: product of the weights from level 1 down",
                ),
                _c("framework_file", "VARCHAR", "Framework file the edition uses"),
            ),
            key=("survey_year", "unit_type", "node_code"),
        ),
        Table(
            "marts.subindex_scores",
            "Scores of every indicator node per unit: level 3 as validated, levels 2, 1 and the composite (level 0) aggregated",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("level", "INTEGER", "0 = composite, 1-3 = indicator level"),
                _c("node_code", "VARCHAR", "Indicator code ('composite' for level 0)"),
                _c("name_zh", "VARCHAR", "Chinese name of the indicator"),
                SCORE,
            ),
            key=("survey_year", "unit_type", "unit_code", "node_code"),
        ),
        Table(
            "marts.city_index",
            "City Digital Economy Index per edition: composite score, rank and tier (城市画像)",
            (
                YEAR,
                UNIT_CODE,
                _c("name_zh", "VARCHAR", "City name as printed in the edition"),
                _c("name_en", "VARCHAR", "English name"),
                _c("province", "VARCHAR", "Province (short form)"),
                SCORE,
                _c("rank", "INTEGER", "Rank by score shown to one decimal; ties share the best rank"),
                _c(
                    "tier",
                    "VARCHAR",
                    "tier1 一线 (>85), new_tier1 新一线 (65-85), tier2 二线 (50-65), tier3 三线 (40-50), tier4 四线 (<40), on the one-decimal score",
                ),
            ),
            key=("survey_year", "unit_code"),
        ),
        Table(
            "marts.county_index",
            "County-level index (县域): districts and county-level cities ranked within their kind",
            (
                YEAR,
                UNIT_CODE,
                _c("name_zh", "VARCHAR", "Unit name as printed in the edition (e.g. 深圳市南山区, 江阴市)"),
                _c("province", "VARCHAR", "Province (short form)"),
                _c(
                    "kind",
                    "VARCHAR",
                    "'district' (市辖区) or 'county' (县市: county-level city, county or banner)",
                ),
                SCORE,
                _c("rank", "INTEGER", "Rank within the kind; ties share the best rank"),
            ),
            key=("survey_year", "unit_code"),
        ),
        Table(
            "marts.region_rollup",
            "Key regions (京津冀, 长三角, 粤港澳大湾区, 成渝): GDP-weighted and plain mean of the member cities' scores",
            (
                YEAR,
                _c("region", "VARCHAR", "Region code: jingjinji, yangtze_delta, greater_bay, chengyu"),
                _c(
                    "n_members",
                    "INTEGER",
                    "Members listed for the region (incl. Hong Kong and Macao, never scored)",
                ),
                _c("n_scored", "INTEGER", "Members with a score in this edition"),
                _c("gdp_year", "INTEGER", "Year of the GDP figures used as weights"),
                _c("gdp_vintage", "VARCHAR", "'revised' (census-consistent) or 'first_published'"),
                _c(
                    "gdp_weighted_score",
                    "DOUBLE",
                    "Mean of member scores weighted by GDP share (综合加权得分)",
                ),
                _c("mean_score", "DOUBLE", "Unweighted mean of member scores"),
                _c("gdp_total_100m_yuan", "DOUBLE", "Total GDP of the scored members, 100 million yuan"),
            ),
            key=("survey_year", "region"),
        ),
        Table(
            "marts.region_tier_mix",
            "Number of each region's scored cities in each tier",
            (
                YEAR,
                _c("region", "VARCHAR", "Region code"),
                _c("tier", "VARCHAR", "Tier code"),
                _c("tier_order", "INTEGER", "1 = highest tier"),
                _c("n_cities", "INTEGER", "Scored member cities in the tier"),
            ),
            key=("survey_year", "region", "tier"),
        ),
        Table(
            "marts.city_yoy",
            "Each city against the previous edition that has data: score, rank and tier change",
            (
                YEAR,
                UNIT_CODE,
                _c("prev_year", "INTEGER", "Edition compared with (null for the first edition)"),
                _c(
                    "status",
                    "VARCHAR",
                    "new, returning, dropped (in the previous edition only) or first_edition",
                ),
                SCORE,
                _c("prev_score", "DOUBLE", "Score in the previous edition"),
                _c("score_change", "DOUBLE", "score - prev_score"),
                _c("rank", "INTEGER", "Rank now"),
                _c("prev_rank", "INTEGER", "Rank in the previous edition"),
                _c("rank_change", "INTEGER", "prev_rank - rank: positive means the city moved up"),
                _c(
                    "cohort_rank",
                    "INTEGER",
                    "Rank now within the returning cohort (the units ranked in both editions; published order and ties kept)",
                ),
                _c("prev_cohort_rank", "INTEGER", "Rank in the previous edition within the same cohort"),
                _c(
                    "cohort_rank_change",
                    "INTEGER",
                    "prev_cohort_rank - cohort_rank: the move against the same units, free of units arriving or leaving (rank_change compares pools of different sizes)",
                ),
                _c("tier", "VARCHAR", "Tier now"),
                _c("prev_tier", "VARCHAR", "Tier in the previous edition"),
            ),
            key=("survey_year", "unit_code"),
        ),
        Table(
            "marts.county_yoy",
            "Each county unit against the previous edition that has data",
            (
                YEAR,
                UNIT_CODE,
                _c("kind", "VARCHAR", "'district' or 'county'"),
                _c("prev_year", "INTEGER", "Edition compared with"),
                _c("status", "VARCHAR", "new, returning, dropped or first_edition"),
                SCORE,
                _c("prev_score", "DOUBLE", "Score in the previous edition"),
                _c("score_change", "DOUBLE", "score - prev_score"),
                _c("rank", "INTEGER", "Rank within the kind now"),
                _c("prev_rank", "INTEGER", "Rank within the kind before"),
                _c("rank_change", "INTEGER", "prev_rank - rank: positive means the unit moved up"),
                _c(
                    "cohort_rank",
                    "INTEGER",
                    "Rank now within the returning cohort (the units ranked in both editions; published order and ties kept), within the kind",
                ),
                _c("prev_cohort_rank", "INTEGER", "Rank in the previous edition within the same cohort"),
                _c(
                    "cohort_rank_change",
                    "INTEGER",
                    "prev_cohort_rank - cohort_rank: the move against the same units, free of units arriving or leaving (rank_change compares pools of different sizes)",
                ),
            ),
            key=("survey_year", "unit_code"),
        ),
        Table(
            "marts.subindex_yoy",
            "Level-1 sub-index and composite changes per unit against the previous edition",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("node_code", "VARCHAR", "Level-1 indicator code, or 'composite'"),
                _c("level", "INTEGER", "0 = composite, 1 = level-1"),
                _c("prev_year", "INTEGER", "Edition compared with"),
                _c("status", "VARCHAR", "new, returning, dropped or first_edition"),
                SCORE,
                _c("prev_score", "DOUBLE", "Score in the previous edition"),
                _c("score_change", "DOUBLE", "score - prev_score"),
            ),
            key=("survey_year", "unit_type", "unit_code", "node_code"),
        ),
        Table(
            "marts.yoy_summary",
            "Per edition and unit type: new, returning and dropped units and the returning cohort's averages",
            (
                YEAR,
                UNIT_TYPE,
                _c("prev_year", "INTEGER", "Edition compared with"),
                _c("n_units", "INTEGER", "Units scored in this edition"),
                _c("n_prev_units", "INTEGER", "Units scored in the previous edition"),
                _c("n_new", "INTEGER", "Units not in the previous edition"),
                _c("n_returning", "INTEGER", "Units in both editions"),
                _c("n_dropped", "INTEGER", "Units of the previous edition not scored now"),
                _c(
                    "n_cohort",
                    "INTEGER",
                    "Returning units scored in both editions: the units the returning_* averages are taken over",
                ),
                _c("mean_score", "DOUBLE", "Mean score of all units now"),
                _c(
                    "returning_mean",
                    "DOUBLE",
                    "Mean score now of the returning units scored in both editions (n_cohort)",
                ),
                _c("returning_prev_mean", "DOUBLE", "Mean score before of the same units"),
                _c("returning_mean_change", "DOUBLE", "returning_mean - returning_prev_mean"),
            ),
            key=("survey_year", "unit_type"),
        ),
        Table(
            "marts.tier_summary",
            "Cities per tier in each edition and the previous one, with the change in percent",
            (
                YEAR,
                _c("tier", "VARCHAR", "Tier code"),
                _c("tier_order", "INTEGER", "1 = highest tier"),
                _c("n_cities", "INTEGER", "Cities in the tier"),
                _c("prev_year", "INTEGER", "Edition compared with"),
                _c("prev_n_cities", "INTEGER", "Cities in the tier in the previous edition"),
                _c(
                    "change_pct",
                    "DOUBLE",
                    "(n_cities / prev_n_cities - 1) * 100; null when prev_n_cities is 0",
                ),
            ),
            key=("survey_year", "tier"),
        ),
        Table(
            "marts.reconciliation",
            "Computed figures against the figures published in the white paper; a disagreement is reported, never patched",
            (
                YEAR,
                _c(
                    "category",
                    "VARCHAR",
                    "Kind of figure: city_score, county_score, city_rank, county_rank, tier_count, level1_average, industry_average, industry_top10_average, region_score, statement, tier_list",
                ),
                _c("item", "VARCHAR", "What is compared (e.g. a city name, a tier code, a statement id)"),
                _c("published", "DOUBLE", "Figure as published"),
                _c("computed", "DOUBLE", "Figure computed by the pipeline at full precision"),
                _c("difference", "DOUBLE", "computed - published"),
                _c("tolerance", "DOUBLE", "Largest difference counted as a match (the published precision)"),
                _c(
                    "status",
                    "VARCHAR",
                    "match, mismatch, missing (not computed), known_contradiction (the white paper disagrees with itself) or tie_rule (equal printed scores ranked apart by the white paper, sharing a rank here)",
                ),
                _c("note", "VARCHAR", "Explanation, e.g. the contradiction recorded in data/published"),
            ),
            key=("survey_year", "category", "item"),
        ),
        # Analysis marts (rank uncertainty, sensitivity, attribution, audit, unit profile) follow here.
        Table(
            "marts.rank_uncertainty",
            "Rank uncertainty: each unit's rank, score and tier over a Monte Carlo of the weights (each perturbed within ±25% and renormalised) and of the aggregation method (arithmetic or geometric mean per level); see docs/analysis.md",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("name_zh", "VARCHAR", "Unit name as printed in the edition"),
                _c(
                    "rank_group",
                    "VARCHAR",
                    "Units ranked together: 'all' for cities, the kind ('district' or 'county') for county units",
                ),
                _c("n_ranked", "INTEGER", "Units ranked in the group (the worst possible rank)"),
                _c(
                    "nominal_score",
                    "DOUBLE",
                    "Published composite score at full precision (marts.city_index / county_index)",
                ),
                _c("nominal_rank", "INTEGER", "Published rank (ties share the best rank)"),
                _c("nominal_tier", "VARCHAR", "Published tier (cities only)"),
                _c("median_rank", "INTEGER", "Median rank over the draws"),
                _c(
                    "rank_p05",
                    "INTEGER",
                    "5th percentile of the rank over the draws: the best rank the unit reaches in all but 5% of the draws (lower bound of the 90% interval)",
                ),
                _c(
                    "rank_p95",
                    "INTEGER",
                    "95th percentile of the rank: the worst rank in all but 5% of the draws (upper bound of the 90% interval)",
                ),
                _c(
                    "mean_abs_rank_shift",
                    "DOUBLE",
                    "Mean absolute difference between the rank in a draw and the published rank",
                ),
                _c(
                    "score_p05",
                    "DOUBLE",
                    "5th percentile of the composite over the draws, at display precision (one decimal)",
                ),
                _c("score_median", "DOUBLE", "Median composite over the draws, at display precision"),
                _c(
                    "score_p95",
                    "DOUBLE",
                    "95th percentile of the composite over the draws, at display precision",
                ),
                _c(
                    "prob_tier1",
                    "DOUBLE",
                    "Share of draws in which the city is 一线 (tier1); null for county units",
                ),
                _c(
                    "prob_new_tier1",
                    "DOUBLE",
                    "Share of draws in which the city is 新一线 (new_tier1); null for county units",
                ),
                _c(
                    "prob_tier2",
                    "DOUBLE",
                    "Share of draws in which the city is 二线 (tier2); null for county units",
                ),
                _c(
                    "prob_tier3",
                    "DOUBLE",
                    "Share of draws in which the city is 三线 (tier3); null for county units",
                ),
                _c(
                    "prob_tier4",
                    "DOUBLE",
                    "Share of draws in which the city is 四线 (tier4); null for county units",
                ),
                _c(
                    "prob_same_tier",
                    "DOUBLE",
                    "Share of draws in which the city stays in its published tier; null for county units",
                ),
                _c(
                    "n_draws",
                    "INTEGER",
                    "Monte Carlo draws of this unit type (data/method/settings.yaml, uncertainty.draws)",
                ),
            ),
            key=("survey_year", "unit_type", "unit_code"),
        ),
        Table(
            "marts.sensitivity",
            "Sensitivity of the ranks to each assumption: first-order and total-effect Sobol indices over the weights of each level and the aggregation method; see docs/analysis.md",
            (
                YEAR,
                UNIT_TYPE,
                _c(
                    "target",
                    "VARCHAR",
                    "What is explained: 'rank' (one unit's rank) or 'mean_abs_rank_shift' (the mean absolute rank change of all units against the published ranking)",
                ),
                _c("unit_code", "VARCHAR", "The unit whose rank is explained; null for mean_abs_rank_shift"),
                _c(
                    "factor",
                    "VARCHAR",
                    "The assumption: weights_level_1, weights_level_2, weights_level_3 (that level's weights), aggregation_method (the method of every level), weight_scheme (when several are drawn), or for a unit type given as measurements normalisation, treatment, imputation (when the settings vary them)",
                ),
                _c(
                    "first_order",
                    "DOUBLE",
                    "First-order index: share of the target's variance the factor explains on its own (0-1), centred Saltelli (2010) estimator; read it with its interval and 'resolved'",
                ),
                _c(
                    "total_effect",
                    "DOUBLE",
                    "Total-effect index (Jansen): share of the variance the factor explains with its interactions; 0 means it does not matter",
                ),
                _c(
                    "first_order_se",
                    "DOUBLE",
                    "Standard error of first_order: standard deviation over the bootstrap resamples of the base draws (the error of the variance included)",
                ),
                _c("total_effect_se", "DOUBLE", "Standard error of total_effect, likewise"),
                _c(
                    "first_order_ci_low",
                    "DOUBLE",
                    "Lower bound of first_order's bootstrap percentile interval (level uncertainty.sensitivity_level, 90%: the 5th percentile); null when some resample has no variance",
                ),
                _c(
                    "first_order_ci_high",
                    "DOUBLE",
                    "Upper bound of first_order's interval (the 95th percentile at 90%)",
                ),
                _c("total_effect_ci_low", "DOUBLE", "Lower bound of total_effect's interval"),
                _c("total_effect_ci_high", "DOUBLE", "Upper bound of total_effect's interval"),
                _c(
                    "resolved",
                    "BOOLEAN",
                    "Both indices are known at this N: each interval at most uncertainty.sensitivity_resolution wide (0.2: ±0.1) and both indices in [-0.05, 1.05]; false: read the indices as unknown; null when the rank never moves",
                ),
                _c(
                    "out_of_range",
                    "BOOLEAN",
                    "An index lies outside [-0.05, 1.05], where no share of variance can be: Monte Carlo noise, never resolved",
                ),
                _c(
                    "output_variance",
                    "DOUBLE",
                    "Variance of the target over the draws; the indices are null when it is 0 (the rank never moves)",
                ),
                _c(
                    "influence_rank", "INTEGER", "1 = the factor with the largest total effect on this target"
                ),
                _c(
                    "n_base_draws",
                    "INTEGER",
                    "Base draws N of the Saltelli design (uncertainty.sensitivity_base_draws)",
                ),
                _c("n_evaluations", "INTEGER", "Index evaluations: N x (factors + 2)"),
                _c(
                    "n_bootstrap",
                    "INTEGER",
                    "Bootstrap resamples behind the intervals (uncertainty.sensitivity_bootstrap)",
                ),
            ),
            key=("survey_year", "unit_type", "target", "unit_code", "factor"),
        ),
        Table(
            "marts.removal_impact",
            "Leave one out: per framework node with a sibling, how the ranking changes when the node is left out and its siblings' weights renormalised (COINr's remove_elements); see docs/analysis.md",
            (
                YEAR,
                UNIT_TYPE,
                _c("node_code", "VARCHAR", "The node left out (an indicator or a sub-index)"),
                _c("level", "INTEGER", "Its level (1 = top)"),
                _c(
                    "mean_abs_rank_change",
                    "DOUBLE",
                    "Mean over the ranked units of |rank without the node - published rank|",
                ),
                _c("max_abs_rank_change", "INTEGER", "Largest absolute rank change of a unit"),
                _c("share_units_moved", "DOUBLE", "Share of the ranked units whose rank changes"),
                _c(
                    "most_moved_unit",
                    "VARCHAR",
                    "The unit that moves most (the first by code on a tie); null when none moves",
                ),
                _c(
                    "most_moved_rank_change",
                    "INTEGER",
                    "Its rank change: positive = it moves up without the node",
                ),
                _c("n_units", "INTEGER", "Units ranked"),
            ),
            key=("survey_year", "unit_type", "node_code"),
        ),
        Table(
            "marts.yoy_attribution",
            "Attribution of each unit's score change against the previous edition to the level-1 and level-2 nodes (effective weight x change), with the change split into data and method change (Shapley: the average of both orders of the two steps); editions before 2020 use the 2020 framework (back-cast), so their method_change is 0 by construction; see docs/analysis.md",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c(
                    "prev_year", "INTEGER", "Edition compared with (the latest earlier edition that has data)"
                ),
                _c(
                    "status",
                    "VARCHAR",
                    "comparable; framework_not_comparable (an edition lacks indicators the other edition's framework needs: no split); incomplete_data (missing indicators under rule reweight: no contributions)",
                ),
                _c(
                    "node_code",
                    "VARCHAR",
                    "Node of the current edition's framework ('composite' for level 0)",
                ),
                _c("level", "INTEGER", "0 = composite (the total), 1 or 2"),
                _c("parent_code", "VARCHAR", "Parent node (null for level 1 and the composite)"),
                _c("name_zh", "VARCHAR", "Chinese name of the node"),
                _c(
                    "effective_weight",
                    "DOUBLE",
                    "Weight of the node in the composite under the current framework",
                ),
                SCORE,
                _c(
                    "prev_score",
                    "DOUBLE",
                    "The node's score in the previous edition recomputed under the current framework",
                ),
                _c("score_change", "DOUBLE", "score - prev_score"),
                _c(
                    "contribution",
                    "DOUBLE",
                    "The node's weighted change in composite points, averaged over both frameworks (Shapley); effective_weight x score_change when the framework is unchanged; a level's contributions add up to data_change when both frameworks have the same nodes",
                ),
                _c("share_of_change", "DOUBLE", "contribution / data_change"),
                _c(
                    "total_change",
                    "DOUBLE",
                    "Composite now minus the composite published for the previous edition",
                ),
                _c(
                    "data_change",
                    "DOUBLE",
                    "Part of total_change due to the data (Shapley: the average of the data step taken under the current and under the previous framework)",
                ),
                _c(
                    "method_change",
                    "DOUBLE",
                    "Part of total_change due to the framework (Shapley, total_change - data_change); 0 when unchanged, and 0 by construction for editions before 2020 (back-cast under the 2020 framework)",
                ),
                _c(
                    "prev_score_published",
                    "DOUBLE",
                    "The previous edition's composite as published (its own framework)",
                ),
            ),
            key=("survey_year", "unit_type", "unit_code", "node_code"),
        ),
        Table(
            "marts.audit",
            "Statistical audit of each framework node per edition: correlations with its parent and the composite, redundancy, Cronbach's alpha, measured against nominal weight; see docs/analysis.md",
            (
                YEAR,
                UNIT_TYPE,
                _c("node_code", "VARCHAR", "Node code ('composite' for level 0)"),
                _c("level", "INTEGER", "0 = composite, 1-3 = indicator level"),
                _c("parent_code", "VARCHAR", "Parent node ('composite' for level 1, null for the composite)"),
                _c("name_zh", "VARCHAR", "Chinese name"),
                _c("n_units", "INTEGER", "Units with a score for the node"),
                _c("missing_share", "DOUBLE", "Share of the edition's units without a score for the node"),
                _c("nominal_weight", "DOUBLE", "Weight within the parent, from the framework"),
                _c(
                    "nominal_effective_weight",
                    "DOUBLE",
                    "Weight in the composite, from the framework (product of the weights from level 1 down)",
                ),
                _c(
                    "measured_weight",
                    "DOUBLE",
                    "How much the node drives its parent: its squared correlation with the parent as a share of its siblings' (JRC/COINr correlation-ratio measure)",
                ),
                _c(
                    "measured_effective_weight",
                    "DOUBLE",
                    "How much the node drives the composite: its squared correlation with the composite as a share of all nodes of its level",
                ),
                _c(
                    "weight_ratio",
                    "DOUBLE",
                    "measured_weight / nominal_weight: 1 = drives the parent as much as its weight says; null for an only child",
                ),
                _c(
                    "corr_with_parent",
                    "DOUBLE",
                    "Pearson correlation with the parent node's score over the units",
                ),
                _c("corr_with_composite", "DOUBLE", "Pearson correlation with the composite"),
                _c(
                    "spearman_with_parent",
                    "DOUBLE",
                    "Spearman (rank) correlation with the parent, ties ranked by their mean",
                ),
                _c("spearman_with_composite", "DOUBLE", "Spearman (rank) correlation with the composite"),
                _c(
                    "negative_corr_parent_p",
                    "DOUBLE",
                    "One-sided p-value of a negative Pearson correlation with the parent (Fisher's z); the flag negative_corr_parent needs p < 0.05",
                ),
                _c(
                    "negative_corr_composite_p",
                    "DOUBLE",
                    "One-sided p-value of a negative Pearson correlation with the composite (Fisher's z)",
                ),
                _c(
                    "max_abs_sibling_corr",
                    "DOUBLE",
                    "Largest absolute correlation with a sibling (a node with the same parent)",
                ),
                _c("redundant_with", "VARCHAR", "Siblings correlated beyond |r| > 0.9, comma-separated"),
                _c("n_children", "INTEGER", "Children of the node (null for an indicator)"),
                _c(
                    "cronbach_alpha",
                    "DOUBLE",
                    "Cronbach's alpha of the node's children: internal consistency of the group (>= 0.7 conventional)",
                ),
                _c(
                    "pca_first_share",
                    "DOUBLE",
                    "PCA of the node's children (standardised, units with all of them): share of their variance the first component explains; null for an indicator or an only child",
                ),
                _c(
                    "pca_weight",
                    "DOUBLE",
                    "The node's squared loading on its group's first principal component (sums to 1 within the group): the PCA weight",
                ),
                _c(
                    "flags",
                    "VARCHAR",
                    "Comma-separated: negative_corr_parent, negative_corr_composite (negative and significant, one-sided p < 0.05), redundant (|r| > 0.9 with a sibling), weight_mismatch (weight_ratio < 0.5 or > 2), low_alpha (< 0.7); null when none",
                ),
            ),
            key=("survey_year", "unit_type", "node_code"),
        ),
        Table(
            "marts.audit_units",
            "Statistical audit of each unit per edition: indicators missing, and a flag for units missing too many",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("n_indicators", "INTEGER", "Indicators (level 3) of the edition's framework"),
                _c("n_missing", "INTEGER", "Indicators without a score for the unit"),
                _c("missing_share", "DOUBLE", "n_missing / n_indicators"),
                _c("has_composite", "BOOLEAN", "The unit has a composite under the missing-value rule"),
                _c(
                    "too_many_missing",
                    "BOOLEAN",
                    "More than a third of the indicators are missing (composite indices require about two thirds coverage)",
                ),
            ),
            key=("survey_year", "unit_type", "unit_code"),
        ),
        Table(
            "marts.unit_profile",
            "Each unit's strengths and weaknesses: every indicator node against its peers (the cities of its tier, the county units of its kind); see docs/analysis.md and `dei profile`",
            (
                YEAR,
                UNIT_TYPE,
                UNIT_CODE,
                _c("unit_name_zh", "VARCHAR", "Unit name as printed in the edition"),
                _c(
                    "peer_group",
                    "VARCHAR",
                    "Peers compared with: the city's tier code, or the county unit's kind",
                ),
                _c("node_code", "VARCHAR", "Indicator node (levels 1-3)"),
                _c("node_name_zh", "VARCHAR", "Chinese name of the node"),
                _c("level", "INTEGER", "1-3"),
                SCORE,
                _c("peer_n", "INTEGER", "Peers with a score for the node (the unit included)"),
                _c("peer_mean", "DOUBLE", "Mean score of the peers"),
                _c("peer_sd", "DOUBLE", "Standard deviation of the peers' scores"),
                _c("gap_to_peer_mean", "DOUBLE", "score - peer_mean"),
                _c(
                    "peer_z",
                    "DOUBLE",
                    "gap_to_peer_mean / peer_sd: how unusual the score is among the peers; null when the peers do not differ",
                ),
                _c(
                    "peer_rank",
                    "INTEGER",
                    "Rank among the peers on the node (one decimal, ties share the best rank)",
                ),
                _c(
                    "role",
                    "VARCHAR",
                    "'strength' (one of the 5 indicators with the highest peer_z), 'weakness' (5 lowest) or null",
                ),
                _c("role_rank", "INTEGER", "1 = the strongest strength / the weakest weakness"),
            ),
            key=("survey_year", "unit_type", "unit_code", "node_code"),
        ),
    )
}

MART_TABLES: tuple[str, ...] = tuple(name for name in TABLES if name.startswith("marts."))


@dataclass(frozen=True)
class ForeignKey:
    """Columns of a mart that hold the key of a dimension (null values reference nothing)."""

    table: str
    columns: tuple[str, ...]
    dimension: str
    dimension_columns: tuple[str, ...]


_EDITION_NODE = ("survey_year", "unit_type", "node_code")

# Every mart's grain (what one row is); with the table's key it ends the table comment, and the tests
# check that the key holds in the sample (a mart added without a grain or a key fails them).
GRAIN: dict[str, str] = {
    "marts.dim_unit": "unit (city or county unit of the registry)",
    "marts.dim_tier": "tier",
    "marts.dim_region": "key region",
    "marts.dim_region_member": "edition, region and listed member",
    "marts.dim_indicator": "edition, unit type and indicator node (the composite included)",
    "marts.framework": "edition, unit type and indicator node (levels 1-3)",
    "marts.measurement_scores": "edition, unit and indicator given as a measurement",
    "marts.measurement_summary": "edition, unit type and indicator given as measurements",
    "marts.subindex_scores": "edition, unit and indicator node (the composite included)",
    "marts.city_index": "edition and scored city",
    "marts.county_index": "edition and scored county unit",
    "marts.region_rollup": "edition and key region",
    "marts.region_tier_mix": "edition, key region and tier",
    "marts.city_yoy": "edition and city scored in it or in the previous edition",
    "marts.county_yoy": "edition and county unit scored in it or in the previous edition",
    "marts.subindex_yoy": "edition, unit and node (level-1 indicators and the composite)",
    "marts.yoy_summary": "edition and unit type",
    "marts.tier_summary": "edition and tier",
    "marts.reconciliation": "edition and compared figure",
    "marts.rank_uncertainty": "edition and unit",
    "marts.sensitivity": "edition, unit type, target (a unit's rank, or the overall rank shift) and factor",
    "marts.yoy_attribution": "edition, unit and node (the composite and levels 1-2)",
    "marts.audit": "edition, unit type and node (the composite included)",
    "marts.audit_units": "edition and unit",
    "marts.unit_profile": "edition, unit and indicator node (levels 1-3)",
    "marts.removal_impact": "edition, unit type and indicator node left out",
}


def _references(table: str, dimension: str, *pairs: str) -> ForeignKey:
    """``pairs`` as "column" (same name in the dimension) or "column=dimension_column"."""
    columns = tuple(pair.split("=")[0] for pair in pairs)
    return ForeignKey(table, columns, dimension, tuple(pair.split("=")[-1] for pair in pairs))


_UNIT_TABLES = (
    "marts.subindex_scores",
    "marts.city_index",
    "marts.county_index",
    "marts.city_yoy",
    "marts.county_yoy",
    "marts.subindex_yoy",
    "marts.rank_uncertainty",
    "marts.sensitivity",
    "marts.yoy_attribution",
    "marts.audit_units",
    "marts.unit_profile",
    "marts.dim_region_member",
    "marts.measurement_scores",
)
_NODE_TABLES = (
    "marts.framework",
    "marts.subindex_scores",
    "marts.subindex_yoy",
    "marts.yoy_attribution",
    "marts.audit",
    "marts.unit_profile",
)

# The joins from the facts to the dimensions; the tests check that every value has its dimension row.
FOREIGN_KEYS: tuple[ForeignKey, ...] = (
    *(_references(table, "marts.dim_unit", "unit_code") for table in _UNIT_TABLES),
    *(_references(table, "marts.dim_indicator", *_EDITION_NODE) for table in _NODE_TABLES),
    _references(
        "marts.framework", "marts.dim_indicator", "survey_year", "unit_type", "parent_code=node_code"
    ),
    *(
        _references(table, "marts.dim_indicator", "survey_year", "unit_type", "indicator_code=node_code")
        for table in ("marts.measurement_scores", "marts.measurement_summary")
    ),
    *(
        _references(table, "marts.dim_tier", f"{column}=tier_code")
        for table, column in (
            ("marts.city_index", "tier"),
            ("marts.city_yoy", "tier"),
            ("marts.city_yoy", "prev_tier"),
            ("marts.region_tier_mix", "tier"),
            ("marts.tier_summary", "tier"),
            ("marts.rank_uncertainty", "nominal_tier"),
        )
    ),
    *(
        _references(table, "marts.dim_region", "region=region_code")
        for table in ("marts.region_rollup", "marts.region_tier_mix")
    ),
    _references("marts.dim_region_member", "marts.dim_region", "region_code"),
)


def documented_comment(table: Table) -> str:
    """The table comment as stored: what it holds, its grain and natural key, and its joins to the dimensions."""
    grain = GRAIN.get(table.name)
    if grain is None:
        return table.comment
    joins = sorted(
        {
            f"{', '.join(fk.columns)} -> {fk.dimension}"
            for fk in FOREIGN_KEYS
            if fk.table == table.name and fk.dimension != table.name
        }
    )
    text = f"{table.comment}. Grain: one row per {grain}; natural key ({', '.join(table.key)})."
    return f"{text} Joins: {'; '.join(joins)}." if joins else text


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


@contextmanager
def open_warehouse(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse, holding its lock (see locking.py) while it is open."""
    with warehouse_lock(path):
        con = connect(path, read_only=read_only)
        try:
            if not read_only:
                ensure_schema(con)
            yield con
        finally:
            con.close()


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Execute one statement and drain its result (DuckDB 2 requires it before the next query)."""
    return con.execute(sql, params or []).fetchall()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the warehouse to the tables of TABLES, in one transaction: create missing schemas and
    tables, add missing columns, and rewrite every table and column comment that differs, so that a
    warehouse made by an older version shows analysts the current documentation. (A column whose type
    changed, or that is no longer documented, is left as it is: migrating data is not done here.)"""
    statements = schema_statements(
        {
            f"{schema}.{name}": comment or ""
            for schema, name, comment in run(
                con, "SELECT schema_name, table_name, comment FROM duckdb_tables()"
            )
        },
        {
            (f"{schema}.{table}", column): comment or ""
            for schema, table, column, comment in run(
                con, "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()"
            )
        },
    )
    if not statements:
        return
    run(con, "BEGIN TRANSACTION")
    try:
        for statement in statements:
            run(con, statement)
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise


def schema_statements(
    table_comments: dict[str, str], column_comments: dict[tuple[str, str], str]
) -> list[str]:
    """The DDL that turns a warehouse with these tables and columns (and their comments) into TABLES."""
    statements = [
        f"CREATE SCHEMA IF NOT EXISTS {schema}"
        for schema in sorted({name.split(".")[0] for name in TABLES if name not in table_comments})
    ]
    for table in TABLES.values():
        if table.name not in table_comments:
            columns = ", ".join(f"{column.name} {column.sql_type}" for column in table.columns)
            statements.append(f"CREATE TABLE {table.name} ({columns})")
        statements += [
            f"ALTER TABLE {table.name} ADD COLUMN {column.name} {column.sql_type}"
            for column in table.columns
            if table.name in table_comments and (table.name, column.name) not in column_comments
        ]
        comment = documented_comment(table)
        if table_comments.get(table.name) != comment:
            statements.append(f"COMMENT ON TABLE {table.name} IS {_quote(comment)}")
        statements += [
            f"COMMENT ON COLUMN {table.name}.{column.name} IS {_quote(column.comment)}"
            for column in table.columns
            if column_comments.get((table.name, column.name)) != column.comment
        ]
    return statements


def replace_editions(
    con: duckdb.DuckDBPyConnection,
    table_name: str,
    rows: pl.DataFrame | Iterable[pl.DataFrame],
    editions: Sequence[int] | None,
) -> int:
    """Replace exactly the given editions' rows of a table, in one transaction; ``editions=None``
    replaces every row (a table without editions, such as a dimension). ``rows`` may come in
    parts (an iterable of frames, e.g. one per edition, made while writing), so that a large mart never
    sits in memory whole. Returns rows written."""
    table = TABLES[table_name]
    parts = [rows] if isinstance(rows, pl.DataFrame) else rows
    written = 0
    run(con, "BEGIN TRANSACTION")
    try:
        if editions is None:
            run(con, f"DELETE FROM {table_name}")
        else:
            run(
                con,
                f"DELETE FROM {table_name} WHERE survey_year IN (SELECT UNNEST($1::INTEGER[]))",
                [list(editions)],
            )
        _fault_injection_pause(table_name)
        for part in parts:
            missing = [c for c in table.column_names if c not in part.columns]
            if missing:
                raise ValueError(f"{table_name}: rows lack column(s) {', '.join(missing)}")
            con.register("incoming_rows", part.select(table.column_names).to_arrow())
            try:
                run(con, f"INSERT INTO {table_name} BY NAME SELECT * FROM incoming_rows")
            finally:
                con.unregister("incoming_rows")
            written += part.height
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise
    return written


def read_ahead(parts: Iterator[pl.DataFrame]) -> Generator[pl.DataFrame, None, None]:
    """``parts``, each next one made in a worker thread while the caller writes the current one: a
    mart made edition by edition is computed and written side by side (polars and DuckDB release the
    GIL), holding two editions' rows at most. ``parts`` must read the warehouse through a cursor of
    its own (``con.cursor()``): one connection does not serve two threads at once; close the result
    (``contextlib.closing``) before that cursor, so that a part still being made is finished first."""
    end = pl.DataFrame()
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(next, parts, end)
        while (part := pending.result()) is not end:
            pending = worker.submit(next, parts, end)
            yield part


def _fault_injection_pause(table_name: str) -> None:
    """Test hook: with DEI_FAULT_PAUSE_IN_WRITE=<table>, sleep inside that table's write transaction
    (after the old rows are deleted, before the commit), so a test can kill the process mid-write."""
    if os.environ.get("DEI_FAULT_PAUSE_IN_WRITE") == table_name:
        print(f"dei: paused inside the write transaction of {table_name}", flush=True)
        time.sleep(float(os.environ.get("DEI_FAULT_PAUSE_SECONDS", "60")))


def read_table(
    con: duckdb.DuckDBPyConnection,
    table_name: str,
    editions: Sequence[int] | None = None,
    where: Mapping[str, Sequence[object]] | None = None,
) -> pl.DataFrame:
    """A table's rows (of some editions), in the table's column order. ``where`` keeps the rows whose
    column holds one of the given values (``{"level": [0]}``), filtered in DuckDB rather than after
    reading, so that a step that needs the composites does not read every node score."""
    table = TABLES[table_name]
    columns = ", ".join(table.column_names)
    filters = dict(where or {})
    if editions is not None:
        filters["survey_year"] = list(editions)
    unknown = [column for column in filters if column not in table.column_names]
    if unknown:
        raise ValueError(f"{table_name} has no column(s) {', '.join(unknown)}")
    conditions = [f"{column} IN (SELECT UNNEST(${i}))" for i, column in enumerate(filters, start=1)]
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return con.sql(
        f"SELECT {columns} FROM {table_name}{clause}",
        params=[list(values) for values in filters.values()] or None,
    ).pl()


def edition_units(con: duckdb.DuckDBPyConnection, editions: Sequence[int]) -> pl.DataFrame:
    """The units (survey_year, unit_type, unit_code) that the validated scores of some editions hold."""
    return con.sql(
        "SELECT DISTINCT survey_year, unit_type, unit_code FROM core.indicator_scores WHERE survey_year IN (SELECT UNNEST($1::INTEGER[]))",
        params=[list(editions)],
    ).pl()


def editions_in(con: duckdb.DuckDBPyConnection, table_name: str) -> list[int]:
    return [row[0] for row in run(con, f"SELECT DISTINCT survey_year FROM {table_name} ORDER BY 1")]


def table_documentation(con: duckdb.DuckDBPyConnection, schema: str = "marts") -> pl.DataFrame:
    """The ``COMMENT ON`` text of a schema's tables and columns, as stored in the database."""
    return con.sql(
        """
        SELECT t.table_name, t.comment AS table_comment, c.column_name, c.data_type, c.comment AS column_comment
        FROM duckdb_tables() t JOIN duckdb_columns() c USING (schema_name, table_name)
        WHERE t.schema_name = $1 ORDER BY t.table_name, c.column_index
        """,
        params=[schema],
    ).pl()


def parquet_metadata(table: Table) -> dict[str, str]:
    """The table's documentation as Parquet key-value metadata, which pyarrow shows as the schema
    metadata (``pq.read_schema(f).metadata``) and DuckDB as ``parquet_kv_metadata``: the table comment
    (with grain and key) and every column comment, as JSON."""
    return {
        "table": table.name,
        "comment": documented_comment(table),
        "column_comments": json.dumps(
            {column.name: column.comment for column in table.columns}, ensure_ascii=False
        ),
    }


def parquet_file(out_dir: Path, table_name: str, year: int | None) -> Path:
    """``<out_dir>/<mart>/<mart>_<YYYY>.parquet``, or ``<mart>/<mart>.parquet`` for a mart without editions."""
    mart = table_name.split(".", 1)[1]
    return out_dir / mart / (f"{mart}.parquet" if year is None else f"{mart}_{int(year)}.parquet")


# Parquet files written at once by export_parquet, each on its own DuckDB connection (cursor): a file's
# COPY is mostly single-threaded, so two at a time keep two cores busy (0.6 x the time of one at a time
# for the national marts, docs/performance.md).
PARQUET_WRITERS = 2


def export_parquet(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    editions: Sequence[int],
    tables: Sequence[str] = MART_TABLES,
) -> dict[str, int]:
    """Write each mart as Parquet, one file per edition (``<out_dir>/<mart>/<mart>_<YYYY>.parquet``;
    a mart without editions, such as a dimension, is one file ``<mart>/<mart>.parquet``, rewritten
    whole). ``survey_year`` is a column inside each file, not a ``survey_year=<YYYY>`` folder: readers
    type a Hive partition column each their own way (pandas a category, pyarrow int32, polars and DuckDB
    int64), a column in the file is INTEGER (int32) in all of them. Every file carries the table's and
    columns' comments (parquet_metadata). Written by DuckDB (``COPY ... TO``, no round trip through
    Python objects) beside its target and renamed into place, never half-written; PARQUET_WRITERS files
    at a time. Returns rows written per mart."""
    copies: list[tuple[str, Path, str]] = []  # (mart, target, the COPY statement writing it aside)
    for table_name in tables:
        table = TABLES[table_name]
        mart_dir = parquet_file(out_dir, table_name, None).parent
        mart_dir.mkdir(parents=True, exist_ok=True)
        # Folders of the earlier Hive layout would be read twice by a reader given the directory.
        for legacy in mart_dir.glob("survey_year=*"):
            shutil.rmtree(legacy)
        selections = (
            [
                (parquet_file(out_dir, table_name, year), f" WHERE survey_year = {int(year)}")
                for year in editions
            ]
            if "survey_year" in table.column_names
            else [(parquet_file(out_dir, table_name, None), "")]
        )
        metadata = ", ".join(f'"{key}": {_quote(value)}' for key, value in parquet_metadata(table).items())
        copies += [
            (
                table_name.split(".", 1)[1],
                target,
                (
                    f"COPY (SELECT {', '.join(table.column_names)} FROM {table_name}{where}) "
                    f"TO {_quote(str(_staging_file(target)))} (FORMAT parquet, KV_METADATA {{{metadata}}})"
                ),
            )
            for target, where in selections
        ]

    def write(copy: tuple[str, Path, str]) -> int:
        _, target, statement = copy
        cursor = con.cursor()
        try:
            copied = run(cursor, statement)
        finally:
            cursor.close()
        os.replace(_staging_file(target), target)
        return int(copied[0][0])

    counts = {table_name.split(".", 1)[1]: 0 for table_name in tables}  # a mart without editions: 0
    with ThreadPoolExecutor(PARQUET_WRITERS) as pool:
        for (mart, _, _), rows in zip(copies, pool.map(write, copies), strict=True):
            counts[mart] += rows
    return counts


def _staging_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")


# The one table only the serving snapshot has (publish_serving_snapshot writes it).
SNAPSHOT_INFO = Table(
    "marts.snapshot_info",
    "When this snapshot was published, by which Dagster run, with which editions. Grain: one row, this snapshot; natural key: none (a single row).",
    (
        _c("published_at", "TIMESTAMP", "When the snapshot was published (UTC)"),
        _c("run_id", "VARCHAR", "Dagster run that published it"),
        _c("editions", "INTEGER[]", "Editions in the snapshot (those of marts.city_index), in order"),
        _c(
            "data_note",
            "VARCHAR",
            "Provenance warning of the raw data (e.g. that the sample is synthetic); null for real data",
        ),
        _c(
            "job_name",
            "VARCHAR",
            "Dagster job of that run: publish_job (dei materialize, or launched in the UI) or __ASSET_JOB (the automation "
            "after a change). Either way every edition in the snapshot agrees with the others: a snapshot is only "
            "published when the consistency checks pass",
        ),
        _c(
            "storage_version",
            "VARCHAR",
            "DuckDB storage version the file is written in (STORAGE_VERSION of ATTACH): DuckDB clients of this version or newer open it",
        ),
    ),
)


def publish_serving_snapshot(
    con: duckdb.DuckDBPyConnection,
    serving: Path,
    run_id: str,
    data_note: str | None = None,
    job_name: str | None = None,
    storage_version: str | None = None,
) -> dict[str, int]:
    """Copy every table of the ``marts`` schema, with its documentation, into a new DuckDB file and
    put it in place of the serving snapshot with one atomic rename.

    The file is written in ``storage_version`` (default: config.serving_storage_version(), an older
    format than DuckDB 2's own), so that the DuckDB 1.x libraries many BI drivers embed can open it.
    BI tools open the snapshot read-only. A client that holds the old file open keeps reading the
    old file (the rename does not touch it), never blocks the run and never sees a half-written
    state; after reconnecting it sees the new data. Returns rows copied per mart.
    """
    storage_version = storage_version or serving_storage_version()
    serving.parent.mkdir(parents=True, exist_ok=True)
    staging = serving.with_name(f".{serving.name}.{os.getpid()}.tmp")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    marts = run(
        con,
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'marts' ORDER BY 1",
    )
    columns = run(
        con,
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'marts' AND comment IS NOT NULL",
    )
    counts: dict[str, int] = {}
    run(con, f"ATTACH {_quote(str(staging))} AS serving_snapshot (STORAGE_VERSION {_quote(storage_version)})")
    try:
        run(con, "CREATE SCHEMA serving_snapshot.marts")
        for table_name, comment in marts:
            run(con, f"CREATE TABLE serving_snapshot.marts.{table_name} AS SELECT * FROM marts.{table_name}")
            if comment:
                run(con, f"COMMENT ON TABLE serving_snapshot.marts.{table_name} IS {_quote(comment)}")
            counts[table_name] = run(con, f"SELECT count(*) FROM serving_snapshot.marts.{table_name}")[0][0]
        for table_name, column_name, comment in columns:
            run(
                con,
                f"COMMENT ON COLUMN serving_snapshot.marts.{table_name}.{column_name} IS {_quote(comment)}",
            )
        info = SNAPSHOT_INFO.name.replace("marts.", "serving_snapshot.marts.")
        run(
            con,
            f"CREATE TABLE {info} AS SELECT now()::TIMESTAMP AS published_at, $1::VARCHAR AS run_id, "
            "(SELECT list(DISTINCT survey_year ORDER BY survey_year) FROM marts.city_index) AS editions, $2::VARCHAR AS data_note, "
            "$3::VARCHAR AS job_name, $4::VARCHAR AS storage_version",
            [run_id, data_note, job_name, storage_version],
        )
        run(con, f"COMMENT ON TABLE {info} IS {_quote(SNAPSHOT_INFO.comment)}")
        for column in SNAPSHOT_INFO.columns:
            run(con, f"COMMENT ON COLUMN {info}.{column.name} IS {_quote(column.comment)}")
    finally:
        run(con, "DETACH serving_snapshot")
    os.replace(staging, serving)
    return counts
