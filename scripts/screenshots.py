"""Refresh the README pictures in docs/images/ (`make screenshots`).

1. Materializes the committed sample (SYNTHETIC data) in a private directory with its own Dagster
   instance, so the UI has runs, partitions and check results to show.
2. Stops `raw_files_sensor` in that instance (it would otherwise launch a run per edition while the
   pictures are taken) and starts `dagster dev` on loopback, exactly as `make ui` does.
3. Drives headless Chromium (Playwright, Debian's chromium) through the UI and the 2020 report and
   saves one PNG per view, checking that none is blank. Each step waits for what it needs on the page
   (a text, the network falling quiet, animations ending, the graph standing still), not for a time.

Nothing of the project's own data/warehouse or .dagster_home is used; the server is always stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page
from sample_run import SampleRun, materialize_sample  # scripts/ is on sys.path when this file runs

from dei_pipeline.browser import chromium, pixel_summary
from dei_pipeline.config import REPO_ROOT
from dei_pipeline.report.publish import write_chart_pngs

HOST = "127.0.0.1"  # loopback only
DAGSTER = Path(sys.executable).with_name("dagster")
OUT_DIR = REPO_ROOT / "docs" / "images"
SERVER_TIMEOUT = 120.0
PAGE_TIMEOUT_MS = 90_000
SCALE = 1.5  # device pixels per CSS pixel: legible when GitHub shrinks the picture to the page width
REPORT_CHART_FOR_README = "level1_by_tier"


@dataclass(frozen=True)
class Shot:
    file: str
    caption: str
    take: Callable[[Page, str, SampleRun], None]


# --------------------------------------------------------------------------------- page helpers


def settle(page: Page) -> None:
    """Wait until the page is quiet: no request in flight and no CSS animation or transition running."""
    page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "document.getAnimations().every(a => a.playState !== 'running')", timeout=PAGE_TIMEOUT_MS
    )


def shown_text(page: Page, text: str) -> Locator:
    """The visible elements whose text is exactly ``text`` (the UI keeps hidden copies to measure)."""
    return page.get_by_text(text, exact=True).filter(visible=True)


def click_text(page: Page, text: str) -> None:
    """Click the last visible element whose text is exactly ``text`` (the UI repeats labels in tooltips)."""
    shown_text(page, text).last.click()
    settle(page)


def button(page: Page, label: str) -> Locator:
    """A button by its visible text or its icon's aria-label (zoom_out, panel_show_right, ...). Not by
    role and name: a button's accessible name joins its icon's label and its text."""
    buttons = page.locator("button")
    return buttons.filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).or_(
        buttons.filter(has=page.locator(f'[aria-label="{label}"]'))
    )


def hide_side_panels(page: Page) -> None:
    """More room for the graph: collapse the navigation (the UI remembers that) and the group tree."""
    for label in ("Hide navigation", "panel_show_right"):
        if button(page, label).filter(visible=True).count():
            button(page, label).filter(visible=True).first.click()
            settle(page)


def open_page(page: Page, url: str, wait_text: str, width: int = 1600, height: int = 1000) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    page.get_by_text(wait_text).filter(visible=True).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)  # late queries and transitions


# The graph canvas: the area under the toolbar that holds "Materialize all…", and the asset and group
# nodes drawn in it (the UI renders only the nodes in view, so a fit must zoom out until all are).
GRAPH_GEOMETRY = """(() => {
  let bar = [...document.querySelectorAll('button')].find(b => b.innerText.trim().startsWith('Materialize all'));
  while (bar && bar.getBoundingClientRect().width < window.innerWidth * 0.5) bar = bar.parentElement;
  const toolbar = bar.getBoundingClientRect();
  const nodes = [...document.querySelectorAll('svg foreignObject')].map(n => n.getBoundingClientRect()).filter(r => r.width > 0);
  return {area: {left: toolbar.left, top: toolbar.bottom, right: window.innerWidth - 60, bottom: window.innerHeight},
          box: {left: Math.min(...nodes.map(r => r.left)), top: Math.min(...nodes.map(r => r.top)),
                right: Math.max(...nodes.map(r => r.right)), bottom: Math.max(...nodes.map(r => r.bottom))},
          nodes: nodes.length};
})()"""


# Resolves once the graph's nodes have stood still for a few frames: zooming and panning animate.
GRAPH_STILL = """() => new Promise(resolve => {
  let last = '', still = 0;
  const tick = () => {
    const boxes = JSON.stringify([...document.querySelectorAll('svg foreignObject')].map(n => n.getBoundingClientRect()));
    still = boxes === last ? still + 1 : 0;
    last = boxes;
    if (still >= 5) resolve(true); else requestAnimationFrame(tick);
  };
  tick();
})"""


def _still(page: Page) -> dict[str, Any]:
    page.evaluate(GRAPH_STILL)
    return page.evaluate(GRAPH_GEOMETRY)


def _fits(geometry: dict[str, Any], margin: float) -> bool:
    area, box = geometry["area"], geometry["box"]
    return (
        box["right"] - box["left"] <= area["right"] - area["left"] - 2 * margin
        and box["bottom"] - box["top"] <= area["bottom"] - area["top"] - 2 * margin
    )


def _zoom(page: Page, direction: str) -> dict[str, Any]:
    button(page, f"zoom_{direction}").filter(visible=True).first.click()
    return _still(page)


def _center_graph(page: Page) -> dict[str, Any]:
    """Drag the canvas so that the nodes' bounding box sits in the middle of it."""
    geometry = _still(page)
    area, box = geometry["area"], geometry["box"]
    dx = (area["left"] + area["right"]) / 2 - (box["left"] + box["right"]) / 2
    dy = (area["top"] + area["bottom"]) / 2 - (box["top"] + box["bottom"]) / 2
    start_x, start_y = area["left"] + 15, area["bottom"] - 15  # an empty corner of the canvas
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + dx, start_y + dy, steps=10)
    page.mouse.up()
    return _still(page)


def fit_graph(page: Page, margin: float = 24) -> None:
    """Zoom and pan the asset graph until every node is in view, as large as fits."""
    geometry, seen = _still(page), -1
    for _ in range(20):  # zoom out until all nodes are rendered and fit
        if _fits(geometry, margin) and geometry["nodes"] == seen:
            break
        seen = geometry["nodes"]
        geometry = _zoom(page, "out")
    _center_graph(page)
    for _ in range(10):  # then zoom in while it still fits
        _zoom(page, "in")
        if not _fits(_center_graph(page), margin):
            _zoom(page, "out")
            _center_graph(page)
            break


# ---------------------------------------------------------------------------------------- shots


def shot_asset_groups(page: Page, base: str, sample: SampleRun) -> None:
    open_page(page, f"{base}/asset-groups", "Materialize all", 1500, 900)
    hide_side_panels(page)
    fit_graph(page)


def shot_report_lineage(page: Page, base: str, sample: SampleRun) -> None:
    open_page(
        page, f"{base}/assets/edition_report?view=lineage&lineageScope=upstream&lineageDepth=1", "Graph depth"
    )
    hide_side_panels(page)
    _still(page)  # the graph lays itself out to fit this view


def shot_partition_2020(asset: str, metadata_key: str, page: Page, base: str, sample: SampleRun) -> None:
    """An asset's partitions page with the 2020 partition open, once its metadata (``metadata_key``) shows."""
    open_page(page, f"{base}/assets/{asset}?view=partitions", "Materialized (4)")
    click_text(page, "2020")
    shown_text(page, metadata_key).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def shot_asset_checks(page: Page, base: str, sample: SampleRun) -> None:
    open_page(page, f"{base}/assets/reconciliation?view=checks", "region_scores_match_published")
    click_text(page, "region_scores_match_published")
    # The check is evaluated per edition: open edition 2020's evaluation, whose metadata lists the
    # disagreements as a table.
    shown_text(page, "Partitions").last.click()
    shown_text(page, "2020").last.click()
    shown_text(page, "mismatch").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def shot_report(page: Page, base: str, sample: SampleRun) -> None:
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.goto((sample.reports / "2020.html").as_uri())
    page.wait_for_function("document.fonts.status === 'loaded'")


SHOTS = (
    Shot(
        "ui_asset_groups.png",
        "Dagster UI, global asset lineage: the asset groups and how they feed each other",
        shot_asset_groups,
    ),
    Shot(
        "ui_report_lineage.png",
        "Dagster UI, the edition_report asset and the marts it reads, boxed by asset group "
        "(red: reconciliation, whose regional check fails)",
        shot_report_lineage,
    ),
    Shot(
        "ui_partitioned_asset.png",
        "Dagster UI, a partitioned asset: city_index, one partition per survey edition, 2020 selected",
        partial(shot_partition_2020, "city_index", "top_ten"),
    ),
    Shot(
        "ui_asset_checks.png",
        "Dagster UI, the reconciliation checks; the regional scores disagree with the white paper",
        shot_asset_checks,
    ),
    Shot(
        "ui_report_asset.png",
        "Dagster UI, the edition_report asset: the ranking's top rows as Markdown metadata",
        partial(shot_partition_2020, "edition_report", "top_of_ranking"),
    ),
    Shot("report_2020.png", "The 2020 edition report (SYNTHETIC sample data), first screen", shot_report),
)


# ---------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_dev(sample: SampleRun, log: Path) -> Iterator[str]:
    """`dagster dev` on a free loopback port over the sample; yields its base URL, always stops it."""
    env = sample.environment()
    stopped = subprocess.run(
        [str(DAGSTER), "sensor", "stop", "raw_files_sensor", "-w", "workspace.yaml"],
        check=False,  # its output goes into the error below
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if stopped.returncode != 0:
        raise RuntimeError(f"could not stop raw_files_sensor:\n{stopped.stdout}\n{stopped.stderr}")
    port = _free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", HOST, "-p", str(port), "-w", "workspace.yaml"],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # its own process group: webserver, daemon, code server
        try:
            base = f"http://{HOST}:{port}"
            deadline = time.monotonic() + SERVER_TIMEOUT
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"dagster dev exited with {server.returncode}; see {log}")
                try:
                    with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"dagster dev did not answer within {SERVER_TIMEOUT:.0f} s; see {log}"
                        ) from None
                    time.sleep(1)
            yield base
        finally:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                try:
                    os.killpg(server.pid, sig)
                    server.wait(timeout=wait)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the PNGs go (default: docs/images)")
    parser.add_argument("--only", nargs="*", help="file names of the shots to take (default: all)")
    args = parser.parse_args(argv)
    shots = [shot for shot in SHOTS if not args.only or shot.file in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dei-screenshots-") as scratch:
        print("screenshots: materializing the sample (synthetic data) in a private directory ...", flush=True)
        sample = materialize_sample(Path(scratch))
        # The chart's PNG as report_pngs draws it on request.
        [chart] = [
            png for png in write_chart_pngs(sample.reports, 2020) if png.stem == REPORT_CHART_FOR_README
        ]
        shutil.copy(chart, args.out / f"report_chart_{REPORT_CHART_FOR_README}.png")
        print("screenshots: starting dagster dev on loopback ...", flush=True)
        with dagster_dev(sample, Path(scratch) / "dagster_dev.log") as base, chromium() as browser:
            # The UI's Content-Security-Policy forbids eval, which Playwright's wait_for_function uses.
            page = browser.new_page(device_scale_factor=SCALE, bypass_csp=True)
            for shot in shots:
                target = args.out / shot.file
                shot.take(page, base, sample)
                page.screenshot(path=target)
                pixels = pixel_summary(target)
                if pixels.looks_blank:
                    raise RuntimeError(f"{target} looks blank: {pixels}")
                print(
                    f"  {target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target}: "
                    f"{pixels.width}x{pixels.height} — {shot.caption} (SYNTHETIC sample data)",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
