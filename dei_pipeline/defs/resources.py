"""The warehouse resource: where the data directory and the DuckDB file are, and the reference data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from dei_pipeline.config import (
    MethodSettings,
    cached_on_content,
    default_data_dir,
    default_warehouse_path,
    load_settings,
)
from dei_pipeline.frameworks import Framework, load_framework, resolve_framework_path
from dei_pipeline.registry import REGISTRY_FILES, REGISTRY_SUBDIR, Registry, load_registry
from dei_pipeline.tiers import load_tiers, tiers_path
from dei_pipeline.warehouse import open_warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The data directory (raw files, frameworks, registry, method settings) and the DuckDB warehouse."""

    data_dir: str
    warehouse_path: str

    @classmethod
    def from_environment(cls) -> WarehouseResource:
        data_dir = default_data_dir()
        return cls(data_dir=str(data_dir), warehouse_path=str(default_warehouse_path(data_dir)))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def warehouse_file(self) -> Path:
        return Path(self.warehouse_path)

    @property
    def reports_path(self) -> Path:
        """The edition reports' folder, beside the warehouse file."""
        return self.warehouse_file.parent / "reports"

    @contextmanager
    def connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_warehouse(self.warehouse_file, read_only=read_only) as con:
            yield con

    def settings(self) -> MethodSettings:
        return load_settings(self.data_path)

    # The reference data is parsed and validated once per process (every asset and edition asks for
    # it), and again only when a file's content changes.

    def registry(self) -> Registry:
        files = [self.data_path / REGISTRY_SUBDIR / name for name in REGISTRY_FILES]
        return cached_on_content("registry", files, lambda: load_registry(self.data_path))

    def tiers(self) -> pl.DataFrame:
        return cached_on_content("tiers", [tiers_path(self.data_path)], lambda: load_tiers(self.data_path))

    def framework(self, unit_type: str, survey_year: int) -> Framework:
        path = resolve_framework_path(self.data_path, unit_type, survey_year)
        return cached_on_content("framework", [path], lambda: load_framework(path))
