"""Fetching the offset pages the paginator will ask for next, a few at a time.

With latency per request, paging one request after another caps a sync at `limit / latency`
records per second. Once a page reports `total`, the paginator knows the offsets that follow; the
prefetcher sends those requests concurrently through the same session (same retries, token, error
handling), and dlt's paging loop then receives each response in order from the transport adapter.
Pages are still consumed and checked strictly in order, so the rows, their order and the drift
checks are those of sequential paging. The window of requests in flight halves on a 429 and grows
back by one after a window's worth of successes (AIMD), never above the configured cap.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Optional

from requests import Request, Response, Session
from typing_extensions import Self


class Prefetcher:
    def __init__(self, session: Session, max_concurrency: int) -> None:
        self.session = session
        self.cap = max_concurrency
        self.window = max_concurrency
        self._successes = 0
        self._futures: dict[str, Future] = {}
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

    def want(self, requests: Iterable[Request]) -> None:
        """Keep exactly these upcoming requests in flight (at most `window` of them); anything
        fetched for other URLs is a wrong guess and is dropped."""
        prepared = []
        for request in requests:
            if len(prepared) >= self.window:
                break
            ready = self.session.prepare_request(request)
            ready._aa_prefetch = True  # type: ignore[attr-defined]
            prepared.append(ready)
        wanted = {ready.url for ready in prepared}
        with self._lock:
            for url in list(self._futures):
                if url not in wanted:
                    self._futures.pop(url).cancel()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.cap, thread_name_prefix="analytics-prefetch")
            for ready in prepared:
                if ready.url not in self._futures:
                    self._futures[ready.url] = self._pool.submit(self.session.send, ready)

    def take(self, url: str) -> Optional[Future]:
        with self._lock:
            return self._futures.pop(url, None)

    def clear(self) -> None:
        with self._lock:
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()

    def close(self) -> None:
        self.clear()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def served_from(prefetcher: Optional[Prefetcher], url: str) -> Optional[Response]:
    """The prefetched response for `url`, waiting for it if still in flight; raises what its
    request raised (retries exhausted, a malformed body...), exactly as a direct send would."""
    future = prefetcher.take(url) if prefetcher is not None else None
    return future.result() if future is not None else None
