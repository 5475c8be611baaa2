"""``dei``: the command line. ``dei materialize`` runs the same Dagster definitions as the UI, in
process and on the same instance (a project-local DAGSTER_HOME), then prints a summary."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dei_pipeline.config import default_data_dir, default_warehouse_path, prepare_dagster_home
from dei_pipeline.locking import WarehouseBusyError, warehouse_lock

if TYPE_CHECKING:  # Dagster is imported when a command needs it: `dei --help` stays quick
    import dagster as dg


def parse_years(text: str, available: Sequence[int]) -> list[int]:
    """``all`` or a comma-separated list of four-digit editions present under data/raw/."""
    if text.strip() == "all":
        return list(available)
    years = []
    for part in text.split(","):
        part = part.strip()
        if not (len(part) == 4 and part.isdigit()):
            raise SystemExit(
                f"dei: edition {part!r} is not a four-digit year (use e.g. --years 2020,2019 or --years all)"
            )
        if int(part) not in available:
            raise SystemExit(
                f"dei: edition {part} has no folder with raw files under data/raw/ (found: {', '.join(map(str, available)) or 'none'})"
            )
        years.append(int(part))
    return sorted(set(years))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class _StepProgress(logging.Handler):
    """Prints one line per finished or failed step while the run goes on: its wall time, and the CPU time
    the process and its workers spent meanwhile (above the wall time when the step keeps several cores
    busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, tuple[float, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is None or event.step_key is None:
            return
        if event.event_type_value == "STEP_START":
            self.started[event.step_key] = (time.perf_counter(), cpu_seconds())
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            wall, cpu = self.started.get(event.step_key, (time.perf_counter(), cpu_seconds()))
            outcome = "done  " if event.event_type_value == "STEP_SUCCESS" else "FAILED"
            print(
                f"  {outcome} {event.step_key:<18} {time.perf_counter() - wall:6.2f}s"
                f"  CPU {cpu_seconds() - cpu:6.2f}s",
                flush=True,
            )


def _progress_logger() -> dg.LoggerDefinition:
    import dagster as dg

    def step_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.getLogger("dei.progress")
        logger.setLevel(logging.DEBUG)
        logger.handlers = [_StepProgress()]
        logger.propagate = False
        return logger

    return dg.LoggerDefinition(step_progress, description="One line per step, for the command line")


# What `dei materialize --job` runs: the Dagster jobs, in order; the publication follows those that
# change the warehouse (not the charts' PNGs).
JOBS_OF = {
    "index": ("index_job",),
    "analysis": ("analysis_job",),
    "all": ("index_job", "analysis_job"),
    "pngs": ("report_png_job",),
}
UNPUBLISHED_JOBS = frozenset({"pngs"})
# Runs the command line launches carry this tag (the UI shows where a run came from).
LAUNCHED_BY_TAG = "dei/launched_by"


def materialize(
    years: str,
    data_dir: Path,
    warehouse: Path,
    job: str = "all",
    propagate: bool = True,
    confirm_removal: bool = False,
) -> int:
    prepare_dagster_home()  # shared with `make ui`: <repo>/.dagster_home unless DAGSTER_HOME is set
    import dagster as dg

    from dei_pipeline.definitions import build_definitions
    from dei_pipeline.defs.partitions import Editions
    from dei_pipeline.defs.reruns import rerun_steps
    from dei_pipeline.defs.resources import WarehouseResource
    from dei_pipeline.defs.sources import observe_sources
    from dei_pipeline.ingest import list_editions

    available = list_editions(data_dir)
    selected = parse_years(years, available)
    if not selected:
        print(f"dei: no edition under {data_dir / 'raw'}", file=sys.stderr)
        return 2
    # Hold the warehouse for the whole run, Dagster bookkeeping included: a second
    # `dei materialize` on the same warehouse waits for this one to finish.
    try:
        with warehouse_lock(
            warehouse, on_wait=lambda message: print(f"dei: {message} ...", file=sys.stderr, flush=True)
        ):
            instance = dg.DagsterInstance.get()
            resource = WarehouseResource(data_dir=str(data_dir), warehouse_path=str(warehouse))
            defs = build_definitions(resource, loggers={"step_progress": _progress_logger()})
            if job == "analysis" and (missing := editions_without_index(warehouse, selected)):
                print(
                    f"dei: {warehouse} has no index for edition(s) {', '.join(map(str, missing))}: the analysis starts from it; "
                    f"so run `dei materialize --job all` (or --job index first)",
                    file=sys.stderr,
                )
                return 2
            # Record the raw and reference files' current data versions, so that the UI's staleness
            # compares the next change with what this run read.
            observe_sources(instance, resource, available)
            steps = rerun_steps(defs, JOBS_OF[job], selected, Editions.of(available), propagate)
            _say_what_follows(selected, steps)
            started = time.perf_counter()
            for step in steps:
                if not _run(
                    defs.resolve_job_def(step.job_name),
                    instance,
                    step.editions,
                    step.assets,
                    warehouse,
                    confirm_removal,
                ):
                    return 1
            if job in UNPUBLISHED_JOBS:
                print(
                    f"dei: materialized {len(selected)} edition(s) ({' then '.join(JOBS_OF[job])}) "
                    f"in {time.perf_counter() - started:.1f}s"
                )
                return 0
            published = _run(defs.resolve_job_def("publish_job"), instance, (), None, warehouse)
            print(
                f"dei: materialized {len(selected)} edition(s) ({' then '.join(JOBS_OF[job])}"
                f"{', published' if published else ', NOT published'}) in {time.perf_counter() - started:.1f}s\n"
            )
            _print_summary(
                selected[-1], job, data_dir, warehouse
            )  # the newest edition; `dei summary --year` shows the others
            return 0 if published else 1
    except WarehouseBusyError as error:
        print(f"dei: {error}", file=sys.stderr)
        return 1


def _say_what_follows(selected: Sequence[int], steps: Sequence[Any]) -> None:
    """Name the later editions a rerun also refreshes, and what of them."""
    refreshed: dict[str, set[str]] = {}
    for step in steps:
        if step.assets is not None:
            for key in step.editions:
                refreshed.setdefault(key, set()).update(asset.to_user_string() for asset in step.assets)
    changed = ", ".join(map(str, selected))
    for key, assets in sorted(refreshed.items()):
        print(
            f"dei: {changed} changed: also refreshing what edition {key} reads of it ({', '.join(sorted(assets))})",
            flush=True,
        )


def editions_without_index(warehouse: Path, editions: Sequence[int]) -> list[int]:
    """The editions among ``editions`` whose aggregated scores are not in the warehouse."""
    from dei_pipeline.warehouse import editions_in, open_warehouse

    if not warehouse.exists():
        return list(editions)
    with open_warehouse(warehouse, read_only=True) as con:
        indexed = set(editions_in(con, "marts.subindex_scores"))
    return [year for year in editions if year not in indexed]


def _print_summary(year: int, job: str, data_dir: Path, warehouse: Path) -> None:
    from dei_pipeline.summary import edition_summary

    print(edition_summary(warehouse, year, data_dir))
    if job == "index":
        print(
            "dei: the analysis marts and the report are as they were, so BI keeps the last consistent publication until "
            "`dei materialize --job analysis` brings them up to date (in the UI, the automation does it by itself)."
        )


def step_failures(result: Any) -> dict[str, str]:
    """Why each failed step failed, in the words of the error itself (not Dagster's wrapper)."""
    reasons: dict[str, str] = {}
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE" or event.step_failure_data is None:
            continue
        user_failure = event.step_failure_data.user_failure_data
        if user_failure is not None and user_failure.description:
            reasons[event.step_key] = user_failure.description
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        reasons[event.step_key] = (
            _error_text(error.cls_name, error.message) if error is not None else "unknown error"
        )
    return reasons


def _error_text(cls_name: str, message: str) -> str:
    """``<class>: <message>``, naming the class once: Dagster's message already starts with the class,
    qualified by its module (``dei_pipeline.report.publish.MissingReportError: ...``)."""
    qualified, separator, text = message.strip().partition(": ")
    if separator and (qualified == cls_name or qualified.endswith(f".{cls_name}")):
        return f"{cls_name}: {text}"
    return f"{cls_name}: {message.strip()}"


def _run(
    job: Any,
    instance: Any,
    block: Sequence[str],
    assets: Sequence[Any] | None,
    warehouse: Path,
    confirm_removal: bool = False,
) -> bool:
    """One in-process run of ``job`` over a block of contiguous editions (none: an unpartitioned job), of
    all its assets or of ``assets``; False (reasons printed) when it fails."""
    from dei_pipeline.defs.partitions import range_tags
    from dei_pipeline.removal import CONFIRM_REMOVAL_TAG

    label = (
        "every edition"
        if not block
        else f"edition(s) {block[0] if len(block) == 1 else f'{block[0]}-{block[-1]}'}"
    )
    subset = "" if assets is None else f" ({', '.join(asset.to_user_string() for asset in assets)})"
    print(f"dei: {job.name} for {label}{subset} into {warehouse} ...", flush=True)
    result = job.execute_in_process(
        instance=instance,
        partition_key=block[0] if len(block) == 1 else None,
        tags={
            LAUNCHED_BY_TAG: "cli",
            **range_tags(block),
            **({CONFIRM_REMOVAL_TAG: "true"} if confirm_removal else {}),
        },
        asset_selection=list(assets) if assets is not None else None,
        run_config={"loggers": {"step_progress": {}}},
        raise_on_error=False,
    )
    if result.success:
        return True
    failed_checks = failed_blocking_checks(result)
    for step_key, reason in step_failures(result).items():
        if not failed_checks:  # else the checks below say why, in their own words
            print(f"dei: step {step_key} failed:\n{reason}", file=sys.stderr)
    for evaluation in failed_checks:
        print(f"dei: check {evaluation.check_name} failed: {evaluation.description}", file=sys.stderr)
    print(
        f"dei: run {result.run_id} failed; the warehouse keeps the last good data of every edition, "
        "and BI the last consistent publication.",
        file=sys.stderr,
    )
    return False


def failed_blocking_checks(result: Any) -> list[Any]:
    """The blocking asset checks that failed in a run (what held the publication back)."""
    evaluations = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return [e for e in evaluations if e.blocking and not e.passed]


def _materialize_command(args: argparse.Namespace) -> int:
    data_dir = (args.data_dir or default_data_dir()).resolve()
    warehouse = (args.warehouse or default_warehouse_path(data_dir)).resolve()
    return materialize(
        args.years,
        data_dir,
        warehouse,
        args.job,
        propagate=not args.no_propagate,
        confirm_removal=args.confirm_removal,
    )


def _sample_data_command(args: argparse.Namespace) -> int:
    if args.scale == "national":
        if args.out is None:
            raise SystemExit("dei: --scale national needs --out DIR (the national data set is not committed)")
        from dei_pipeline.synthetic.national import write_national_data

        paths = write_national_data(args.out.resolve(), seed=args.seed)
    else:
        if args.out is not None:
            raise SystemExit(
                "dei: --out goes with --scale national; the sample is written to <data-dir>/raw/"
            )
        from dei_pipeline.synthetic.sample import write_sample_data

        paths = write_sample_data((args.data_dir or default_data_dir()).resolve(), seed=args.seed)
    print(f"dei: wrote {len(paths)} synthetic file(s)")
    return 0


def _summary_command(args: argparse.Namespace) -> int:
    from dei_pipeline.summary import edition_summary

    data_dir = (args.data_dir or default_data_dir()).resolve()
    print(
        edition_summary((args.warehouse or default_warehouse_path(data_dir)).resolve(), args.year, data_dir)
    )
    return 0


def _profile_command(args: argparse.Namespace) -> int:
    from dei_pipeline.analysis.profile import print_profile

    return print_profile(args.unit, args.year, (args.warehouse or default_warehouse_path()).resolve())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dei", description="City Digital Economy Index pipeline")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "materialize", help="run the index for some or all editions and print a summary"
    )
    run.add_argument("--years", default="all", help="'all' (default) or editions, e.g. 2020,2019")
    run.add_argument(
        "--data-dir", type=Path, help="data directory (default: $DEI_DATA_DIR or the repository's data/)"
    )
    run.add_argument(
        "--warehouse", type=Path, help="DuckDB file (default: $DEI_WAREHOUSE or <data>/warehouse/dei.duckdb)"
    )
    run.add_argument(
        "--job",
        choices=tuple(JOBS_OF),
        default="all",
        help="'all' (default): index_job then analysis_job; 'index': raw files to the index marts; "
        "'analysis': the analysis marts and the edition report from the index in the warehouse; "
        "'pngs': PNGs of the report's charts, for slides (<warehouse dir>/reports/<edition>/<chart>.png). "
        "publish_job follows all but 'pngs': the consistency checks, then Parquet and the serving snapshot",
    )
    run.add_argument(
        "--no-propagate",
        action="store_true",
        help="for experts: do not refresh the later editions that read the selected ones (their "
        "comparisons then disagree, and nothing is published until they are refreshed)",
    )
    run.add_argument(
        "--confirm-removal",
        action="store_true",
        help="let the run remove more than removal.max_share (data/method/settings.yaml), or all, of an "
        "edition's cities or county units from the warehouse (refused otherwise, as a raw file gone missing "
        "by mistake looks the same); sets the run tag dei/confirm_removal=true",
    )
    run.set_defaults(handler=_materialize_command)

    sample = commands.add_parser(
        "sample-data", help="(re)write the synthetic sample, or write a national-scale data set"
    )
    sample.add_argument(
        "--scale",
        choices=("sample", "national"),
        default="sample",
        help="'sample' (default): the committed 148-city sample under <data>/raw/; "
        "'national': a complete data directory for ~340 cities, ~2,850 county units and 20 editions",
    )
    sample.add_argument(
        "--data-dir", type=Path, help="data directory of the sample (default: the repository's data/)"
    )
    sample.add_argument("--out", type=Path, help="output data directory (required with --scale national)")
    sample.add_argument("--seed", type=int, default=2020)
    sample.set_defaults(handler=_sample_data_command)

    show = commands.add_parser("summary", help="print the summary of one edition from the warehouse")
    show.add_argument("--year", type=int, required=True)
    show.add_argument(
        "--data-dir", type=Path, help="data directory (default: $DEI_DATA_DIR or the repository's data/)"
    )
    show.add_argument("--warehouse", type=Path)
    show.set_defaults(handler=_summary_command)

    profile = commands.add_parser(
        "profile", help="a unit's strengths and weaknesses in one edition, e.g. dei profile 杭州 --year 2020"
    )
    profile.add_argument("unit", help="unit name as published (杭州, 深圳市南山区) or its 6-digit code")
    profile.add_argument("--year", type=int, required=True)
    profile.add_argument("--warehouse", type=Path)
    profile.set_defaults(handler=_profile_command)

    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
