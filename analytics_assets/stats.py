"""What a sync did, counted while it runs, so that Dagster metadata and progress logs tell the truth."""

from __future__ import annotations

import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from typing_extensions import Self

ProgressSink = Callable[[str], None]


@dataclass
class SyncStats:
    """Counters shared by the HTTP layer, the paginator and the source of one run."""

    progress: Optional[ProgressSink] = None
    progress_interval: float = 10.0
    pages: int = 0
    records: int = 0
    requests: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    throttle_wait_seconds: float = 0.0
    token_refreshes: int = 0
    window_rereads: int = 0
    api_totals: dict[str, int] = field(default_factory=dict)
    # 8 bytes an id: a set of a million ints would cost ~70 MB of a run's memory.
    fetched_ids: dict[str, array] = field(default_factory=dict)
    fetched_by_day: dict[str, Counter] = field(default_factory=dict)
    drift_columns: dict[str, set] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_report: float = field(default_factory=time.monotonic, repr=False)

    def __deepcopy__(self, memo: dict) -> Self:
        """Shared by design: dlt deep-copies configs, and a copy would split the run's state."""
        return self

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)
        self._maybe_report()

    def page_fetched(self, resource: str, records: list, total: Optional[int]) -> None:
        """Counts one page; ids and days are kept per resource for the completeness checks."""
        # Ids that are not integers are left to the schema check, which fails the run naming them.
        ids = [i for i in (r.get("id") for r in records if isinstance(r, dict)) if type(i) is int]
        days = Counter(str(r.get("updated_at"))[:10] for r in records if isinstance(r, dict))
        with self._lock:
            self.pages += 1
            self.records += len(records)
            self.fetched_ids.setdefault(resource, array("q")).extend(ids)
            self.fetched_by_day.setdefault(resource, Counter()).update(days)
            if total is not None:
                self.api_totals[resource] = total
        self._maybe_report()

    def restart_window(self, resource: str) -> None:
        """A re-read starts from scratch: the ids of the abandoned pass no longer prove anything."""
        with self._lock:
            self.window_rereads += 1
            self.fetched_ids[resource] = array("q")
            self.fetched_by_day[resource] = Counter()

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
