"""What one sync did, for the run's log and metadata: pages, records and requests, retries and
waits, each resource's figures per UTC day, the ids it fetched and the columns the API added.

Shared by everything a sync runs through (HTTP, paging, the record checks), from several threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

ProgressSink = Callable[[str], None]


@dataclass
class ResourceCounts:
    """One resource's figures for the current read of its window (a re-read starts them over)."""

    records: int = 0
    api_total: Optional[int] = None
    by_day: Counter = field(default_factory=Counter)  # UTC day of the cursor value -> records kept
    past_end: int = 0  # records at or past the window's end: left to the partitions they belong to


@dataclass
class SyncStats:
    """Counters shared by the HTTP layer, the paginators and the record checks of one sync."""

    progress: Optional[ProgressSink] = None
    warning: Optional[ProgressSink] = None  # where a sync's warnings go (a run's log), else Python's logging
    progress_interval: float = 10.0
    pages: int = 0
    records: int = 0
    requests: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    throttle_wait_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0  # requests held back by the rate limiter (pace, budget, pauses)
    token_refreshes: int = 0
    window_rereads: int = 0
    resources: dict[str, ResourceCounts] = field(default_factory=dict)
    # Primary keys of every record served and of every record handed to dlt, re-reads included,
    # per resource: the distinct counts are what the API's total must not exceed, and what the load
    # must hold (8 bytes an id while the sync runs).
    ids: dict[str, list] = field(default_factory=dict)
    kept: dict[str, list] = field(default_factory=dict)
    drift_columns: dict[str, set] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_report: float = field(default_factory=time.monotonic, repr=False)

    def warn(self, message: str) -> None:
        (self.warning or logging.getLogger(__name__).warning)(message)

    def info(self, message: str) -> None:
        """A fact of the sync's set-up for the run's log (where the progress goes)."""
        (self.progress or logging.getLogger(__name__).info)(message)

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)
        self._maybe_report()

    def of(self, resource: str) -> ResourceCounts:
        with self._lock:
            return self.resources.setdefault(resource, ResourceCounts())

    def page_fetched(self, resource: str, records: int) -> None:
        counts = self.of(resource)
        with self._lock:
            self.pages += 1
            self.records += records
            counts.records += records
        self._maybe_report()

    def days_fetched(self, resource: str, days: Counter) -> None:
        """Records per UTC day of their cursor value (None where it has none)."""
        counts = self.of(resource)
        with self._lock:
            counts.by_day.update(days)

    def ids_fetched(self, resource: str, ids: Any) -> None:
        with self._lock:
            self.ids.setdefault(resource, []).append(ids)

    def ids_kept(self, resource: str, ids: Any) -> None:
        with self._lock:
            self.kept.setdefault(resource, []).append(ids)

    def past_window_end(self, resource: str, records: int) -> None:
        counts = self.of(resource)
        with self._lock:
            counts.past_end += records

    def distinct_kept(self, resource: str) -> int:
        return _distinct(self.kept.get(resource, []))

    def distinct_ids(self, resource: str) -> int:
        return _distinct(self.ids.get(resource, []))

    def restart_window(self, resource: str) -> None:
        """A re-read starts from scratch: what the abandoned read counted no longer proves anything."""
        with self._lock:
            self.window_rereads += 1
            self.resources[resource] = ResourceCounts()

    def note_drift(self, resource: str, columns: set) -> None:
        with self._lock:
            self.drift_columns.setdefault(resource, set()).update(columns)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def records_per_second(self) -> float:
        return self.records / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.pages} pages, {self.records} records fetched in {self.elapsed:.1f} s "
            f"({self.records_per_second:,.0f} records/s); {self.retries} retries, "
            f"{self.retry_wait_seconds + self.throttle_wait_seconds:.1f} s waited "
            f"({self.throttle_wait_seconds:.1f} s on 429/Retry-After), "
            f"{self.rate_limit_wait_seconds:.1f} s held back by the rate limit (summed over requests), "
            f"{self.token_refreshes} token refreshes"
        )

    def as_metadata(self) -> dict[str, Any]:
        return {
            "pages_fetched": self.pages,
            "records_fetched": self.records,
            "http_requests": self.requests,
            "retries": self.retries,
            "seconds_waited_on_retries": round(self.retry_wait_seconds, 3),
            "seconds_waited_on_429_retry_after": round(self.throttle_wait_seconds, 3),
            "seconds_waited_on_rate_limit": round(self.rate_limit_wait_seconds, 3),
            "token_refreshes": self.token_refreshes,
            "window_rereads": self.window_rereads,
            "records_per_second": round(self.records_per_second, 1),
            "fetch_seconds": round(self.elapsed, 3),
        }

    def _maybe_report(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_report < self.progress_interval:
                return
            self._last_report = now
        self.progress("sync in progress: " + self.summary())


def _distinct(chunks: list) -> int:
    """Distinct keys among chunks of them: Arrow counts integer keys; other keys (text, composite
    tuples) are counted in a set."""
    import pyarrow as pa
    import pyarrow.compute as pc  # about 0.15 s to import: only a sync needs it

    try:
        return pc.count_distinct(pa.chunked_array([pa.array(c) for c in chunks], pa.int64())).as_py() if chunks else 0
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return len({key for chunk in chunks for key in (chunk.to_pylist() if isinstance(chunk, pa.Array) else chunk)})
