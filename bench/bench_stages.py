"""Stage benchmark on the national data set: the pipeline's pure functions, stage by stage, without
Dagster and without warehouse I/O (``bench_pipeline.py`` measures the whole run with both).

Stages, over all editions of the data set and both unit types, called as the assets call them:
ingest and validate (``ingest_edition`` + ``validate_cells``), aggregate every tier
(``aggregate_tiers``, one call per unit type and framework), index and tiers (``city_index`` and
``county_index``), regional rollups (``region_rollup`` and ``region_tier_mix``) and year-over-year
(``unit_changes`` for cities, county units and sub-indices, ``cohort_summary``, ``tier_summary``).

The aggregation is compared in the same rounds with the same tier-by-tier aggregation as plain DuckDB
SQL and as pandas (``aggregation_baselines.py``), on the same in-memory table; the three results are
checked to agree. Then the aggregation is measured at several sizes (units x indicators x editions).

    python bench/bench_stages.py --data-dir NATIONAL_DIR --json PART.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from aggregation_baselines import (
    compare,
    duckdb_aggregate,
    duckdb_connection,
    duckdb_sql,
    framework_tree,
    pandas_aggregate,
)
from harness import in_rounds, part_arguments, print_table, ratio, repeats_setting, write_json

from dei_pipeline.aggregation import aggregate_tiers, batches_by_framework, composite_scores
from dei_pipeline.comparisons import cohort_summary, previous_editions, tier_summary, unit_changes
from dei_pipeline.config import MethodSettings, MissingRule, load_settings
from dei_pipeline.frameworks import Framework, resolve_framework
from dei_pipeline.ingest import ingest_edition, list_editions
from dei_pipeline.ranking import city_index, county_index
from dei_pipeline.registry import Registry, load_registry, units
from dei_pipeline.rollups import gdp_years_for, region_rollup, region_tier_mix
from dei_pipeline.scalars import integer
from dei_pipeline.tiers import load_tiers
from dei_pipeline.validation import Reference, validate_cells

KEYS: tuple[str, ...] = ("survey_year", "unit_type", "unit_code")
UNIT_TYPES: tuple[str, ...] = ("city", "county")
MISSING_RULE: MissingRule = "propagate"  # the baselines implement the default rule
WIDENING = 4  # leaves per original leaf in the "more indicators" size
SCALING_REPEATS = 3


@dataclass(frozen=True)
class Inputs:
    data_dir: Path
    editions: list[int]
    settings: MethodSettings
    registry: Registry
    tiers: pl.DataFrame
    frameworks: dict[tuple[str, int], Framework]


def load_inputs(data_dir: Path) -> Inputs:
    editions = list_editions(data_dir)
    frameworks = {
        (unit_type, year): resolve_framework(data_dir, unit_type, year)
        for unit_type in UNIT_TYPES
        for year in editions
    }
    return Inputs(
        data_dir, editions, load_settings(data_dir), load_registry(data_dir), load_tiers(data_dir), frameworks
    )


# ------------------------------------------------------------------------------------------ stages


def ingest_and_validate(inputs: Inputs) -> pl.DataFrame:
    unit_names = units(inputs.registry).select("unit_type", "unit_code", "name_zh")
    validated = []
    for year in inputs.editions:
        cells = ingest_edition(inputs.data_dir, year).cells
        reference = Reference(
            {ut: inputs.frameworks[(ut, year)].leaf_codes for ut in sorted(cells["unit_type"].unique())},
            unit_names,
        )
        validated.append(
            validate_cells(cells, reference, inputs.settings.score_min, inputs.settings.score_max)
        )
    return pl.concat(validated)


def aggregate_polars(scores: pl.DataFrame, inputs: Inputs) -> pl.DataFrame:
    """As the subindex_scores asset does it: one call per unit type and framework, over every edition
    that uses it."""
    return pl.concat(
        [
            aggregate_tiers(leaf_scores, fw.nodes, keys=KEYS, missing=MISSING_RULE)
            for fw, leaf_scores in batches_by_framework(
                scores, lambda unit_type, year: inputs.frameworks[(unit_type, year)]
            )
        ]
    )


def index_and_tiers(tree_scores: pl.DataFrame, inputs: Inputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    composites = composite_scores(tree_scores, KEYS)
    settings = inputs.settings

    def of(unit_type: str) -> pl.DataFrame:
        return composites.filter(pl.col("unit_type") == unit_type).select("survey_year", "unit_code", "score")

    return (
        city_index(
            of("city"), inputs.registry.cities, inputs.tiers, settings.display_decimals, settings.tie_method
        ),
        county_index(of("county"), inputs.registry.counties, settings.display_decimals, settings.tie_method),
    )


def rollups(cities: pl.DataFrame, inputs: Inputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    settings, registry = inputs.settings, inputs.registry
    gdp_years = gdp_years_for(
        inputs.editions, registry.city_gdp, settings.gdp_vintage, settings.gdp_year_offset
    )
    return (
        region_rollup(
            cities.select("survey_year", "unit_code", "score"),
            registry.region_members,
            registry.city_gdp,
            gdp_years,
            settings.gdp_vintage,
        ),
        region_tier_mix(
            cities.select("survey_year", "unit_code", "tier"), registry.region_members, inputs.tiers
        ),
    )


def year_over_year(
    cities: pl.DataFrame, counties: pl.DataFrame, tree_scores: pl.DataFrame, inputs: Inputs
) -> list[pl.DataFrame]:
    prev_years = previous_editions(inputs.editions)
    city_changes = unit_changes(cities, cities, prev_years, ["score", "rank", "tier"])
    county_changes = unit_changes(counties, counties, prev_years, ["score", "rank", "kind"]).with_columns(
        pl.coalesce("kind", "prev_kind").alias("kind")
    )
    subindex = tree_scores.filter(pl.col("level") <= 1)
    subindex_changes = [
        unit_changes(
            history,
            history,
            previous_editions(history["survey_year"].unique().to_list()),
            ["score"],
            keys=("unit_code", "node_code", "level"),
        )
        for _, history in subindex.group_by("unit_type")
    ]
    return [
        city_changes,
        county_changes,
        *subindex_changes,
        cohort_summary(city_changes, "city"),
        cohort_summary(county_changes, "county"),
        tier_summary(cities, cities, prev_years, inputs.tiers),
    ]


# ------------------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class AggregationCase:
    """One input size of the aggregation and the three ways to compute it."""

    label: str
    scores: pl.DataFrame
    nodes: dict[str, pl.DataFrame]  # unit_type -> framework nodes (every edition uses the same)

    @property
    def depth(self) -> int:
        return max(integer(nodes["level"].max()) for nodes in self.nodes.values())

    def runners(self) -> dict[str, Callable[[], Any]]:
        leaf_scores = self.scores.select(*KEYS, "indicator_code", "score")
        tree = framework_tree(self.nodes)
        con = duckdb_connection(leaf_scores, tree)
        sql = duckdb_sql(KEYS, self.depth)
        pandas_scores, pandas_tree = leaf_scores.to_pandas(), tree.to_pandas()

        def polars_run() -> pl.DataFrame:
            return pl.concat(
                [  # every edition uses the same framework: one call per unit type, as the asset does
                    aggregate_tiers(group, self.nodes[str(unit_type)], keys=KEYS, missing=MISSING_RULE)
                    for (unit_type,), group in leaf_scores.group_by("unit_type", maintain_order=True)
                ]
            )

        return {
            "polars": polars_run,
            "duckdb_sql": lambda: duckdb_aggregate(con, sql),
            "pandas": lambda: pandas_aggregate(pandas_scores, pandas_tree, KEYS, self.depth),
        }

    def size(self) -> dict[str, int]:
        leaves = {ut: int(nodes["is_leaf"].sum()) for ut, nodes in self.nodes.items()}
        per_type = self.scores.group_by("unit_type").agg(
            pl.col("unit_code").n_unique().alias("units"), pl.col("survey_year").n_unique().alias("editions")
        )
        units_by_type = dict(per_type.select("unit_type", "units").iter_rows())
        return {
            "units": int(sum(units_by_type.values())),
            "indicators": int(sum(leaves[ut] for ut in units_by_type)),
            "editions": int(self.scores["survey_year"].n_unique()),
            "leaf_cells": self.scores.height,
        }


def widened(nodes: pl.DataFrame, factor: int) -> pl.DataFrame:
    """The framework with every leaf split into ``factor`` equally weighted sub-leaves (one level
    deeper): more indicators, same composite when the sub-leaves repeat their leaf's score."""
    children = (
        nodes.filter(pl.col("is_leaf"))
        .join(pl.DataFrame({"part": list(range(factor))}), how="cross")
        .select(
            pl.concat_str("code", pl.lit("_"), pl.col("part").cast(pl.String)).alias("code"),
            pl.col("code").alias("parent_code"),
            pl.col("level") + 1,
            pl.lit(1.0 / factor).alias("weight"),
            pl.lit(True).alias("is_leaf"),
        )
    )
    return pl.concat(
        [nodes.select("code", "parent_code", "level", "weight", pl.lit(False).alias("is_leaf")), children]
    )


def widened_scores(scores: pl.DataFrame, factor: int) -> pl.DataFrame:
    return (
        scores.join(pl.DataFrame({"part": list(range(factor))}), how="cross")
        .with_columns(
            pl.concat_str("indicator_code", pl.lit("_"), pl.col("part").cast(pl.String)).alias(
                "indicator_code"
            )
        )
        .drop("part")
    )


def aggregation_sizes(scores: pl.DataFrame, inputs: Inputs) -> list[AggregationCase]:
    """Sizes that vary one factor at a time: editions (5, 10, 20), units (cities, county units, both)
    and indicators (the county framework, the city framework, the city framework widened)."""
    last = inputs.editions[-1]
    nodes = {ut: inputs.frameworks[(ut, last)].nodes for ut in UNIT_TYPES}
    editions = inputs.editions
    cases = [
        AggregationCase(
            f"{n} editions, all units", scores.filter(pl.col("survey_year").is_in(editions[-n:])), nodes
        )
        for n in (5, 10)
        if n < len(editions)
    ]
    cases.append(AggregationCase(f"{len(editions)} editions, all units", scores, nodes))
    for ut in UNIT_TYPES:
        cases.append(
            AggregationCase(
                f"{len(editions)} editions, {ut} units only",
                scores.filter(pl.col("unit_type") == ut),
                {ut: nodes[ut]},
            )
        )
    cities = scores.filter(pl.col("unit_type") == "city")
    cases.append(
        AggregationCase(
            f"{len(editions)} editions, cities, {WIDENING}x indicators",
            widened_scores(cities, WIDENING),
            {"city": widened(nodes["city"], WIDENING)},
        )
    )
    return cases


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    args = part_arguments(__doc__.splitlines()[0])
    repeats = repeats_setting()
    inputs = load_inputs(args.data_dir.resolve())
    print(
        f"stages: {args.data_dir} ({len(inputs.editions)} editions), {repeats} rounds each, medians",
        flush=True,
    )

    # Each stage's input is the previous stage's output, computed once.
    scores = ingest_and_validate(inputs)
    tree_scores = aggregate_polars(scores, inputs)
    cities, counties = index_and_tiers(tree_scores, inputs)
    stage_cases = {
        "ingest_and_validate": lambda: ingest_and_validate(inputs),
        "aggregate_every_tier": lambda: aggregate_polars(scores, inputs),
        "index_and_tiers": lambda: index_and_tiers(tree_scores, inputs),
        "regional_rollups": lambda: rollups(cities, inputs),
        "year_over_year": lambda: year_over_year(cities, counties, tree_scores, inputs),
    }
    stages = in_rounds(stage_cases, repeats)
    total = sum(f.median for f in stages.values())
    print_table(
        "Stages (pure functions, all editions, both unit types)",
        ["stage", "median s", "min s", "max s", "share", "peak RSS MiB", "peak above start MiB"],
        [
            [
                name,
                f.median,
                min(f.seconds),
                max(f.seconds),
                f"{f.median / total:.0%}",
                f.summary()["peak_rss_mib"],
                f.summary().get("peak_above_start_mib"),
            ]
            for name, f in stages.items()
        ],
    )

    national = AggregationCase(
        f"{len(inputs.editions)} editions, all units",
        scores,
        {ut: inputs.frameworks[(ut, inputs.editions[-1])].nodes for ut in UNIT_TYPES},
    )
    if any(not fw.nodes.equals(national.nodes[ut]) for (ut, _), fw in inputs.frameworks.items()):
        raise SystemExit(
            "bench_stages: the editions use different frameworks; the baselines assume one per unit type"
        )
    runners = national.runners()
    results = {name: run() for name, run in runners.items()}
    agreement = {
        "duckdb_sql": compare(results["polars"], results["duckdb_sql"], KEYS),
        "pandas": compare(results["polars"], pl.from_pandas(results["pandas"]), KEYS),
    }
    del results
    engines = in_rounds(runners, repeats, warmup=False)
    polars_figures = engines["polars"]
    print_table(
        f"Aggregate every tier, {national.label}: {national.size()['leaf_cells']:,} leaf cells -> {tree_scores.height:,} node scores",
        [
            "engine",
            "median s",
            "min s",
            "max s",
            "polars vs engine",
            "peak RSS MiB",
            "peak above start MiB",
            "max |diff| vs polars",
        ],
        [
            [
                name,
                f.median,
                min(f.seconds),
                max(f.seconds),
                f"{ratio(polars_figures, f):.2f}x",
                f.summary()["peak_rss_mib"],
                f.summary().get("peak_above_start_mib"),
                agreement[name]["max_abs_difference"] if name in agreement else None,
            ]
            for name, f in engines.items()
        ],
    )
    polars_vs_duckdb = ratio(polars_figures, engines["duckdb_sql"])
    pandas_vs_polars = ratio(engines["pandas"], polars_figures)
    print(
        f"  polars / DuckDB SQL = {polars_vs_duckdb:.2f} (target <= 1.5); pandas / polars = {pandas_vs_polars:.2f} (target >= 3)"
    )
    for name, check in agreement.items():
        if not (check["same_rows"] and check["same_missing"]):
            print(f"  WARNING: {name} does not agree with polars: {check}")

    scaling = []
    for case in aggregation_sizes(scores, inputs):
        figures = in_rounds(case.runners(), min(repeats, SCALING_REPEATS))
        size = case.size()
        scaling.append(
            {
                "label": case.label,
                **size,
                **{f"{name}_median_s": round(f.median, 4) for name, f in figures.items()},
                **{
                    f"{name}_ns_per_leaf_cell": round(f.median / size["leaf_cells"] * 1e9, 1)
                    for name, f in figures.items()
                },
                **{
                    f"{name}_peak_above_start_mib": f.summary().get("peak_above_start_mib")
                    for name, f in figures.items()
                },
                "polars_vs_duckdb_sql": ratio(figures["polars"], figures["duckdb_sql"]),
                "pandas_vs_polars": ratio(figures["pandas"], figures["polars"]),
            }
        )
    print_table(
        "Aggregation by size (units x indicators x editions)",
        [
            "size",
            "units",
            "indicators",
            "editions",
            "leaf cells",
            "polars s",
            "DuckDB s",
            "pandas s",
            "polars ns/cell",
            "polars/DuckDB",
            "pandas/polars",
        ],
        [
            [
                row["label"],
                row["units"],
                row["indicators"],
                row["editions"],
                row["leaf_cells"],
                row["polars_median_s"],
                row["duckdb_sql_median_s"],
                row["pandas_median_s"],
                row["polars_ns_per_leaf_cell"],
                f"{row['polars_vs_duckdb_sql']:.2f}",
                f"{row['pandas_vs_polars']:.2f}",
            ]
            for row in scaling
        ],
    )

    write_json(
        args.json,
        {
            "data_dir": str(args.data_dir),
            "editions": inputs.editions,
            "rounds": repeats,
            "leaf_cells": scores.height,
            "node_scores": tree_scores.height,
            "stages": {name: f.summary() for name, f in stages.items()},
            "aggregation": {
                "engines": {name: f.summary() for name, f in engines.items()},
                "polars_vs_duckdb_sql": polars_vs_duckdb,
                "pandas_vs_polars": pandas_vs_polars,
                "targets": {"polars_vs_duckdb_sql_at_most": 1.5, "pandas_vs_polars_at_least": 3.0},
                "targets_met": {
                    "polars_vs_duckdb_sql": polars_vs_duckdb <= 1.5,
                    "pandas_vs_polars": pandas_vs_polars >= 3.0,
                },
                "agreement_with_polars": agreement,
            },
            "aggregation_scaling": scaling,
        },
    )


if __name__ == "__main__":
    main()
