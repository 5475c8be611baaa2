"""Sensitivity benchmark: the Sobol design and its bootstrap on the national data set, as the
``sensitivity`` asset computes them (ranking problem, N x (factors + 2) rank evaluations, centred
estimators, bootstrap intervals; not the warehouse I/O), at the N of the settings and at twice it.

Beside the time, the precision bought: the share of per-unit indices that are resolved (interval no
wider than ``sensitivity_resolution``) and the widest interval of the all-unit indices.

    python bench/bench_sensitivity.py --data-dir NATIONAL_DIR --json PART.json

Nothing is asserted; the figures are printed and written as JSON.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
from bench_uncertainty import DataSet, load_data_set
from harness import (
    git_revision,
    machine,
    part_arguments,
    peak_rss_mib,
    print_table,
    reset_peak_rss,
    write_json,
)

from dei_pipeline.analysis.assumption_draws import edition_rng
from dei_pipeline.analysis.sensitivity import OVERALL_TARGET, edition_sensitivity
from dei_pipeline.config import UncertaintySettings

TARGET_S = 20.0  # half the 40 s the design cost at N = 2000 with the uncentred estimators


def sensitivity_all(data: DataSet, settings: UncertaintySettings) -> pl.DataFrame:
    """Every problem's marts.sensitivity rows, as the asset computes them."""
    frames = []
    for problem in data.problems:
        rows = edition_sensitivity(
            problem.leaves,
            problem.nodes,
            problem.nominal.filter(pl.col("rank").is_not_null()),
            data.method,
            settings,
            edition_rng(settings.seed, problem.edition, problem.unit_type, "sensitivity"),
        )
        frames.append(rows.with_columns(pl.lit(problem.unit_type).alias("unit_type")))
    return pl.concat(frames)


def case(data: DataSet, base_draws: int) -> dict[str, Any]:
    settings = data.settings.model_copy(update={"sensitivity_base_draws": base_draws})
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = sensitivity_all(data, settings)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    units = rows.filter((pl.col("target") != OVERALL_TARGET) & pl.col("resolved").is_not_null())
    overall = rows.filter(pl.col("target") == OVERALL_TARGET)
    widths = pl.max_horizontal(
        pl.col("first_order_ci_high") - pl.col("first_order_ci_low"),
        pl.col("total_effect_ci_high") - pl.col("total_effect_ci_low"),
    )
    return {
        "base_draws": base_draws,
        "bootstrap": settings.sensitivity_bootstrap,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "unit_indices": units.height,
        "unit_resolved_share": round(float(np.mean(units["resolved"].to_numpy())), 4),
        "unit_resolved_share_by_unit_type": {
            str(unit_type): round(float(np.mean(of_type["resolved"].to_numpy())), 4)
            for (unit_type,), of_type in units.group_by("unit_type", maintain_order=True)
        },
        "unit_median_interval_width_by_factor": {
            str(factor): round(float(width), 3)
            for factor, width in units.group_by("factor").agg(widths.median()).sort("factor").iter_rows()
        },
        "out_of_range": int(rows["out_of_range"].sum()),
        "overall_widest_interval": round(float(overall.select(widths.max()).item()), 4),
    }


def main() -> None:
    args = part_arguments(__doc__.splitlines()[0])
    measured_on = machine()
    data = load_data_set(args.data_dir.resolve())
    base = data.settings.sensitivity_base_draws
    print(
        f"sensitivity: {len(data.problems)} edition-unit types, {sum(p.n_units for p in data.problems):,} units",
        flush=True,
    )
    results = [case(data, base), case(data, 2 * base)]
    print_table(
        "Sensitivity (Sobol design + bootstrap), all editions and unit types, one run each",
        [
            "N",
            "bootstrap",
            "s",
            "CPU s",
            "peak RSS MiB",
            "unit indices resolved",
            "by unit type",
            "out of range",
            "widest all-unit interval",
        ],
        [
            [
                r["base_draws"],
                r["bootstrap"],
                r["seconds"],
                r["cpu_seconds"],
                r["peak_rss_mib"],
                r["unit_resolved_share"],
                ", ".join(f"{k} {v}" for k, v in r["unit_resolved_share_by_unit_type"].items()),
                r["out_of_range"],
                r["overall_widest_interval"],
            ]
            for r in results
        ],
    )
    write_json(
        args.json,
        {
            "part": "sensitivity",
            "machine": measured_on,
            "git": git_revision(),
            "target_s": TARGET_S,
            "cases": results,
        },
    )


if __name__ == "__main__":
    main()
