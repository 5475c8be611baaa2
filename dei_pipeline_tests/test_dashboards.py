"""The dashboards of bi/ as a user sees them: `streamlit run bi/dashboard.py` (what `make dashboards` runs)
over the sample's serving snapshot, on loopback, opened in headless Chromium."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dei_pipeline.browser import chromium
from dei_pipeline.config import REPO_ROOT
from dei_pipeline_tests.conftest import Project
from dei_pipeline_tests.test_report import require_browser

HOST = "127.0.0.1"  # loopback only
STREAMLIT = Path(sys.executable).with_name("streamlit")
START_TIMEOUT = 90.0
pytestmark = pytest.mark.e2e  # a Streamlit server and a browser


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"streamlit exited with {server.returncode}: {server.stdout.read() if server.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer at {url} within {START_TIMEOUT:.0f} s")


@pytest.fixture(scope="module")
def dashboard(sample: Project) -> Iterator[str]:
    require_browser()
    port = _free_loopback_port()
    env = {**os.environ, "DEI_SERVING": str(sample.serving), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    server = subprocess.Popen(
        [
            str(STREAMLIT),
            "run",
            str(REPO_ROOT / "bi" / "dashboard.py"),
            "--server.headless",
            "true",
            "--server.address",
            HOST,
            "--server.port",
            str(port),
            "--client.toolbarMode",
            "viewer",
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://{HOST}:{port}"
        _wait_until_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_dashboard_shows_the_ranking_with_tier_names_and_the_four_regions(
    dashboard: str, sample: Project, tmp_path: Path
) -> None:
    before = hashlib.sha256(sample.serving.read_bytes()).hexdigest()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(dashboard)
        # The members of the regions, the last section, have rendered.
        page.get_by_text("香港 (not scored)").first.wait_for(timeout=90_000)
        text = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert "City ranking 2020" in text and "Key regions 2020" in text  # the latest edition by default
    assert "SYNTHETIC SAMPLE" in text  # the snapshot's provenance warning
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # The ranking's first rows, with the tier's Chinese name from marts.dim_tier.
    first = lines.index("上海")
    assert lines[first : first + 5] == ["上海", "Shanghai", "上海", "90.5", "一线"]
    assert "新一线" in lines and "Wuxi" in lines
    for region in ("京津冀", "长三角", "粤港澳大湾区", "成渝"):
        assert region in lines, region
    assert "香港 (not scored)" in text
    assert "Traceback" not in text and "Error" not in text
    # Read-only: the dashboards left the snapshot as it was.
    assert hashlib.sha256(sample.serving.read_bytes()).hexdigest() == before
