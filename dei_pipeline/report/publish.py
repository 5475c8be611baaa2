"""Writing an edition's report to disk: ``<reports>/<edition>.html`` with its charts inline, and
``<reports>/<edition>/<chart>.svg`` for slides; on request, ``<reports>/<edition>/<chart>.png`` drawn
from those SVG files. Files are replaced whole (write aside, then rename), so a reader never opens a
half-written report, and the chart folder is replaced with the page, so that no SVG or PNG outlives
the chart it was made from."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

from dei_pipeline.report.charts import edition_charts, svg_to_png
from dei_pipeline.report.html import render_report
from dei_pipeline.report.rows import EditionRows

PNG_SCALE = 2.0  # device pixels per CSS pixel: sharp on slides and high-density screens
# A worker process's start (its imports and vl-convert's engine, 1.4-3 CPU-seconds) costs about one
# edition's drawing: the editions are spread over workers only when each gets at least this many
# (measured: 4 sample editions took 1.1-1.2 x as long on two workers as in one process; 8 national
# editions 0.62 x; docs/performance.md).
MIN_EDITIONS_PER_WORKER = 3


@dataclass(frozen=True)
class WrittenReport:
    survey_year: int
    html_path: Path
    chart_names: list[str]
    svg_paths: list[Path]


def report_path(reports_dir: Path, survey_year: int) -> Path:
    return reports_dir / f"{survey_year}.html"


def chart_dir(reports_dir: Path, survey_year: int) -> Path:
    return reports_dir / str(survey_year)


def _replace_dir(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def write_edition_report(rows: EditionRows, reports_dir: Path) -> WrittenReport:
    """Write the edition's HTML report and one SVG file per chart, replacing the edition's chart folder
    as a whole (PNGs of an earlier report included), so that nothing of a chart the edition no longer
    has, or had drawn differently, is left to contradict the new report."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    year = rows.survey_year
    charts = edition_charts(rows)
    target = chart_dir(reports_dir, year)
    staging = reports_dir / f".{year}.charts.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, chart in charts.items():
        (staging / f"{name}.svg").write_text(chart.svg, encoding="utf-8")
    _replace_dir(staging, target)
    html_path = report_path(reports_dir, year)
    partial = html_path.with_name(f".{html_path.name}.tmp")
    partial.write_text(render_report(rows, charts, target.name), encoding="utf-8")
    os.replace(partial, html_path)
    return WrittenReport(year, html_path, list(charts), [target / f"{name}.svg" for name in charts])


def write_edition_reports(editions: Sequence[EditionRows], reports_dir: Path) -> list[WrittenReport]:
    """Write the reports of several editions, side by side on the machine's cores when there are enough
    of them (MIN_EDITIONS_PER_WORKER), else one after the other in this process.

    The charts are drawn by vl-convert, which serialises the calls of one process (its JavaScript
    engine), so more editions at once need more processes."""
    workers = min(len(editions) // MIN_EDITIONS_PER_WORKER, len(os.sched_getaffinity(0)))
    if workers <= 1:
        return [write_edition_report(rows, reports_dir) for rows in editions]
    # spawn, not fork: the parent runs DuckDB's and polars' threads, which a fork would copy mid-flight.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(write_edition_report, editions, repeat(reports_dir)))


class MissingReportError(FileNotFoundError):
    """An edition has no report (or a report without charts) to draw PNGs from."""


def write_chart_pngs(reports_dir: Path, survey_year: int, scale: float = PNG_SCALE) -> list[Path]:
    """Draw a PNG of ``scale`` times its size beside each SVG file of the edition's report."""
    svgs = sorted(chart_dir(reports_dir, survey_year).glob("*.svg"))
    if not svgs:
        raise MissingReportError(
            f"{report_path(reports_dir, survey_year)}: no report with charts for edition {survey_year} "
            f"(no SVG files in {chart_dir(reports_dir, survey_year)}); materialize edition_report for it first"
        )
    written: list[Path] = []
    for svg in svgs:
        png = svg.with_suffix(".png")
        partial = png.with_name(f".{png.name}.tmp")
        partial.write_bytes(svg_to_png(svg.read_text(encoding="utf-8"), scale))
        os.replace(partial, png)
        written.append(png)
    return written
