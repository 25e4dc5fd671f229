"""The HTTP session every request of a run goes through: dlt's retrying `Client`, plus a transport
adapter that keeps each attempt's token valid and turns failures into errors a user can act on.

dlt's retry re-sends the request it prepared first, with the token of the first attempt; after a
2+4+8 s backoff a short-lived token has expired by the fourth attempt. The adapter sits below the
retry loop, so it sees every attempt and re-applies a fresh token to each one, refreshes once on a
401, and counts retries and waits for the run's metadata.
"""

from __future__ import annotations

import os
import time
from http import HTTPStatus
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, Timeout
from requests.utils import get_environ_proxies
from typing_extensions import Self

from dlt.sources.helpers.requests import Client

from .errors import RequestRejected, RetriesExhausted, TokenRejected
from .prefetch import Prefetcher
from .settings import RetryPolicy
from .stats import SyncStats

TRANSIENT_ERRORS = (ConnectionError, Timeout, ChunkedEncodingError)
MAX_ERROR_BODY = 200

# Called with a prepared request to (re)apply a valid token; `force=True` after a 401.
Reauthorizer = Callable[[PreparedRequest, bool], None]


def describe(request: PreparedRequest) -> str:
    """`GET /v1/resource?offset=200` — enough to locate a failure, never a credential."""
    parts = urlsplit(request.url or "")
    query = f"?{parts.query}" if parts.query and request.method == "GET" else ""
    return f"{request.method} {parts.path}{query}"


class PolicyAdapter(HTTPAdapter):
    """Applies the run's retry policy at the transport level; dlt's `Client` does the retrying."""

    def __init__(
        self,
        policy: RetryPolicy,
        stats: SyncStats,
        reauthorize: Optional[Reauthorizer] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.stats = stats
        self.reauthorize = reauthorize
        self.prefetcher: Optional[Prefetcher] = None

    def __deepcopy__(self, memo: dict) -> Self:
        """Shared by design: dlt deep-copies configs, and a copy would split the run's state."""
        return self

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        attempt = self._begin_attempt(request)
        if self.reauthorize is not None:
            self.reauthorize(request, False)
        try:
            response = self._send_and_read(request, **kwargs)
            if response.status_code == HTTPStatus.UNAUTHORIZED and self.reauthorize is not None:
                self.stats.add(requests=1)
                self.reauthorize(request, True)
                response = self._send_and_read(request, **kwargs)
                if response.status_code == HTTPStatus.UNAUTHORIZED:
                    raise TokenRejected(describe(request))
        except TRANSIENT_ERRORS as error:
            request._aa_last = (time.monotonic(), False)  # type: ignore[attr-defined]
            if attempt >= self.policy.max_attempts:
                raise RetriesExhausted(
                    describe(request), f"{type(error).__name__} ({_short(error)})", attempt
                ) from None
            raise
        finally:
            self.stats.add(requests=1)
        # When this attempt ended, and whether the server asked to slow down. Not the response
        # itself: `response.request` is this request, and the cycle would keep every page's
        # decoded body alive until Python's cyclic garbage collector found it.
        throttled = response.status_code == 429 or "Retry-After" in response.headers
        request._aa_last = (time.monotonic(), throttled)  # type: ignore[attr-defined]
        if self.prefetcher is not None:
            self.prefetcher.observe(response.status_code)
        self._raise_for_status(request, response, attempt)
        return response

    def _begin_attempt(self, request: PreparedRequest) -> int:
        attempt = getattr(request, "_aa_attempt", 0) + 1
        request._aa_attempt = attempt  # type: ignore[attr-defined]
        if attempt > 1:
            ended, throttled = request._aa_last  # type: ignore[attr-defined]
            waited = time.monotonic() - ended
            self.stats.add(
                retries=1,
                **{"throttle_wait_seconds" if throttled else "retry_wait_seconds": waited},
            )
        return attempt

    def _send_and_read(self, request: PreparedRequest, **kwargs: Any) -> Response:
        response = super().send(request, **kwargs)
        if not kwargs.get("stream"):
            # Read the body here so that a connection cut mid-body counts as this attempt's failure.
            response.content
        return response

    def _raise_for_status(self, request: PreparedRequest, response: Response, attempt: int) -> None:
        status = response.status_code
        if status < 400:
            return
        if status in self.policy.statuses:
            if attempt >= self.policy.max_attempts:
                raise RetriesExhausted(describe(request), f"HTTP {status} {response.reason}", attempt)
            return  # dlt's retry loop waits (honouring Retry-After) and sends it again
        raise RequestRejected(
            describe(request), status, response.reason or "", response.text[:MAX_ERROR_BODY]
        )


def _short(error: BaseException) -> str:
    """The exception's class of problem without the URL dump urllib3 puts in its messages."""
    text = str(error)
    return text.split(": ")[-1][:120] if text else type(error).__name__


def build_session(
    policy: RetryPolicy,
    stats: SyncStats,
    reauthorize: Optional[Reauthorizer] = None,
    pool_size: int = 10,
    base_url: Optional[str] = None,
) -> Session:
    """A session that retries exactly `policy.statuses` and transient network errors.

    With `base_url`, the environment's proxy and CA settings are read once, for that host: requests
    otherwise re-reads the whole environment on every request (about a tenth of a run's CPU).
    """
    client = Client(
        request_timeout=policy.timeout,
        raise_for_status=False,
        status_codes=policy.statuses,
        exceptions=TRANSIENT_ERRORS,
        request_max_attempts=policy.max_attempts,
        request_backoff_factor=policy.backoff_factor,
        request_max_retry_delay=policy.max_wait,
        respect_retry_after_header=True,
    )
    session = client.session
    adapter = PolicyAdapter(
        policy, stats, reauthorize, pool_connections=pool_size, pool_maxsize=pool_size
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if base_url is not None:
        session.proxies.update(get_environ_proxies(base_url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
    return session


def attach_prefetcher(session: Session, max_concurrency: int) -> Prefetcher:
    """Concurrent page fetching for this session's paginators (see prefetch.py)."""
    prefetcher = Prefetcher(session, max_concurrency)
    for adapter in session.adapters.values():
        if isinstance(adapter, PolicyAdapter):
            adapter.prefetcher = prefetcher
    prefetcher.attach()
    return prefetcher
