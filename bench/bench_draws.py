"""Draws of the rank-uncertainty Monte Carlo: what each number of draws buys. For the county units of
some national editions, the marts.rank_uncertainty figures at several numbers of draws (three seeds
each) against a reference of many more draws: the 99th percentile, over the units, of the gap to the
reference, for the rank percentiles (in places, in % of the units ranked and in % of the unit's 90%
interval) and the score percentiles; and the CPU time of one edition's simulation at each number.

    python bench/bench_draws.py --data-dir NATIONAL_DIR --json PART.json

Nothing is asserted; the figures are printed and written as JSON (docs/analysis.md, "Choice of draws").
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
from bench_uncertainty import DataSet, Problem, load_data_set
from harness import git_revision, machine, part_arguments, print_table, write_json

from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty

EDITIONS = [2001, 2010, 2020]
REFERENCE_DRAWS = 80_000
DRAWS = [1_000, 2_000, 4_000, 10_000]
SEEDS = [11, 12, 13]
RANK_COLUMNS = ["rank_p05", "rank_p95", "median_rank"]
SCORE_COLUMNS = ["score_p05", "score_median", "score_p95"]


def simulated(data: DataSet, problem: Problem, draws: int, seed: int) -> pl.DataFrame:
    """The problem's marts.rank_uncertainty rows at ``draws`` draws, in unit order."""
    rows, _ = rank_uncertainty(
        problem.leaves,
        problem.nodes,
        problem.nominal,
        data.method,
        data.settings.with_draws(draws),
        np.random.default_rng(seed),
    )
    return rows.sort("unit_code")


def gaps(rows: pl.DataFrame, reference: pl.DataFrame) -> dict[str, float]:
    """99th percentile over the units of each figure's distance to the reference."""
    ranked = reference["n_ranked"].to_numpy()
    width = np.maximum((reference["rank_p95"] - reference["rank_p05"]).to_numpy(), 1)
    figures: dict[str, float] = {}
    for column in RANK_COLUMNS + SCORE_COLUMNS:
        gap = np.abs(rows[column].to_numpy().astype(float) - reference[column].to_numpy().astype(float))
        figures[column] = float(np.quantile(gap, 0.99))
        if column in RANK_COLUMNS:
            figures[f"{column}_pct_ranked"] = float(np.quantile(gap / ranked, 0.99) * 100)
            figures[f"{column}_pct_interval"] = float(np.quantile(gap / width, 0.99) * 100)
    return figures


def main() -> None:
    args = part_arguments(__doc__.splitlines()[0])
    data = load_data_set(args.data_dir.resolve(), EDITIONS, ("county",))
    print(
        f"draws: county units of editions {', '.join(map(str, EDITIONS))}; reference {REFERENCE_DRAWS:,} draws; "
        f"{len(SEEDS)} seeds per number of draws",
        flush=True,
    )
    per_draws: dict[int, list[dict[str, float]]] = {draws: [] for draws in DRAWS}
    cpu: dict[int, list[float]] = {draws: [] for draws in DRAWS}
    for problem in data.problems:
        reference = simulated(data, problem, REFERENCE_DRAWS, 1)
        for draws in DRAWS:
            for seed in SEEDS:
                started = time.process_time()
                rows = simulated(data, problem, draws, seed)
                cpu[draws].append(time.process_time() - started)
                per_draws[draws].append(gaps(rows, reference))
    worst = {
        draws: {k: max(f[k] for f in figures) for k in figures[0]} for draws, figures in per_draws.items()
    }
    print_table(
        "Rank uncertainty of the county units: 99th percentile of |figure - reference| over the units "
        "(worst of editions and seeds)",
        [
            "draws",
            "rank_p05 places",
            "rank_p95 places",
            "% of interval (p05, p95)",
            "median_rank places",
            "score p05/median/p95",
            "CPU s per edition",
        ],
        [
            [
                f"{draws:,}",
                worst[draws]["rank_p05"],
                worst[draws]["rank_p95"],
                f"{worst[draws]['rank_p05_pct_interval']:.1f} / {worst[draws]['rank_p95_pct_interval']:.1f}",
                worst[draws]["median_rank"],
                " / ".join(f"{worst[draws][c]:.1f}" for c in SCORE_COLUMNS),
                float(np.median(cpu[draws])),
            ]
            for draws in DRAWS
        ],
    )
    figures: dict[str, Any] = {
        "machine": machine(),
        "revision": git_revision(),
        "editions": EDITIONS,
        "reference_draws": REFERENCE_DRAWS,
        "seeds": SEEDS,
        "worst_p99_gap": {str(draws): worst[draws] for draws in DRAWS},
        "median_cpu_seconds_per_edition": {str(draws): float(np.median(cpu[draws])) for draws in DRAWS},
    }
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
