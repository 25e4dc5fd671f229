"""Every request of a sync below dlt's retry loop: a transport that authenticates, paces, bounds and
reads each attempt, and the retrying session it is mounted in.

dlt's retry re-sends the request it prepared first, with the token of the first attempt; after a
2+4+8 s backoff a short-lived token has expired by the fourth attempt. The transport sits below
the retry loop, so it sees every attempt: it gives each one a valid token, renews the token once
on a 401, asks the sync's throttle when it may go, counts retries and waits, and turns failures
into errors that name the fix.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Optional
from urllib.parse import parse_qs, unquote_plus, urlsplit
from weakref import WeakKeyDictionary

import orjson
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ReadTimeout, Timeout
from requests.utils import get_environ_proxies
from urllib3.exceptions import NameResolutionError, ProtocolError, ReadTimeoutError

from dlt.sources.helpers.requests import Client

from ..errors import (AnalyticsSyncError, HostNotFound, MalformedResponse, RequestFailed, RequestRejected,
                      ResponseRefused, RetriesExhausted, SettingsError, TokenRejected, mask_error, masked)
from ..settings import Settings
from .auth import ClientCredentials
from .stats import SyncStats
from .throttle import Throttle
from .urls import Origin, host_of, is_loopback, origin_of
from .wire import Unbounded, WatchedPools, deadline

RETRY_STATUSES = (429, 500, 502, 503, 504)  # the seed's policy
TRANSIENT_ERRORS = (ConnectionError, Timeout, ChunkedEncodingError)
MAX_ERROR_BODY = 200


# orjson reads an integer beyond 64 bits (from 19 digits on, for negative ones) as a float, losing
# digits silently. A run of 19 digits anywhere in the body sends it to Python's decoder, which keeps
# integers exact; finding one costs a byte translation and a substring search (~20 µs a page).
_DIGITS_AS_ONES = bytes.maketrans(b"0123456789", b"1" * 10)
_LONG_NUMBER = b"1" * 19


# A value nested deeper than this is cut off (`_pruned`) before the body is decoded: orjson stops at
# 1,024 levels and Python's decoder at its recursion limit, and either would fail without naming
# the record. What is left of the value is still deeper than any column holds (records.MAX_NESTING),
# so the record's check fails naming its field and id.
DECODED_DEPTH = 320
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPENING = frozenset(b"[{")


def decode(content: bytes) -> Any:
    """A JSON body, by orjson (about three times faster than requests' `json()`) where it reads the
    body exactly as Python's decoder does; raises ValueError when neither can read it."""
    if _LONG_NUMBER not in content.translate(_DIGITS_AS_ONES):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass  # orjson refuses what Python's decoder takes (a lone surrogate escape, NaN, 1,024 levels)
    try:
        return json.loads(content)
    except RecursionError:
        return decode(_pruned(content))


def _pruned(content: bytes) -> bytes:
    """The body with every value that opens below DECODED_DEPTH levels replaced by `[]`; read token
    by token (strings skipped whole), so only a body too deep to decode pays for it."""
    kept, depth, cut_from, start = [], 0, 0, None
    for token in _JSON_TOKEN.finditer(content):
        first = token.group()[0]
        if first == 0x22:  # a string: brackets inside it are text
            continue
        if first in _OPENING:
            depth += 1
            if depth == DECODED_DEPTH + 1:
                start = token.start()
        else:
            if depth == DECODED_DEPTH + 1 and start is not None:
                kept += [content[cut_from:start], b"[]"]
                cut_from, start = token.end(), None
            depth -= 1
    if start is not None:  # never closed: what is left is not JSON, and says so when decoded
        return content[cut_from:start] + b"["
    return b"".join(kept) + content[cut_from:]


def values_in(content: bytes) -> int:
    """How many values a JSON body holds at most, counted on its bytes: every value but the first
    follows a `,` or opens a container's first (commas in strings count too: an upper bound)."""
    return content.count(b",") + content.count(b"[") + content.count(b"{") + 1


class JsonResponse(Response):
    """A response whose body the transport read within its bounds (`body`), decoded once: dlt's
    paging loop, the paginator and the page checks all read it."""

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
    all, is sent. Every request to `home` carries a currently valid token from `auth`. Every
    request waits for the sync's `throttle` before it goes on the wire, and the throttle is told
    every answer. A response is read within bounds: at most ANALYTICS_MAX_RESPONSE_BYTES, counted
    as it arrives; ANALYTICS_REQUEST_DEADLINE from connecting to the last byte, whatever the
    server's pace; a few interim answers and a short trailer (`wire.py`). A successful answer that
    is not JSON fails here, naming the request. `setting` names what says where its requests go,
    for messages."""

    setting = "ANALYTICS_API_BASE_URL"

    def __init__(self, settings: Settings, stats: SyncStats, home: Origin, auth: Optional[ClientCredentials] = None,
                 throttle: Optional[Throttle] = None, max_bytes: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.max_bytes = min(max_bytes or settings.max_response_bytes, settings.max_response_bytes)
        self.stats = stats
        self.home = home
        self.auth = auth
        self.throttle = throttle
        self.proxies = proxies_for(f"{home.scheme}://{home.host}:{home.port}")  # read once: requests re-reads
        self._attempts: WeakKeyDictionary[PreparedRequest, Attempt] = WeakKeyDictionary()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WatchedPools  # connections the request's deadline watches

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own, unwatched (README)
            manager.pool_classes_by_scheme = WatchedPools
        return manager

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        return JsonResponse.of(super().build_response(req, resp))

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        """One attempt. Every error raised from here is masked (`errors.masked`): ours quote the
        server (a reason, a body, a link) and libraries quote what they were given (http.client a
        header value), so whatever credential the request carried, and every credential and token of
        the sync, is hidden first. A library's own error is raised as ours, not chained to its
        unmasked words (dlt's trace records every exception of a chain)."""
        try:
            return self._attempt(request, **kwargs)
        except TRANSIENT_ERRORS:
            raise  # for dlt's retry loop; their words are an address, never a credential
        except (AnalyticsSyncError, SettingsError) as error:
            mask_error(error, self.secrets(request))
            raise
        except Exception as error:  # a library refusing the request or its answer
            detail = masked(f"{type(error).__name__}: {error}", self.secrets(request), limit=MAX_ERROR_BODY)
            failure = mask_error(RequestFailed(where(request), detail, self.setting), self.secrets(request))
        raise failure  # outside the except clause: the library's own words stay out of the chain

    def secrets(self, request: PreparedRequest) -> list[str]:
        """What the request carries (its Authorization's credentials, a token request's client id
        and secret) and every credential and token of the sync: what no message may show."""
        return carried(request) + (self.auth.secrets() if self.auth is not None else [])

    def _attempt(self, request: PreparedRequest, **kwargs: Any) -> Response:
        attempt = self._begin(request)
        try:
            response = self.exchange(request, **kwargs)
        except TRANSIENT_ERRORS as error:
            attempt.ended, attempt.throttled = time.monotonic(), False
            if isinstance(getattr(error.args[0] if error.args else None, "reason", None), NameResolutionError):
                raise HostNotFound(host_of(request.url or ""), self.setting) from None
            if attempt.number >= self.settings.max_attempts:
                said = _short(masked(str(error), self.secrets(request))) or type(error).__name__
                raise RetriesExhausted(where(request), f"{type(error).__name__} ({said})",
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
            self.auth.authorize(request.headers)
        response = self._on_the_wire(request, **kwargs)
        if response.status_code == HTTPStatus.UNAUTHORIZED and self.auth is not None:
            self.auth.authorize(request.headers, rejected=True)
            response = self._on_the_wire(request, **kwargs)
            if response.status_code == HTTPStatus.UNAUTHORIZED:
                raise TokenRejected(where(request))
        return response

    def _on_the_wire(self, request: PreparedRequest, **kwargs: Any) -> Response:
        target = origin_of(request.url or "")
        if target != self.home:
            raise ResponseRefused(
                where(request), f"would go to {target.scheme}://{target.host}:{target.port} (a redirect or a link), not "
                f"{self.home.scheme}://{self.home.host}:{self.home.port}",
                f"Requests, and tokens, go only where {self.setting} points: point it at the API's final address.")
        throttle, ticket = self.throttle, None
        if throttle is not None:
            attempt = self._attempts.get(request)
            ticket = throttle.acquire(priority=attempt.number if attempt else 1)  # retries first
            if ticket.waited > 0:
                self.stats.add(rate_limit_wait_seconds=ticket.waited)
        response: Optional[JsonResponse] = None
        try:
            response = self._fetch(request, **kwargs)
            self._check_values(request, response)
            self._check_json(request, response)
            return response
        finally:
            self.stats.add(requests=1)
            if throttle is not None and ticket is not None:
                if response is None:
                    throttle.release(ticket)  # no answer: nothing to learn, but it is no longer in flight
                else:
                    throttle.release(ticket, response.status_code, response.headers, retry_after(response))

    def _fetch(self, request: PreparedRequest, **kwargs: Any) -> JsonResponse:
        """The response with its body, within ANALYTICS_REQUEST_DEADLINE from connecting to the last
        byte: when it passes, the connection is shut down (`wire.deadline`), whatever the read in
        progress, and the request fails naming the setting. Not retried, as a response beyond the
        other bounds (`wire.Unbounded`) is not: the server would do it again."""
        seconds = self.settings.request_deadline
        response: Optional[JsonResponse] = None
        with deadline(seconds) as clock:
            try:
                response = super().send(request, **{**kwargs, "stream": True, "proxies": self.proxies,
                                                    "timeout": _connect_within(kwargs.get("timeout"), seconds)})
                response.body = self._read(request, response)
            except Unbounded as error:
                raise ResponseRefused(where(request), str(error),
                                      f"Check that {self.setting} points at the API itself.") from None
            except Exception:
                if not clock.expired:
                    raise
            if not clock.expired and response is not None:
                return response
        if response is not None:
            response.close()
        raise ResponseRefused(where(request), f"took more than {seconds:g} s (ANALYTICS_REQUEST_DEADLINE) to answer",
                              "Raise it if the API is that slow.")

    def _read(self, request: PreparedRequest, response: JsonResponse) -> bytes:
        """The body, read here (a connection cut mid-body fails this attempt) a piece at a time, so
        that its size cannot exceed the bound, however it is sent (decompressed, chunked)."""
        limit = self.max_bytes
        chunks, size = [], 0
        try:
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise ResponseRefused(where(request), f"sent a body of more than {limit:,} bytes",
                                          "Raise ANALYTICS_MAX_RESPONSE_BYTES if the API's pages are that large, "
                                          "or ask for smaller pages (the paginator's `limit`).")
                chunks.append(chunk)
        except ResponseRefused:
            response.close()
            raise
        except ProtocolError as error:  # what requests' own reading raises, for retries to see
            raise ChunkedEncodingError(error) from None
        except ReadTimeoutError as error:
            raise ReadTimeout(error) from None
        return b"".join(chunks)

    def _check_values(self, request: PreparedRequest, response: JsonResponse) -> None:
        """A body is decoded only if it holds at most ANALYTICS_MAX_PAGE_VALUES values: what a decoded
        body costs follows from them, not from its bytes (`[{},{},...]` makes a 64 MiB body 1.5 GB)."""
        values, bound = values_in(response.body or b""), self.settings.max_page_values
        if values > bound:
            raise ResponseRefused(where(request), f"sent a body of more than {bound:,} values ({values:,} counted)",
                                  "Ask for smaller pages (the paginator's `limit`), or raise "
                                  "ANALYTICS_MAX_PAGE_VALUES if the API's pages are that large.")

    def _check_json(self, request: PreparedRequest, response: JsonResponse) -> None:
        """A successful answer is JSON (or empty: an empty page); anything else is not the API."""
        if response.status_code >= 300 or not response.body:
            return
        try:
            response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "")
            kind = "an HTML page" if "html" in content_type else "invalid JSON"
            raise MalformedResponse(where(request), f"{kind} (Content-Type {content_type or 'missing'!r})") from None

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
        # Masked whole, then cut: a cut first could leave half a credential that no longer matches.
        body = masked(response.text, self.secrets(request), limit=MAX_ERROR_BODY)
        raise RequestRejected(where(request), status, response.reason or "", body)


class TokenTransport(Transport):
    """The token endpoint's transport: not paced (a token is fetched once an hour or so), its
    refusals and bodies are read by the credentials (their reason is in the answer); retries and
    their exhaustion as for the API."""

    setting = "ANALYTICS_TOKEN_URL"

    def _check_json(self, request: PreparedRequest, response: JsonResponse) -> None:
        pass

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


def _short(text: str) -> str:
    """An exception's class of problem without the URL dump urllib3 puts in its messages."""
    return text.split(": ")[-1][:120]


def carried(request: PreparedRequest) -> list[str]:
    """The credentials a request carries: its Authorization header's (a token, or a Basic pair and
    the id and secret in it), and a token request's `client_id` and `client_secret` form fields."""
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    found = [credentials]
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(credentials, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            pair = ""
        found += [unquote_plus(part) for part in pair.split(":", 1) if part]
    if isinstance(request.body, (str, bytes)) and "form-urlencoded" in request.headers.get("Content-Type", ""):
        body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
        form = parse_qs(body)
        found += [value for key in ("client_id", "client_secret") for value in form.get(key, [])]
    return [secret for secret in found if secret]


def _connect_within(timeout: Any, seconds: float) -> Any:
    """requests' timeout with connecting bounded by the deadline too: until a socket exists there is
    nothing for the deadline to shut down."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return (seconds if connect is None else min(connect, seconds), read)


def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment names for `url` (HTTPS_PROXY, ALL_PROXY, NO_PROXY...), or none
    at all for a loopback host (this machine: nothing stands between, and a proxy would see its
    traffic) or for plain http (the token would cross the proxy in clear; only loopback may be
    plain http anyway, `urls.check_url`)."""
    origin = origin_of(url)
    if origin.scheme != "https" or is_loopback(origin.host):
        return {}
    return get_environ_proxies(url)


def build_session(transport: Transport, url: str) -> Session:
    """A session that retries exactly the seed's statuses and transient network errors.

    The environment's CA settings are read once, and its proxies once, by the transport, which
    decides them for every request (`proxies_for`): requests otherwise re-reads the whole
    environment on every request (about a tenth of a sync's CPU)."""
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
    session.proxies.update(transport.proxies)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session
