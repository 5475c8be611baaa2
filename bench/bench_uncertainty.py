"""Rank-uncertainty benchmark: the vectorised Monte Carlo against re-running the pipeline once per draw.

Cases, each 10,000 draws per edition and unit type (the other settings from the data directory's
``uncertainty:`` block, else the repository's), timed as the ``rank_uncertainty`` asset computes
them (draws, simulation, ranks, tiers and the summary of every unit; not the warehouse I/O):

- ``sample``: the repository's 148 cities of 2020 (target: under 2 s);
- ``national``: every edition and unit type of the national data set (target: under 30 s).

Baseline, in the same run: what COINr does, one run of the pipeline's own aggregation per draw
(``aggregate_tiers`` with the draw's weights, then ``rank_units`` and ``tier_expr``), for a few draws,
extrapolated to 10,000 draws and to every edition. It only draws weights: the pipeline's aggregation
has no geometric mean, so the baseline is a lower bound of a per-draw re-run.

    python bench/bench_uncertainty.py --data-dir NATIONAL_DIR --json PART.json

Any data directory with the layout of ``data/`` works as NATIONAL_DIR (``dei sample-data --scale
national --out DIR`` writes one). Nothing is asserted; the figures are printed and written as JSON.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from harness import (
    REPO_ROOT,
    Figures,
    git_revision,
    in_rounds,
    machine,
    measure_once,
    part_arguments,
    print_table,
    repeats_setting,
    write_json,
)

from dei_pipeline.aggregation import aggregate_tiers, composite_scores
from dei_pipeline.analysis.assumption_draws import draw_assumptions, edition_rng, load_uncertainty_settings
from dei_pipeline.analysis.index_tree import IndexTree
from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty
from dei_pipeline.analysis.weight_draws import perturbed_weights
from dei_pipeline.config import MethodSettings, UncertaintySettings, load_settings
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.ingest import ingest_edition, list_editions
from dei_pipeline.ranking import rank_units
from dei_pipeline.registry import load_registry
from dei_pipeline.scoring.peers import peer_groups
from dei_pipeline.scoring.stage import score_measurements
from dei_pipeline.tiers import load_tiers, tier_expr

DRAWS = 10_000
TARGETS_S = {"sample": 2.0, "national": 30.0}
SAMPLE_EDITION = 2020
BASELINE_DRAWS = 12  # per-draw re-runs timed for the baseline, then extrapolated
NATIONAL_ROUNDS = 3  # the national case takes tens of seconds a round


@dataclass(frozen=True)
class Problem:
    """One edition and unit type, ready for the simulation: what the asset reads from the warehouse."""

    edition: int
    unit_type: str
    leaves: pl.DataFrame  # unit_code, indicator_code, score
    nodes: pl.DataFrame
    nominal: pl.DataFrame  # unit_code, rank_group, score, rank, tier

    @property
    def n_units(self) -> int:
        return self.nominal.height


@dataclass(frozen=True)
class DataSet:
    data_dir: Path
    method: MethodSettings
    settings: UncertaintySettings
    tiers: pl.DataFrame
    problems: list[Problem]

    @property
    def unit_draws(self) -> int:
        return sum(p.n_units for p in self.problems) * self.settings.draws_for(None)


def nominal_ranks(
    composites: pl.DataFrame, unit_type: str, kinds: pl.DataFrame, tiers: pl.DataFrame, method: MethodSettings
) -> pl.DataFrame:
    """The published ranks (within each county kind for county units) and tiers (cities) of composites."""
    groups = (
        composites.join(kinds, on="unit_code", how="left").with_columns(pl.col("rank_group").fill_null("all"))
        if unit_type == "county"
        else composites.with_columns(pl.lit("all").alias("rank_group"))
    )
    return rank_units(groups, ["rank_group"], method.display_decimals, method.tie_method).with_columns(
        (
            tier_expr(pl.col("score"), tiers, method.display_decimals)
            if unit_type == "city"
            else pl.lit(None, pl.String)
        ).alias("tier")
    )


def load_data_set(
    data_dir: Path, editions: list[int] | None = None, unit_types: tuple[str, ...] = ("city", "county")
) -> DataSet:
    """The raw files of a data directory, scored with the pipeline's scoring stage (a unit type given
    as measurements), aggregation and ranking: the published index the simulation starts from. The
    editions before the last one asked for are scored too, as the pipeline does, for the peer groups
    (the previous edition's city tiers) and the history that the scoring of measurements reads."""
    method, tiers = load_settings(data_dir), load_tiers(data_dir)
    try:
        settings = load_uncertainty_settings(data_dir)
    except (ValueError, OSError):
        settings = load_uncertainty_settings(REPO_ROOT / "data")  # a data set made before the block existed
    settings = settings.with_draws(DRAWS)
    registry = load_registry(data_dir)
    kinds = registry.counties.select("unit_code", pl.col("kind").alias("rank_group"))
    wanted = set(editions or list_editions(data_dir))
    city_tiers = pl.DataFrame(schema={"survey_year": pl.Int32, "unit_code": pl.String, "tier": pl.String})
    measured_history: list[pl.DataFrame] = []
    problems = []
    for edition in [year for year in list_editions(data_dir) if year <= max(wanted)]:
        cells = ingest_edition(data_dir, edition).cells
        for (unit_type, value_kind), raw in cells.group_by("unit_type", "value_kind", maintain_order=True):
            framework = resolve_framework(data_dir, str(unit_type), edition)
            if value_kind == "measurement":
                measured = raw.select(
                    "survey_year",
                    "unit_type",
                    "unit_code",
                    "indicator_code",
                    pl.col("raw_value").replace("", None).cast(pl.Float64).alias("measurement"),
                )
                assert framework.unit_methods is not None, f"{unit_type} {edition}: no method columns"
                scored = score_measurements(
                    measured,
                    framework.unit_methods,
                    peer_groups(registry.cities, registry.counties, city_tiers, edition),
                    pl.concat(measured_history) if measured_history else None,
                    method.scoring_rule,
                )
                measured_history.append(measured)
                leaves = scored.filter(pl.col("status") == "scored").select(
                    "unit_code", "indicator_code", "score"
                )
            else:
                leaves = raw.select(
                    "unit_code", "indicator_code", pl.col("raw_value").cast(pl.Float64).alias("score")
                )
            composites = composite_scores(
                aggregate_tiers(leaves, framework.nodes, missing=method.missing_rule)
            )
            nominal = nominal_ranks(composites, str(unit_type), kinds, tiers, method)
            if unit_type == "city":
                city_tiers = pl.concat(
                    [
                        city_tiers,
                        nominal.select(
                            pl.lit(edition, pl.Int32).alias("survey_year"), "unit_code", "tier"
                        ).cast(city_tiers.schema),
                    ]
                )
            if edition in wanted and unit_type in unit_types:
                problems.append(Problem(edition, str(unit_type), leaves, framework.nodes, nominal))
    return DataSet(data_dir, method, settings, tiers, problems)


def simulate_all(data: DataSet) -> float:
    """Every problem's rank uncertainty, as the asset computes it; returns the worst nominal check."""
    worst = 0.0
    for problem in data.problems:
        rng = edition_rng(data.settings.seed, problem.edition, problem.unit_type, "rank_uncertainty")
        _, check = rank_uncertainty(
            problem.leaves,
            problem.nodes,
            problem.nominal,
            data.method,
            data.settings,
            rng,
            data.tiers if problem.unit_type == "city" else None,
        )
        worst = max(worst, check["nominal_max_abs_difference"])
    return worst


def per_draw_rerun(data: DataSet, problem: Problem, draws: int) -> Figures:
    """The baseline: one pipeline run per draw (weights drawn as the simulation draws them)."""
    figures = Figures()
    framework_nodes = problem.nodes
    tree = IndexTree.from_nodes(framework_nodes)
    sampled = draw_assumptions(
        tree, draws, data.settings.weight_range, ["arithmetic"], np.random.default_rng(0)
    )
    weights = perturbed_weights(tree, sampled.weight_multipliers)
    groups = problem.nominal.select("unit_code", "rank_group")

    def run(nodes: pl.DataFrame) -> pl.DataFrame:
        composites = composite_scores(
            aggregate_tiers(problem.leaves, nodes, missing=data.method.missing_rule)
        )
        ranked = rank_units(
            composites.join(groups, on="unit_code"),
            ["rank_group"],
            data.method.display_decimals,
            data.method.tie_method,
        )
        return ranked.with_columns(
            tier_expr(pl.col("score"), data.tiers, data.method.display_decimals).alias("tier")
        )

    for draw in range(draws):
        nodes = framework_nodes.with_columns(pl.Series("weight", weights[draw]))
        measure_once(functools.partial(run, nodes), figures)
    return figures


def extrapolated_baseline(data: DataSet, repeats: int) -> dict[str, Any]:
    """Per-draw seconds of the largest problem of each unit type, times draws and problems."""
    per_type: dict[str, dict[str, Any]] = {}
    total = 0.0
    for unit_type in sorted({p.unit_type for p in data.problems}):
        of_type = [p for p in data.problems if p.unit_type == unit_type]
        largest = max(of_type, key=lambda p: p.n_units)
        per_draw_rerun(data, largest, 2)  # warm-up: imports, caches
        figures = per_draw_rerun(data, largest, max(BASELINE_DRAWS, repeats))
        per_draw = statistics.median(figures.seconds)
        # Aggregation time grows with the units scored: scale each problem by its size.
        seconds = sum(per_draw * p.n_units / largest.n_units for p in of_type) * data.settings.draws_for(None)
        per_type[unit_type] = {
            "per_draw_median_s": round(per_draw, 5),
            "draws_timed": len(figures.seconds),
            "timed_on": f"{largest.edition}/{unit_type} ({largest.n_units} units)",
            "extrapolated_s": round(seconds, 1),
        }
        total += seconds
    return {"per_unit_type": per_type, "extrapolated_s": round(total, 1)}


def case_summary(
    name: str, data: DataSet, figures: Figures, baseline: dict[str, Any], nominal_check: float
) -> dict[str, Any]:
    median = figures.median
    return {
        "case": name,
        "data_dir": str(data.data_dir),
        "problems": len(data.problems),
        "editions": sorted({p.edition for p in data.problems}),
        "units": sum(p.n_units for p in data.problems),
        "draws_per_problem": data.settings.draws_for(None),
        "unit_draws": data.unit_draws,
        "settings": data.settings.model_dump(exclude={"sensitivity_base_draws"}),
        "threads": os.cpu_count(),
        **figures.summary(),
        "ns_per_unit_draw": round(median / data.unit_draws * 1e9, 2),
        "target_s": TARGETS_S[name],
        "meets_target": median < TARGETS_S[name],
        "baseline_per_draw_rerun": baseline,
        "speedup_vs_per_draw_rerun": round(baseline["extrapolated_s"] / median, 1),
        "nominal_max_abs_difference": nominal_check,
    }


def main() -> None:
    args = part_arguments(__doc__.splitlines()[0])
    repeats = repeats_setting()
    measured_on = machine()
    started = time.perf_counter()
    sample = load_data_set(REPO_ROOT / "data", [SAMPLE_EDITION], ("city",))
    national_dir = args.data_dir.resolve()
    national = load_data_set(national_dir) if national_dir.is_dir() else None
    load_seconds = time.perf_counter() - started
    print(
        f"uncertainty: {DRAWS:,} draws; sample {sample.problems[0].n_units} cities; "
        + (
            f"national {national_dir}: {len(national.problems)} edition-unit types, {sum(p.n_units for p in national.problems):,} units"
            if national
            else f"no national data set at {national_dir}"
        )
        + f"; inputs loaded in {load_seconds:.1f}s; {repeats} rounds",
        flush=True,
    )

    checks: dict[str, float] = {}
    cases: dict[str, Callable[[], Any]] = {
        "sample": lambda: checks.__setitem__("sample", simulate_all(sample))
    }
    results = [
        case_summary(
            "sample",
            sample,
            in_rounds(cases, repeats)["sample"],
            extrapolated_baseline(sample, repeats),
            checks["sample"],
        )
    ]
    if national is not None:
        national_rounds = min(repeats, NATIONAL_ROUNDS)
        figures = in_rounds(
            {"national": lambda: checks.__setitem__("national", simulate_all(national))},
            national_rounds,
            warmup=False,
        )["national"]
        results.append(
            case_summary(
                "national", national, figures, extrapolated_baseline(national, repeats), checks["national"]
            )
        )

    print_table(
        f"Rank uncertainty, {DRAWS:,} draws per edition and unit type (medians)",
        [
            "case",
            "units",
            "unit-draws",
            "median s",
            "min s",
            "max s",
            "CPU s",
            "ns/unit-draw",
            "target s",
            "per-draw re-run s (extrap.)",
            "speed-up",
            "peak RSS MiB",
        ],
        [
            [
                r["case"],
                r["units"],
                r["unit_draws"],
                r["median_s"],
                r["min_s"],
                r["max_s"],
                r.get("median_cpu_s"),
                r["ns_per_unit_draw"],
                r["target_s"],
                r["baseline_per_draw_rerun"]["extrapolated_s"],
                f"{r['speedup_vs_per_draw_rerun']:,.0f}x",
                r["peak_rss_mib"],
            ]
            for r in results
        ],
    )
    for r in results:
        verdict = "meets" if r["meets_target"] else "MISSES"
        print(
            f"  {r['case']}: median {r['median_s']:.2f}s {verdict} the {r['target_s']:.0f}s target "
            f"(load average at start {measured_on['load_average_1m_at_start']}); nominal check {r['nominal_max_abs_difference']:.1e}"
        )
    write_json(
        args.json,
        {
            "part": "uncertainty",
            "machine": measured_on,
            "git": git_revision(),
            "rounds": repeats,
            "cases": results,
        },
    )


if __name__ == "__main__":
    main()
