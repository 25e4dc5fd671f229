"""Pages requested ahead of dlt's paging loop, so that the API's latency hides behind the work the
loop does on a page.

A paginator that knows its upcoming pages (offset paging, once the window's total is known) hands
their parameters over (`send_ahead`); each is sent as a copy of the paging loop's own prepared
request, so whatever the endpoint carries (headers, a body) goes with it, by the sync's retrying
session (same token, retries, checks and accounting as a page requested in turn). When dlt's
paging loop then asks for one of them, the `PagingSession` it talks to hands over the request
already prepared and its answer, or what it raised: nothing is prepared, sent or checked twice.
Pages are still consumed and checked in order.

How many are kept in flight: enough to hide the latency behind the loop's time per page (measured
as the sync goes), never more than the sync's throttle allows in flight. Owned by one sync: its
threads end with it.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Mapping, Optional
from weakref import WeakKeyDictionary

from requests import PreparedRequest, Request, Response, Session

from .throttle import Throttle

RequestKey = tuple[str, str, tuple]


def request_key(method: Optional[str], url: str, params: Optional[Mapping[str, Any]]) -> RequestKey:
    """The same page asked for twice has the same key, whatever the order of its parameters."""
    return (method or "GET").upper(), url, tuple(sorted((str(k), str(v)) for k, v in (params or {}).items()))


class Lookahead:
    def __init__(self, session: Session, throttle: Throttle, cap: int) -> None:
        self.session = session  # dlt's retrying session
        self.throttle = throttle
        self._fetch_seconds = 0.0  # moving averages: how long a request takes,
        self._page_seconds = 0.0  # and how long the paging loop works on a page, waiting aside
        self._last_served: Optional[float] = None
        self._in_flight: dict[RequestKey, tuple[PreparedRequest, Future]] = {}
        self._claimable: dict[PreparedRequest, Future] = {}  # handed to the paging loop, not yet sent by it
        self._templates: WeakKeyDictionary[Request, PreparedRequest] = WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(cap, thread_name_prefix="analytics-lookahead")
        self._send_options = {"verify": session.verify, "cert": session.cert, "proxies": dict(session.proxies)}

    @property
    def depth(self) -> int:
        """Requests to keep in flight: latency over processing time, plus one, within what the
        throttle allows in flight."""
        allowed = self.throttle.allowed_in_flight or 1
        if not self._page_seconds:
            return allowed
        return max(1, min(allowed, math.ceil(self._fetch_seconds / self._page_seconds) + 1))

    def send_ahead(self, template: Request, param_sets: Iterable[Mapping[str, Any]]) -> list[RequestKey]:
        """Sends those of the requests `template` would make with each of `param_sets` that are not
        already in flight; returns the keys of all of them. The template is prepared as the session
        would, once; each request copies it with its own parameters (the transport gives every
        attempt a valid token): a full preparation costs twice as much."""
        prepared_template = self._templates.get(template)
        if prepared_template is None:
            prepared_template = self._templates[template] = self.session.prepare_request(template)
        keys = []
        for params in param_sets:
            key = request_key(template.method, template.url, params)
            keys.append(key)
            with self._lock:
                if key in self._in_flight:
                    continue
                prepared = prepared_template.copy()
                prepared.prepare_url(template.url, params)
                self._in_flight[key] = (prepared, self._pool.submit(self._timed_send, prepared))
        return keys

    def prepared(self, request: Request) -> Optional[PreparedRequest]:
        """The request sent ahead for this one, now the paging loop's to send, or None."""
        with self._lock:
            entry = self._in_flight.pop(request_key(request.method, request.url, request.params), None)
            if entry is None:
                return None
            self._claimable[entry[0]] = entry[1]
            return entry[0]

    def claim(self, request: PreparedRequest) -> Optional[Future]:
        """The answer in flight for a request `prepared` handed over, or None."""
        with self._lock:
            future = self._claimable.pop(request, None)
        if future is not None and self._last_served is not None:
            # A batch handed to dlt every hundred pages takes far longer than a page: clipped, such
            # a spike does not shrink the depth while requests in flight could hide it.
            sample = time.monotonic() - self._last_served
            self._page_seconds = _average(self._page_seconds, min(sample, 2 * self._page_seconds or sample))
        return future

    def served(self, ahead: bool) -> None:
        """The paging loop has its page (sent ahead or not): its work on it starts now."""
        self._last_served = time.monotonic() if ahead else None

    def drop(self, keys: Iterable[RequestKey]) -> None:
        """Forget requests the paginator no longer wants (a wrong guess, a re-read)."""
        with self._lock:
            for key in keys:
                entry = self._in_flight.pop(key, None)
                if entry is not None:
                    entry[1].cancel()

    def close(self) -> None:
        with self._lock:
            for _, future in self._in_flight.values():
                future.cancel()
            self._in_flight.clear()
            self._claimable.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _timed_send(self, request: PreparedRequest) -> Response:
        started = time.monotonic()
        try:
            return self.session.send(request, **self._send_options)
        finally:
            self._fetch_seconds = _average(self._fetch_seconds, time.monotonic() - started)


class PagingSession(Session):
    """The session dlt's paging loop talks to when pages are requested ahead: a request sent ahead
    is handed over as it is, prepared and answered (its response checks ran when it arrived);
    everything else goes to the retrying session it wraps."""

    def __init__(self, retrying: Session, lookahead: Lookahead) -> None:
        super().__init__()
        self.retrying = retrying
        self.lookahead = lookahead
        self.timeout = getattr(retrying, "timeout", None)
        self.proxies, self.verify, self.trust_env = retrying.proxies, retrying.verify, retrying.trust_env

    def prepare_request(self, request: Request) -> PreparedRequest:
        return self.lookahead.prepared(request) or self.retrying.prepare_request(request)

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        ahead = self.lookahead.claim(request)
        try:
            return ahead.result() if ahead is not None else self.retrying.send(request, **kwargs)
        finally:
            self.lookahead.served(ahead is not None)

    def close(self) -> None:
        self.retrying.close()
        super().close()


def _average(current: float, sample: float, weight: float = 0.2) -> float:
    return sample if not current else current + weight * (sample - current)
