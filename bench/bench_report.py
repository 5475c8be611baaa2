"""Edition report benchmark on the national data set: what the report step costs per edition, with its
editions drawn side by side in worker processes or one after the other, with the charts' layout font or
the former one, and with and without the PNGs of its charts.

The last ``EDITIONS`` editions of the national data set are materialized once (``dei materialize``,
index and analysis, in a child process on a scratch warehouse), then each edition's rows are read from
that warehouse and, in rounds:

- ``report``: ``write_edition_reports`` (the charts drawn by vl-convert, the HTML page, the SVG files;
  the editions spread over one worker process per core): what the publication runs;
- ``report_one_process``: ``write_edition_report`` for every edition, one after the other in this
  process (what a run of one edition does);
- ``report_former_font``: the same with Noto Sans CJK (CFF outlines) first in the charts' fonts, as the
  report had it, instead of WenQuanYi Micro Hei (TrueType);
- ``report_and_pngs``: ``report_one_process``, then ``write_chart_pngs`` for every edition: what the
  publication ran when every chart was also drawn as a PNG;
- ``pngs``: ``write_chart_pngs`` alone (what ``report_pngs`` costs on request).

CPU times include the worker processes'.

    python bench/bench_report.py --data-dir NATIONAL_DIR --json PART.json
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from harness import (
    REPO_ROOT,
    in_rounds,
    part_arguments,
    print_table,
    ratio,
    repeats_setting,
    run_process,
    write_json,
)

from dei_pipeline.config import data_provenance_note
from dei_pipeline.ingest import list_editions
from dei_pipeline.registry import load_registry
from dei_pipeline.report import charts as report_charts
from dei_pipeline.report.publish import write_chart_pngs, write_edition_report, write_edition_reports
from dei_pipeline.report.rows import EditionRows, read_edition_rows
from dei_pipeline.tiers import load_tiers
from dei_pipeline.warehouse import open_warehouse

EDITIONS = 8  # enough for the publication to spread them over worker processes (MIN_EDITIONS_PER_WORKER)
# The charts' fonts before WenQuanYi Micro Hei came first: Noto Sans CJK lays the text out.
FORMER_FONT_FAMILY = (
    "'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
    "'WenQuanYi Micro Hei',sans-serif"
)


def materialized_rows(data_dir: Path, scratch: Path) -> list[EditionRows]:
    """The rows of the last EDITIONS editions, from a warehouse made of those editions alone."""
    data = scratch / "data"
    shutil.copytree(data_dir, data)
    editions = list_editions(data)
    for year in editions[:-EDITIONS]:
        shutil.rmtree(data / "raw" / str(year))
    warehouse = scratch / "warehouse" / "dei.duckdb"
    command = [sys.executable, "-m", "dei_pipeline.cli", "materialize", "--data-dir", str(data)]
    result = run_process(
        [*command, "--warehouse", str(warehouse)],
        env={
            **{key: value for key, value in os.environ.items() if not key.startswith("DEI_")},
            "DAGSTER_HOME": str(scratch / "dagster_home"),
        },
        cwd=REPO_ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dei materialize failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    tiers, regions, note = load_tiers(data), load_registry(data).regions, data_provenance_note(data)
    with open_warehouse(warehouse, read_only=True) as con:
        return [read_edition_rows(con, year, tiers, regions, note) for year in editions[-EDITIONS:]]


def main() -> None:
    args = part_arguments(__doc__ or "")
    repeats = repeats_setting(3)
    with tempfile.TemporaryDirectory(prefix="dei-bench-report-") as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "dagster_home").mkdir()
        rows = materialized_rows(args.data_dir, scratch)
        reports = scratch / "reports"

        def report() -> None:
            write_edition_reports(rows, reports)

        def report_one_process() -> None:
            for edition in rows:
                write_edition_report(edition, reports)

        def report_former_font() -> None:
            font = report_charts.CONFIG["font"]
            report_charts.CONFIG["font"] = FORMER_FONT_FAMILY
            try:
                report_one_process()
            finally:
                report_charts.CONFIG["font"] = font

        def pngs() -> None:
            for edition in rows:
                write_chart_pngs(reports, edition.survey_year)

        def report_and_pngs() -> None:
            report_one_process()
            pngs()

        figures = in_rounds(
            {
                "report": report,
                "report_one_process": report_one_process,
                "report_former_font": report_former_font,
                "report_and_pngs": report_and_pngs,
                "pngs": pngs,
            },
            repeats,
        )
        charts = sum(len(list((reports / str(edition.survey_year)).glob("*.svg"))) for edition in rows)
    result = {
        "editions": [edition.survey_year for edition in rows],
        "charts": charts,
        **{name: case.summary() for name, case in figures.items()},
        "report_over_report_one_process": ratio(figures["report"], figures["report_one_process"]),
        "report_one_process_over_report_former_font": ratio(
            figures["report_one_process"], figures["report_former_font"]
        ),
        "report_one_process_over_report_and_pngs": ratio(
            figures["report_one_process"], figures["report_and_pngs"]
        ),
        "pngs_over_report_one_process": ratio(figures["pngs"], figures["report_one_process"]),
    }
    print_table(
        f"edition report, {len(rows)} national editions, {charts} charts ({repeats} rounds, medians)",
        ["case", "median wall s", "median CPU s", "s per chart"],
        [
            [name, case.median, case.summary()["median_cpu_s"], round(case.median / charts, 3)]
            for name, case in figures.items()
        ],
    )
    print(
        f"report / report_one_process = {result['report_over_report_one_process']}; "
        f"report_one_process / report_former_font = {result['report_one_process_over_report_former_font']}; "
        f"report_one_process / report_and_pngs = {result['report_one_process_over_report_and_pngs']}; "
        f"pngs / report_one_process = {result['pngs_over_report_one_process']}",
        flush=True,
    )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
