"""Shared by the benchmark scripts: timing in rounds, peak memory, the part-script protocol, printing.

Machines are shared and noisy, so every comparison is measured in the same process and the same
minutes: the cases of a comparison run in rounds (A, B, C, A, B, C, ...), each case's figure is the
median of its rounds, and ratios are taken between medians of the same rounds. Nothing here asserts a
time; the scripts print figures and write them as JSON.

Peak memory of an in-process case is the process's peak resident set size (``VmHWM``) while the case
ran: the peak is reset (``/proc/self/clear_refs``) before each call. Peak memory of a subprocess is its
``ru_maxrss`` from ``wait4``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dei_pipeline.cli import cpu_seconds
from dei_pipeline.terminal import text_table

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_NATIONAL_DIR = BENCH_DIR / ".data" / "national"
REPEATS_ENV = "DEI_BENCH_REPEATS"  # the runner's --repeats, for the part scripts
DEFAULT_REPEATS = 5
KIB = 1024


# ---------------------------------------------------------------------------------------- memory


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    return _status_kib("VmRSS") / KIB


def peak_rss_mib() -> float:
    return _status_kib("VmHWM") / KIB


# ---------------------------------------------------------------------------------------- timing


@dataclass
class Figures:
    """One case's rounds: wall seconds, peak RSS and RSS at the start of each call."""

    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    start_rss_mib: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, Any]:
        peak = max(self.peak_rss_mib) if self.peak_rss_mib else None
        out: dict[str, Any] = {
            "median_s": round(self.median, 4),
            "min_s": round(min(self.seconds), 4),
            "max_s": round(max(self.seconds), 4),
            "rounds": len(self.seconds),
            "seconds": [round(s, 4) for s in self.seconds],
            "peak_rss_mib": None if peak is None else round(peak, 1),
        }
        if self.start_rss_mib:
            out["peak_above_start_mib"] = round(
                max(p - s for p, s in zip(self.peak_rss_mib, self.start_rss_mib, strict=True)), 1
            )
        if self.cpu_seconds:
            out["median_cpu_s"] = round(statistics.median(self.cpu_seconds), 4)
        return out


def measure_once(function: Callable[[], Any], figures: Figures) -> Any:
    """Call ``function`` once, adding its wall time, CPU time (its worker processes' included) and peak
    RSS to ``figures``."""
    resettable = reset_peak_rss()
    start_rss = rss_mib()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    result = function()
    figures.seconds.append(time.perf_counter() - started)
    figures.cpu_seconds.append(cpu_seconds() - cpu_before)
    if resettable:
        figures.peak_rss_mib.append(peak_rss_mib())
        figures.start_rss_mib.append(start_rss)
    return result


def in_rounds(
    cases: Mapping[str, Callable[[], Any]], repeats: int, warmup: bool = True
) -> dict[str, Figures]:
    """Run the cases in rounds (each case once per round, in turn); a first untimed round warms up
    caches and lazy imports."""
    if warmup:
        for function in cases.values():
            function()
    figures = {name: Figures() for name in cases}
    for _ in range(repeats):
        for name, function in cases.items():
            measure_once(function, figures[name])
    return figures


def ratio(numerator: Figures, denominator: Figures) -> float:
    return round(numerator.median / denominator.median, 3)


# ---------------------------------------------------------------------------------- subprocesses


@dataclass
class ProcessRun:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_process(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ProcessRun:
    """Run a command to completion; its wall time, CPU time (user + system) and peak RSS."""
    # Output goes to files, not pipes, so that the child can be reaped with wait4 (which reports its
    # own resource usage) without a reader thread.
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8") as err,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=out, stderr=err, env=dict(env) if env is not None else None, cwd=cwd
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return ProcessRun(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / KIB,
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
    )


# -------------------------------------------------------------------------------------- protocol


def part_arguments(description: str) -> argparse.Namespace:
    """The part-script protocol: ``python bench/bench_X.py --data-dir NATIONAL_DIR --json PART.json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_NATIONAL_DIR, help="national data directory")
    parser.add_argument("--json", type=Path, required=True, help="where to write this part's figures")
    return parser.parse_args()


def repeats_setting(default: int = DEFAULT_REPEATS) -> int:
    return max(1, int(os.environ.get(REPEATS_ENV, default)))


def write_json(path: Path, figures: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(figures, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8"
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -------------------------------------------------------------------------------------- printing


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = text_table([str(h) for h in header], [[_cell(value) for value in row] for row in rows])
    print(f"\n{title}\n" + "\n".join("  " + line for line in table.splitlines()), flush=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --------------------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / KIB / KIB, 1)
    except OSError:
        pass
    return {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }
