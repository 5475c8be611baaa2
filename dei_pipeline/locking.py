"""One writer at a time per warehouse file, across processes.

DuckDB lets one process open a database file for writing; a second one fails at once with a lock
error. Writers therefore take an advisory lock (filelock's, an flock) on ``<warehouse>.lock`` first
and wait their turn: two ``dei materialize`` started together run one after the other, and so do the
steps of a multiprocess run or of several runs launched from the UI. The operating system drops the
lock when its process dies, so a killed run never leaves a stale lock behind. The lock is re-entrant
within a process: the CLI holds it for a whole run while the run's steps open and close their
connections.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

DEFAULT_TIMEOUT_SECONDS = float(os.environ.get("DEI_LOCK_TIMEOUT", "900"))
POLL_SECONDS = 0.2


class WarehouseBusyError(RuntimeError):
    """Another process kept the warehouse for longer than the timeout."""


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".lock")


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _write_holder(fd: int) -> None:
    """Say in the lock file who holds it, for the message of a process that has to wait."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)


def _lock(path: Path) -> FileLock:
    # One lock object per path and process (is_singleton), counted across threads (not thread-local):
    # that is what makes the lock re-entrant for the run's steps. The file stays in place on release,
    # holding the last holder's line.
    return FileLock(
        path, thread_local=False, is_singleton=True, preserve_lock_file=True, on_acquired=_write_holder
    )


@contextmanager
def warehouse_lock(
    warehouse: Path,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the warehouse's write lock; wait up to ``timeout`` seconds for another holder."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(path.resolve())
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if on_wait is not None:
            on_wait(f"waiting for the warehouse {warehouse}: in use by {_holder(path)}")
        try:
            lock.acquire(timeout=timeout, poll_interval=POLL_SECONDS)
        except Timeout:
            raise WarehouseBusyError(
                f"the warehouse {warehouse} is in use by {_holder(path)} for more than {timeout:.0f} s; "
                f"try again when that run has finished (DEI_LOCK_TIMEOUT sets the wait)"
            ) from None
    try:
        yield
    finally:
        lock.release()
