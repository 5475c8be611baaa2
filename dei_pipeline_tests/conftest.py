"""Shared fixtures: a private copy of the project's data directory and a warehouse path per test."""

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dei_pipeline.config import REPO_ROOT

DATA = REPO_ROOT / "data"
REFERENCE_FOLDERS = ("frameworks", "registry", "method", "published")


def copy_data_dir(target: Path, editions: tuple[int, ...] | None = None) -> Path:
    """Copy the reference folders, the raw data's manifest and the raw files of some editions (all by default) to ``target``."""
    for folder in REFERENCE_FOLDERS:
        shutil.copytree(DATA / folder, target / folder)
    (target / "raw").mkdir(parents=True)
    for entry in sorted((DATA / "raw").iterdir()):
        if entry.is_file():  # manifest.yaml and README.md: the copy is as synthetic as the sample
            shutil.copy2(entry, target / "raw" / entry.name)
        elif editions is None or (entry.name.isdigit() and int(entry.name) in editions):
            shutil.copytree(entry, target / "raw" / entry.name)
    return target


@pytest.fixture
def data_dir_factory(tmp_path: Path) -> Callable[..., Path]:
    def make(editions: tuple[int, ...] | None = None, name: str = "data") -> Path:
        return copy_data_dir(tmp_path / name, editions)
    return make


def _forget_dagster_defs_state_storage() -> None:
    """Dagster 1.13 remembers, in a context variable, the definitions-state storage of an instance
    used as a context manager (``instance_for_test``, schedule contexts) through a weak reference;
    once that instance is gone, loading Definitions later in the same process fails with "Attempted
    to resolve undefined DagsterInstance weakref". Every fixture and test starts without it."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> None:  # type: ignore[type-arg]
    _forget_dagster_defs_state_storage()


@pytest.fixture(autouse=True)
def forget_dagster_defs_state_storage() -> Iterator[None]:
    _forget_dagster_defs_state_storage()
    yield
    _forget_dagster_defs_state_storage()


@pytest.fixture(scope="session")
def bi_sample(tmp_path_factory: pytest.TempPathFactory):  # -> test_report.SamplePipeline
    """One complete run of the sample (index_job, analysis_job, publish_job) for every test that reads what BI
    reads: the serving snapshot and the Parquet export. Never written to by the tests."""
    from dei_pipeline_tests.test_report import materialize_sample

    return materialize_sample(tmp_path_factory.mktemp("bi"))
