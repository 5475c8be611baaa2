"""Refresh the README pictures in docs/images/ (`make screenshots`).

1. Materializes the committed sample (SYNTHETIC data) in a private directory with its own Dagster
   instance, so the UI has runs, partitions and check results to show.
2. Stops `raw_files_sensor` in that instance (it would otherwise launch a run per edition while the
   pictures are taken) and starts `dagster dev` on loopback, exactly as `make ui` does.
3. Drives headless Chromium through the UI and the 2020 report and saves one PNG per view, checking
   that none is blank.

Nothing of the project's own data/warehouse or .dagster_home is used; the server is always stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from functools import partial
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.report.chromium import Browser, ChromiumError
from sample_run import SampleRun, materialize_sample  # scripts/ is on sys.path when this file runs

HOST = "127.0.0.1"  # loopback only
DAGSTER = Path(sys.executable).with_name("dagster")
OUT_DIR = REPO_ROOT / "docs" / "images"
SERVER_TIMEOUT = 120.0
PAGE_TIMEOUT = 90.0
SCALE = 1.5  # device pixels per CSS pixel: legible when GitHub shrinks the picture to the page width
REPORT_CHART_FOR_README = "level1_by_tier"


@dataclass(frozen=True)
class Shot:
    file: str
    caption: str
    take: Callable[[Browser, str, SampleRun], None]


# --------------------------------------------------------------------------------- page helpers

def _mouse_click(browser: Browser, x: float, y: float, button: str = "left") -> None:
    for kind in ("mousePressed", "mouseReleased"):
        browser.command("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": button, "clickCount": 1})


def _center(browser: Browser, finder_js: str, what: str) -> tuple[float, float]:
    found = browser.evaluate(f"(() => {{ const el = {finder_js}; if (!el) return null; const r = el.getBoundingClientRect(); "
                             "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    if found is None:
        raise ChromiumError(f"{what} not found on {browser.evaluate('location.href')}")
    return float(found[0]), float(found[1])


def click_text(browser: Browser, text: str) -> None:
    """Click the last leaf element whose text is exactly ``text`` (the UI repeats labels in tooltips)."""
    finder = ("[...document.querySelectorAll('body *')].filter(e => e.children.length === 0 && "
              f"e.textContent.trim() === {json.dumps(text)}).pop()")
    _mouse_click(browser, *_center(browser, finder, f"text {text!r}"))
    time.sleep(1.0)


def _button_finder(label: str) -> str:
    return ("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === "
            f"{json.dumps(label)} || (b.querySelector('[aria-label]') || b).getAttribute('aria-label') === {json.dumps(label)})")


def click_button(browser: Browser, label: str) -> None:
    """Click a button by its visible text or its icon's aria-label (zoom_out, panel_show_right, ...)."""
    _mouse_click(browser, *_center(browser, _button_finder(label), f"button {label!r}"))
    time.sleep(0.6)


def hide_side_panels(browser: Browser) -> None:
    """More room for the graph: collapse the navigation (the UI remembers that) and the group tree."""
    for label in ("Hide navigation", "panel_show_right"):
        if browser.evaluate(f"Boolean({_button_finder(label)})"):
            click_button(browser, label)


def open_page(browser: Browser, url: str, wait_text: str, width: int = 1600, height: int = 1000) -> None:
    browser.open(url, width=width, height=height, scale=SCALE)
    browser.wait_for_text(wait_text, PAGE_TIMEOUT)
    time.sleep(1.5)  # let late queries and transitions settle


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


def _fits(geometry: dict, margin: float) -> bool:
    area, box = geometry["area"], geometry["box"]
    return (box["right"] - box["left"] <= area["right"] - area["left"] - 2 * margin
            and box["bottom"] - box["top"] <= area["bottom"] - area["top"] - 2 * margin)


def _center_graph(browser: Browser) -> None:
    """Drag the canvas so that the nodes' bounding box sits in the middle of it."""
    geometry = browser.evaluate(GRAPH_GEOMETRY)
    area, box = geometry["area"], geometry["box"]
    dx = (area["left"] + area["right"]) / 2 - (box["left"] + box["right"]) / 2
    dy = (area["top"] + area["bottom"]) / 2 - (box["top"] + box["bottom"]) / 2
    start_x, start_y = area["left"] + 15, area["bottom"] - 15  # an empty corner of the canvas
    browser.command("Input.dispatchMouseEvent", {"type": "mousePressed", "x": start_x, "y": start_y, "button": "left", "clickCount": 1})
    for step in range(1, 11):
        browser.command("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": start_x + dx * step / 10, "y": start_y + dy * step / 10,
                                                     "button": "left", "buttons": 1})
    browser.command("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": start_x + dx, "y": start_y + dy, "button": "left", "clickCount": 1})
    time.sleep(0.8)


def fit_graph(browser: Browser, margin: float = 24) -> None:
    """Zoom and pan the asset graph until every node is in view, as large as fits."""
    seen = -1
    for _ in range(20):  # zoom out until all nodes are rendered and fit
        geometry = browser.evaluate(GRAPH_GEOMETRY)
        if _fits(geometry, margin) and geometry["nodes"] == seen:
            break
        seen = geometry["nodes"]
        click_button(browser, "zoom_out")
    _center_graph(browser)
    for _ in range(10):  # then zoom in while it still fits
        click_button(browser, "zoom_in")
        _center_graph(browser)
        if not _fits(browser.evaluate(GRAPH_GEOMETRY), margin):
            click_button(browser, "zoom_out")
            _center_graph(browser)
            break


# ---------------------------------------------------------------------------------------- shots

def shot_asset_groups(browser: Browser, base: str, sample: SampleRun) -> None:
    open_page(browser, f"{base}/asset-groups", "Materialize all", 1500, 900)
    hide_side_panels(browser)
    fit_graph(browser)


def shot_report_lineage(browser: Browser, base: str, sample: SampleRun) -> None:
    open_page(browser, f"{base}/assets/edition_report?view=lineage&lineageScope=upstream&lineageDepth=1", "Graph depth")
    hide_side_panels(browser)
    time.sleep(2)  # the graph lays itself out to fit this view


def shot_partition_2020(asset: str, metadata_key: str, browser: Browser, base: str, sample: SampleRun) -> None:
    """An asset's partitions page with the 2020 partition open, once its metadata (``metadata_key``) shows."""
    open_page(browser, f"{base}/assets/{asset}?view=partitions", "Materialized (4)")
    click_text(browser, "2020")
    browser.wait_for_text(metadata_key, PAGE_TIMEOUT)
    time.sleep(1)


def shot_asset_checks(browser: Browser, base: str, sample: SampleRun) -> None:
    open_page(browser, f"{base}/assets/reconciliation?view=checks", "region_scores_match_published")
    click_text(browser, "region_scores_match_published")
    browser.wait_for_text("disagreements", PAGE_TIMEOUT)
    click_text(browser, "[Show Markdown]")


def shot_report(browser: Browser, base: str, sample: SampleRun) -> None:
    browser.open((sample.reports / "2020.html").as_uri(), width=1400, height=1500, scale=SCALE)


SHOTS = (
    Shot("ui_asset_groups.png", "Dagster UI, global asset lineage: the asset groups and how they feed each other", shot_asset_groups),
    Shot("ui_report_lineage.png", "Dagster UI, the edition_report asset and the marts it reads, boxed by asset group "
         "(red: reconciliation, whose regional check fails)", shot_report_lineage),
    Shot("ui_partitioned_asset.png", "Dagster UI, a partitioned asset: city_index, one partition per survey edition, 2020 selected", partial(shot_partition_2020, "city_index", "top_ten")),
    Shot("ui_asset_checks.png", "Dagster UI, the reconciliation checks; the regional scores disagree with the white paper", shot_asset_checks),
    Shot("ui_report_asset.png", "Dagster UI, the edition_report asset: the ranking's top rows as Markdown metadata", partial(shot_partition_2020, "edition_report", "top_of_ranking")),
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
    stopped = subprocess.run([str(DAGSTER), "sensor", "stop", "raw_files_sensor", "-w", "workspace.yaml"],
                             env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if stopped.returncode != 0:
        raise RuntimeError(f"could not stop raw_files_sensor:\n{stopped.stdout}\n{stopped.stderr}")
    port = _free_port()
    with log.open("wb") as output:
        server = subprocess.Popen([str(DAGSTER), "dev", "-h", HOST, "-p", str(port), "-w", "workspace.yaml"],
                                  env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # its own process group: webserver, daemon, code server
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
                        raise RuntimeError(f"dagster dev did not answer within {SERVER_TIMEOUT:.0f} s; see {log}") from None
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the PNGs go (default: docs/images)")
    parser.add_argument("--only", nargs="*", help="file names of the shots to take (default: all)")
    args = parser.parse_args(argv)
    shots = [shot for shot in SHOTS if not args.only or shot.file in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dei-screenshots-") as scratch:
        print("screenshots: materializing the sample (synthetic data) in a private directory ...", flush=True)
        sample = materialize_sample(Path(scratch))
        chart = sample.reports / "2020" / f"{REPORT_CHART_FOR_README}.png"
        if chart.exists():
            shutil.copy(chart, args.out / f"report_chart_{REPORT_CHART_FOR_README}.png")
        print("screenshots: starting dagster dev on loopback ...", flush=True)
        with dagster_dev(sample, Path(scratch) / "dagster_dev.log") as base, Browser() as browser:
            for shot in shots:
                target = args.out / shot.file
                shot.take(browser, base, sample)
                browser.screenshot(target)
                pixels = browser.pixel_summary(target)
                if pixels.looks_blank:
                    raise RuntimeError(f"{target} looks blank: {pixels}")
                print(f"  {target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target}: "
                      f"{pixels.width}x{pixels.height} — {shot.caption} (SYNTHETIC sample data)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
