"""Headless Chromium, driven by Playwright, for what is looked at in a browser: the report's browser
test and the README screenshots of the Dagster UI. The pipeline itself needs no browser.

The browser is Debian's ``chromium`` (``make browser`` installs it; ``DEI_CHROMIUM`` names another):
Playwright starts it through ``executable_path`` and downloads nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, sync_playwright

# A quiet, offline browser in a container: no sandbox (CI runs as root), and none of the background
# traffic (component updates, sync, first-run pages) a desktop browser would start.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--hide-scrollbars",
    "--font-render-hinting=none",
)
CANDIDATE_EXECUTABLES: tuple[str, ...] = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)


def find_chromium() -> str | None:
    """The browser to use: $DEI_CHROMIUM if set, else the first Chromium-like executable on PATH."""
    override = os.environ.get("DEI_CHROMIUM")
    if override:
        return override if Path(override).exists() or shutil.which(override) else None
    return next((path for name in CANDIDATE_EXECUTABLES if (path := shutil.which(name))), None)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for as long as the block runs."""
    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found on PATH (install it with `make browser`, or set DEI_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class PixelSummary:
    """What a picture shows, in numbers: a blank page is one colour everywhere."""

    width: int
    height: int
    background_share: float  # share of pixels with the most common colour
    distinct_colors: int
    background: str  # the most common colour, as #rrggbb

    @property
    def looks_blank(self) -> bool:
        return self.background_share > 0.995 or self.distinct_colors < 8


def pixel_summary(png: Path) -> PixelSummary:
    with Image.open(png) as image:
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=width * height) or []
    most, colour = max(colours)
    assert isinstance(colour, tuple), "an RGB image's colours are (red, green, blue)"
    red, green, blue = colour
    return PixelSummary(
        width, height, most / (width * height), len(colours), f"#{red:02x}{green:02x}{blue:02x}"
    )
