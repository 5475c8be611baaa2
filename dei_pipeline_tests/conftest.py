"""Shared fixtures: a private copy of the project's data directory per test, the sample warehouse built
once per session for the tests that only read it, and the markers of the test layers.

Layers (markers registered in pyproject.toml): ``sample`` tests read the session's sample warehouse
(given to every test that asks for the ``sample`` fixture); ``pipeline`` tests run Dagster jobs on
private warehouses in process; ``e2e`` tests run the product in other processes (the command line,
``dagster dev``, faults, the national data set). The rest are unit tests: ``make test-fast``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml

from dei_pipeline.config import REPO_ROOT, data_provenance_note
from dei_pipeline.definitions import build_definitions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.ingest import list_editions
from dei_pipeline.report.rows import EditionRows, read_edition_rows
from dei_pipeline.warehouse import TABLES, connect

DATA = REPO_ROOT / "data"
REFERENCE_FOLDERS = ("frameworks", "registry", "method", "published")
# Monte Carlo settings of the shared sample: no test of it asserts a figure that depends on the number
# of draws, and the repository's 10,000 draws and 1,000 base draws would take most of the session.
LIGHT_DRAWS = 400
LIGHT_BASE_DRAWS = 100


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


def with_light_monte_carlo(
    data_dir: Path, draws: int = LIGHT_DRAWS, base_draws: int = LIGHT_BASE_DRAWS
) -> Path:
    """``data_dir`` with fewer Monte Carlo draws in its method settings (both keys must be there: a
    renamed key would otherwise leave the full draws on without a word)."""
    path = data_dir / "method" / "settings.yaml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    uncertainty = settings["uncertainty"]
    for key, value in (("draws", draws), ("sensitivity_base_draws", base_draws)):
        assert key in uncertainty, f"{path} has no uncertainty.{key}"
        uncertainty[key] = value
    path.write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return data_dir


def dei_in(env: dict[str, str], args: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The command line in its own process, with the environment ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "dei_pipeline.cli", *args],
        check=False,  # the tests read the exit status
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def dei(args: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The command line in its own process, with its own Dagster home under ``tmp_path``."""
    return dei_in({**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}, args, timeout)


@dataclass
class Project:
    """One data directory, one warehouse and one Dagster instance, as a user's project would have."""

    resource: WarehouseResource
    instance: dg.DagsterInstance

    @classmethod
    def at(cls, data_dir: Path, warehouse: Path) -> Self:
        return cls(
            WarehouseResource(data_dir=str(data_dir), warehouse_path=str(warehouse)),
            dg.DagsterInstance.ephemeral(),
        )

    @property
    def data_dir(self) -> Path:
        return self.resource.data_path

    @property
    def warehouse(self) -> Path:
        return self.resource.warehouse_file

    @property
    def reports(self) -> Path:
        return self.resource.reports_path

    @property
    def serving(self) -> Path:
        return self.warehouse.with_name("dei_serving.duckdb")

    def table(self, name: str, year: int | None = None) -> pl.DataFrame:
        """A table of the warehouse (one edition's rows, or all), sorted on every column."""
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            where = "" if year is None else f" WHERE survey_year = {int(year)}"
            rows = con.sql(f"SELECT * FROM {name}{where}").pl()
        return rows.sort(TABLES[name].column_names, nulls_last=True)

    def edition_rows(self, year: int, warehouse: Path | None = None) -> EditionRows:
        con = connect(warehouse or self.warehouse, read_only=True)
        try:
            return read_edition_rows(
                con,
                year,
                self.resource.tiers(),
                self.resource.registry().regions,
                data_provenance_note(self.resource.data_path),
            )
        finally:
            con.close()

    def private_copy(self, root: Path) -> WarehouseResource:
        """A copy of the warehouse file under ``root``, over the same data, for a test that writes to it."""
        warehouse = root / "warehouse" / "dei.duckdb"
        warehouse.parent.mkdir(parents=True)
        shutil.copy(self.warehouse, warehouse)
        return WarehouseResource(data_dir=self.resource.data_dir, warehouse_path=str(warehouse))


def materialize_sample(root: Path) -> Project:
    """The sample materialized as `make run` does: index_job, then analysis_job, each over every
    edition in one run, then publish_job; in ``root``, with light Monte Carlo settings."""
    sample = Project.at(
        with_light_monte_carlo(copy_data_dir(root / "data")), root / "warehouse" / "dei.duckdb"
    )
    editions = [str(year) for year in list_editions(sample.data_dir)]
    every_edition = {
        "dagster/asset_partition_range_start": editions[0],
        "dagster/asset_partition_range_end": editions[-1],
    }
    with pytest.MonkeyPatch.context() as env:
        for variable in ("DEI_SERVING", "DEI_WAREHOUSE"):  # the runs must write inside root
            env.delenv(variable, raising=False)
        defs = build_definitions(sample.resource)
        for job_name, tags in (
            ("index_job", every_edition),
            ("analysis_job", every_edition),
            ("publish_job", {}),
        ):
            result = defs.resolve_job_def(job_name).execute_in_process(instance=sample.instance, tags=tags)
            assert result.success, job_name
    return sample


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The sample warehouse of the session: read it, never write to it (``private_copy`` for that)."""
    return materialize_sample(tmp_path_factory.mktemp("sample"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that reads the session's sample is in the sample layer, whatever its module.
    for item in items:
        if "sample" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sample)


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
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> None:
    _forget_dagster_defs_state_storage()


@pytest.fixture(autouse=True)
def forget_dagster_defs_state_storage() -> Iterator[None]:
    _forget_dagster_defs_state_storage()
    yield
    _forget_dagster_defs_state_storage()
