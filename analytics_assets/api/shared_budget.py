"""One rate limit budget per API for every run and sensor tick of a deployment: the file the
`Throttle`s of all the processes calling one API with one client keep their common state in.

Why: an API's limit is per client, not per run. Each run pacing itself at the announced limit, N
runs at once send N times the limit; each obeying its own 429s, the others keep sending through
the pause the API asked for. The throttles of the processes calling the API therefore share what
the API said and what was sent: the limit it announces and the count of its current window, a
Retry-After pause, the allowance in flight after a 429, the last request's start and the requests
unanswered (with the attempt number of each process's first waiting request, so that retries go
first across processes too).

This module decides nothing: the throttle reads the state under the lock, decides exactly as it
does alone, and writes it back before letting go (`Throttle._shared_state`). What is kept here is
the file's soundness:

- Where: one folder all the deployment's processes share: ANALYTICS_RATE_BUDGET_DIR, else
  `rate_budgets` in the Dagster instance's folder ($DAGSTER_HOME): the run workers, the code server
  evaluating sensors and the daemon of one deployment all use that instance. Its scope is one
  machine (processes seeing the same folder and kernel); see the README for several machines.
- Which file: one per API, named after the API's origin and a hash of the origin and client id.
  The client id is never written in clear, and the secret never reaches this module.
- Locking: `fcntl.flock` on the file itself, held for a read and a write (tens of microseconds),
  never while a request waits. A lock not had within LOCK_WAIT, or a folder or file that cannot be
  written, raises BudgetUnavailable: the throttle then goes on with a budget of its own and the run
  says so in its log.
- Expiry: nothing a process leaves behind can block the others for long. Every instant is a
  wall-clock time (monotonic clocks restart with the machine) and is bounded on reading by
  ANALYTICS_MAX_RETRY_WAIT; a request in flight is a lease, dropped once its process is gone or
  after the longest a request may take; a waiting request's claim lapses within a second unless
  renewed; a state no process has written for longer than the longest wait is read as a new one.
- Format: JSON, `format` 1, written in place; a file torn by a crash, or of another format, reads
  as empty, and the next writer writes it whole again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Optional

import orjson

from ..processes import alive
from .urls import Origin

FORMAT = 1
FOLDER_NAME = "rate_budgets"  # in the Dagster instance's folder, unless ANALYTICS_RATE_BUDGET_DIR says where
LOCK_WAIT = 5.0  # seconds: the lock is held for microseconds; a holder that long is stuck (stopped, swapped out)
_LOCK_POLL = (0.0002, 0.005)  # first and longest pause between two tries of the lock
_ALIVE_RECHECK = 1.0  # seconds a process found alive is not looked up again
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_DOMAIN = b"analytics-assets rate budget\n"  # so that this hash of a client id matches no other use of one


class BudgetUnavailable(Exception):
    """The shared budget cannot be used; the message says why and what the run does instead."""


def deployment_folder(instance_root: Optional[str]) -> Optional[Path]:
    """The budget folder of the Dagster instance at `instance_root` (None: no instance)."""
    return Path(instance_root) / FOLDER_NAME if instance_root else None


def identity(origin: Origin, client_id: str) -> str:
    """What names one API's budget: its origin and the client calling it, hashed (SHA-256)."""
    text = f"{origin.scheme}://{origin.host}:{origin.port}\n{client_id}".encode()
    return hashlib.sha256(_DOMAIN + text).hexdigest()


def _origin_text(origin: Origin) -> str:
    return f"{origin.scheme}://{origin.host}:{origin.port}"


class SharedBudget:
    """The budget file of one API and client, open for the life of one sync's throttle. Not
    thread-safe: its throttle calls it under its own lock."""

    def __init__(self, folder: Path, origin: Origin, client_id: str, lease: float, lock_wait: float = LOCK_WAIT) -> None:
        """Opens (creating) the folder and the file; BudgetUnavailable if either cannot be written.
        `lease`: the longest a request may be in flight (connection, headers and body)."""
        self.origin = _origin_text(origin)
        self.identity = identity(origin, client_id)
        host = _UNSAFE.sub("_", origin.host)[:64]
        self.path = folder / f"{origin.scheme}-{host}-{origin.port}-{self.identity[:16]}.json"
        self.lease = lease
        self.lock_wait = lock_wait
        # Who holds a request in flight: the pid namespace and pid (to see the process is gone) and a
        # token of this budget's own (two syncs of one process are two holders).
        self.owner = f"{_pid_namespace()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._alive: dict[str, tuple[bool, float]] = {}
        self._locked = False
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise self._unavailable(f"{folder} cannot be written ({_reason(error)})") from None

    # --- the throttle's calls, in this order ------------------------------------------------------

    def lock(self) -> dict[str, Any]:
        """Takes the lock and returns the state as stored ({} if there is none yet, or none this
        version can read); the caller must `unlock`, having `write`n it back or not."""
        if self._fd is None:
            raise self._unavailable("it was closed")
        deadline, pause = time.monotonic() + self.lock_wait, _LOCK_POLL[0]
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._unavailable(f"another process held its lock for more than {self.lock_wait:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, _LOCK_POLL[1])
            except OSError as error:
                raise self._unavailable(f"it cannot be locked ({_reason(error)})") from None
        self._locked = True
        try:
            data = os.pread(self._fd, max(os.fstat(self._fd).st_size, 1), 0)
        except OSError as error:
            self.unlock()
            raise self._unavailable(f"it cannot be read ({_reason(error)})") from None
        return self._parsed(data)

    def write(self, state: dict[str, Any]) -> None:
        """Writes the state whole, in place (under the lock)."""
        data = orjson.dumps({"format": FORMAT, "origin": self.origin, "identity": self.identity, **state})
        try:
            os.pwrite(self._fd, data, 0)  # type: ignore[arg-type]
            os.ftruncate(self._fd, len(data))  # type: ignore[arg-type]
        except OSError as error:
            raise self._unavailable(f"it cannot be written ({_reason(error)})") from None

    def unlock(self) -> None:
        if self._locked and self._fd is not None:
            self._locked = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            self.unlock()
            os.close(self._fd)  # closing the descriptor releases a lock held by it anyway
            self._fd = None

    # --- leases --------------------------------------------------------------------------------------

    def lease_over(self, owner: str, sent: float, wall_now: float) -> bool:
        """Whether a request another holder sent at `sent` (wall clock) no longer counts as in
        flight: its process is gone, or it has been out longer than any request may take."""
        return wall_now - sent > self.lease or not self._holder_alive(owner)

    def _holder_alive(self, owner: str) -> bool:
        """False only if the holder's process is known to be gone: one of this pid namespace whose
        pid has ended. A process of another namespace (another container) is not seen: its leases
        run out instead."""
        namespace, _, rest = owner.partition("/")
        pid_text = rest.partition("/")[0]
        if namespace != _pid_namespace() or not pid_text.isdigit():
            return True
        now = time.monotonic()
        known = self._alive.get(owner)
        if known is None or now - known[1] > _ALIVE_RECHECK:
            known = self._alive[owner] = (alive(int(pid_text)), now)
        return known[0]

    # --- the file ---------------------------------------------------------------------------------------

    def _parsed(self, data: bytes) -> dict[str, Any]:
        if not data.strip():
            return {}
        try:
            state = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {}  # torn by a process killed mid-write: the next write makes it whole
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("identity") != self.identity:
            return {}
        return state

    def _unavailable(self, why: str) -> BudgetUnavailable:
        return BudgetUnavailable(
            f"The rate limit budget shared by the runs calling {self.origin} ({self.path}) cannot be used: {why}. "
            "This run paces its requests by a budget of its own from now on: runs calling the API at the same time "
            "may be refused (429). Set ANALYTICS_RATE_BUDGET_DIR to a folder every run can write.")


def open_shared_budget(folder: Optional[Path], origin: Origin, client_id: str, lease: float,
                       warn: Callable[[str], None], info: Callable[[str], None]) -> Optional[SharedBudget]:
    """The shared budget of `origin` and `client_id` in `folder`, saying where in the run's log; or
    None (a budget of the sync's own), saying why: no folder (a sync outside a Dagster deployment,
    or an ephemeral instance), or one that cannot be used (a warning)."""
    if folder is None:
        info(f"Requests to {_origin_text(origin)} are paced by this sync alone: no folder is shared with other runs "
             "(no Dagster instance, and ANALYTICS_RATE_BUDGET_DIR is not set).")
        return None
    try:
        budget = SharedBudget(folder, origin, client_id, lease)
    except BudgetUnavailable as error:
        warn(str(error))
        return None
    info(f"Requests to {budget.origin} share one rate limit budget with every run and sensor of this deployment "
         f"calling it with this client: {budget.path}")
    return budget


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return os.uname().nodename


def _reason(error: OSError) -> str:
    return f"{type(error).__name__}: {error.strerror or error}"
