"""Writing an edition's report to disk: ``<reports>/<edition>.html`` and
``<reports>/<edition>/<chart>.png`` for slides. Files are replaced whole (write aside, then rename),
so a reader never opens a half-written report and no PNG outlives the chart it was made from."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dei_pipeline.report.charts import edition_charts
from dei_pipeline.report.html import render_report
from dei_pipeline.report.rows import EditionRows

PNG_SCALE = 2.0  # device pixels per CSS pixel: sharp on slides and high-density screens


@dataclass(frozen=True)
class WrittenReport:
    survey_year: int
    html_path: Path
    chart_names: list[str]
    png_paths: list[Path]


def report_path(reports_dir: Path, survey_year: int) -> Path:
    return reports_dir / f"{survey_year}.html"


def png_dir(reports_dir: Path, survey_year: int) -> Path:
    return reports_dir / str(survey_year)


def _replace_dir(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def write_edition_report(rows: EditionRows, reports_dir: Path) -> WrittenReport:
    """Write the edition's HTML report and one PNG per chart, replacing the edition's old PNGs as a
    whole so that none of a chart the edition no longer has is left to contradict the new report."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    year = rows.survey_year
    charts = edition_charts(rows)
    target_png_dir = png_dir(reports_dir, year)
    staging = reports_dir / f".{year}.png.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, chart in charts.items():
        (staging / f"{name}.png").write_bytes(chart.png(PNG_SCALE))
    _replace_dir(staging, target_png_dir)
    html_path = report_path(reports_dir, year)
    partial = html_path.with_name(f".{html_path.name}.tmp")
    partial.write_text(render_report(rows, charts, target_png_dir.name), encoding="utf-8")
    os.replace(partial, html_path)
    return WrittenReport(year, html_path, list(charts), [target_png_dir / f"{name}.png" for name in charts])
