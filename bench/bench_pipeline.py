"""Whole-pipeline benchmark: ``dei materialize`` as an operator runs it, each run a fresh process on
a fresh warehouse (the whole history recomputed), sharing one warm Dagster instance.

Measured in the same rounds, so that the ratios hold on a noisy machine:

- ``national_all_editions``: every edition of the national data set in one run (a single-run
  backfill over the partition range) of the main job, index_job, then the publication:
  ``dei materialize --years all --job index``;
- ``national_analysis``: then analysis_job over the same editions on the warehouse that run left
  (``dei materialize --years all --job analysis``: the analysis marts, the report, the publication);
- ``national_publication``: everything, index, analysis, report and publication, on a fresh warehouse
  (``dei materialize --years all``, what ``make run`` does);
- ``national_rerun_one_edition_propagated``: then one edition in the middle again on that warehouse,
  with what the later editions read of it (``dei materialize --years Y``: what one changed raw file
  costs), against ``national_full_rerun``: every edition again on the same warehouse;
- ``national_one_run_per_edition``: the editions one ``dei materialize --years Y --job index`` after
  the other (how a sensor or a schedule would bring them in one by one);
- ``sample_*``: the same on the committed sample (``data/``, 4 editions, 148 cities; its rerun is 2019,
  which 2020 reads);
- ``national_last_N_editions``: the last 5 and 10 national editions in one run, for the growth with
  editions.

Each figure is the median of the rounds: wall time of the process, its CPU time, its peak RSS, the
run's own time as ``dei`` reports it (without interpreter start-up and imports) and each step's time,
so that the Dagster overhead (run time minus the steps) shows. The one-run-per-edition sweep (and the
rerun after it) takes as long as several all-in-one runs, so it is made in the first round only unless
``DEI_BENCH_SWEEPS`` asks for more; ``DEI_BENCH_REPEATS`` sets the rounds (default 3).

    python bench/bench_pipeline.py --data-dir NATIONAL_DIR --json PART.json
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    REPO_ROOT,
    ProcessRun,
    part_arguments,
    print_table,
    repeats_setting,
    run_process,
    write_json,
)

from dei_pipeline.defs.assets import INDEX_ASSETS
from dei_pipeline.ingest import list_editions

DEFAULT_ROUNDS = 3
DEFAULT_SWEEPS = 1
SWEEPS_ENV = "DEI_BENCH_SWEEPS"
SAMPLE_DIR = REPO_ROOT / "data"
STEP_LINE = re.compile(r"^\s+(done|FAILED)\s+(\S+)\s+([\d.]+)s$", re.MULTILINE)
RUN_LINE = re.compile(r"^dei: materialized (\d+) edition\(s\) \([^)]*\) in ([\d.]+)s", re.MULTILINE)
SCALING_EDITIONS = (5, 10)
TARGETS = {
    "national_all_editions_s": 60.0,
    "national_all_editions_peak_rss_mib": 2048.0,
    "sample_all_editions_s": 20.0,
}
# The index itself (ingestion to the marts); the other steps (exports, analysis marts, report) are shown
# apart, so that what bounds a run is visible.
CORE_STEPS = frozenset(key.to_user_string() for asset in INDEX_ASSETS for key in asset.keys)
# Variables that would point a child at another data directory, warehouse or serving file.
CLEARED_ENV = ("DEI_DATA_DIR", "DEI_WAREHOUSE", "DEI_SERVING")


@dataclass
class RunFigures:
    """One case over the rounds; a case may take several processes per round (one per edition)."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    processes: int = 0
    steps: dict[str, list[float]] = field(default_factory=dict)

    def add(self, runs: Sequence[ProcessRun]) -> None:
        self.wall_s.append(sum(r.seconds for r in runs))
        self.cpu_s.append(sum(r.cpu_seconds for r in runs))
        self.run_s.append(sum(_run_seconds(r) for r in runs))
        self.peak_rss_mib.append(max(r.peak_rss_mib for r in runs))
        self.processes = len(runs)
        totals: dict[str, float] = {}
        for r in runs:
            for step, seconds in _step_seconds(r).items():
                totals[step] = totals.get(step, 0.0) + seconds
        for step, seconds in totals.items():
            self.steps.setdefault(step, []).append(seconds)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall_s)

    def summary(self) -> dict[str, Any]:
        steps = {step: round(statistics.median(values), 3) for step, values in self.steps.items()}
        run = statistics.median(self.run_s)
        core = sum(seconds for step, seconds in steps.items() if step in CORE_STEPS)
        return {
            "median_core_steps_s": round(core, 3),
            "median_other_steps_s": round(sum(steps.values()) - core, 3),
            "median_wall_s": round(self.median_wall, 3),
            "wall_s": [round(s, 3) for s in self.wall_s],
            "median_cpu_s": round(statistics.median(self.cpu_s), 3),
            "median_run_s": round(run, 3),
            "median_steps_total_s": round(sum(steps.values()), 3),
            "median_dagster_overhead_s": round(run - sum(steps.values()), 3),
            "median_process_overhead_s": round(self.median_wall - run, 3),
            "peak_rss_mib": round(max(self.peak_rss_mib), 1),
            "processes_per_round": self.processes,
            "rounds": len(self.wall_s),
            "median_step_s": dict(sorted(steps.items(), key=lambda item: -item[1])),
        }


def _step_seconds(run: ProcessRun) -> dict[str, float]:
    return {step: float(seconds) for _, step, seconds in STEP_LINE.findall(run.stdout)}


def _run_seconds(run: ProcessRun) -> float:
    found = RUN_LINE.search(run.stdout)
    return float(found.group(2)) if found else run.seconds


class Materializer:
    """Runs ``dei materialize`` in child processes on scratch warehouses under one temp folder."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.env = {key: value for key, value in os.environ.items() if key not in CLEARED_ENV}
        self.counter = 0

    def environment(self, data_dir: Path) -> dict[str, str]:
        """One Dagster instance per data directory (kept warm across runs): the editions of two data
        sets registered in one instance would interleave in its partition order."""
        home = self.scratch / f"dagster_home_{hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}"
        return {**self.env, "DAGSTER_HOME": str(home)}

    def fresh_warehouse(self) -> Path:
        self.counter += 1
        folder = self.scratch / f"warehouse_{self.counter}"
        shutil.rmtree(folder, ignore_errors=True)
        return folder / "dei.duckdb"

    def discard(self, warehouse: Path) -> None:
        shutil.rmtree(warehouse.parent, ignore_errors=True)

    def run(self, data_dir: Path, warehouse: Path, years: str, *options: str) -> ProcessRun:
        return self._run(
            [
                sys.executable,
                "-m",
                "dei_pipeline.cli",
                "materialize",
                "--years",
                years,
                *options,
                "--data-dir",
                str(data_dir),
                "--warehouse",
                str(warehouse),
            ],
            data_dir,
        )

    def _run(self, command: list[str], data_dir: Path) -> ProcessRun:
        result = run_process(command, env=self.environment(data_dir), cwd=REPO_ROOT)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def in_one_run(self, data_dir: Path, years: str) -> list[ProcessRun]:
        return self.index_then_analysis(data_dir, years, analysis=False)[0]

    def index_then_analysis(
        self, data_dir: Path, years: str, analysis: bool = True
    ) -> tuple[list[ProcessRun], list[ProcessRun]]:
        """index_job in one run on a fresh warehouse, then (``analysis``) analysis_job on what it left."""
        warehouse = self.fresh_warehouse()
        try:
            index = [self.run(data_dir, warehouse, years, "--job", "index")]
            return index, [self.run(data_dir, warehouse, years, "--job", "analysis")] if analysis else []
        finally:
            self.discard(warehouse)

    def publication_and_reruns(self, data_dir: Path, rerun: int) -> tuple[ProcessRun, ProcessRun, ProcessRun]:
        """Everything on a fresh warehouse; then one edition again with what it propagates; then all again."""
        warehouse = self.fresh_warehouse()
        try:
            return (
                self.run(data_dir, warehouse, "all"),
                self.run(data_dir, warehouse, str(rerun)),
                self.run(data_dir, warehouse, "all"),
            )
        finally:
            self.discard(warehouse)

    def one_run_per_edition(self, data_dir: Path, editions: Sequence[int]) -> list[ProcessRun]:
        """Every edition of the index in its own run."""
        warehouse = self.fresh_warehouse()
        try:
            return [self.run(data_dir, warehouse, str(year), "--job", "index") for year in editions]
        finally:
            self.discard(warehouse)


def main() -> None:
    args = part_arguments(__doc__.splitlines()[0])
    rounds = repeats_setting(DEFAULT_ROUNDS)
    # A sweep of one run per edition takes as long as many all-in-one runs: by default it is done in the
    # first round only (DEI_BENCH_SWEEPS=N for more).
    sweeps = min(rounds, max(1, int(os.environ.get(SWEEPS_ENV, DEFAULT_SWEEPS))))
    national = args.data_dir.resolve()
    editions = list_editions(national)
    print(
        f"pipeline: {national} ({len(editions)} editions) and the sample {SAMPLE_DIR}, {rounds} round(s), "
        f"{sweeps} of them with the one-run-per-edition sweep; medians",
        flush=True,
    )
    cases: dict[str, RunFigures] = {}

    def record(name: str, runs: Sequence[ProcessRun]) -> None:
        cases.setdefault(name, RunFigures()).add(runs)

    with tempfile.TemporaryDirectory(prefix="dei-bench-pipeline-") as scratch_name:
        materializer = Materializer(Path(scratch_name))
        # A first run per data set creates its Dagster instance's storage, so that no timed run pays for it.
        for data_dir in (SAMPLE_DIR, national):
            materializer.in_one_run(data_dir, str(list_editions(data_dir)[-1]))
        for round_number in range(1, rounds + 1):
            print(f"  round {round_number}/{rounds} ...", flush=True)
            for data_set, data_dir in (("national", national), ("sample", SAMPLE_DIR)):
                index, analysis = materializer.index_then_analysis(data_dir, "all")
                record(f"{data_set}_all_editions", index)
                record(f"{data_set}_analysis", analysis)
                data_set_editions = list_editions(data_dir)
                publication, rerun, full_rerun = materializer.publication_and_reruns(
                    data_dir, data_set_editions[len(data_set_editions) // 2]
                )
                record(f"{data_set}_publication", [publication])
                record(f"{data_set}_rerun_one_edition_propagated", [rerun])
                record(f"{data_set}_full_rerun", [full_rerun])
            if round_number <= sweeps:
                record("national_one_run_per_edition", materializer.one_run_per_edition(national, editions))
            for count in SCALING_EDITIONS:
                if count < len(editions):
                    record(
                        f"national_last_{count}_editions",
                        materializer.in_one_run(national, ",".join(map(str, editions[-count:]))),
                    )

    all_in_one, per_edition = cases["national_all_editions"], cases["national_one_run_per_edition"]
    print_table(
        "Whole pipeline (dei materialize; fresh process and warehouse each run)",
        [
            "case",
            "processes",
            "median wall s",
            "CPU s",
            "run s",
            "index steps s",
            "other steps s",
            "Dagster overhead s",
            "start-up s",
            "peak RSS MiB",
        ],
        [
            [
                name,
                f.processes,
                f.median_wall,
                f.summary()["median_cpu_s"],
                f.summary()["median_run_s"],
                f.summary()["median_core_steps_s"],
                f.summary()["median_other_steps_s"],
                f.summary()["median_dagster_overhead_s"],
                f.summary()["median_process_overhead_s"],
                f.summary()["peak_rss_mib"],
            ]
            for name, f in cases.items()
        ],
    )
    one_vs_many = round(per_edition.median_wall / all_in_one.median_wall, 3)
    print(f"  one run per edition / all editions in one run = {one_vs_many:.2f} (wall time)")
    publication_wall = {
        data_set: cases[f"{data_set}_publication"].median_wall for data_set in ("national", "sample")
    }
    print(
        f"  the whole publication (index, analysis, report, exports), national: {publication_wall['national']:.1f} s; "
        f"sample: {publication_wall['sample']:.1f} s (wall time)"
    )
    rerun_vs_full = {
        data_set: round(
            cases[f"{data_set}_rerun_one_edition_propagated"].median_wall
            / cases[f"{data_set}_full_rerun"].median_wall,
            3,
        )
        for data_set in ("national", "sample")
    }
    for data_set, ratio in rerun_vs_full.items():
        print(
            f"  {data_set}: one edition rerun with what it propagates / every edition rerun = {ratio:.2f} "
            f"({cases[f'{data_set}_rerun_one_edition_propagated'].median_wall:.1f} s vs {cases[f'{data_set}_full_rerun'].median_wall:.1f} s)"
        )
    for case in (
        "national_all_editions",
        "national_analysis",
        "national_rerun_one_edition_propagated",
        "sample_publication",
    ):
        figures = cases[case].summary()
        print_table(
            f"Steps of {case} (median s)",
            ["step", "s", "share of steps", "part"],
            [
                [
                    step,
                    seconds,
                    f"{seconds / max(figures['median_steps_total_s'], 1e-9):.0%}",
                    "index" if step in CORE_STEPS else "other",
                ]
                for step, seconds in figures["median_step_s"].items()
            ],
        )

    measured = {
        f"{case}_s": cases[case].median_wall for case in ("national_all_editions", "sample_all_editions")
    } | {"national_all_editions_peak_rss_mib": max(all_in_one.peak_rss_mib)}
    targets = {
        name: {"target": limit, "measured": round(measured[name], 3), "met": measured[name] < limit}
        for name, limit in TARGETS.items()
    }
    scaling = [
        {
            "case": name,
            "editions": len(editions) if name == "national_all_editions" else int(name.split("_")[2]),
            "median_wall_s": f.summary()["median_wall_s"],
            "median_run_s": f.summary()["median_run_s"],
            "peak_rss_mib": f.summary()["peak_rss_mib"],
        }
        for name, f in cases.items()
        if name == "national_all_editions" or name.startswith("national_last_")
    ]
    write_json(
        args.json,
        {
            "national_dir": str(national),
            "editions": editions,
            "sample_dir": str(SAMPLE_DIR),
            "rounds": rounds,
            "sweeps": sweeps,
            "cases": {name: f.summary() for name, f in cases.items()},
            "one_run_per_edition_vs_all_in_one": one_vs_many,
            "publication_wall_s": publication,
            "rerun_one_edition_vs_full_rerun": rerun_vs_full,
            "editions_scaling": sorted(scaling, key=lambda row: row["editions"]),
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
