"""Headless Chromium, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

One browser process serves many pages: rendering a report's charts to PNG, screenshotting the report
or the Dagster UI, reading a page's visible text. The pipe needs no port and no third-party client:
Chromium reads commands from file descriptor 3 and writes replies to 4, each a JSON text ending in NUL.
The browser is Debian's ``chromium`` (``make browser`` installs it); ``DEI_CHROMIUM`` names another.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

# Flags for a quiet, offline browser in a container: no sandbox (we run as root in CI), no GPU, and
# none of the background traffic (component updates, sync, QUIC probes) a desktop browser would start.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--font-render-hinting=none",
)
CANDIDATE_EXECUTABLES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Windows that render chart PNGs at the same time (``render_svgs_to_png``). A screenshot keeps the
# page's renderer, the compositor and the browser's PNG encoder busy one after the other, so a second
# window keeps a second core busy; a third did not pay on two cores.
SCREENSHOT_WINDOWS = 2
PAGE_LOADED = "document.readyState === 'complete' && document.fonts.status === 'loaded'"

Clip = tuple[float, float, float, float]  # x, y, width, height in CSS pixels


class ChromiumError(RuntimeError):
    """The browser is missing, exited, or answered a command with an error."""


def find_chromium() -> str | None:
    """The browser to use: $DEI_CHROMIUM if set, else the first Chromium-like executable on PATH."""
    override = os.environ.get("DEI_CHROMIUM")
    if override:
        return override if Path(override).exists() or shutil.which(override) else None
    return next((path for name in CANDIDATE_EXECUTABLES if (path := shutil.which(name))), None)


@dataclass(frozen=True)
class PixelSummary:
    """What a screenshot shows, in numbers: a blank page is one colour everywhere."""

    width: int
    height: int
    background_share: float  # share of pixels with the most common colour
    distinct_colors: int  # distinct colours among sampled pixels (capped by the sample size)
    background: str = ""  # the most common colour, as #rrggbb

    @property
    def looks_blank(self) -> bool:
        return self.background_share > 0.995 or self.distinct_colors < 8


@dataclass(frozen=True)
class ClippedPage:
    """A page to load at a viewport size (CSS pixels) and the parts of it to screenshot."""

    url: str
    width: int
    height: int
    clips: Sequence[Clip]


class Browser:
    """A headless Chromium with one page (tab), as a context manager; ``screenshot_clips`` opens more
    windows of its own.

    >>> with Browser() as browser:
    ...     browser.open("file:///tmp/report.html", width=1400, height=1000)
    ...     browser.screenshot(Path("report.png"), full_page=True)
    """

    def __init__(self, executable: str | None = None, command_timeout: float = 60.0) -> None:
        found = executable or find_chromium()
        if found is None:
            raise ChromiumError("no Chromium found on PATH (install it with `make browser`, or set DEI_CHROMIUM)")
        self.executable = found
        self.command_timeout = command_timeout
        self._next_id = 0
        self._buffer = b""
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._session: str | None = None
        self._extra_windows: list[str] = []  # sessions of the windows screenshot_clips opened, kept for reuse
        self._pending: dict[int, str] = {}  # id -> method of the commands sent and not yet answered
        self._replies: dict[int, dict[str, Any]] = {}  # answers that came while another was awaited
        self._stderr: Any = None

    # ------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="dei-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        # The browser expects its pipe on fds 3 and 4. The pipe ends are handed over as the child's
        # stdin and stdout, and a shell moves them to 3 and 4 (dash accepts single-digit fds only; a
        # preexec_fn could do the same but is unsafe when the caller runs threads, as Dagster does).
        command = [
            "/bin/sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null',
            self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
            "--remote-debugging-pipe", "about:blank",
        ]
        self._process = subprocess.Popen(
            command, stdin=to_browser_read, stdout=from_browser_write, stderr=self._stderr, start_new_session=True,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        target = self._command("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.command("Page.enable")
        self.command("Runtime.enable")

    def close(self) -> None:
        process = self._process
        if process is not None:
            try:
                self._command("Browser.close", timeout=10)
            except (ChromiumError, OSError):
                pass
            self._process = None
            self._extra_windows, self._pending, self._replies = [], {}, {}
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    # -------------------------------------------------------------------------------- protocol

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-3000:].decode(errors="replace")

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChromiumError(f"no answer from Chromium within {self.command_timeout:.0f} s")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ChromiumError(f"Chromium closed its DevTools pipe\n{self._stderr_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        """Send a command without waiting for its answer; returns its id for ``_answer``."""
        if self._process is None:
            raise ChromiumError("the browser is not running")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError as error:
            raise ChromiumError(f"Chromium exited\n{self._stderr_tail()}") from error
        self._pending[self._next_id] = method
        return self._next_id

    def _answer(self, ids: set[int], timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        """The first answer to come to one of the commands ``ids``, as (id, result). Answers to other
        commands sent are kept for their turn, so several commands can be in flight at once."""
        deadline = time.monotonic() + (timeout or self.command_timeout)
        try:
            while not (answered := ids & self._replies.keys()):
                reply = self._read_message(deadline)
                if reply.get("id") in self._pending:  # events are not needed here
                    self._replies[reply["id"]] = reply
        except ChromiumError:
            for message_id in ids:  # given up on: their late answers are not kept
                self._pending.pop(message_id, None)
            raise
        message_id = min(answered)
        method, reply = self._pending.pop(message_id), self._replies.pop(message_id)
        if "error" in reply:
            raise ChromiumError(f"{method}: {reply['error']}")
        return message_id, reply.get("result", {})

    def _command(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
                 timeout: float | None = None) -> dict[str, Any]:
        return self._answer({self._send(method, params, session)}, timeout)[1]

    def command(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DevTools command to the page, e.g. ``command("Page.reload")``."""
        return self._command(method, params, session=self._session)

    # ----------------------------------------------------------------------------------- pages

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise ChromiumError(f"JavaScript error: {result['exceptionDetails'].get('exception', result['exceptionDetails'])}")
        return result["result"].get("value")

    def set_viewport(self, width: int, height: int, scale: float = 1.0) -> None:
        self.command("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False})

    def open(self, url: str, width: int = 1400, height: int = 1000, scale: float = 1.0, timeout: float = 60.0) -> None:
        """Load a page at a viewport size and wait until it and its fonts have loaded."""
        self.set_viewport(width, height, scale)
        self.command("Page.navigate", {"url": url})
        self.wait_for(PAGE_LOADED, timeout, what=f"{url} to load")

    def wait_for(self, expression: str, timeout: float = 60.0, what: str = "", interval: float = 0.1) -> None:
        """Poll a JavaScript condition until it is true (pages that fetch their data render late)."""
        deadline = time.monotonic() + timeout
        # Pauses grow from 5 ms to ``interval``: a local file is ready within milliseconds, and a
        # fixed first pause of ``interval`` would be most of the time it takes to open one.
        pause = min(0.005, interval)
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except ChromiumError:
                pass  # the page may be between documents while it navigates
            time.sleep(pause)
            pause = min(pause * 2, interval)
        raise ChromiumError(f"timed out after {timeout:.0f} s waiting for {what or expression}")

    def wait_for_text(self, text: str, timeout: float = 60.0) -> None:
        self.wait_for(f"document.body !== null && document.body.innerText.includes({json.dumps(text)})", timeout, what=f"text {text!r}")

    def text(self) -> str:
        """The page's visible text, as a person would read it."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def screenshot(self, path: Path, full_page: bool = False, clip: Clip | None = None) -> Path:
        """Save a PNG of the viewport, of the whole page (``full_page``), or of a clip (x, y, width, height)."""
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            clip = (0, 0, width, height)
        data = self.command("Page.captureScreenshot", _screenshot_params(clip))["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def screenshot_clips(self, pages: Sequence[ClippedPage], scale: float = 1.0, timeout: float = 60.0) -> list[list[bytes]]:
        """PNGs of the clips of each page, by page, at ``scale`` device pixels per CSS pixel. Each page
        is loaded in a window of its own (this page's for the first; more are opened and kept) and the
        windows work at the same time, one screenshot in flight each. The PNGs are compressed for
        speed: about a quarter larger than ``screenshot``'s, for a third less time."""
        if not pages:
            return []
        sessions = self._window_sessions(len(pages))
        for session, page in zip(sessions, pages):  # navigate them all first, so they load side by side
            with self._in_window(session):
                self.set_viewport(page.width, page.height, scale)
                self.command("Page.navigate", {"url": page.url})
        for session, page in zip(sessions, pages):
            with self._in_window(session):
                # The URL too: a window reused from an earlier call still shows its loaded old page.
                self.wait_for(f"document.URL === {json.dumps(page.url)} && {PAGE_LOADED}", timeout, what=f"{page.url} to load")
        queues = [deque(enumerate(page.clips)) for page in pages]
        in_flight: dict[int, tuple[int, int]] = {}  # command id -> (page number, clip number)
        pngs: list[dict[int, bytes]] = [{} for _ in pages]  # by page number, clip number

        def take_next(number: int) -> None:
            if queues[number]:
                clip, box = queues[number].popleft()
                message_id = self._send("Page.captureScreenshot", _screenshot_params(box, fast=True), sessions[number])
                in_flight[message_id] = (number, clip)

        for number in range(len(pages)):
            take_next(number)
        while in_flight:
            message_id, result = self._answer(set(in_flight))
            number, clip = in_flight.pop(message_id)
            pngs[number][clip] = base64.b64decode(result["data"])
            take_next(number)
        return [[by_clip[clip] for clip in range(len(page.clips))] for by_clip, page in zip(pngs, pages)]

    def _window_sessions(self, count: int) -> list[str]:
        """This page's session and those of ``count - 1`` more windows, opened on first use and kept.
        Windows, not tabs: a tab behind another paints nothing, so its screenshots never come."""
        if self._session is None:
            raise ChromiumError("the browser is not running")
        while len(self._extra_windows) < count - 1:
            target = self._command("Target.createTarget", {"url": "about:blank", "newWindow": True})["targetId"]
            self._extra_windows.append(self._command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
        return [self._session, *self._extra_windows[:count - 1]]

    @contextmanager
    def _in_window(self, session: str) -> Iterator[None]:
        """Point the page methods (``open``, ``evaluate``, ...) at another window for a while."""
        own, self._session = self._session, session
        try:
            yield
        finally:
            self._session = own

    def pixel_summary(self, png: Path, sample: int = 200_000) -> PixelSummary:
        """Decode a PNG in the browser (no imaging library needed) and count its colours."""
        data_url = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        self.command("Page.navigate", {"url": "about:blank"})
        self.wait_for("document.readyState === 'complete'", 30, what="about:blank")
        summary = self.evaluate(f"""
            (async () => {{
              const image = new Image();
              image.src = {json.dumps(data_url)};
              await image.decode();
              const canvas = document.createElement('canvas');
              canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
              const context = canvas.getContext('2d');
              context.drawImage(image, 0, 0);
              const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
              const total = pixels.length / 4, step = Math.max(1, Math.floor(total / {sample}));
              const counts = new Map();
              let sampled = 0;
              for (let i = 0; i < total; i += step) {{
                const key = (pixels[4*i] << 16) | (pixels[4*i+1] << 8) | pixels[4*i+2];
                counts.set(key, (counts.get(key) || 0) + 1);
                sampled++;
              }}
              const [color, count] = [...counts].reduce((most, entry) => entry[1] > most[1] ? entry : most);
              return {{width: canvas.width, height: canvas.height, distinct: counts.size, top: count / sampled,
                       color: '#' + color.toString(16).padStart(6, '0')}};
            }})()
        """)
        return PixelSummary(int(summary["width"]), int(summary["height"]), float(summary["top"]), int(summary["distinct"]),
                            str(summary["color"]))


@dataclass(frozen=True)
class SvgSheet:
    """SVG charts stacked top to bottom on one page, so one page load serves all of them: ``boxes``
    holds each chart's (x, y, width, height) on the page in CSS pixels, by file stem."""

    html: str
    width: int
    height: int
    boxes: dict[str, tuple[int, int, int, int]]


def svg_sheet(charts: dict[str, tuple[str, int, int]]) -> SvgSheet:
    """A page with each SVG {file stem: (svg, width, height)} (at least one) at its own size in a box
    of its own, left-aligned, one below the other, on white."""
    boxes: dict[str, tuple[int, int, int, int]] = {}
    parts: list[str] = []
    top = 0
    for stem, (svg, width, height) in charts.items():
        boxes[stem] = (0, top, width, height)
        # Absolute boxes of the chart's exact size: the layout cannot move or resize a chart, so its
        # clip is known without asking the page, and an SVG never draws outside its box.
        parts.append(f"<div style='position:absolute;left:0;top:{top}px;width:{width}px;height:{height}px;overflow:hidden'>"
                     f"{svg}</div>")
        top += height
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>html,body{margin:0;padding:0;background:#fff}"
            "svg{display:block}</style></head><body>" + "".join(parts) + "</body></html>")
    return SvgSheet(html, max(width for _, width, _ in charts.values()), top, boxes)


def _screenshot_params(clip: Clip | None, fast: bool = False) -> dict[str, Any]:
    """Page.captureScreenshot's parameters for a PNG of the viewport or of a clip at the page's scale."""
    params: dict[str, Any] = {"format": "png", "captureBeyondViewport": clip is not None, "optimizeForSpeed": fast}
    if clip is not None:
        params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
    return params


def share_out(charts: dict[str, tuple[str, int, int]], groups: int) -> list[dict[str, tuple[str, int, int]]]:
    """Charts {file stem: (svg, width, height)} in at most ``groups`` non-empty groups of about equal
    area, the largest first, each to the group with the least so far: a screenshot takes time by pixel."""
    shares: list[dict[str, tuple[str, int, int]]] = [{} for _ in range(min(groups, len(charts)))]
    areas = [0] * len(shares)
    for stem, chart in sorted(charts.items(), key=lambda item: -item[1][1] * item[1][2]):
        smallest = areas.index(min(areas))
        shares[smallest][stem] = chart
        areas[smallest] += chart[1] * chart[2]
    return shares


def render_svgs_to_png(charts: dict[str, tuple[str, int, int]], out_dir: Path, scale: float = 2.0,
                       browser: Browser | None = None, windows: int = SCREENSHOT_WINDOWS) -> list[Path]:
    """Render SVG charts {file stem: (svg, width, height)} to ``out_dir/<stem>.png`` at ``scale`` times
    their size (2x keeps them sharp on slides). Uses one browser for all of them, in ``windows``
    windows at the same time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not charts:
        return []
    owned = browser is None
    active = browser or Browser()
    if owned:
        active.start()
    try:
        # One page load per window for all its charts, then a clipped screenshot of each: a page load
        # per chart cost about as much again as its screenshot. The viewport is the whole sheet, so
        # every chart is laid out and painted once, at ``scale`` device pixels per CSS pixel.
        sheets = [svg_sheet(share) for share in share_out(charts, windows)]
        with tempfile.TemporaryDirectory(prefix="dei-svg-") as scratch:
            pages = []
            for number, sheet in enumerate(sheets):
                page = Path(scratch) / f"charts-{number}.html"
                page.write_text(sheet.html, encoding="utf-8")
                pages.append(ClippedPage(page.as_uri(), sheet.width, sheet.height, list(sheet.boxes.values())))
            pngs = active.screenshot_clips(pages, scale)
        for sheet, sheet_pngs in zip(sheets, pngs, strict=True):
            for stem, png in zip(sheet.boxes, sheet_pngs, strict=True):
                (out_dir / f"{stem}.png").write_bytes(png)
        return [out_dir / f"{stem}.png" for stem in charts]
    finally:
        if owned:
            active.close()
