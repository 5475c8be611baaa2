"""The method settings are one validated model, and reference data is parsed once until a file changes."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dei_pipeline.config import REPO_ROOT, SettingsError, load_settings
from dei_pipeline.defs.resources import WarehouseResource

DATA = REPO_ROOT / "data"


def data_copy(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    for folder in ("method", "registry", "frameworks"):
        shutil.copytree(DATA / folder, data_dir / folder)
    return data_dir


def edit_settings(data_dir: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    path = data_dir / "method" / "settings.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_every_bad_key_is_named_with_the_file_its_value_and_the_rule(tmp_path: Path) -> None:
    data_dir = data_copy(tmp_path)

    def spoil(raw: dict) -> None:
        raw["removal"]["max_share"] = 1.5
        raw["uncertainty"]["weight_range"] = 1.0
        raw["uncertainty"]["methods"] = ["arithmetic", "harmonic"]
        del raw["scores"]["display_decimals"]

    path = edit_settings(data_dir, spoil)
    with pytest.raises(SettingsError) as raised:
        load_settings(data_dir)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid settings")
    assert (
        "removal.max_share is 1.5: Input should be less than or equal to 1 (a share between 0 and 1)"
        in message
    )
    assert (
        "uncertainty.weight_range is 1.0: Input should be less than 1 (in [0, 1): a weight must stay positive)"
        in message
    )
    assert "uncertainty.methods.1 is 'harmonic': Input should be 'arithmetic' or 'geometric'" in message
    assert "scores.display_decimals missing: Field required" in message


def test_optional_keys_take_their_defaults(tmp_path: Path) -> None:
    data_dir = data_copy(tmp_path)

    def drop_optional(raw: dict) -> None:
        del raw["removal"], raw["aggregation"]["min_coverage"], raw["uncertainty"]["weight_schemes"]

    edit_settings(data_dir, drop_optional)
    settings = load_settings(data_dir)
    assert (settings.removal_max_share, settings.min_coverage) == (0.1, 0.0)
    assert settings.uncertainty is not None and settings.uncertainty.weight_schemes == ("nominal",)
    edit_settings(data_dir, lambda raw: raw.pop("uncertainty"))
    assert load_settings(data_dir).uncertainty is None


def test_a_file_is_parsed_again_only_when_its_content_changes(tmp_path: Path) -> None:
    data_dir = data_copy(tmp_path)
    path = data_dir / "method" / "settings.yaml"
    first = load_settings(data_dir)
    assert load_settings(data_dir) is first
    # Same size and same modification time: only the content tells the change.
    stat = path.stat()
    path.write_text(
        path.read_text(encoding="utf-8").replace("score_tolerance: 0.05", "score_tolerance: 0.07"),
        encoding="utf-8",
    )
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert load_settings(data_dir).score_tolerance == 0.07


def test_the_resource_reads_the_registry_and_frameworks_once_until_they_change(tmp_path: Path) -> None:
    data_dir = data_copy(tmp_path)
    warehouse = WarehouseResource(data_dir=str(data_dir), warehouse_path=str(tmp_path / "dei.duckdb"))
    registry, framework, tiers = warehouse.registry(), warehouse.framework("city", 2020), warehouse.tiers()
    assert warehouse.registry() is registry and warehouse.tiers() is tiers
    # 2019 has no framework file of its own: it uses the 2020 one, already parsed.
    assert warehouse.framework("city", 2019) is framework

    cities = data_dir / "registry" / "cities.csv"
    cities.write_text(
        cities.read_text(encoding="utf-8").replace(",Shanghai,", ",Shanghai City,"), encoding="utf-8"
    )
    changed = warehouse.registry()
    assert changed.version != registry.version and "Shanghai City" in changed.cities["name_en"].to_list()
    framework_file = data_dir / "frameworks" / "city_2020.csv"
    framework_file.write_text(
        framework_file.read_text(encoding="utf-8").replace("\n", "\r\n"), encoding="utf-8"
    )
    assert warehouse.framework("city", 2020).version != framework.version
