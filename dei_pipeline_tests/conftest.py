"""Shared fixtures: a private copy of the project's data directory and a warehouse path per test."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dei_pipeline.config import REPO_ROOT

DATA = REPO_ROOT / "data"
REFERENCE_FOLDERS = ("frameworks", "registry", "method", "published")


def copy_data_dir(target: Path, editions: tuple[int, ...] | None = None) -> Path:
    """Copy the reference folders and the raw files of some editions (all by default) to ``target``."""
    for folder in REFERENCE_FOLDERS:
        shutil.copytree(DATA / folder, target / folder)
    (target / "raw").mkdir(parents=True)
    for edition_dir in sorted((DATA / "raw").iterdir()):
        if edition_dir.is_dir() and (editions is None or (edition_dir.name.isdigit() and int(edition_dir.name) in editions)):
            shutil.copytree(edition_dir, target / "raw" / edition_dir.name)
    return target


@pytest.fixture
def data_dir_factory(tmp_path: Path) -> Callable[..., Path]:
    def make(editions: tuple[int, ...] | None = None, name: str = "data") -> Path:
        return copy_data_dir(tmp_path / name, editions)
    return make
