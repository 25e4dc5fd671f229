"""Fetching the offset pages the paginator will ask for next, a few at a time.

With latency per request, paging one request after another caps a sync at `limit / latency`
records per second. Once a page reports `total`, the paginator knows the offsets that follow; the
prefetcher sends those requests concurrently through the same session (same retries, token, error
handling), and dlt's paging loop then receives each response in order from the transport adapter.
Pages are still consumed and checked strictly in order, so the rows, their order and the drift
checks are those of sequential paging.

How many requests are in flight: enough to hide the API's latency behind the time a page takes to
process (measured as the run goes), so a fast local API is not slowed by threads it does not need;
never more than the window, which halves on a 429 and grows back by one after a window's worth of
successes (AIMD), and never more than the configured cap.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Optional

from requests import PreparedRequest, Request, Response, Session
from typing_extensions import Self


class Prefetcher:
    def __init__(self, session: Session, max_concurrency: int) -> None:
        self.session = session
        self.cap = max_concurrency
        self.window = max_concurrency
        self._successes = 0
        self._fetch_seconds = 0.0  # moving averages: how long a request takes, and how long
        self._page_seconds = 0.0  # the paging loop spends between two pages
        self._last_served: Optional[float] = None
        self._futures: dict[str, Future] = {}  # by URL, as the transport adapter sees requests
        self._urls: dict[int, str] = {}  # offset -> URL of what is in flight
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None

    def __deepcopy__(self, memo: dict) -> Self:
        return self  # shared by the paginator copies dlt makes

    @property
    def enabled(self) -> bool:
        return self.cap > 1

    def observe(self, status: int) -> None:
        """Called by the transport adapter for every response, prefetched or not."""
        with self._lock:
            if status == 429:
                self.window = max(1, self.window // 2)
                self._successes = 0
            elif status < 400:
                self._successes += 1
                if self._successes >= self.window and self.window < self.cap:
                    self.window += 1
                    self._successes = 0

    @property
    def depth(self) -> int:
        """Requests to keep in flight: latency over processing time, plus one, within the window."""
        if not self._page_seconds:
            return self.window
        needed = math.ceil(self._fetch_seconds / self._page_seconds) + 1
        return max(1, min(self.window, needed))

    def want(self, offsets: Iterable[int], request_at: Callable[[int], Request]) -> None:
        """Keep the requests for the first `depth` of these upcoming offsets in flight; anything
        fetched for other offsets is a wrong guess and is dropped. Only new requests are prepared."""
        wanted = list(itertools.islice(offsets, self.depth))
        with self._lock:
            for offset in [o for o in self._urls if o not in wanted]:
                future = self._futures.pop(self._urls.pop(offset), None)
                if future is not None:
                    future.cancel()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.cap, thread_name_prefix="analytics-prefetch")
            template = None
            for offset in wanted:
                if offset in self._urls:
                    continue
                request = request_at(offset)
                if template is None:  # preparing applies auth, headers and hooks: once is enough
                    template = ready = self.session.prepare_request(request)
                else:
                    ready = template.copy()
                    ready.prepare_url(request.url, request.params)
                ready._aa_prefetch = True  # type: ignore[attr-defined]
                self._urls[offset] = ready.url
                self._futures[ready.url] = self._pool.submit(self._timed_send, ready)

    def _timed_send(self, request: PreparedRequest) -> Response:
        started = time.monotonic()
        try:
            return self.session.send(request)
        finally:
            self._fetch_seconds = _average(self._fetch_seconds, time.monotonic() - started)

    def serve(self, url: str) -> Optional[Response]:
        """The prefetched response for `url`, waiting for it if still in flight; raises what its
        request raised (retries exhausted, a malformed body...), exactly as a direct send would.
        None when `url` was not prefetched."""
        now = time.monotonic()
        with self._lock:
            if self._last_served is not None:  # time the paging loop worked since the last page
                self._page_seconds = _average(self._page_seconds, now - self._last_served)
            future = self._futures.pop(url, None)
            self._urls = {o: u for o, u in self._urls.items() if u != url}
        if future is None:
            self._last_served = None
            return None
        try:
            return future.result()
        finally:
            self._last_served = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
            self._urls.clear()

    def close(self) -> None:
        self.clear()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _average(current: float, sample: float, weight: float = 0.2) -> float:
    return sample if not current else current + weight * (sample - current)
