"""``make bench``: every benchmark of the project on the national-scale data set, one JSON of figures.

    python bench/run.py --json bench-results.json [--data-dir DIR] [--repeats N] [--only stages,pipeline]

1. The national data set (``dei sample-data --scale national``) is generated into ``bench/.data/national``
   (git-ignored) when it is absent or was made by other code or reference data; ``--data-dir`` uses a
   given one instead.
2. Every ``bench/bench_*.py`` script runs as a subprocess, one after the other, by the protocol
   ``python bench/bench_X.py --data-dir NATIONAL_DIR --json PART.json``; what it prints is shown as it
   prints it, and its JSON is put under the key ``X`` of the output file.
3. The output file also holds the machine, the commit and the data set; a summary of the targets is
   printed at the end. Figures are measured, never asserted: a part that fails is reported and the
   runner exits non-zero after running the others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    BENCH_DIR,
    DEFAULT_NATIONAL_DIR,
    REPEATS_ENV,
    REPO_ROOT,
    git_revision,
    machine,
    print_table,
    write_json,
)

PART_PREFIX = "bench_"
RUN_KEY = "benchmark_run"
FINGERPRINT_FILE = ".fingerprint"
# What the national data set is made from: if any of it changes, the data set is made again.
GENERATOR_INPUTS: tuple[str, ...] = (
    "dei_pipeline/synthetic/national.py",
    "dei_pipeline/synthetic/sample.py",
    "data/reference/admin_divisions",
    "data/registry",
    "data/frameworks",
    "data/method",
)


def generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for relative in GENERATOR_INPUTS:
        path = REPO_ROOT / relative
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(file.relative_to(REPO_ROOT).as_posix().encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def ensure_national_data(data_dir: Path) -> dict[str, Any]:
    """Generate the national data set into ``data_dir`` unless an up-to-date one is there."""
    fingerprint = generator_fingerprint()
    marker = data_dir / FINGERPRINT_FILE
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == fingerprint:
        return {"dir": str(data_dir), "generated": False, "fingerprint": fingerprint}
    from dei_pipeline.synthetic.national import write_national_data

    print(f"run: generating the national data set into {data_dir} ...", flush=True)
    started = time.perf_counter()
    paths = write_national_data(data_dir)
    seconds = time.perf_counter() - started
    marker.write_text(fingerprint + "\n", encoding="utf-8")
    print(f"run: wrote {len(paths)} files in {seconds:.1f}s", flush=True)
    return {
        "dir": str(data_dir),
        "generated": True,
        "generation_s": round(seconds, 2),
        "fingerprint": fingerprint,
    }


def part_scripts(only: set[str] | None) -> dict[str, Path]:
    scripts = {path.stem[len(PART_PREFIX) :]: path for path in sorted(BENCH_DIR.glob(f"{PART_PREFIX}*.py"))}
    return {name: path for name, path in scripts.items() if only is None or name in only}


def run_part(
    name: str, script: Path, data_dir: Path, scratch: Path, env: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run one part; its output goes straight to the terminal. Returns its JSON and how it went."""
    part_json = scratch / f"{name}.json"
    print(f"\n===== {name} ({script.relative_to(REPO_ROOT)}) =====", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(data_dir), "--json", str(part_json)],
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    status = {
        "script": str(script.relative_to(REPO_ROOT)),
        "returncode": completed.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if completed.returncode != 0 or not part_json.is_file():
        print(f"run: part {name} failed (exit code {completed.returncode})", flush=True)
        return None, status
    return json.loads(part_json.read_text(encoding="utf-8")), status


def target_rows(results: dict[str, Any]) -> list[list[Any]]:
    """The performance targets, as far as the parts that ran measured them."""
    rows: list[list[Any]] = []
    aggregation = results.get("stages", {}).get("aggregation")
    if aggregation:
        rows.append(
            [
                "polars aggregation / DuckDB SQL (20 national editions)",
                "<= 1.5",
                f"{aggregation['polars_vs_duckdb_sql']:.2f}",
                _yes(aggregation["targets_met"]["polars_vs_duckdb_sql"]),
            ]
        )
        rows.append(
            [
                "pandas / polars aggregation",
                ">= 3",
                f"{aggregation['pandas_vs_polars']:.2f}",
                _yes(aggregation["targets_met"]["pandas_vs_polars"]),
            ]
        )
    scoring = results.get("scoring")
    if scoring:
        rows.append(
            [
                "scoring stage / aggregation (20 national editions as measurements; CPU)",
                "reported",
                f"{scoring['scoring_vs_aggregation_cpu']:.2f}",
                "-",
            ]
        )
        rows.append(
            [
                "pandas / polars normalisation",
                "reported",
                f"{scoring['pandas_vs_polars_normalisation']:.2f}",
                "-",
            ]
        )
    targets = results.get("pipeline", {}).get("targets", {})
    labels = {
        "national_all_editions_s": ("dei materialize --years all --job index, national (s)", "< 60"),
        "national_all_editions_peak_rss_mib": ("  its peak memory (MiB)", "< 2048"),
        "sample_all_editions_s": ("dei materialize --years all --job index, sample (s)", "< 20"),
    }
    for key, (label, target) in labels.items():
        if key in targets:
            rows.append([label, target, targets[key]["measured"], _yes(targets[key]["met"])])
    return rows


def _yes(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write all figures")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help=f"national data directory (default: generated into {DEFAULT_NATIONAL_DIR})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"rounds per figure for every part (sets {REPEATS_ENV}; default: each part's own)",
    )
    parser.add_argument("--only", help="comma-separated part names (bench_<name>.py) to run")
    args = parser.parse_args()

    started = time.perf_counter()
    meta: dict[str, Any] = {"machine": machine(), "git": git_revision(), "command": " ".join(sys.argv)}
    if args.data_dir is not None:
        data_dir = args.data_dir.resolve()
        meta["national_data"] = {"dir": str(data_dir), "generated": False, "given": True}
    else:
        data_dir = DEFAULT_NATIONAL_DIR
        meta["national_data"] = ensure_national_data(data_dir)
    manifest = data_dir / "raw" / "manifest.yaml"
    if manifest.is_file():
        import yaml

        content = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        meta["national_data"].update(
            {
                "synthetic": content.get("synthetic"),
                "seed": content.get("seed"),
                "registry": content.get("registry"),
                "editions": [entry["edition"] for entry in content.get("editions", [])],
            }
        )

    env = dict(os.environ)
    if args.repeats is not None:
        env[REPEATS_ENV] = str(args.repeats)
    only = set(args.only.split(",")) if args.only else None
    results: dict[str, Any] = {RUN_KEY: meta}
    statuses: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dei-bench-") as scratch:
        for name, script in part_scripts(only).items():
            figures, statuses[name] = run_part(name, script, data_dir, Path(scratch), env)
            if figures is not None:
                results[name] = figures
    meta["parts"] = statuses
    meta["total_s"] = round(time.perf_counter() - started, 1)
    write_json(args.json, results)

    rows = target_rows(results)
    if rows:
        print_table("Targets", ["what", "target", "measured", ""], rows)
    failed = [name for name, status in statuses.items() if status["returncode"] != 0 or name not in results]
    print(
        f"\nrun: {len(statuses) - len(failed)} of {len(statuses)} part(s) ran in {meta['total_s']:.0f}s; figures in {args.json}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
