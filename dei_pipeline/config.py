"""Where things live: the data directory, the warehouse files and the method settings.

Environment variables override the defaults so that one installation can serve several data sets:
``DEI_DATA_DIR`` (default: the repository's ``data/``), ``DEI_WAREHOUSE`` (default
``<data>/warehouse/dei.duckdb``) and ``DEI_SERVING`` (default ``<data>/warehouse/dei_serving.duckdb``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    return Path(os.environ.get("DEI_DATA_DIR", REPO_ROOT / "data")).resolve()


def data_provenance_note(data_dir: Path) -> str | None:
    """A warning for every page when ``data/raw/manifest.yaml`` declares the raw data synthetic."""
    manifest = data_dir / "raw" / "manifest.yaml"
    if not manifest.exists():
        return None
    content = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    if not content.get("synthetic"):
        return None
    return ("SYNTHETIC SAMPLE 合成样本数据: the indicator scores under data/raw are invented and calibrated to the "
            "white paper's published 2020 figures (composites, averages). Composite scores, ranks and tiers of 2020 "
            "reproduce the paper; everything below the composite, and every other edition, is made up.")


# A new Dagster instance's settings: the default local SQLite storage; no telemetry (nothing leaves
# the machine, and its per-step log lines cost time in every run); no "what's new" pop-ups in the UI.
DAGSTER_INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


def prepare_dagster_home(home: Path | None = None) -> Path:
    """The Dagster instance directory (default: $DAGSTER_HOME, else <repo>/.dagster_home, which the
    CLI and ``make ui`` share), created with DAGSTER_INSTANCE_YAML unless it has a dagster.yaml."""
    home = home or Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(DAGSTER_INSTANCE_YAML, encoding="utf-8")
    return home


def default_warehouse_path(data_dir: Path | None = None) -> Path:
    if "DEI_WAREHOUSE" in os.environ:
        return Path(os.environ["DEI_WAREHOUSE"]).resolve()
    return (data_dir or default_data_dir()) / "warehouse" / "dei.duckdb"


def default_serving_path(warehouse: Path) -> Path:
    if "DEI_SERVING" in os.environ:
        return Path(os.environ["DEI_SERVING"]).resolve()
    return warehouse.with_name("dei_serving.duckdb")


@dataclass(frozen=True)
class MethodSettings:
    """The method choices of ``data/method/settings.yaml``."""

    display_decimals: int
    score_min: float
    score_max: float
    tie_method: str
    missing_rule: str
    gdp_year_offset: int
    gdp_vintage: str
    score_tolerance: float
    # Share of an edition's units of one type that a run may remove without confirmation (removal.py).
    removal_max_share: float = 0.1
    # Rule 'reweight': the smallest share of a node's children with a score for the node to have one.
    min_coverage: float = 0.0


def load_settings(data_dir: Path) -> MethodSettings:
    return _load_settings_cached(str(data_dir / "method" / "settings.yaml"))


@cache
def _load_settings_cached(path: str) -> MethodSettings:
    raw: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return MethodSettings(
        display_decimals=int(raw["scores"]["display_decimals"]),
        score_min=float(raw["scores"]["min"]),
        score_max=float(raw["scores"]["max"]),
        tie_method=str(raw["ranking"]["tie_method"]),
        missing_rule=str(raw["aggregation"]["missing"]),
        gdp_year_offset=int(raw["gdp"]["year_offset"]),
        gdp_vintage=str(raw["gdp"]["vintage"]),
        score_tolerance=float(raw["reconciliation"]["score_tolerance"]),
        removal_max_share=_share(raw.get("removal", {}).get("max_share", MethodSettings.removal_max_share), f"{path}: removal.max_share"),
        min_coverage=_share(raw["aggregation"].get("min_coverage", 0.0), f"{path}: aggregation.min_coverage"),
    )


def _share(value: Any, what: str) -> float:
    share = float(value)
    if not 0 <= share <= 1:
        raise ValueError(f"{what} is {value!r}; it is a share between 0 and 1")
    return share
