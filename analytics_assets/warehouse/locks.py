"""One process at a time on a DuckDB file, enforced by the operating system.

DuckDB lets one process open a file for writing; a second fails at once ("Could not set lock on
file"). Dagster's writer pool is meant to queue the steps that touch the file, but its slot claims
race on a SQLite instance when runs start in several processes at once: two steps were seen
running together. So every connection of this project to a DuckDB file, and every load into it,
first takes an exclusive lock on a file beside it (`<file>.lock`, `flock`): a second process waits
for it, bounded by ANALYTICS_WAREHOUSE_LOCK_WAIT and saying so in the log, instead of failing. The
lock is re-entrant within a thread (a load holds it while dlt and this project's own SQL connect),
and released by the operating system if the process dies.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import WarehouseBusy

_POLL_SECONDS = (0.05, 1.0)  # first and longest pause between two tries


class _Held:
    """This process's hold on one lock file: its descriptor, the thread holding it, how deeply."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()  # threads of this process queue here before trying the file
        self.owner: Optional[int] = None
        self.depth = 0
        self.fd: Optional[int] = None


_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextmanager
def exclusive(database: Path, wait: float, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the DuckDB file `database` for this thread; wait up to `wait` seconds for another process
    (or thread) to let go, telling `say` once when the wait starts. WarehouseBusy if it does not."""
    path = lock_path(database.resolve())
    with _HELD_LOCK:
        held = _HELD.setdefault(str(path), _Held())
    me = threading.get_ident()
    if held.owner == me:
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
        return
    deadline = time.monotonic() + wait
    if not held.mutex.acquire(timeout=wait):
        raise _busy(database, wait)
    try:
        held.fd = _take(path, deadline, database, wait, say)
        held.owner, held.depth = me, 1
        try:
            yield
        finally:
            held.owner, held.depth = None, 0
            os.close(held.fd)  # closing the descriptor releases the flock
            held.fd = None
    finally:
        held.mutex.release()


def _take(path: Path, deadline: float, database: Path, wait: float, say: Callable[[str], None]) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    pause, told = _POLL_SECONDS[0], False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise _busy(database, wait) from None
            if not told:
                say(f"Waiting for the DuckDB file {database}: another run or process is using it "
                    f"(up to ANALYTICS_WAREHOUSE_LOCK_WAIT={wait:g} s).")
                told = True
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, _POLL_SECONDS[1])


def _busy(database: Path, wait: float) -> WarehouseBusy:
    return WarehouseBusy(f"DuckDB file {database}", f"another run or process held it for more than {wait:g} s "
                              "(ANALYTICS_WAREHOUSE_LOCK_WAIT)")
