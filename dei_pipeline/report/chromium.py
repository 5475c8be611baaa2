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

    @property
    def looks_blank(self) -> bool:
        return self.background_share > 0.995 or self.distinct_colors < 8


class Browser:
    """A headless Chromium with one page (tab), as a context manager.

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

    def _command(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
                 timeout: float | None = None) -> dict[str, Any]:
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
        deadline = time.monotonic() + (timeout or self.command_timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:  # events and other replies are not needed here
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})

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
        self.wait_for("document.readyState === 'complete' && document.fonts.status === 'loaded'", timeout, what=f"{url} to load")

    def wait_for(self, expression: str, timeout: float = 60.0, what: str = "", interval: float = 0.1) -> None:
        """Poll a JavaScript condition until it is true (pages that fetch their data render late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except ChromiumError:
                pass  # the page may be between documents while it navigates
            time.sleep(interval)
        raise ChromiumError(f"timed out after {timeout:.0f} s waiting for {what or expression}")

    def wait_for_text(self, text: str, timeout: float = 60.0) -> None:
        self.wait_for(f"document.body !== null && document.body.innerText.includes({json.dumps(text)})", timeout, what=f"text {text!r}")

    def text(self) -> str:
        """The page's visible text, as a person would read it."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def screenshot(self, path: Path, full_page: bool = False, clip: tuple[float, float, float, float] | None = None) -> Path:
        """Save a PNG of the viewport, of the whole page (``full_page``), or of a clip (x, y, width, height)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page or clip is not None}
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        elif clip is not None:
            params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
        data = self.command("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

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
              return {{width: canvas.width, height: canvas.height, distinct: counts.size,
                       top: Math.max(...counts.values()) / sampled}};
            }})()
        """)
        return PixelSummary(int(summary["width"]), int(summary["height"]), float(summary["top"]), int(summary["distinct"]))


def svg_page(svg: str) -> str:
    """A page that shows one SVG at its own size at the top-left corner, for a PNG of it."""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>html,body{margin:0;padding:0;background:#fff}"
            "svg{display:block}</style></head><body>" + svg + "</body></html>")


def render_svgs_to_png(charts: dict[str, tuple[str, int, int]], out_dir: Path, scale: float = 2.0,
                       browser: Browser | None = None) -> list[Path]:
    """Render SVG charts {file stem: (svg, width, height)} to ``out_dir/<stem>.png`` at ``scale`` times
    their size (2x keeps them sharp on slides). Uses one browser for all of them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    owned = browser is None
    active = browser or Browser()
    if owned:
        active.start()
    try:
        paths = []
        with tempfile.TemporaryDirectory(prefix="dei-svg-") as scratch:
            for stem, (svg, width, height) in charts.items():
                page = Path(scratch) / f"{stem}.html"
                page.write_text(svg_page(svg), encoding="utf-8")
                active.open(page.as_uri(), width=width, height=height, scale=scale)
                paths.append(active.screenshot(out_dir / f"{stem}.png", clip=(0, 0, width, height)))
        return paths
    finally:
        if owned:
            active.close()
