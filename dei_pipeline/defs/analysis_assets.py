"""The analysis marts: rank uncertainty, sensitivity, attribution of change, the
statistical audit and unit profiles. Partitioned by edition like the other assets: each reads its
inputs from the warehouse, calls a pure function of ``dei_pipeline.analysis`` per edition and unit type,
and replaces exactly its editions' rows (the audit writes two marts, of nodes and of units, in one step:
each step costs a process start under the UI's executor). What the figures mean: docs/analysis.md."""

import math
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import dagster as dg
import polars as pl
import polars.selectors as cs

from dei_pipeline import comparisons
from dei_pipeline.aggregation import COMPOSITE_CODE
from dei_pipeline.analysis import (
    assumption_draws,
    attribution,
    draw_aggregation,
    draw_ranks,
    index_tree,
    leave_one_out,
    profile,
    rank_summaries,
    weight_draws,
)
from dei_pipeline.analysis import (
    audit as audit_module,
)
from dei_pipeline.analysis import (
    rank_uncertainty as rank_uncertainty_module,
)
from dei_pipeline.analysis import (
    ranking_problem as ranking_problem_module,
)
from dei_pipeline.analysis import (
    sensitivity as sensitivity_module,
)
from dei_pipeline.analysis.assumption_draws import edition_rng, load_uncertainty_settings, scoring_shape
from dei_pipeline.analysis.attribution import attribute_changes
from dei_pipeline.analysis.audit import audit_nodes, audit_units
from dei_pipeline.analysis.leave_one_out import removal_impact as removal_rows
from dei_pipeline.analysis.profile import unit_profiles
from dei_pipeline.analysis.rank_summaries import probability_column
from dei_pipeline.analysis.rank_uncertainty import ALL_UNITS_GROUP
from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty as uncertainty_rows
from dei_pipeline.analysis.ranking_problem import ranking_problem
from dei_pipeline.analysis.sensitivity import OVERALL_TARGET, edition_sensitivity
from dei_pipeline.comparisons import previous_editions
from dei_pipeline.config import MethodSettings, UncertaintySettings
from dei_pipeline.defs.assets import (
    FRAMEWORKS,
    SETTINGS,
    city_index,
    county_index,
    framework,
    indicator_scores,
    mart_asset,
    subindex_scores,
    table_metadata,
    written,
)
from dei_pipeline.defs.partitions import partition_editions, previous_edition
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.scalars import number_or_none
from dei_pipeline.scoring import variants as scoring_variants
from dei_pipeline.scoring.peers import peer_groups
from dei_pipeline.scoring.variants import scoring_choices, variant_scores
from dei_pipeline.warehouse import TABLES, read_ahead, read_table, replace_editions

GROUP = "analysis"
# The modules of the Monte Carlo (the code version of every asset that simulates draws).
MONTE_CARLO = [
    index_tree,
    assumption_draws,
    weight_draws,
    ranking_problem_module,
    draw_aggregation,
    draw_ranks,
    rank_summaries,
    scoring_variants,
]


def _with_keys(frame: pl.DataFrame, year: int, unit_type: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(year, pl.Int32).alias("survey_year"), pl.lit(unit_type).alias("unit_type")
    )


def _ranked_units(con: Any, editions: list[int]) -> dict[str, pl.DataFrame]:
    """The published index per unit type: survey_year, unit_code, name_zh, rank_group (the units
    ranked together), score, rank and (cities) tier."""
    cities = read_table(con, "marts.city_index", editions).select(
        "survey_year",
        "unit_code",
        "name_zh",
        pl.lit(ALL_UNITS_GROUP).alias("rank_group"),
        "score",
        "rank",
        "tier",
    )
    counties = read_table(con, "marts.county_index", editions).select(
        "survey_year",
        "unit_code",
        "name_zh",
        pl.col("kind").alias("rank_group"),
        "score",
        "rank",
        pl.lit(None, pl.String).alias("tier"),
    )
    return {"city": cities, "county": counties}


def _ranked_editions(
    warehouse: WarehouseResource, editions: list[int]
) -> Iterator[tuple[int, str, pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Each (edition, unit type) with ranked units: its leaf scores, its framework nodes and its
    published index (every unit, ranked or not). Read first, then handed out with the warehouse closed,
    so that other writers need not wait for a simulation."""
    with warehouse.connection() as con:
        ranked = _ranked_units(con, editions)
        scores = read_table(con, "core.indicator_scores", editions)
    for year, unit_type, leaves in _editions_and_types(scores):
        nominal = ranked[unit_type].filter(pl.col("survey_year") == year)
        if nominal.filter(pl.col("rank").is_not_null()).height:
            yield year, unit_type, leaves, warehouse.framework(unit_type, year).nodes, nominal


def _scoring_variants(
    warehouse: WarehouseResource,
    year: int,
    unit_type: str,
    leaves: pl.DataFrame,
    method: MethodSettings,
    settings: UncertaintySettings,
) -> tuple[list[pl.DataFrame], tuple[int, int, int]]:
    """The leaf scores of one edition and unit type under every scoring alternative the settings vary
    (the published ones for the all-declared alternative), and how many normalisations, treatments and
    imputations they are; none for a unit type given as scores or when nothing is varied."""
    shape = scoring_shape(settings)
    if math.prod(shape) == 1:
        return [], (1, 1, 1)
    with warehouse.connection() as con:
        measured = read_table(con, "marts.measurement_scores", where={"unit_type": [unit_type]})
        if not measured.filter(pl.col("survey_year") == year).height:
            return [], (1, 1, 1)
        city_tiers = read_table(con, "marts.city_index").select("survey_year", "unit_code", "tier")
    columns = ["survey_year", "unit_type", "unit_code", "indicator_code", "measurement"]
    methods = warehouse.framework(unit_type, year).unit_methods
    assert methods is not None  # a unit type given as measurements has its method columns
    registry = warehouse.registry()
    frames = variant_scores(
        measured.filter(pl.col("survey_year") == year).select(columns),
        methods,
        scoring_choices(settings.normalisations, settings.treatments, settings.imputations),
        peer_groups(registry.cities, registry.counties, city_tiers, year),
        measured.filter(pl.col("survey_year") != year).select(columns),
        method.scoring_rule,
    )
    return [leaves if frame is None else frame for frame in frames], shape


def _read_by_edition(
    con: Any, table_name: str, editions: list[int]
) -> Iterator[tuple[int, str, pl.DataFrame]]:
    """Each (edition, unit type)'s rows of a table, read one edition at a time: a run over twenty
    national editions holds one edition's millions of rows in memory, not all of them."""
    for year in sorted(editions):
        yield from _editions_and_types(read_table(con, table_name, [year]))


def _editions_and_types(scores: pl.DataFrame) -> Iterator[tuple[int, str, pl.DataFrame]]:
    """Each (edition, unit type)'s rows, in that order, each in the order read (no sort of all rows)."""
    parts = scores.partition_by("survey_year", "unit_type", as_dict=True, maintain_order=True)
    for year, unit_type in sorted(parts):
        yield int(year), str(unit_type), parts[(year, unit_type)]


def _table(frame: pl.DataFrame) -> dg.TableMetadataValue:
    """A few rows for the UI, their figures to three significant digits."""
    return table_metadata(frame.with_columns(cs.float().round_sig_figs(3)))


def _settings_metadata(settings: UncertaintySettings) -> dict[str, Any]:
    return {
        "draws": ", ".join(f"{unit_type} {draws}" for unit_type, draws in settings.draws.items()),
        "seed": settings.seed,
        "weight_range": settings.weight_range,
        "methods": ", ".join(settings.methods),
        "method_choice": settings.method_choice,
        "geometric_floor": settings.geometric_floor,
        "weight_schemes": ", ".join(settings.weight_schemes),
        "normalisations": ", ".join(settings.normalisations),
        "treatments": ", ".join(settings.treatments),
        "imputations": ", ".join(settings.imputations),
    }


# ------------------------------------------------------------------------------- rank uncertainty


@mart_asset(
    "marts.rank_uncertainty",
    GROUP,
    uses=[*MONTE_CARLO, rank_uncertainty_module],
    kinds={"numpy", "duckdb"},
    deps=[indicator_scores, framework, city_index, county_index, SETTINGS],
)
def rank_uncertainty(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Monte Carlo of the ranking: every weight perturbed within ±25% and renormalised, the aggregation
    method (arithmetic or geometric mean) drawn per level; per unit its nominal and median rank, the
    5th-95th percentile rank interval and each tier's probability. Settings: data/method/settings.yaml
    (uncertainty); seeded per edition and unit type."""
    editions = partition_editions(context)
    method, settings, tiers = (
        warehouse.settings(),
        load_uncertainty_settings(warehouse.data_path),
        warehouse.tiers(),
    )
    expected = {probability_column(code) for code in tiers["tier_code"].to_list()}
    documented = {
        name
        for name in TABLES["marts.rank_uncertainty"].column_names
        if name.startswith("prob_") and name != "prob_same_tier"
    }
    if expected != documented:
        raise dg.Failure(
            f"data/method/tiers.csv has tiers {sorted(expected)} but marts.rank_uncertainty documents {sorted(documented)}: update warehouse.py"
        )
    frames, seconds, nominal_check = [], {}, {}
    for year, unit_type, leaves, nodes, nominal in _ranked_editions(warehouse, editions):
        started = time.perf_counter()
        variants, shape = _scoring_variants(warehouse, year, unit_type, leaves, method, settings)
        rows, check = uncertainty_rows(
            leaves,
            nodes,
            nominal,
            method,
            settings,
            edition_rng(settings.seed, year, unit_type, "rank_uncertainty"),
            tiers if unit_type == "city" else None,
            variants,
            shape,
            unit_type=unit_type,
        )
        seconds[f"{year}/{unit_type}"] = round(time.perf_counter() - started, 3)
        nominal_check[f"{year}/{unit_type}"] = check["nominal_max_abs_difference"]
        frames.append(
            _with_keys(
                rows.join(nominal.select("unit_code", "name_zh"), on="unit_code", how="left"), year, unit_type
            )
        )
    rows = TABLES["marts.rank_uncertainty"].conform(frames)
    with warehouse.connection() as con:
        replace_editions(con, "marts.rank_uncertainty", rows, editions)
    widest = (
        rows.filter(pl.col("unit_type") == "city")
        .with_columns((pl.col("rank_p95") - pl.col("rank_p05")).alias("interval_width"))
        .sort(["survey_year", "interval_width", "nominal_rank"], descending=[True, True, False])
        .head(10)
        .select(
            "survey_year", "name_zh", "nominal_rank", "median_rank", "rank_p05", "rank_p95", "prob_same_tier"
        )
    )
    return written(
        "marts.rank_uncertainty",
        rows,
        editions,
        **_settings_metadata(settings),
        seconds_per_edition=dg.MetadataValue.json(seconds),
        # The simulation's composite under the published assumptions against the published one.
        nominal_max_abs_difference=dg.MetadataValue.json(nominal_check),
        cities_likely_to_change_tier=int(rows.filter(pl.col("prob_same_tier") < 0.9).height),
        widest_city_intervals=_table(widest),
    )


# ------------------------------------------------------------------------------------ sensitivity


@mart_asset(
    "marts.sensitivity",
    GROUP,
    uses=[*MONTE_CARLO, sensitivity_module],
    kinds={"numpy", "duckdb"},
    deps=[indicator_scores, framework, city_index, county_index, SETTINGS],
)
def sensitivity(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Which assumption moves the ranks most: first-order and total-effect Sobol indices of each unit's
    rank and of the mean absolute rank shift, over the weights of each level and the aggregation
    method (Saltelli design, N = uncertainty.sensitivity_base_draws; centred estimators with bootstrap
    intervals and a flag saying whether each index is resolved at that N)."""
    editions = partition_editions(context)
    method, settings = warehouse.settings(), load_uncertainty_settings(warehouse.data_path)
    frames, seconds = [], {}
    for year, unit_type, leaves, nodes, all_units in _ranked_editions(warehouse, editions):
        nominal = all_units.filter(pl.col("rank").is_not_null())
        started = time.perf_counter()
        variants, shape = _scoring_variants(warehouse, year, unit_type, leaves, method, settings)
        edition_rows = edition_sensitivity(
            leaves,
            nodes,
            nominal,
            method,
            settings,
            edition_rng(settings.seed, year, unit_type, "sensitivity"),
            variants,
            shape,
        )
        seconds[f"{year}/{unit_type}"] = round(time.perf_counter() - started, 3)
        frames.append(_with_keys(edition_rows, year, unit_type))
    rows = TABLES["marts.sensitivity"].conform(frames)
    with warehouse.connection() as con:
        replace_editions(con, "marts.sensitivity", rows, editions)
    overall = (
        rows.filter(pl.col("target") == OVERALL_TARGET)
        .sort("survey_year", "unit_type", "influence_rank")
        .select(
            "survey_year",
            "unit_type",
            "factor",
            "first_order",
            "first_order_ci_low",
            "first_order_ci_high",
            "total_effect",
            "total_effect_ci_low",
            "total_effect_ci_high",
            "resolved",
        )
    )
    unit_rows = rows.filter((pl.col("target") != OVERALL_TARGET) & pl.col("resolved").is_not_null())
    return written(
        "marts.sensitivity",
        rows,
        editions,
        **_settings_metadata(settings),
        base_draws=settings.sensitivity_base_draws,
        bootstrap_resamples=settings.sensitivity_bootstrap,
        seconds_per_edition=dg.MetadataValue.json(seconds),
        mean_abs_rank_shift_indices=_table(overall),
        unit_indices_resolved_share=number_or_none(unit_rows["resolved"].mean()) or 0.0,
        indices_out_of_range=int(rows["out_of_range"].sum()),
    )


# ---------------------------------------------------------------------------------- leave one out


@mart_asset(
    "marts.removal_impact",
    GROUP,
    uses=[leave_one_out, *MONTE_CARLO],
    kinds={"numpy", "duckdb"},
    deps=[indicator_scores, framework, city_index, county_index, SETTINGS],
)
def removal_impact(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Leave one out: per framework node with a sibling, how much the ranking changes when the node is
    left out and its siblings' weights renormalised (mean and largest absolute rank change, share of
    units that move)."""
    editions = partition_editions(context)
    method, settings = warehouse.settings(), load_uncertainty_settings(warehouse.data_path)
    frames = []
    for year, unit_type, leaves, nodes, all_units in _ranked_editions(warehouse, editions):
        problem = ranking_problem(
            leaves, nodes, all_units.filter(pl.col("rank").is_not_null()), method, settings.geometric_floor
        )
        frames.append(_with_keys(removal_rows(problem), year, unit_type))
    rows = TABLES["marts.removal_impact"].conform(frames)
    with warehouse.connection() as con:
        replace_editions(con, "marts.removal_impact", rows, editions)
    strongest = (
        rows.sort(["survey_year", "mean_abs_rank_change"], descending=True)
        .head(10)
        .select(
            "survey_year",
            "unit_type",
            "node_code",
            "level",
            "mean_abs_rank_change",
            "max_abs_rank_change",
            "share_units_moved",
        )
    )
    return written("marts.removal_impact", rows, editions, largest_mean_rank_changes=_table(strongest))


# ---------------------------------------------------------------------------------- attribution


@mart_asset(
    "marts.yoy_attribution",
    GROUP,
    uses=[attribution, comparisons],
    kinds={"polars", "duckdb"},
    deps=[previous_edition(indicator_scores), framework, subindex_scores, FRAMEWORKS, SETTINGS],
)
def yoy_attribution(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each unit's score change against the previous edition that has data, split into the
    contributions of the level-1 and level-2 nodes (effective weight x change); when the frameworks
    differ, each edition is recomputed under the other's framework and the change split into data and
    method change, averaged over both orders (Shapley). Editions before 2020 use the 2020 framework
    (back-cast): their method change is 0 by construction."""
    editions = partition_editions(context)
    method = warehouse.settings()
    frames = []
    with warehouse.connection() as con:
        history = read_table(con, "core.indicator_scores").select(
            "survey_year", "unit_type", "unit_code", "indicator_code", "score"
        )
        for (unit_type,), unit_history in history.group_by("unit_type"):
            prev_years = previous_editions(unit_history["survey_year"].unique().to_list()).drop_nulls(
                "prev_year"
            )
            for year, prev_year in prev_years.filter(pl.col("survey_year").is_in(editions)).iter_rows():
                changes = attribute_changes(
                    unit_history.filter(pl.col("survey_year") == year),
                    unit_history.filter(pl.col("survey_year") == prev_year),
                    warehouse.framework(str(unit_type), year).nodes,
                    warehouse.framework(str(unit_type), prev_year).nodes,
                    method.missing_rule,
                    method.min_coverage,
                )
                frames.append(
                    _with_keys(changes, year, str(unit_type)).with_columns(
                        pl.lit(prev_year, pl.Int32).alias("prev_year")
                    )
                )
        rows = TABLES["marts.yoy_attribution"].conform(frames)
        replace_editions(con, "marts.yoy_attribution", rows, editions)
    totals = rows.filter(pl.col("level") == 0)
    return written(
        "marts.yoy_attribution",
        rows,
        editions,
        status_counts=dg.MetadataValue.json(
            {
                f"{y}/{t}/{s}": n
                for y, t, s, n in totals.group_by("survey_year", "unit_type", "status")
                .len()
                .sort("survey_year", "unit_type", "status")
                .iter_rows()
            }
        ),
        max_abs_method_change=number_or_none(totals["method_change"].abs().max()) or 0.0,
    )


# ---------------------------------------------------------------------------------------- audit


@mart_asset(
    "marts.audit",
    GROUP,
    uses=[audit_module],
    kinds={"polars", "duckdb"},
    deps=[indicator_scores, framework, subindex_scores],
)
def audit(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Statistical audit. marts.audit: every framework node's correlation with its parent and the
    composite, redundant siblings (|r| > 0.9), Cronbach's alpha per group, measured against nominal
    weight. marts.audit_units: indicators missing per unit, flagged beyond a third."""
    editions = partition_editions(context)
    node_frames, unit_frames = [], []
    with warehouse.connection() as con:
        for year, unit_type, scores in _read_by_edition(con, "marts.subindex_scores", editions):
            fw = warehouse.framework(unit_type, year)
            leaves = read_table(con, "core.indicator_scores", [year], where={"unit_type": [unit_type]})
            composites = scores.filter(pl.col("level") == 0).select("unit_code", "score")
            node_frames.append(_with_keys(audit_nodes(scores, fw.nodes), year, unit_type))
            unit_frames.append(_with_keys(audit_units(leaves, fw.leaf_codes, composites), year, unit_type))
        rows = TABLES["marts.audit"].conform(node_frames)
        unit_rows = TABLES["marts.audit_units"].conform(unit_frames)
        replace_editions(con, "marts.audit", rows, editions)
        replace_editions(con, "marts.audit_units", unit_rows, editions)
    flagged = rows.drop_nulls("flags").with_columns(pl.col("flags").str.split(",")).explode("flags")
    return written(
        "marts.audit",
        rows,
        editions,
        flag_counts=dg.MetadataValue.json(
            {
                f"{y}/{t}/{f}": n
                for y, t, f, n in flagged.group_by("survey_year", "unit_type", "flags")
                .len()
                .sort("survey_year", "unit_type", "flags")
                .iter_rows()
            }
        ),
        lowest_alpha=_table(
            rows.drop_nulls("cronbach_alpha")
            .sort("cronbach_alpha")
            .head(5)
            .select("survey_year", "unit_type", "node_code", "cronbach_alpha")
        ),
        audit_units_rows=unit_rows.height,
        units_with_too_many_missing=int(unit_rows["too_many_missing"].sum()),
    )


# -------------------------------------------------------------------------------------- profile


@mart_asset(
    "marts.unit_profile",
    GROUP,
    uses=[profile],
    kinds={"polars", "duckdb"},
    deps=[framework, subindex_scores, city_index, county_index],
)
def unit_profile(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each unit's indicators against its peers (the cities of its tier, the county units of its
    kind): gap to the peers' mean, z and rank among them; the five strengths and five weaknesses.
    Shown by `dei profile 杭州 --year 2020`."""
    editions = partition_editions(context)
    decimals = warehouse.settings().display_decimals
    profiled_units = 0

    def edition_profiles(con: Any) -> Iterator[pl.DataFrame]:
        # One edition and unit type at a time, written as it comes: the national mart (~2 M rows) is
        # never in memory whole.
        nonlocal profiled_units
        ranked = _ranked_units(con, editions)
        for year, unit_type, scores in _read_by_edition(con, "marts.subindex_scores", editions):
            published = ranked[unit_type].filter(
                (pl.col("survey_year") == year) & pl.col("rank").is_not_null()
            )
            peers = published.select("unit_code", pl.coalesce("tier", "rank_group").alias("peer_group"))
            fw = warehouse.framework(unit_type, year)
            profile = unit_profiles(
                scores.filter(pl.col("node_code") != COMPOSITE_CODE), peers, fw.leaf_codes, decimals
            )
            profiled_units += profile["unit_code"].n_unique()
            yield TABLES["marts.unit_profile"].conform(
                [
                    _with_keys(
                        profile.join(
                            published.select("unit_code", pl.col("name_zh").alias("unit_name_zh")),
                            on="unit_code",
                            how="left",
                        ).join(
                            fw.nodes.select(
                                pl.col("code").alias("node_code"), pl.col("name_zh").alias("node_name_zh")
                            ),
                            on="node_code",
                            how="left",
                        ),
                        year,
                        unit_type,
                    )
                ]
            )

    # closing: should the write fail, the profile being made ahead is finished before its cursor closes.
    with (
        warehouse.connection() as con,
        con.cursor() as reader,
        closing(read_ahead(edition_profiles(reader))) as profiles,
    ):
        row_count = replace_editions(con, "marts.unit_profile", profiles, editions)
    return written("marts.unit_profile", row_count, editions, profiled_units=profiled_units)


ANALYSIS_ASSETS = [rank_uncertainty, sensitivity, removal_impact, yoy_attribution, audit, unit_profile]
