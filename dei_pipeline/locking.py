"""One writer at a time per warehouse file, across processes.

DuckDB lets one process open a database file for writing; a second one fails at once with a lock
error. Writers therefore take an advisory lock on ``<warehouse>.lock`` first and wait their turn: two
``dei materialize`` started together run one after the other, and so do the steps of a multiprocess
run or of several runs launched from the UI. The operating system drops the lock when its process
dies, so a killed run never leaves a stale lock behind. The lock is re-entrant within a process: the
CLI holds it for a whole run while the run's steps open and close their connections.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_TIMEOUT_SECONDS = float(os.environ.get("DEI_LOCK_TIMEOUT", "900"))
POLL_SECONDS = 0.2

_held: dict[str, tuple[int, int]] = {}  # lock path -> (file descriptor, depth)
_guard = threading.Lock()


class WarehouseBusyError(RuntimeError):
    """Another process kept the warehouse for longer than the timeout."""


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".lock")


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def warehouse_lock(
    warehouse: Path,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the warehouse's write lock; wait up to ``timeout`` seconds for another holder."""
    path = lock_path(warehouse)
    key = str(path.resolve())
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait(f"waiting for the warehouse {warehouse}: in use by {_holder(path)}")
                    told = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WarehouseBusyError(
                        f"the warehouse {warehouse} is in use by {_holder(path)} for more than {timeout:.0f} s; "
                        f"try again when that run has finished (DEI_LOCK_TIMEOUT sets the wait)"
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        with _guard:
            _held[key] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
