"""A local stand-in for a paginated analytics API behind OAuth2 client credentials.

It lets the pipeline be demoed, tested and benchmarked without a real vendor:
it serves deterministic data fast enough never to be the bottleneck, and it
misbehaves on demand (``Faults``) the way real APIs do.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .records import Record, clone, format_timestamp, generate_records, parse_timestamp, paused_gc, timestamp_key

TOKEN_PATH = "/oauth/token"
RESOURCE_PATH = "/v1/resource"
FAULT_KINDS = frozenset(
    {
        "status",
        "reset",
        "close_mid_body",
        "hang",
        "slow",
        "invalid_json",
        "html",
        "missing_data",
        "data_not_list",
        "total_not_number",
        "repeat_page",
        "unauthorized",
    }
)
MAINTENANCE_HTML = b"<html><body>Service maintenance</body></html>"
DEFAULT_SLOW_SECONDS = 1.0
_STOP_JOIN_SECONDS = 5.0
_WINDOW_CACHE_SIZE = 16
_FRAGMENT_CACHE_SIZE = 250_000

RetryAfter = int | float | str | None


@dataclass
class DemoApiConfig:
    """Shape of the demo data and of the API's behaviour."""

    records: int = 1000
    days: int = 7
    end_date: date | None = None  # None -> today's UTC date
    seed: int = 0
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    token_lifetime: int = 3600
    latency_ms: float = 0.0  # added to every /v1/resource response
    page_cap: int | None = None
    include_total: bool = True
    has_more: bool = False
    port: int = 0  # 0 -> ephemeral


class RequestLog(NamedTuple):
    """One served request; ``status`` is None when no response was sent."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None


class _Response(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=headers)


def _invalid_token() -> _Response:
    return _json_response(401, {"error": "invalid_token"}, (("WWW-Authenticate", 'Bearer error="invalid_token"'),))


def _json_default(value: Any) -> Any:
    # Tests inject odd values into records; serve them rather than fail the page.
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def _page_body(data: str, total: str | None, has_more: bool | None, data_key: str = "data") -> bytes:
    parts = ['{"', data_key, '":', data]
    if total is not None:
        parts += [',"total":', total]
    if has_more is not None:
        parts += [',"has_more":', "true" if has_more else "false"]
    parts.append("}")
    return "".join(parts).encode()


def _prepared(record: Mapping[str, Any]) -> Record:
    """Copy a caller's record so later changes on their side cannot leak in."""
    row = {key: format_timestamp(v) if isinstance(v, datetime) else clone(v) for key, v in record.items()}
    record_id = row.get("id")
    if not isinstance(record_id, int) or isinstance(record_id, bool):
        raise ValueError(f"record id must be an int, got {record_id!r}")
    return row


def _bound(value: datetime | date | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_timestamp(value)
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return timestamp_key(value)


class _Store:
    """Records sorted by id, with cached windows and JSON fragments.

    Filtering a million records for every page request would make the server
    the bottleneck, so each (since, until) window is computed once per data
    version and each record is encoded once until it changes.
    """

    def __init__(self, rows: list[Record]) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self._load(rows)

    def _load(self, rows: list[Record]) -> None:
        ids = [row["id"] for row in rows]
        if not all(a < b for a, b in zip(ids, ids[1:])):  # generated rows are already in order
            rows = sorted(rows, key=lambda row: row["id"])
            ids = [row["id"] for row in rows]
            if len(set(ids)) != len(ids):
                raise ValueError("record ids must be unique")
        self._ids = ids
        self._rows = rows
        self._keys = [timestamp_key(row.get("updated_at")) for row in rows]
        self._fragments: dict[int, str] = {}
        self._changed()

    def _changed(self, record_id: int | None = None) -> None:
        self.version += 1
        self._windows: dict[tuple[str | None, str | None], list[Record]] = {}
        if record_id is not None:
            self._fragments.pop(record_id, None)

    def _index(self, record_id: int) -> int:
        i = bisect_left(self._ids, record_id)
        if i == len(self._ids) or self._ids[i] != record_id:
            raise KeyError(record_id)
        return i

    def _window(self, lo: str | None, hi: str | None) -> list[Record]:
        window = self._windows.get((lo, hi))
        if window is None:
            pairs = zip(self._rows, self._keys)
            if lo is None and hi is None:
                window = list(self._rows)
            elif hi is None:
                window = [row for row, key in pairs if key is not None and lo <= key]
            elif lo is None:
                window = [row for row, key in pairs if key is not None and key < hi]
            else:
                window = [row for row, key in pairs if key is not None and lo <= key < hi]
            if len(self._windows) >= _WINDOW_CACHE_SIZE:
                self._windows.clear()
            self._windows[(lo, hi)] = window
        return window

    def select(self, lo: str | None, hi: str | None) -> list[Record]:
        with self._lock:
            window = self._window(lo, hi)
        with paused_gc():
            return [clone(row) for row in window]

    def page(self, lo: str | None, hi: str | None, offset: int, size: int) -> tuple[list[str], int]:
        with self._lock:
            window = self._window(lo, hi)
            fragments = self._fragments
            out = []
            for row in window[offset : offset + size]:
                fragment = fragments.get(row["id"])
                if fragment is None:
                    if len(fragments) >= _FRAGMENT_CACHE_SIZE:  # bounds memory for huge stores
                        fragments.clear()
                    fragment = fragments[row["id"]] = _ENCODER.encode(row)
                out.append(fragment)
            return out, len(window)

    def update(self, record_id: int, fields: Mapping[str, Any]) -> None:
        if "id" in fields and fields["id"] != record_id:
            raise ValueError("a record's id cannot be changed; delete and insert instead")
        with self._lock:
            i = self._index(record_id)
            row = _prepared({**self._rows[i], **fields})
            self._rows[i] = row
            self._keys[i] = timestamp_key(row.get("updated_at"))
            self._changed(record_id)

    def insert(self, record: Mapping[str, Any]) -> None:
        row = _prepared(record)
        with self._lock:
            i = bisect_left(self._ids, row["id"])
            if i < len(self._ids) and self._ids[i] == row["id"]:
                raise ValueError(f"record {row['id']} already exists")
            self._ids.insert(i, row["id"])
            self._rows.insert(i, row)
            self._keys.insert(i, timestamp_key(row.get("updated_at")))
            self._changed(row["id"])

    def delete(self, record_id: int) -> None:
        with self._lock:
            i = self._index(record_id)
            del self._ids[i], self._rows[i], self._keys[i]
            self._changed(record_id)

    def replace(self, records: Iterable[Mapping[str, Any]]) -> None:
        rows = [_prepared(record) for record in records]
        with self._lock:
            self._load(rows)


class _Tokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self.issued = 0

    def issue(self, lifetime: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[token] = time.monotonic() + lifetime
            self.issued += 1
        return token

    def valid(self, token: str | None) -> bool:
        with self._lock:
            expiry = self._expiry.get(token or "")
            if expiry is None:
                return False
            if time.monotonic() >= expiry:
                del self._expiry[token or ""]
                return False
            return True

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry.clear()


class _Fault(NamedTuple):
    kind: str
    status: int | None = None
    retry_after: RetryAfter = None


@dataclass
class _Queued:
    fault: _Fault
    path: str
    times: int
    skip: int


@dataclass
class _Rate:
    rate: float
    statuses: tuple[int, ...]
    retry_after: RetryAfter
    rng: random.Random


class Faults:
    """Misbehaviour to inject, consulted by the handler on every request.

    Tests set faults while handler threads read them, so all state sits behind
    one lock. Faults that wait do so on events, so that ``release()`` or
    stopping the server frees their threads at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Queued] = []
        self._rates: dict[str, _Rate] = {}
        self._page_hooks: list[list[Any]] = []  # [pages still to wait for, callback]
        self._release = threading.Event()
        self._stopping = threading.Event()

    def queue(
        self,
        kind: str,
        *,
        path: str = RESOURCE_PATH,
        times: int = 1,
        status: int | None = None,
        retry_after: RetryAfter = None,
        after: int = 0,
    ) -> None:
        """Fault the next ``times`` requests to ``path`` once ``after`` of them went by.

        Entries fire in the order queued; a request faulted by one entry still
        counts towards the ``after`` of the others.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1 or after < 0:
            raise ValueError("times must be >= 1 and after >= 0")
        with self._lock:
            self._queued.append(_Queued(_Fault(kind, status, retry_after), path, times, after))

    def set_rate(
        self,
        rate: float,
        statuses: Sequence[int] = (429, 503),
        retry_after: RetryAfter = None,
        seed: int = 0,
        path: str = RESOURCE_PATH,
    ) -> None:
        """Fail each request to ``path`` with probability ``rate`` (0 disables).

        A seeded generator keeps the sequence of failures reproducible.
        """
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if not statuses:
            raise ValueError("statuses must not be empty")
        with self._lock:
            if rate == 0:
                self._rates.pop(path, None)
            else:
                self._rates[path] = _Rate(rate, tuple(statuses), retry_after, random.Random(seed))

    def on_page(self, n: int, callback: Callable[[DemoApi], object]) -> None:
        """Run ``callback(api)`` just before the n-th successful page from now is built.

        This is how tests change data while a client is paging (offset drift).
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._page_hooks.append([n, callback])

    def release(self) -> None:
        """Free every handler currently held by a ``hang`` fault."""
        with self._lock:
            event, self._release = self._release, threading.Event()
        event.set()

    def clear(self) -> None:
        """Drop all queued, rate and page faults (hung handlers stay hung)."""
        with self._lock:
            self._queued.clear()
            self._rates.clear()
            self._page_hooks.clear()

    def _take(self, path: str) -> _Fault | None:
        with self._lock:
            chosen = None
            for entry in self._queued:
                if entry.path != path:
                    continue
                if entry.skip:
                    entry.skip -= 1
                elif chosen is None:
                    chosen = entry.fault
                    entry.times -= 1
            self._queued = [entry for entry in self._queued if entry.times > 0]
            rate = self._rates.get(path)
            if chosen is None and rate is not None and rate.rng.random() < rate.rate:
                chosen = _Fault("status", rate.rng.choice(rate.statuses), rate.retry_after)
            return chosen

    def _due_page_hooks(self) -> list[Callable[[DemoApi], object]]:
        with self._lock:
            due = []
            for hook in self._page_hooks:
                hook[0] -= 1
                if hook[0] == 0:
                    due.append(hook[1])
            self._page_hooks = [hook for hook in self._page_hooks if hook[0] > 0]
            return due

    def _wait_for_release(self) -> None:
        with self._lock:
            event = self._release
        if not self._stopping.is_set():
            event.wait()

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    api: DemoApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are routine in fault tests.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.api._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request lines would swamp test and benchmark output."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        api = self.server.api
        api._in_flight(+1)
        try:
            self._serve_counted(method)
        finally:
            api._in_flight(-1)

    def _serve_counted(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        path = url.path
        query = _last_values(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        fault = api.faults._take(path)
        if path == RESOURCE_PATH and api.config.latency_ms > 0:
            api.faults._sleep(api.config.latency_ms / 1000)
        kind = fault.kind if fault else None
        if kind in ("reset", "hang"):
            api._log(method, path, query, None)
            if kind == "hang":
                api.faults._wait_for_release()
            else:  # a zero linger makes close() send RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            self.close_connection = True
            return
        if kind == "slow":
            api.faults._sleep(DEFAULT_SLOW_SECONDS if fault.retry_after is None else float(fault.retry_after))
        try:
            response = api._fault_response(fault, path, query) if fault else None
            if response is None:
                response = api._respond(method, path, query, self.headers, body)
        except Exception:  # e.g. a failing on_page callback: answer, keep serving
            traceback.print_exc()
            response = _json_response(500, {"error": "internal"})
        api._log(method, path, query, response.status)
        self._send(response, truncate=kind == "close_mid_body")

    def _send(self, response: _Response, truncate: bool = False) -> None:
        body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)


def _last_values(encoded: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(encoded, keep_blank_values=True).items()}


def _shutdown_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(encoded.strip()).decode().partition(":")
    except ValueError:
        return None
    return (client_id, secret) if sep else None


def _int_param(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}")
    return value


def _time_param(query: Mapping[str, str], name: str) -> str | None:
    if name not in query:
        return None
    try:
        return timestamp_key(parse_timestamp(query[name]))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 timestamp or date") from None


def _retry_after_header(value: RetryAfter) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return (("Retry-After", str(value)),)


class DemoApi:
    """The demo API server plus direct access to its data, tokens, stats and faults.

    Use it as a context manager: the server runs on 127.0.0.1 in a background
    thread, and leaving the block stops it together with every handler thread.
    """

    def __init__(self, config: DemoApiConfig | None = None) -> None:
        config = dataclasses.replace(config or DemoApiConfig())
        if config.end_date is None:
            config.end_date = datetime.now(UTC).date()
        if config.page_cap is not None and config.page_cap < 1:
            raise ValueError("page_cap must be >= 1 or None")
        self._config = config
        self.faults = Faults()
        self._store = _Store(generate_records(config.records, config.days, config.end_date, config.seed))
        self._tokens = _Tokens()
        self._stats_lock = threading.Lock()
        self._requests: list[RequestLog] = []
        self._in_flight_now = 0
        self.max_in_flight = 0  # most requests served at once: shows whether a client pages concurrently
        self._last_success: dict[str, bytes] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> DemoApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> DemoApi:
        """Bind and serve in a background thread; returns self for chaining."""
        if self._server is not None:
            raise RuntimeError("DemoApi is already running")
        self.faults._stopping.clear()
        server = _Server(("127.0.0.1", self._config.port), _Handler)
        server.api = self
        self._server = server
        # A short poll interval keeps stop() fast, which matters for test suites.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, free hung handlers and close kept-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self.faults._stopping.set()
        self.faults.release()
        server.shutdown()
        server.server_close()
        with self._stats_lock:
            connections = dict(self._connections)
        for sock in connections:
            _shutdown_socket(sock)
        deadline = time.monotonic() + _STOP_JOIN_SECONDS
        for thread in [*connections.values(), self._thread]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _register(self, sock: socket.socket) -> None:
        with self._stats_lock:
            self._connections[sock] = threading.current_thread()
            stopping = self.faults._stopping.is_set()
        if stopping:  # accepted just as stop() took its snapshot
            _shutdown_socket(sock)

    def _unregister(self, sock: socket.socket) -> None:
        with self._stats_lock:
            self._connections.pop(sock, None)

    @property
    def config(self) -> DemoApiConfig:
        return self._config

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("DemoApi is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def resource_url(self) -> str:
        return self.base_url + RESOURCE_PATH

    # -- data --------------------------------------------------------------

    def records_in_window(
        self, since: datetime | date | str | None = None, until: datetime | date | str | None = None
    ) -> list[Record]:
        """Deep copies of what the API serves for ``updated_since``/``updated_until``, by id.

        Naive datetimes are taken as UTC, exactly as the HTTP parameters are.
        """
        return self._store.select(_bound(since), _bound(until))

    def all_records(self) -> list[Record]:
        """Deep copies of every record, including ones whose updated_at is junk."""
        return self._store.select(None, None)

    def update_record(self, record_id: int, **fields: Any) -> None:
        """Overwrite fields of one record, e.g. to inject nulls or wrong types.

        Datetime values are stored as ``Z`` strings; anything else as given.
        """
        self._store.update(record_id, fields)

    def insert_record(self, record: Mapping[str, Any]) -> None:
        self._store.insert(record)

    def delete_record(self, record_id: int) -> None:
        self._store.delete(record_id)

    def replace_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        self._store.replace(records)

    # -- tokens ------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far; new ones can still be fetched."""
        self._tokens.revoke_all()

    @property
    def tokens_issued(self) -> int:
        return self._tokens.issued

    def set_token_lifetime(self, seconds: int) -> None:
        """Change the lifetime of tokens issued from now on (issued ones keep theirs)."""
        self._config.token_lifetime = int(seconds)

    # -- stats -------------------------------------------------------------

    @property
    def requests(self) -> list[RequestLog]:
        """Snapshot of every request seen, faulted ones included, in arrival order of responses."""
        with self._stats_lock:
            return list(self._requests)

    def request_count(self, path: str | None = None, status: int | None = None) -> int:
        with self._stats_lock:
            return sum(
                1
                for entry in self._requests
                if (path is None or entry.path == path) and (status is None or entry.status == status)
            )

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._requests.clear()
            self.max_in_flight = self._in_flight_now

    def _in_flight(self, change: int) -> None:
        with self._stats_lock:
            self._in_flight_now += change
            self.max_in_flight = max(self.max_in_flight, self._in_flight_now)

    def _log(self, method: str, path: str, query: dict[str, str], status: int | None) -> None:
        with self._stats_lock:
            self._requests.append(RequestLog(method, path, query, status))

    # -- responses ---------------------------------------------------------

    def _respond(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response:
        if path not in (TOKEN_PATH, RESOURCE_PATH):
            return _json_response(404, {"error": "not_found"})
        if method != ("POST" if path == TOKEN_PATH else "GET"):
            return _json_response(405, {"error": "method_not_allowed"})
        response = self._token(headers, body) if path == TOKEN_PATH else self._resource(headers, query)
        if response.status == 200:
            self._last_success[path] = response.body
        return response

    def _token(self, headers: Mapping[str, str], body: bytes) -> _Response:
        form = _last_values(body.decode("utf-8", "replace"))
        if form.get("grant_type") != "client_credentials":
            return _json_response(400, {"error": "unsupported_grant_type"})
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if client_id is None or client_secret is None:
            client_id, client_secret = _basic(headers.get("Authorization")) or (None, None)
        if not (
            client_id is not None
            and client_secret is not None
            and secrets.compare_digest(client_id.encode(), self._config.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), self._config.client_secret.encode())
        ):
            return _json_response(401, {"error": "invalid_client"})
        lifetime = int(self._config.token_lifetime)
        token = self._tokens.issue(lifetime)
        payload = {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
        return _json_response(200, payload, headers=(("Cache-Control", "no-store"),))

    def _resource(self, headers: Mapping[str, str], query: Mapping[str, str]) -> _Response:
        if not self._tokens.valid(_bearer(headers.get("Authorization"))):
            return _invalid_token()
        try:
            lo, hi, offset, size = self._page_query(query)
        except ValueError as exc:
            return _json_response(400, {"error": "invalid_request", "message": str(exc)})
        for callback in self.faults._due_page_hooks():
            callback(self)
        fragments, total = self._store.page(lo, hi, offset, size)
        return _Response(200, self._page(fragments, total, offset))

    def _page_query(self, query: Mapping[str, str]) -> tuple[str | None, str | None, int, int]:
        offset = _int_param(query, "offset", 0, minimum=0)
        limit = _int_param(query, "limit", 100, minimum=1)
        cap = self._config.page_cap
        size = limit if cap is None else min(limit, cap)
        return _time_param(query, "updated_since"), _time_param(query, "updated_until"), offset, size

    def _page(
        self,
        fragments: list[str],
        total: int,
        offset: int,
        *,
        data: str | None = None,
        data_key: str = "data",
        total_json: str | None = None,
    ) -> bytes:
        if total_json is None and self._config.include_total:
            total_json = str(total)
        has_more = offset + len(fragments) < total if self._config.has_more else None
        return _page_body(data or "[" + ",".join(fragments) + "]", total_json, has_more, data_key)

    def _fault_response(self, fault: _Fault, path: str, query: Mapping[str, str]) -> _Response | None:
        """The response a fault dictates, or None when the normal one should go out."""
        kind = fault.kind
        if kind in ("slow", "close_mid_body"):
            return None  # they alter timing or transport, not the response
        if kind == "status":
            return _json_response(fault.status or 503, {"error": "injected"}, _retry_after_header(fault.retry_after))
        if kind == "invalid_json":
            return _Response(200, b'{"data": [')
        if kind == "html":
            return _Response(200, MAINTENANCE_HTML, "text/html")
        if kind == "unauthorized":
            return _json_response(401, {"error": "invalid_client"}) if path == TOKEN_PATH else _invalid_token()
        if kind == "repeat_page":
            previous = self._last_success.get(path)
            return None if previous is None else _Response(200, previous)
        # The remaining kinds distort a real page, whatever the token says.
        try:
            lo, hi, offset, size = self._page_query(query)
        except ValueError:
            lo, hi, offset, size = None, None, 0, 100
        fragments, total = self._store.page(lo, hi, offset, size)
        if kind == "missing_data":
            body = self._page(fragments, total, offset, data_key="items", total_json=str(total))
        elif kind == "data_not_list":
            body = self._page(fragments, total, offset, data='{"id":1}', total_json=str(total))
        else:  # total_not_number
            body = self._page(fragments, total, offset, total_json='"many"')
        return _Response(200, body)

