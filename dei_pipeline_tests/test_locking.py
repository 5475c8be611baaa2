"""One writer at a time per warehouse: a second process waits, says for whom, and gives up after the timeout."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dei_pipeline.locking import WarehouseBusyError, lock_path, warehouse_lock
from dei_pipeline_tests.lock_holder import HOLD, holder


def test_a_second_process_is_told_who_holds_the_warehouse_and_gives_up_after_the_timeout(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "dei.duckdb"
    process = holder(warehouse, 60)
    try:
        told: list[str] = []
        with (
            pytest.raises(
                WarehouseBusyError, match=rf"in use by pid {process.pid} since .* for more than 0 s"
            ),
            warehouse_lock(warehouse, timeout=0.3, on_wait=told.append),
        ):
            pass
        assert len(told) == 1 and told[0].startswith(
            f"waiting for the warehouse {warehouse}: in use by pid {process.pid} since "
        )
    finally:
        process.kill()
        process.wait()
    # The killed holder left no lock behind.
    with warehouse_lock(warehouse, timeout=0):
        assert lock_path(warehouse).read_text(encoding="utf-8").startswith(f"pid {os.getpid()} since ")


def test_a_waiting_process_goes_on_when_the_holder_finishes(tmp_path: Path) -> None:
    warehouse = tmp_path / "dei.duckdb"
    process = holder(warehouse, 0.5)
    told: list[str] = []
    with warehouse_lock(warehouse, timeout=30, on_wait=told.append):
        assert process.poll() == 0
    assert len(told) == 1


def test_the_lock_is_re_entrant_within_a_process_across_threads(tmp_path: Path) -> None:
    warehouse = tmp_path / "dei.duckdb"
    entered = threading.Event()

    def step() -> None:
        with warehouse_lock(warehouse, timeout=0):
            entered.set()

    with warehouse_lock(warehouse, timeout=0):
        thread = threading.Thread(target=step)
        thread.start()
        thread.join(10)
        assert entered.is_set()
        with warehouse_lock(warehouse, timeout=0):
            pass
    # Released for good once the outermost holder leaves: another process gets it at once.
    subprocess.run(
        [sys.executable, "-c", HOLD, str(warehouse), "0"], check=True, timeout=60, capture_output=True
    )
