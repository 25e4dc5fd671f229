"""The shared machinery of the stand-ins: an HTTP server on 127.0.0.1, an OAuth2 client-credentials
token endpoint, bearer checks, a request log, the stand-ins' calendar, their stored records, and the
timestamp spellings real APIs use.

A stand-in subclasses `StandIn`: it builds its records (`build`), names its routes (`routes`) and
says how a user would configure it (`config`, `plain_dlt_config`). Everything else is here, so each
API's module holds only what its documentation says.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar, Iterable, Mapping, Optional, Sequence, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

UTC = timezone.utc
S = TypeVar("S", bound="StandIn")

# The calendar every stand-in serves: five UTC days, one busy (several pages everywhere), one quiet.
DAYS: tuple[date, ...] = tuple(date(2026, 11, 16) + timedelta(days=i) for i in range(5))
BUSY_DAY = date(2026, 11, 17)
QUIET_DAY = date(2026, 11, 18)
DAY_COUNTS: Mapping[date, int] = {DAYS[0]: 60, BUSY_DAY: 260, QUIET_DAY: 0, DAYS[3]: 120, DAYS[4]: 30}
CLOCK = datetime(2026, 11, 21, tzinfo=UTC)  # the stand-ins' "now": after every record, for start-only APIs


def window_of(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC window `[day 00:00, next day 00:00)`."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


# --- timestamp spellings --------------------------------------------------------------------------

def iso_z(moment: datetime) -> str:
    """`2026-11-17T09:12:33Z` (GitHub, Zendesk, Marketo)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms_z(moment: datetime) -> str:
    """`2026-11-17T09:12:33.120Z` (HubSpot)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_ms_plus0000(moment: datetime) -> str:
    """`2026-11-17T09:12:33.120+0000`: an offset without a colon (Salesforce, Jira)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def iso_offset(moment: datetime, zone: tzinfo, millis: bool = False) -> str:
    """`2026-11-17T10:12:33+01:00`: local time with its offset (Shopify, Rails)."""
    return moment.astimezone(zone).isoformat(timespec="milliseconds" if millis else "seconds")


def naive_utc(moment: datetime) -> str:
    """`2026-11-17 09:12:33`: UTC without any zone (Pipedrive)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def parse_instant(value: Any) -> datetime:
    """An aware UTC instant from any spelling above: ISO 8601 with `Z`, `+0000` or `+01:00`, naive
    text (read as UTC), a bare date (its midnight), epoch seconds or milliseconds as an int or text
    (above 1e11 is milliseconds), epoch seconds as decimal text (Slack's `1763337600.000100`)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip()
    if isinstance(value, int) or re.fullmatch(r"\d+", text):
        number = int(text)
        if number > 10**11:
            return datetime.fromtimestamp(number // 1000, UTC) + timedelta(milliseconds=number % 1000)
        return datetime.fromtimestamp(number, UTC)
    if re.fullmatch(r"\d+\.\d+", text):
        whole, fraction = text.split(".")
        return datetime.fromtimestamp(int(whole), UTC) + timedelta(microseconds=int((fraction + "000000")[:6]))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    text = re.sub(r"Z$", "+00:00", text)
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # +0000 -> +00:00
    moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- opaque cursors -------------------------------------------------------------------------------

def encode_token(value: Any) -> str:
    """An opaque, URL-safe page token carrying `value` (JSON)."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> Any:
    """The value `encode_token` wrapped; ValueError when the token is not one of ours."""
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a page token: {token!r}") from error


# --- HTTP ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]  # the last value of each parameter, decoded (`+` is a space)
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def url(self, path: Optional[str] = None, **params: Any) -> str:
        """An absolute URL on this server (`path` defaults to the request's), with `params`."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{self.base_url}{path or self.path}" + (f"?{query}" if query else "")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    json_body: Any = None  # a data request's JSON body (POST search endpoints); never a token request's


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # a regular expression the whole path must match; its groups go to the handler
    handler: Callable[[Request, re.Match], Response]


# --- stored records -------------------------------------------------------------------------------

@dataclass
class Entry:
    record: dict[str, Any]  # exactly as served
    parent: Any = None  # the parent record's id, for a child endpoint's records


@dataclass
class Table:
    """One endpoint's records and how to read them: `moment` is the cursor as an aware UTC instant,
    `touch` moves the cursor (and whatever the API moves with it), `row_key` names the loaded table's
    primary-key columns (after dlt's naming)."""

    key: Callable[[Entry], Any]
    moment: Callable[[dict], datetime]
    touch: Callable[[dict, datetime], None]
    row_key: tuple[str, ...]
    entries: list[Entry] = field(default_factory=list)

    def ordered(self) -> list[Entry]:
        """By cursor, then key: the order every stand-in pages in unless its API says otherwise."""
        return sorted(self.entries, key=lambda e: (self.moment(e.record), _sortable(self.key(e))))

    def between(self, start: Optional[datetime], end: Optional[datetime]) -> list[Entry]:
        """The entries whose cursor lies in `[start, end)` (an open side when None), in `ordered` order."""
        return [entry for entry in self.ordered() if (start is None or self.moment(entry.record) >= start)
                and (end is None or self.moment(entry.record) < end)]

    def find(self, key: Any) -> Entry:
        for entry in self.entries:
            if self.key(entry) == key:
                return entry
        raise KeyError(key)


def _sortable(key: Any) -> tuple:
    return tuple(str(part).rjust(40) for part in key) if isinstance(key, tuple) else (str(key).rjust(40),)


def path_get(record: Mapping[str, Any], path: str) -> Any:
    """`record["fields"]["updated"]` for `fields.updated`."""
    value: Any = record
    for part in path.split("."):
        value = value[part]
    return value


def path_set(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = record
    for part in parents:
        target = target[part]
    target[last] = value


def cursor_table(path: str, write: Callable[[datetime], Any], row_key: tuple[str, ...],
                 key: Optional[Callable[[Entry], Any]] = None) -> Table:
    """A table whose cursor is the value at `path`, written by `write` and read back by `parse_instant`;
    its key is the record's field named like the (single) row key unless `key` says otherwise."""
    return Table(
        key=key or (lambda entry: entry.record[row_key[0]] if len(row_key) == 1 else None),
        moment=lambda record: parse_instant(path_get(record, path)),
        touch=lambda record, moment: path_set(record, path, write(moment)),
        row_key=row_key,
    )


# --- the stand-in ---------------------------------------------------------------------------------

class StandIn:
    """A real HTTP server shaped like one public API. Use it as a context manager (or `start`/`stop`).

    Switches every stand-in has: `omit_empty_data_key` (a page without records leaves its data key out,
    as some APIs do on a quiet day), `token_auth_methods` (which RFC 6749 client authentications the
    token endpoint accepts), `required_scope` (the token request must ask for it)."""

    name: ClassVar[str]
    docs: ClassVar[str]
    resources: ClassVar[tuple[str, ...]]  # the endpoints a test loads (tables), in the config's order
    start_only: ClassVar[frozenset[str]] = frozenset()  # resources whose API ignores any window end
    token_path: ClassVar[str] = "/oauth/token"
    token_auth_methods: ClassVar[frozenset[str]] = frozenset({"client_secret_post", "client_secret_basic"})
    token_auth_method: ClassVar[str] = "client_secret_post"  # what the real API documents (config() says it)
    scopes: ClassVar[tuple[str, ...]] = ()  # what the config asks for; granted when a request asks none
    omit_empty_data_key_default: ClassVar[bool] = False

    client_id = "standin-client"
    client_secret = "standin-secret"

    def __init__(self, seed: int = 0, *, omit_empty_data_key: Optional[bool] = None,
                 token_auth_methods: Optional[Iterable[str]] = None, required_scope: Optional[str] = None) -> None:
        self.seed = seed
        self.rng = random.Random(f"{self.name}:{seed}")
        self.omit_empty_data_key = self.omit_empty_data_key_default if omit_empty_data_key is None \
            else omit_empty_data_key
        if token_auth_methods is not None:
            self.token_auth_methods = frozenset(token_auth_methods)  # type: ignore[misc]
        self.required_scope = required_scope
        self.lock = threading.RLock()
        self.requests: list[LoggedRequest] = []
        self.tokens: dict[str, frozenset[str]] = {}
        self.tables: dict[str, Table] = {}
        self.faults: list[Response] = []  # answers to give the next data requests instead, in order
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.build()
        self._routes = [(route.method, re.compile(route.pattern), route.handler) for route in self.routes()]

    # What each API defines ------------------------------------------------------------------------

    def build(self) -> None:
        """Fill `self.tables` from `self.rng`."""
        raise NotImplementedError

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The rest_api config a user of this project writes (no credentials)."""
        raise NotImplementedError

    def plain_dlt_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The config for plain dlt's `rest_api_source` for the window `[start, end)`, credentials
        inside; None where plain dlt cannot load the API. dlt's `OAuth2ClientCredentials` sends the
        client id and secret in the form body only (client_secret_post), so a token endpoint that
        takes HTTP Basic alone is out of its reach; the rest is each API's `plain_config`."""
        if "client_secret_post" not in self.token_auth_methods:
            return None
        return self.plain_config(start, end)

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        raise NotImplementedError

    def project_auth(self) -> dict[str, Any]:
        """`client.auth` as this project's config says it: no credentials (they come from the environment)."""
        auth: dict[str, Any] = {"type": "oauth2_client_credentials", "access_token_url": self.token_url,
                                "token_endpoint_auth_method": self.token_auth_method}
        if self.scopes:
            auth["scope"] = " ".join(self.scopes)
        return auth

    def plain_auth(self) -> dict[str, Any]:
        """`client.auth` for plain dlt: its `oauth2_client_credentials`, credentials inside; scopes go
        in the form through `access_token_request_data` (dlt has no `scope` key)."""
        auth: dict[str, Any] = {"type": "oauth2_client_credentials", "access_token_url": self.token_url,
                                "client_id": self.client_id, "client_secret": self.client_secret}
        if self.scopes:
            auth["access_token_request_data"] = {"scope": " ".join(self.scopes)}
        return auth

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        """A new record of `resource` whose cursor is `moment` (for `build` and `insert`)."""
        raise NotImplementedError

    def unauthorized(self, request: Request, problem: str) -> Response:
        """The API's answer to a data request without a valid token (`problem`: missing or invalid)."""
        return Response(401, {"error": "invalid_token"},
                        {"WWW-Authenticate": 'Bearer realm="standin", error="invalid_token"'})

    def token_answer(self, token: str, scopes: frozenset[str]) -> dict[str, Any]:
        """The token endpoint's success body (RFC 6749 §5.1); some APIs add or drop fields."""
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": " ".join(sorted(scopes))}

    # Data, for tests ------------------------------------------------------------------------------

    def expected(self, resource: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The records whose cursor lies in `[start, end)`, exactly as served (copies)."""
        with self.lock:
            return [copy.deepcopy(entry.record) for entry in self.tables[resource].between(start, end)]

    def expected_rows(self, resource: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """`expected`, as the rows a table holds after dlt's default normalisation (`to_row`)."""
        with self.lock:
            entries = self.tables[resource].between(start, end)
            return [self.to_row(resource, copy.deepcopy(entry.record), entry.parent) for entry in entries]

    def to_row(self, resource: str, record: dict[str, Any], parent: Any = None) -> dict[str, Any]:
        """A served record as its table's row (see `compare.dlt_row`); a child endpoint adds what its
        config's `include_from_parent` brings."""
        from .compare import dlt_row

        return dlt_row(record)

    def row_key(self, resource: str) -> tuple[str, ...]:
        return self.tables[resource].row_key

    def insert(self, resource: str, moment: datetime, parent: Any = None, **fields: Any) -> dict[str, Any]:
        """Adds a record whose cursor is `moment`; returns it as served."""
        with self.lock:
            entry = self.make_record(resource, moment, parent)
            entry.record.update(fields)
            self.tables[resource].entries.append(entry)
            return copy.deepcopy(entry.record)

    def update(self, resource: str, key: Any, changes: Optional[Mapping[str, Any]] = None,
               moment: Optional[datetime] = None) -> dict[str, Any]:
        """Changes a record (`changes` keys may be dotted paths) and, with `moment`, moves its cursor."""
        with self.lock:
            table = self.tables[resource]
            entry = table.find(key)
            for path, value in (changes or {}).items():
                path_set(entry.record, path, value)
            if moment is not None:
                table.touch(entry.record, moment)
            return copy.deepcopy(entry.record)

    def spread(self, counts: Mapping[date, int] = DAY_COUNTS) -> list[datetime]:
        """`counts[day]` instants on each day, never on a whole second at midnight, in order."""
        moments = []
        for day, count in counts.items():
            start = datetime.combine(day, datetime.min.time(), UTC)
            for _ in range(count):
                moments.append(start + timedelta(seconds=self.rng.randint(1, 86_399),
                                                 microseconds=self.rng.randint(1, 999_999)))
        return sorted(moments)

    def page_body(self, key: str, records: list[Any], **rest: Any) -> dict[str, Any]:
        """`{key: records, **rest}`, without `key` when there are no records and the API (or the
        `omit_empty_data_key` switch) leaves it out."""
        body = {key: records} if records or not self.omit_empty_data_key else {}
        body.update(rest)
        return body

    # Server ---------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.base_url + self.token_path

    def start(self: S) -> S:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def access_token(self, scope: Optional[str] = None) -> str:
        """A valid token, issued directly (for tests' raw requests)."""
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = frozenset(_scopes(scope)) if scope is not None else frozenset(self.scopes)
        return token

    def fail_next(self, status: int, times: int = 1, body: Any = None,
                  headers: Optional[dict[str, str]] = None) -> None:
        """The next `times` data requests (after the token check) answer `status` instead, e.g. a 429
        with the API's `Retry-After`, or a 503."""
        with self.lock:
            self.faults.extend(Response(status, body if body is not None else {"error": f"fault {status}"},
                                        dict(headers or {})) for _ in range(times))

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (an expiry, or a rotated secret)."""
        with self.lock:
            self.tokens.clear()

    def requests_to(self, path_pattern: str) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.requests if re.fullmatch(path_pattern, r.path)]

    def dispatch(self, request: Request) -> Response:
        if request.path == self.token_path:
            response = self._token(request)
            self._log(request, response, json_body=None)
            return response
        route = self._route(request)
        if route is None:
            response = Response(404, {"message": "Not Found", "path": request.path})
            self._log(request, response)
            return response
        handler, match = route
        problem = self._bearer_problem(request)
        if problem:
            response = self.unauthorized(request, problem)
        else:
            with self.lock:
                response = self.faults.pop(0) if self.faults else handler(request, match)
        self._log(request, response)
        return response

    def _route(self, request: Request) -> Optional[tuple[Callable[[Request, re.Match], Response], re.Match]]:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler, match
        return None

    def granted_scopes(self, request: Request) -> frozenset[str]:
        token = request.headers.get("authorization", "")[len("Bearer "):]
        return self.tokens.get(token, frozenset())

    def _bearer_problem(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return "missing"
        return "" if header[len("Bearer "):] in self.tokens else "invalid"

    def _token(self, request: Request) -> Response:
        """RFC 6749 §4.4 (client credentials), client authentication per §2.3.1, errors per §5.2."""
        if request.method != "POST":
            return Response(405, {"error": "invalid_request", "error_description": "use POST"})
        form = request.form()
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            method = "client_secret_basic"
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = password = ""
            client_id, client_secret = unquote(user), unquote(password)
        else:
            method = "client_secret_post"
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        challenge = {"WWW-Authenticate": 'Basic realm="standin"'} if method == "client_secret_basic" else {}
        if method not in self.token_auth_methods:
            return Response(401, {"error": "invalid_client",
                                  "error_description": f"{method} is not accepted here"}, challenge)
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return Response(401, {"error": "invalid_client", "error_description": "client authentication failed"},
                            challenge)
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        asked = _scopes(form.get("scope"))
        if self.required_scope and not set(_scopes(self.required_scope)) <= set(asked):
            return Response(400, {"error": "invalid_scope", "error_description": f"ask for {self.required_scope}"})
        token = secrets.token_urlsafe(24)
        granted = frozenset(asked) if asked else frozenset(self.scopes)
        with self.lock:
            self.tokens[token] = granted
        return Response(200, self.token_answer(token, granted), {"Cache-Control": "no-store"})

    def _log(self, request: Request, response: Response, json_body: Any = ...) -> None:
        if json_body is ...:
            json_body = request.json() if request.body and "json" in request.headers.get("content-type", "") else None
        with self.lock:
            self.requests.append(LoggedRequest(request.method, request.path, dict(request.query),
                                               response.status, json_body))


def _scopes(text: Optional[str]) -> list[str]:
    return [part for part in re.split(r"[\s,]+", text or "") if part]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as dlt's session expects
    disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every request
    standin: StandIn

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(self.command, split.path, dict(parse_qsl(split.query, keep_blank_values=True)),
                          {name.lower(): value for name, value in self.headers.items()}, body,
                          self.standin.base_url)
        try:
            response = self.standin.dispatch(request)
        except Exception as error:  # a stand-in bug: say so rather than hang the client
            response = Response(500, {"standin_error": f"{type(error).__name__}: {error}"})
        payload = response.encoded()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def link_header(links: Sequence[tuple[str, str]]) -> str:
    """An RFC 8288 `Link` header from (url, rel) pairs."""
    return ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)


def bad_request(body: Any, status: int = 400) -> Response:
    return Response(status, body)
