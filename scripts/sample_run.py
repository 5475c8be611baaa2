"""A private, complete run of the committed sample, for the scripts that document the project
(screenshots.py, bi_guide.py --from-sample): a copy of data/ without its warehouse, its own
DagsterInstance (DAGSTER_HOME) and warehouse, materialized with `dei materialize` as a user would.
Nothing of the project's own data/warehouse or .dagster_home is read or touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dei_pipeline.config import REPO_ROOT, prepare_dagster_home

DEI = Path(sys.executable).with_name("dei")


@dataclass(frozen=True)
class SampleRun:
    data_dir: Path
    warehouse: Path
    dagster_home: Path

    @property
    def serving(self) -> Path:
        return self.warehouse.with_name("dei_serving.duckdb")

    @property
    def reports(self) -> Path:
        return self.warehouse.parent / "reports"

    def environment(self) -> dict[str, str]:
        """The process environment of a run over this sample: its data, warehouse and instance."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "DEI_"))}
        env.update(
            {
                "DEI_DATA_DIR": str(self.data_dir),
                "DEI_WAREHOUSE": str(self.warehouse),
                "DAGSTER_HOME": str(self.dagster_home),
                "DAGSTER_DISABLE_TELEMETRY": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def prepare_sample(root: Path) -> SampleRun:
    """Copy data/ (without warehouse/) to ``root`` and set up an instance that sends nothing anywhere."""
    data_dir = root / "data"
    shutil.copytree(REPO_ROOT / "data", data_dir, ignore=shutil.ignore_patterns("warehouse"))
    dagster_home = root / "dagster_home"
    prepare_dagster_home(dagster_home)
    return SampleRun(data_dir, root / "warehouse" / "dei.duckdb", dagster_home)


def materialize_sample(root: Path, quiet: bool = True) -> SampleRun:
    sample = prepare_sample(root)
    command = [
        str(DEI),
        "materialize",
        "--years",
        "all",
        "--job",
        "all",
        "--data-dir",
        str(sample.data_dir),
        "--warehouse",
        str(sample.warehouse),
    ]
    completed = subprocess.run(  # its output goes into the error below
        command, check=False, env=sample.environment(), cwd=REPO_ROOT, capture_output=quiet, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    return sample
