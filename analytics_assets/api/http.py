"""Every request of a sync: OAuth2 client credentials, dlt's retrying `Client`, a transport below its
retry loop, and pages requested ahead of the paging loop.

The credentials are the seed's `"type": "oauth2"` on dlt's own `OAuth2ClientCredentials`, which
renews a token only once its clock says it has expired, has no 401 path, and fetches tokens through
dlt's global HTTP client. The subclass here renews ahead of expiry, renews once when the API rejects
a token, fetches through the sync's token session (the seed's retry policy), and fails on refused
credentials without echoing them.

dlt's retry re-sends the request it prepared first, with the token of the first attempt; after a
2+4+8 s backoff a short-lived token has expired by the fourth attempt. The transport sits below
the retry loop, so it sees every attempt: it gives each one a valid token, renews the token once
on a 401, counts retries and waits, and turns failures into errors that name the fix.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Annotated, Any, Callable, Iterable, Optional
from urllib.parse import quote, quote_plus, urlsplit
from weakref import WeakKeyDictionary

import orjson
import pendulum
from requests import PreparedRequest, Request, Response, Session
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ReadTimeout, Timeout
from requests.utils import get_environ_proxies
from urllib3.exceptions import NameResolutionError, ProtocolError, ReadTimeoutError
from typing_extensions import Self

import dlt
from dlt.common.configuration import NotResolved, configspec
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials

from ..errors import (
    CredentialsRejected,
    HostNotFound,
    MissingCredentials,
    RequestRejected,
    ResponseRefused,
    RetriesExhausted,
    TokenEndpointError,
    TokenRejected,
)
from ..settings import Settings
from .config import AuthOptions
from .definition import ApiDefinition, Credentials, Origin, host_of, origin
from .ratelimit import RateLimiter
from .records import SyncStats

RETRY_STATUSES = (429, 500, 502, 503, 504)  # the seed's policy
TRANSIENT_ERRORS = (ConnectionError, Timeout, ChunkedEncodingError)
MAX_ERROR_BODY = 200


# orjson reads an integer beyond 64 bits (from 19 digits on, for negative ones) as a float, losing
# digits silently. A run of 19 digits anywhere in the body sends it to Python's decoder, which keeps
# integers exact; finding one costs a byte translation and a substring search (~20 µs a page).
_DIGITS_AS_ONES = bytes.maketrans(b"0123456789", b"1" * 10)
_LONG_NUMBER = b"1" * 19


def decode(content: bytes) -> Any:
    """A JSON body, by orjson (about three times faster than requests' `json()`) where it reads the
    body exactly as Python's decoder does; raises ValueError when neither can read it."""
    if _LONG_NUMBER not in content.translate(_DIGITS_AS_ONES):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass  # orjson refuses what Python's decoder takes (a lone surrogate escape, NaN...)
    return json.loads(content)


class JsonResponse(Response):
    """A response whose body the transport read within its bounds (`body`), decoded once: dlt's
    paging loop, the paginator and the page check all read it."""

    _payload: Any = None
    _decoded = False
    body: Optional[bytes] = None

    @property
    def content(self) -> Any:  # type: ignore[override]
        return self.body if self.body is not None else super().content

    @classmethod
    def of(cls, response: Response) -> "JsonResponse":
        upgraded = cls.__new__(cls)
        upgraded.__dict__.update(response.__dict__)
        return upgraded

    def json(self, **kwargs: Any) -> Any:
        """The decoded body; an empty one (a 204, an empty 200) reads as an empty object."""
        if not self._decoded:
            self._payload, self._decoded = (decode(self.content) if self.content else {}), True
        return self._payload


def where(request: PreparedRequest) -> str:
    """`GET /v1/resource?offset=200`: enough to locate a failure, never a credential."""
    parts = urlsplit(request.url or "")
    query = f"?{parts.query}" if parts.query and request.method == "GET" else ""
    return f"{request.method} {parts.path}{query}"


RequestKey = tuple[str, str, tuple]


def request_key(request: Request) -> RequestKey:
    """The same page asked for twice has the same key, whatever the order of its parameters."""
    params = sorted((str(k), str(v)) for k, v in (request.params or {}).items())
    return (request.method or "GET").upper(), request.url, tuple(params)


BEARER = "Bearer "


@configspec
class ClientCredentials(OAuth2ClientCredentials):
    """One token per sync, shared by every request and resource, renewed ahead of its expiry.

    The token request is RFC 6749's (§4.4): the grant, the `scope` and the provider's extra fields
    (dlt's `access_token_request_data`, e.g. an `audience`), with the client authenticated in the
    form (`client_secret_post`) or with HTTP Basic (`client_secret_basic`, §2.3.1: id and secret
    form-urlencoded first), never both."""

    refresh_margin: float = 60.0
    scope: Optional[str] = None
    token_endpoint_auth_method: str = "client_secret_post"
    stats: Annotated[Optional[SyncStats], NotResolved()] = None

    @classmethod
    def of(cls, options: AuthOptions, token_url: str, client_id: str, client_secret: str, refresh_margin: float,
           session: Session, stats: SyncStats) -> "ClientCredentials":
        scope = " ".join(options.scope) if isinstance(options.scope, list) else options.scope
        return cls(
            access_token_url=token_url, client_id=client_id, client_secret=client_secret, scope=scope,
            token_endpoint_auth_method=options.token_endpoint_auth_method,
            access_token_request_data=dict(options.access_token_request_data),
            default_token_expiration=options.default_token_expiration, refresh_margin=refresh_margin,
            session=session, stats=stats,
        ).resolve()  # values are explicit: no lookup in config providers that could override them

    def __post_init__(self) -> None:
        super().__post_init__()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> Self:
        """dlt deep-copies configs to mask their secrets before validating them; the copy gets a
        lock of its own (locks cannot be copied) and is never used to fetch."""
        clone = copy.copy(self)
        clone._lock = threading.Lock()
        return clone

    def build_access_token_request(self) -> dict[str, Any]:
        data = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {}),
                **self.access_token_request_data}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.token_endpoint_auth_method == "client_secret_basic":
            pair = f"{quote_plus(str(self.client_id))}:{quote_plus(str(self.client_secret))}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        return {"headers": headers, "data": data}

    def obtain_token(self) -> None:
        """A token, or an error that says why not: the token request is never redirected (the
        secret would go where the redirect says), and a refusal shows the provider's own reason
        (RFC 6749 §5.2 `error`, `error_description`), never the credentials."""
        response = self.session.post(self.access_token_url, allow_redirects=False, **self.build_access_token_request())
        status = response.status_code
        if 300 <= status < 400:
            raise TokenEndpointError(self.access_token_url, f"answered HTTP {status}, a redirect to "
                                     f"{host_of(response.headers.get('Location') or '') or 'elsewhere'}; the token "
                                     "request is never redirected")
        if status in (400, 401, 403):
            raise CredentialsRejected(self.access_token_url, status, self._reason(response))
        if status >= 400:
            raise TokenEndpointError(self.access_token_url, f"answered HTTP {status} {response.reason or ''}".rstrip())
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise TokenEndpointError(self.access_token_url, "answered without an `access_token`")
        renewing = self.access_token is not None
        self.parse_native_representation(self.parse_access_token(payload))
        lifetime = self.parse_expiration_in_seconds(payload)
        # Renew ahead of expiry, but never spend more than half a short token's life on the margin.
        self.token_expiry = pendulum.now().add(seconds=lifetime - min(self.refresh_margin, lifetime / 2))
        if renewing and self.stats is not None:
            self.stats.add(token_refreshes=1)

    def _reason(self, response: Response) -> str:
        """The provider's `error` and `error_description`, short, with anything that spells the
        credentials masked (a careless provider may echo the request)."""
        try:
            payload = response.json()
        except ValueError:
            return ""
        if not isinstance(payload, dict):
            return ""
        said = ": ".join(str(payload[key])[:200] for key in ("error", "error_description") if payload.get(key))
        for secret in (str(self.client_secret), str(self.client_id)):
            for form in (secret, quote_plus(secret), quote(secret, safe=""),
                         base64.b64encode(secret.encode()).decode().rstrip("=")):
                if len(form) >= 4:
                    said = said.replace(form, "***")
        return said

    def token(self, rejected: Optional[str] = None) -> str:
        """The current token, renewed first if it is due, or if it is still the `rejected` one
        (several requests in flight may all get a 401 for one token: one renewal serves all)."""
        with self._lock:
            stale = self.access_token is None or self.is_token_expired()
            if stale or (rejected is not None and str(self.access_token) == rejected):
                self.obtain_token()
            return str(self.access_token)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = BEARER + self.token()
        return request

    def refresh_header(self, request: PreparedRequest, rejected: bool = False) -> None:
        """Give a prepared request a currently valid token: before every attempt, so a retry never
        carries a token that expired while it waited, and with `rejected=True` after a 401, to
        replace the token that request carried."""
        header = request.headers.get("Authorization")
        if header is not None:
            request.headers["Authorization"] = BEARER + self.token(header.removeprefix(BEARER) if rejected else None)

    def __repr__(self) -> str:  # the dataclass repr would print the secrets
        return f"{type(self).__name__}(access_token_url={self.access_token_url!r})"

    __str__ = __repr__


@dataclass
class Attempt:
    number: int
    ended: float = 0.0
    throttled: bool = False
    asked_wait: Optional[float] = None  # a Retry-After beyond ANALYTICS_MAX_RETRY_WAIT


class Transport(HTTPAdapter):
    """Applies the sync's policy to every attempt; dlt's `Client` above it does the retrying.

    Requests go only to `home` (the scheme, host and port of the URL the deployment configured):
    a redirect, or a next-page link, anywhere else is refused before anything, a token least of
    all, is sent. A response is read within bounds: at most ANALYTICS_MAX_RESPONSE_BYTES, counted
    as it arrives, and within ANALYTICS_REQUEST_DEADLINE in all, whatever the server's pace.
    `setting` names what says where its requests go, for messages. Every request waits for the
    sync's `limiter` (the API's announced rate limit, a Retry-After, ANALYTICS_MAX_REQUESTS_PER_SECOND)
    before it goes on the wire, and the limiter is told every answer."""

    setting = "ANALYTICS_API_BASE_URL"
    paced = True  # the token endpoint's transport is not: a token is fetched once an hour or so

    def __init__(self, settings: Settings, stats: SyncStats, home: Origin, auth: Optional[ClientCredentials] = None,
                 slots: Optional[threading.Semaphore] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stats = stats
        self.home = home
        self.auth = auth
        self.slots = slots or threading.BoundedSemaphore(settings.max_concurrency)
        self.observe: Optional[Callable[[int], None]] = None  # told every status (the lookahead's AIMD)
        self.limiter: Optional[RateLimiter] = RateLimiter(
            settings.max_retry_wait, settings.max_requests_per_second, settings.max_concurrency, stats.warn,
        ) if self.paced else None
        self._attempts: WeakKeyDictionary[PreparedRequest, Attempt] = WeakKeyDictionary()

    def __deepcopy__(self, memo: dict) -> Self:
        """One per sync by design: dlt deep-copies the config (and its session) it validates."""
        return self

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        return JsonResponse.of(super().build_response(req, resp))

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        attempt = self._begin(request)
        try:
            response = self.exchange(request, **kwargs)
        except TRANSIENT_ERRORS as error:
            attempt.ended, attempt.throttled = time.monotonic(), False
            if isinstance(getattr(error.args[0] if error.args else None, "reason", None), NameResolutionError):
                raise HostNotFound(host_of(request.url or ""), self.setting) from None
            if attempt.number >= self.settings.max_attempts:
                raise RetriesExhausted(where(request), f"{type(error).__name__} ({_short(error)})",
                                       attempt.number, self.setting) from None
            raise
        attempt.ended = time.monotonic()
        attempt.throttled = response.status_code == 429 or "Retry-After" in response.headers
        asked = retry_after(response)
        if asked is not None and asked > self.settings.max_retry_wait and response.status_code in RETRY_STATUSES:
            attempt.asked_wait = asked
            self.stats.warn(f"{where(request)}: the server asked to wait {asked:.0f} s before retrying (Retry-After); "
                            f"ANALYTICS_MAX_RETRY_WAIT={self.settings.max_retry_wait:g} caps the wait, so the retry "
                            "comes sooner than asked.")
        self._raise_for_status(request, response, attempt)
        return response

    def exchange(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """One exchange with the server, with a valid token, renewed once if the server rejects it."""
        if self.auth is not None:
            self.auth.refresh_header(request)
        response = self._on_the_wire(request, **kwargs)
        if response.status_code == HTTPStatus.UNAUTHORIZED and self.auth is not None:
            self.auth.refresh_header(request, rejected=True)
            response = self._on_the_wire(request, **kwargs)
            if response.status_code == HTTPStatus.UNAUTHORIZED:
                raise TokenRejected(where(request))
        if self.observe is not None:
            self.observe(response.status_code)
        return response

    def _on_the_wire(self, request: PreparedRequest, **kwargs: Any) -> Response:
        target = origin(request.url or "")
        if target != self.home:
            raise ResponseRefused(
                where(request), f"would go to {target.scheme}://{target.host}:{target.port} (a redirect or a link), not "
                f"{self.home.scheme}://{self.home.host}:{self.home.port}",
                f"Requests, and tokens, go only where {self.setting} points: point it at the API's final address.")
        limiter, ticket = self.limiter, None
        if limiter is not None:
            attempt = self._attempts.get(request)
            ticket = limiter.acquire(priority=attempt.number if attempt else 1)  # retries first
            if ticket.waited > 0:
                self.stats.add(rate_limit_wait_seconds=ticket.waited)
        started = time.monotonic()
        response: Optional[JsonResponse] = None
        with self.slots:
            try:
                response = super().send(request, **{**kwargs, "stream": True})
                response.body = self._read(request, response, started)
                return response
            finally:
                self.stats.add(requests=1)
                if limiter is not None and ticket is not None:
                    if response is None:
                        limiter.release(ticket)  # no answer: nothing to learn, but it is no longer in flight
                    else:
                        limiter.release(ticket, response.status_code, response.headers, retry_after(response))

    def _read(self, request: PreparedRequest, response: JsonResponse, started: float) -> bytes:
        """The body, read here (a connection cut mid-body fails this attempt) a piece at a time, so
        that neither its size nor the server's pace can exceed the bounds."""
        limit, deadline = self.settings.max_response_bytes, started + self.settings.request_deadline
        chunks, size = [], 0
        try:
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise ResponseRefused(where(request), f"sent a body of more than {limit:,} bytes",
                                          "Raise ANALYTICS_MAX_RESPONSE_BYTES if the API's pages are that large, "
                                          "or ask for smaller pages (the paginator's `limit`).")
                if time.monotonic() > deadline:
                    raise ResponseRefused(where(request), f"took more than {self.settings.request_deadline:g} s "
                                          f"(ANALYTICS_REQUEST_DEADLINE) to answer", "Raise it if the API is that slow.")
                chunks.append(chunk)
        except ResponseRefused:
            response.close()
            raise
        except ProtocolError as error:  # what requests' own reading raises, for retries to see
            raise ChunkedEncodingError(error) from None
        except ReadTimeoutError as error:
            raise ReadTimeout(error) from None
        return b"".join(chunks)

    def _begin(self, request: PreparedRequest) -> Attempt:
        previous = self._attempts.get(request)
        attempt = self._attempts[request] = Attempt(previous.number + 1 if previous else 1)
        if previous is not None:
            waited = time.monotonic() - previous.ended
            self.stats.add(retries=1, **{"throttle_wait_seconds" if previous.throttled else "retry_wait_seconds": waited})
        return attempt

    def _raise_for_status(self, request: PreparedRequest, response: Response, attempt: Attempt) -> None:
        status = response.status_code
        if status < 400:
            return
        if status in RETRY_STATUSES:
            if attempt.number >= self.settings.max_attempts:
                raise RetriesExhausted(where(request), f"HTTP {status} {response.reason}", attempt.number,
                                       self.setting, attempt.asked_wait, self.settings.max_retry_wait)
            return  # dlt's retry loop waits (honouring Retry-After) and sends it again
        raise RequestRejected(where(request), status, response.reason or "", response.text[:MAX_ERROR_BODY])


class TokenTransport(Transport):
    """The token endpoint's transport: its refusals are read by the credentials (their reason is
    in the answer); retries and their exhaustion as for the API."""

    setting = "ANALYTICS_TOKEN_URL"
    paced = False

    def _raise_for_status(self, request: PreparedRequest, response: Response, attempt: Attempt) -> None:
        if response.status_code in RETRY_STATUSES:
            super()._raise_for_status(request, response, attempt)


def retry_after(response: Response) -> Optional[float]:
    """The seconds a response's Retry-After asks for (delta seconds or an HTTP date), if any."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _short(error: BaseException) -> str:
    """The exception's class of problem without the URL dump urllib3 puts in its messages."""
    text = str(error)
    return text.split(": ")[-1][:120] if text else type(error).__name__


def build_session(transport: Transport, url: str) -> Session:
    """A session that retries exactly the seed's statuses and transient network errors.

    The environment's proxy and CA settings are read once, for `url`'s host: requests otherwise
    re-reads the whole environment on every request (about a tenth of a sync's CPU)."""
    settings = transport.settings
    session = Client(
        request_timeout=settings.http_timeout,
        raise_for_status=False,
        status_codes=RETRY_STATUSES,
        exceptions=TRANSIENT_ERRORS,
        request_max_attempts=settings.max_attempts,
        request_backoff_factor=settings.backoff_factor,
        request_max_retry_delay=settings.max_retry_wait,
        respect_retry_after_header=True,
    ).session
    session.mount("http://", transport)
    session.mount("https://", transport)
    session.proxies.update(get_environ_proxies(url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


class Lookahead:
    """Pages a paginator will ask for next, requested ahead by the sync's retrying session (same
    token, retries, response checks and accounting as a page requested in turn), at most `cap`
    requests in flight in all, the paging loop's own included.

    A paginator hands over the requests of its upcoming pages (`send_ahead`). When dlt's paging
    loop then asks for one of them, the `PagingSession` it talks to hands over the request already
    prepared and its answer, or what it raised: nothing is prepared, sent or checked twice. Pages
    are still consumed and checked in order. How many are kept in flight: enough to hide the API's
    latency behind the time the loop spends on a page (measured as the sync goes), within a window
    that halves on each 429 and grows back by one after a window's worth of successes (AIMD).
    Owned by one sync: its threads end with it.
    """

    def __init__(self, session: Session, cap: int) -> None:
        self.session = session  # dlt's retrying session
        self.cap = cap
        self.window = cap
        self._successes = 0
        self._fetch_seconds = 0.0  # moving averages: how long a request takes,
        self._page_seconds = 0.0  # and how long the paging loop works on a page, waiting aside
        self._last_served: Optional[float] = None
        self._in_flight: dict[RequestKey, tuple[PreparedRequest, Future]] = {}
        self._claimable: dict[PreparedRequest, Future] = {}  # handed to the paging loop, not yet sent by it
        self._templates: WeakKeyDictionary[Request, PreparedRequest] = WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(cap, thread_name_prefix="analytics-lookahead")
        self._send_options = {"verify": session.verify, "cert": session.cert, "proxies": dict(session.proxies)}

    def __deepcopy__(self, memo: dict) -> Self:
        return self  # one per sync: dlt's validation copy must not start threads of its own

    def observe(self, status: int) -> None:
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
        return max(1, min(self.window, math.ceil(self._fetch_seconds / self._page_seconds) + 1))

    def send_ahead(self, template: Request, requests: Iterable[Request]) -> list[RequestKey]:
        """Sends those of `requests` (like `template` but for their URL and parameters) not already
        in flight; returns the keys of all of them. The template is prepared as the session would,
        once; each request copies it with its own URL (the transport gives every attempt a valid
        token): a full preparation costs twice as much."""
        prepared_template = self._templates.get(template)
        if prepared_template is None:
            prepared_template = self._templates[template] = self.session.prepare_request(template)
        keys = []
        for request in requests:
            key = request_key(request)
            keys.append(key)
            with self._lock:
                if key in self._in_flight:
                    continue
                prepared = prepared_template.copy()
                prepared.prepare_url(request.url, request.params)
                self._in_flight[key] = (prepared, self._pool.submit(self._timed_send, prepared))
        return keys

    def prepared(self, request: Request) -> Optional[PreparedRequest]:
        """The request sent ahead for this one, now the paging loop's to send, or None."""
        with self._lock:
            entry = self._in_flight.pop(request_key(request), None)
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

    def __deepcopy__(self, memo: dict) -> Self:
        return self  # one per sync, like its lookahead

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


class ApiClient:
    """What one sync talks to the API with: the OAuth2 credentials, the token session, the data
    session and the pages requested ahead. Use it as a context manager: leaving it ends its
    threads and closes its connections, whether the sync succeeded or not."""

    def __init__(self, definition: ApiDefinition, settings: Settings, stats: SyncStats,
                 credentials: Optional[Credentials] = None) -> None:
        self.definition = definition
        self.settings = settings
        self.stats = stats
        self.base_url, self.token_url = definition.urls(settings)
        self.auth = ClientCredentials.of(
            definition.config.client.auth, self.token_url, _credential("client_id", settings, credentials),
            _credential("client_secret", settings, credentials), settings.token_refresh_margin,
            build_session(TokenTransport(settings, stats, origin(self.token_url)), self.token_url), stats,
        )
        pool = max(10, settings.max_concurrency)
        transport = Transport(settings, stats, origin(self.base_url), self.auth, pool_connections=pool, pool_maxsize=pool)
        self.retrying: Session = build_session(transport, self.base_url)  # safe to share between threads
        self.session: Session = self.retrying  # what dlt's paging loop talks to
        self.lookahead: Optional[Lookahead] = None
        if settings.max_concurrency > 1:
            self.lookahead = Lookahead(self.retrying, settings.max_concurrency)
            transport.observe = self.lookahead.observe
            self.session = PagingSession(self.retrying, self.lookahead)

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.lookahead is not None:
            self.lookahead.close()
        self.session.close()
        self.auth.session.close()


def _credential(name: str, settings: Settings, credentials: Optional[Credentials]) -> str:
    """From the settings (ANALYTICS_*), the config dict (the seed's), or dlt's secrets, in order."""
    value = settings.secret(name) or (getattr(credentials, name) if credentials else None) or dlt.secrets.get(name)
    if not value:
        raise MissingCredentials(name)
    return value
