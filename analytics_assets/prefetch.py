"""Fetching the offset pages the paginator will ask for next, a few at a time.

With latency per request, paging one request after another caps a sync at `limit / latency`
records per second. Once a page reports `total`, the paginator knows the offsets that follow; the
prefetcher sends those requests concurrently through the same session (same retries, token, error
handling), and dlt's paging loop then receives each response in order from the session.
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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

from requests import PreparedRequest, Request, Response, Session
from typing_extensions import Self


class Prefetcher:
    """Keeps the next offset pages of each paginator in flight, and hands each one to dlt's paging
    loop when the loop asks for it.

    The hand-over happens at the session's seams (`attach`): the paginator marks the request for
    an offset that is in flight; the session's `prepare_request` then returns the request already
    prepared for it, and its `send` returns the prefetched response. A prefetched page therefore
    costs the paging loop no second preparation, no pass through the retry wrapper and no second
    run of the response hooks (they ran, with the retries, in the thread that fetched it)."""

    def __init__(self, session: Optional[Session], max_concurrency: int) -> None:
        self.session = session
        self.cap = max_concurrency
        self.window = max_concurrency
        self._successes = 0
        self._fetch_seconds = 0.0  # moving averages: how long a request takes, and how long
        self._page_seconds = 0.0  # the paging loop spends between two pages
        self._last_served: Optional[float] = None
        # (paginator, offset) -> the request in flight for it, its future attached as `_aa_future`
        self._inflight: dict[tuple[int, int], PreparedRequest] = {}
        self._templates: dict[int, PreparedRequest] = {}  # paginator -> its request, prepared once
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        if session is not None:  # the session's own methods, before `attach` wraps them
            self._send = session.send
            self._prepare = session.prepare_request

    def __deepcopy__(self, memo: dict) -> Self:
        return self  # shared by the paginator copies dlt makes

    def attach(self) -> None:
        """Route the session's `prepare_request` and `send` through the prefetched pages, the way
        dlt's own `Client` wraps `send` with its retry loop (instance attributes)."""
        self.session.prepare_request = self.prepare_request  # type: ignore[method-assign,union-attr]
        self.session.send = self.send  # type: ignore[method-assign,union-attr]

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

    def want(self, owner: object, offsets: Sequence[int], request_at: Callable[[int], Request]) -> None:
        """Keep the requests for the first `depth` of these upcoming offsets of `owner` (a
        paginator) in flight; anything it fetched for an offset that is not upcoming at all is a
        wrong guess and is dropped. A request beyond a depth that has since shrunk is kept: it may
        already be on the wire, and dropping it would fetch that page twice. Only new requests are
        prepared."""
        key = id(owner)
        wanted = list(itertools.islice(offsets, self.depth))
        with self._lock:
            for stale in [k for k in self._inflight if k[0] == key and k[1] not in offsets]:
                self._inflight.pop(stale)._aa_future.cancel()  # type: ignore[attr-defined]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.cap, thread_name_prefix="analytics-prefetch")
            for offset in wanted:
                if (key, offset) in self._inflight:
                    continue
                ready = self._prepared(key, request_at(offset))
                ready._aa_prefetch = True  # type: ignore[attr-defined]
                ready._aa_future = self._pool.submit(self._timed_send, ready)  # type: ignore[attr-defined]
                self._inflight[(key, offset)] = ready

    def _prepared(self, key: int, request: Request) -> PreparedRequest:
        """`request` prepared as the session would. A full preparation (session headers, cookies,
        hooks, auth) is done once per paginator and pass; each further request copies it with its
        own URL and runs the auth again, so a token renewed meanwhile is the one it carries."""
        template = self._templates.get(key)
        if template is None or template.method != (request.method or "").upper() or template._aa_url != request.url:  # type: ignore[attr-defined]
            template = self._templates[key] = self._prepare(request)
            template._aa_url = request.url  # type: ignore[attr-defined]
            return template.copy()
        ready = template.copy()
        ready.prepare_url(request.url, request.params)
        ready.prepare_auth(request.auth or self.session.auth, request.url)  # type: ignore[union-attr]
        return ready

    def take(self, owner: object, offset: int) -> Optional[PreparedRequest]:
        """The request in flight for `owner`'s page at `offset`, now the paging loop's to send."""
        with self._lock:
            return self._inflight.pop((id(owner), offset), None)

    def _timed_send(self, request: PreparedRequest) -> Response:
        started = time.monotonic()
        try:
            return self._send(request)
        finally:
            self._fetch_seconds = _average(self._fetch_seconds, time.monotonic() - started)

    def prepare_request(self, request: Request) -> PreparedRequest:
        prefetched = getattr(request, "_aa_prefetched", None)
        if prefetched is not None:
            request._aa_prefetched = None  # type: ignore[attr-defined]
            return prefetched
        return self._prepare(request)

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """The prefetched response, waiting for it if still in flight; raises what its request
        raised (retries exhausted, a malformed body...), exactly as a direct send would. Any other
        request is sent as usual."""
        future = getattr(request, "_aa_future", None)
        if future is None:
            self._last_served = None
            return self._send(request, **kwargs)
        now = time.monotonic()
        if self._last_served is not None:  # time the paging loop worked since the last page
            self._page_seconds = _average(self._page_seconds, now - self._last_served)
        try:
            return future.result()
        finally:
            request._aa_future = None  # type: ignore[attr-defined]  # no cycle through the response
            self._last_served = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            for request in self._inflight.values():
                request._aa_future.cancel()  # type: ignore[attr-defined]
            self._inflight.clear()
            self._templates.clear()

    def close(self) -> None:
        self.clear()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _average(current: float, sample: float, weight: float = 0.2) -> float:
    return sample if not current else current + weight * (sample - current)
