"""A local stand-in for a paginated analytics API behind OAuth2 client credentials.

It lets the pipeline be demoed, tested and benchmarked without a real vendor:
it serves deterministic data fast enough never to be the bottleneck, and it
misbehaves on demand (``Faults``) the way real APIs do. ``DemoApiConfig``'s
shape switches (token endpoint, window parameters, paging style, record
rendering, rate limits, compression) make it answer like a particular real API
instead; their defaults are the shape it always had. ``PROFILES`` names sets
of switches, such as the typical user's API of the walkthrough.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import math
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain, count, repeat
from operator import itemgetter
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from .records import Record, clone, format_timestamp, generate_records, parse_timestamp, paused_gc, timestamp_key

TOKEN_PATH = "/oauth/token"
RESOURCE_PATH = "/v1/resource"
# Every fault kind ``Faults.queue`` takes, and what it does; options in brackets, defaults after "=".
# Kinds marked "token:" only make sense on TOKEN_PATH, which is their default path and the only one allowed.
FAULT_DOCS: dict[str, str] = {
    "status": "an error status [status=503, retry_after=None -> Retry-After header]",
    "reset": "the connection is reset (RST) without an answer",
    "close_mid_body": "half the body, then the connection closes",
    "hang": "no answer until Faults.release() or the server stops",
    "slow": "the normal answer after [retry_after=1.0] seconds",
    "invalid_json": 'a 200 whose body is `{"data": [`',
    "html": "a 200 maintenance page in text/html",
    "missing_data": "the page with its records under `items` instead of `data`",
    "data_not_list": "`data` is an object, not a list",
    "total_not_number": '`total` is the string "many"',
    "repeat_page": "the previous successful answer of the path again",
    "duplicate_record": "the page's last record replaced by a copy of its first (an API serving one record twice)",
    "unauthorized": "a 401 although the credentials or the token are good",
    "redirect": "a redirect to [location] (required) [status=307]",
    "nested": "the first record gets a field nested [depth=1000] objects deep",
    "deep_nesting": "the same as nested, under the name the security review uses [depth=1000]",
    "many_keys": "the page's records get [keys=5000] extra fields between them",
    "endless_body": "a close-delimited body of records that never ends",
    "drip": "the normal answer's body one byte every [interval=5.0] seconds",
    "echo_credentials": "a 401 whose body echoes the request body and its Authorization header",
    "gzip_bomb": "a 200 `Content-Encoding: gzip` body of about size / 1000 bytes on the wire that inflates to "
    '[size=1 GiB] bytes of `{"data":[{},{},...` that never closes (whatever Accept-Encoding says)',
    "drip_headers": "the status line and headers one byte every [interval=0.5] seconds, then the normal body",
    "endless_continue": "`HTTP/1.1 100 Continue` interim answers, as fast as the client reads, until it leaves",
    "chunked_trailer": "the page chunked, then a trailer section of [size=512 MiB] bytes (1 KiB `X-Padding: aaa...` "
    "lines) before the final CRLF",
    "empty_objects": 'a page `{"data":[{},{},...],"total":N}` whose data is [size=16 MiB] bytes: N empty records',
    "long_field_names": "the first record of the page gets a field `f<n>_xxx...` whose name is [size=3,000,000] "
    "characters long, n counting the pages so faulted (a new name each page)",
    "total_lies": "`total` is [value=10,000,000] (raw JSON if a str) on one-record requests (limit=1, or page_size=1 "
    "with page_number paging); only those requests count for after and times, so real pages stay unchanged",
    "echo_authorization": 'a 400 {"error": "invalid_request", "message": "unusable Authorization header: <header>"}',
    "token_value": "token: access_token is [value] (default: a valid token followed by CR LF), or, with [size], a "
    "valid token [size] characters long",
    "expires_in_value": 'token: expires_in is sent as the raw JSON text [value="NaN"], e.g. "1e308", "-5", \'"NaN"\'',
    "token_error_echo": 'token: a 400 {"error": "invalid_client", "error_description": ...} whose description, after '
    '[position=180] characters of filler, echoes [echo="body"]: the form body, "authorization" (the raw header) '
    'or "secret" (the client secret itself)',
}
FAULT_KINDS = frozenset(FAULT_DOCS)
TOKEN_FAULT_KINDS = frozenset({"token_value", "expires_in_value", "token_error_echo"})
ECHO_CHOICES = ("body", "authorization", "secret")
MAINTENANCE_HTML = b"<html><body>Service maintenance</body></html>"
DEFAULT_SLOW_SECONDS = 1.0
DEFAULT_NEST_DEPTH = 1000
DEFAULT_EXTRA_KEYS = 5000
DEFAULT_DRIP_SECONDS = 5.0
DEFAULT_ECHO_POSITION = 180
# Per-kind defaults of the options whose meaning depends on the kind.
DEFAULT_INTERVALS: dict[str, float] = {"drip": DEFAULT_DRIP_SECONDS, "drip_headers": 0.5}
DEFAULT_SIZES: dict[str, int] = {
    "gzip_bomb": 2**30,
    "chunked_trailer": 512 * 2**20,
    "empty_objects": 16 * 2**20,
    "long_field_names": 3_000_000,
}
DEFAULT_VALUES: dict[str, int | str] = {"total_lies": 10_000_000, "expires_in_value": "NaN"}
_ENDLESS_CHUNK_BYTES = 64 * 1024
_BOMB_HEAD = b'{"data":['
_BOMB_BLOCK = b"{}," * (2**20 // 3)  # a whole number of periods, far longer than deflate's 32 KiB window
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, unknown OS
_CONTINUES = b"HTTP/1.1 100 Continue\r\n\r\n" * 2048
_TRAILER_LINE_BYTES = 1024
_TRAILER_LINE_MIN = len(b"X-Padding: \r\n")
_ECHO_FILLER = "The client could not be authenticated: check its id, its secret and how they are sent. "
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
    has_more: bool = False  # offset paging only
    total_bias: int = 0  # the reported `total` exceeds the records served by this many (a broken API)
    resource_paths: tuple[str, ...] = (RESOURCE_PATH,)  # paths that serve the records (an API of several endpoints)
    page_cap_skips: bool = False  # page_number with a page_cap: pages start where uncapped ones would (a broken API)
    port: int = 0  # 0 -> ephemeral
    # Shapes of real APIs, for testing clients against them; the defaults are the demo API as it always was.
    token_auth_method: str = "any"  # "any" (body, else HTTP Basic), "client_secret_basic", "client_secret_post"
    required_scope: str | None = None  # space-separated items the token request's scope must include
    required_token_fields: dict[str, str] | None = None  # form fields the token request must carry, e.g. audience
    expires_in_format: str = "int"  # "int", "string" or "missing"
    token_type: str = "bearer"
    window_params: tuple[str, str] = ("updated_since", "updated_until")
    window_format: str = "iso8601"  # "iso8601", "epoch_seconds", "epoch_millis" or "date"
    ignore_window: bool = False  # serve everything, like an API that ignores or misnames the window
    ignore_window_start: bool = False  # serve everything before the window's end, like an API misreading its start
    window_end_inclusive: bool = False
    timestamp_format: str = "z"  # created_at/updated_at as served: "z", "offset", "naive", "epoch_seconds", ...
    numbers_as_strings: bool = False  # metric_value and event_count as JSON strings
    empty_page: str = "json"  # a page with no records: "json", "204" or "empty_200"
    pagination: str = "offset"  # "offset", "cursor", "json_link", "header_link" or "page_number"
    rate_limit: float | None = None  # requests per second admitted on the resource path
    rate_limit_window: float = 1.0  # seconds; quota per window = rate_limit * window, at least 1
    rate_limit_headers: str | None = None  # None (429 + Retry-After only), "x" or "ietf"; resets in whole seconds
    rate_limit_reset: str = "delta"  # "x" headers' reset: "delta" seconds (rounded up, >= 1) or Unix "epoch"
    compress: bool = False  # gzip every answer with a body for clients whose Accept-Encoding allows it


class RequestLog(NamedTuple):
    """One served request; ``status`` is None when no response was sent."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None


class _Response(NamedTuple):
    status: int
    body: bytes | Iterator[bytes]  # an iterator is sent close-delimited, until it ends or the client leaves
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class _PageRequest(NamedTuple):
    """A page request in any paging style: records of the window from ``offset``, or after id ``after``."""

    lo: str | None
    hi: str | None
    offset: int
    size: int
    after: int | None = None


class _Slice(NamedTuple):
    fragments: list[str]
    total: int  # records in the whole window
    offset: int  # position of the first one in the window
    last_id: int | None


def _json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=headers)


def _invalid_token() -> _Response:
    return _json_response(401, {"error": "invalid_token"}, (("WWW-Authenticate", 'Bearer error="invalid_token"'),))


def _oauth_error(status: int, error: str, description: str) -> _Response:
    return _json_response(status, {"error": error, "error_description": description})


def _json_default(value: Any) -> Any:
    # Tests inject odd values into records; serve them rather than fail the page.
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSETS = (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))  # for even ids, odd ids
_record_id = itemgetter("id")


def _iso(value: datetime, sep: str = "T") -> str:
    return value.isoformat(sep, "microseconds" if value.microsecond else "seconds")


def _epoch_parser(milliseconds_per_unit: int) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ValueError(text)
        try:
            return _EPOCH + timedelta(milliseconds=int(text) * milliseconds_per_unit)
        except OverflowError:
            raise ValueError(text) from None

    return parse


def _parse_date(text: str) -> datetime:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise ValueError(text)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# How the window parameters are parsed, and what the 400 says they must be.
_WINDOW_FORMATS: dict[str, tuple[Callable[[str], datetime], str]] = {
    "iso8601": (parse_timestamp, "an ISO 8601 timestamp or date"),
    "epoch_seconds": (_epoch_parser(1000), "an integer number of seconds since the Unix epoch"),
    "epoch_millis": (_epoch_parser(1), "an integer number of milliseconds since the Unix epoch"),
    "date": (_parse_date, "a date as YYYY-MM-DD"),
}
# How served records render an instant, given the record's id; None leaves the stored Z string.
_TIMESTAMP_FORMATS: dict[str, Callable[[datetime, int], Any] | None] = {
    "z": None,
    "offset": lambda t, record_id: _iso(t.astimezone(_OFFSETS[record_id % 2])),
    "naive": lambda t, _: _iso(t.replace(tzinfo=None), " "),
    "epoch_seconds": lambda t, _: (t - _EPOCH) // timedelta(seconds=1),
    "epoch_millis": lambda t, _: (t - _EPOCH) // timedelta(milliseconds=1),
}
_EXPIRES_IN: dict[str, Callable[[int], Any] | None] = {"int": int, "string": str, "missing": None}
_EMPTY_PAGES: dict[str, _Response | None] = {
    "json": None,
    "204": _Response(204, b"", content_type=None),
    "empty_200": _Response(200, b""),
}
_RATE_HEADER_PREFIXES = {"x": "X-RateLimit-", "ietf": "RateLimit-"}
PAGINATION_STYLES = ("offset", "cursor", "json_link", "header_link", "page_number")
CONFIG_CHOICES: dict[str, tuple[str | None, ...]] = {
    "token_auth_method": ("any", "client_secret_basic", "client_secret_post"),
    "expires_in_format": tuple(_EXPIRES_IN),
    "window_format": tuple(_WINDOW_FORMATS),
    "timestamp_format": tuple(_TIMESTAMP_FORMATS),
    "empty_page": tuple(_EMPTY_PAGES),
    "pagination": PAGINATION_STYLES,
    "rate_limit_headers": (None, *_RATE_HEADER_PREFIXES),
    "rate_limit_reset": ("delta", "epoch"),
}
# Named sets of switches (DemoApiConfig field -> value), for `demo-api --profile NAME` and for tests.
PROFILES: dict[str, dict[str, Any]] = {
    # The API of the walkthrough: differs from the demo API's own shape the way a typical user's API does.
    "walkthrough": {
        "token_auth_method": "client_secret_basic",
        "required_scope": "analytics.read events.read",
        "required_token_fields": {"audience": "https://api.example.com"},
        "window_params": ("start_time", "end_time"),
        "window_format": "epoch_seconds",
        "resource_paths": ("/v1/events", "/v1/accounts"),
    },
}


def _validated(config: DemoApiConfig) -> DemoApiConfig:
    for field, allowed in CONFIG_CHOICES.items():
        if getattr(config, field) not in allowed:
            raise ValueError(f"{field} must be one of {allowed}, got {getattr(config, field)!r}")
    if config.page_cap is not None and config.page_cap < 1:
        raise ValueError("page_cap must be >= 1 or None")
    if len(config.window_params) != 2:
        raise ValueError("window_params must name two parameters: (since, until)")
    if config.rate_limit is not None and not (config.rate_limit > 0 and config.rate_limit_window > 0):
        raise ValueError("rate_limit and rate_limit_window must be > 0")
    if config.rate_limit_headers is not None and config.rate_limit is None:
        raise ValueError("rate_limit_headers needs rate_limit")
    if config.rate_limit_reset == "epoch" and config.rate_limit_headers != "x":
        raise ValueError("rate_limit_reset='epoch' applies to rate_limit_headers='x' only (IETF uses delta seconds)")
    if not config.resource_paths or not all(path.startswith("/") for path in config.resource_paths):
        raise ValueError("resource_paths must name at least one path, each starting with /")
    if TOKEN_PATH in config.resource_paths:
        raise ValueError(f"{TOKEN_PATH} is the token endpoint; it cannot serve records")
    return config


def _record_encoder(config: DemoApiConfig) -> Callable[[Record], str]:
    """Encode a record as served. The default shape is the stored record itself, with no per-record work."""
    render = _TIMESTAMP_FORMATS[config.timestamp_format]
    converters: dict[str, Callable[[Any, Record], Any]] = {}
    if render is not None:

        def timestamp(value: Any, row: Record) -> Any:
            if not isinstance(value, str):
                return value
            try:
                return render(parse_timestamp(value), row["id"])
            except (ValueError, OverflowError):
                return value  # junk that tests inject is served as stored

        converters.update(dict.fromkeys(("created_at", "updated_at"), timestamp))
    if config.numbers_as_strings:

        def number(value: Any, row: Record) -> Any:
            return value if value is None or isinstance(value, str) else _ENCODER.encode(value)

        converters.update(dict.fromkeys(("metric_value", "event_count"), number))
    if not converters:
        return _ENCODER.encode

    def encode(row: Record) -> str:
        return _ENCODER.encode({k: converters[k](v, row) if k in converters else v for k, v in row.items()})

    return encode


def _page_body(data: str, fields: Sequence[tuple[str, str]], data_key: str = "data") -> bytes:
    """Glue a page from encoded parts: the cached record fragments are never decoded again."""
    parts = ['{"', data_key, '":', data]
    for key, value in fields:
        parts += [',"', key, '":', value]
    parts.append("}")
    return "".join(parts).encode()


def _with_fields(fragment: str, fields: str) -> str:
    """Add encoded ``,"key":value`` pairs to an encoded record, so huge values cost no recursion."""
    return fragment[:-1] + fields + "}"


def _nested(fragments: list[str], fault: _Fault) -> list[str]:
    if not fragments:
        return fragments
    value = '{"a":' * fault.depth + "null" + "}" * fault.depth
    return [_with_fields(fragments[0], ',"nested":' + value), *fragments[1:]]


def _many_keys(fragments: list[str], fault: _Fault) -> list[str]:
    n, keys = len(fragments), fault.keys
    return [
        _with_fields(fragment, "".join(f',"k_{k}":{k}' for k in range(i * keys // n, (i + 1) * keys // n)))
        for i, fragment in enumerate(fragments)
    ]


def _long_field_name(fragments: list[str], name: str) -> list[str]:
    return [_with_fields(fragments[0], f',"{name}":1'), *fragments[1:]] if fragments else fragments


def _endless(fragments: list[str]) -> Iterator[bytes]:
    """``{"data": [`` and then records for ever: a body that never ends and never closes the array."""
    unit = (",".join(fragments or ['{"id":1}']) + ",").encode()
    chunk = unit * max(1, _ENDLESS_CHUNK_BYTES // len(unit))
    return chain([b'{"data": ['], repeat(chunk))


@lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip member inflating to ``size`` bytes of ``{"data":[{},{},...`` (cut at ``size``, never closed).

    Deflate caps at about 1030:1, so the inflated bytes cannot be avoided by a
    smarter encoding, but they need not be produced either: the pattern is
    periodic and each 1 MiB block is a whole number of periods, so once the
    window holds the pattern every block compresses to the same byte-aligned
    (sync-flushed) piece, which is repeated instead of recomputed. Only the CRC
    runs over the full length (a quarter of a second per GiB); the server never
    holds more than the compressed body. Cached, since a test queues it often.
    """
    head = _BOMB_HEAD[:size]
    blocks, rest = divmod(size - len(head), len(_BOMB_BLOCK))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [_GZIP_HEADER, deflate.compress(head)]
    crc = zlib.crc32(head)
    for i in range(min(blocks, 2)):  # the first block fills the window, the second is the repeating piece
        piece = deflate.compress(_BOMB_BLOCK) + deflate.flush(zlib.Z_SYNC_FLUSH)
        parts.append(piece if i == 0 else piece * (blocks - 1))
    for _ in range(blocks):
        crc = zlib.crc32(_BOMB_BLOCK, crc)
    tail = _BOMB_BLOCK[:rest]
    parts += [deflate.compress(tail) + deflate.flush(), struct.pack("<II", zlib.crc32(tail, crc), size & 0xFFFFFFFF)]
    return b"".join(parts)


def _accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding allows gzip (RFC 9110 §12.5.3); no header gets identity, as most servers do."""
    weights: dict[str, float] = {}
    for item in (header or "").split(","):
        coding, _, params = item.partition(";")
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        try:
            weights[coding.strip().lower()] = float(match.group(1)) if match else 1.0
        except ValueError:
            weights[coding.strip().lower()] = 0.0
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def _chunked_with_trailer(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` as one chunk, the last chunk, ``size`` bytes of trailer field lines, then the final CRLF.

    The lines come from one reused 64 KiB block, so half a gigabyte of trailer
    costs no memory; a remainder too short for a line of its own lengthens the
    one before (a ``size`` below one line is rounded up to one).
    """
    yield b"%x\r\n%s\r\n0\r\n" % (len(body), body)
    lines, rest = divmod(size, _TRAILER_LINE_BYTES)
    if lines and 0 < rest < _TRAILER_LINE_MIN:
        lines, rest = lines - 1, rest + _TRAILER_LINE_BYTES
    line = _field_line(_TRAILER_LINE_BYTES)
    blocks, odd = divmod(lines, 64)
    yield from repeat(line * 64, blocks)
    yield line * odd + (_field_line(max(rest, _TRAILER_LINE_MIN)) if rest else b"") + b"\r\n"


def _field_line(length: int) -> bytes:
    return b"X-Padding: " + b"a" * (length - _TRAILER_LINE_MIN) + b"\r\n"


def _raw_json(value: int | float | str) -> str:
    """A fault's value as JSON text: strings are sent verbatim, so they can be invalid JSON like ``NaN``."""
    return value if isinstance(value, str) else json.dumps(value)


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

    def __init__(self, rows: list[Record], encode: Callable[[Record], str] = _ENCODER.encode) -> None:
        self._lock = threading.Lock()
        self._encode = encode  # renders the served shape once per record, when its fragment is cached
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

    def page(self, lo: str | None, hi: str | None, offset: int, size: int, after: int | None = None) -> _Slice:
        with self._lock:
            window = self._window(lo, hi)
            if after is not None:  # keyset: resume after the last id served, whatever changed before it
                offset = bisect_right(window, after, key=_record_id)
            rows = window[offset : offset + size]
            fragments, encode = self._fragments, self._encode
            out = []
            for row in rows:
                fragment = fragments.get(row["id"])
                if fragment is None:
                    if len(fragments) >= _FRAGMENT_CACHE_SIZE:  # bounds memory for huge stores
                        fragments.clear()
                    fragment = fragments[row["id"]] = encode(row)
                out.append(fragment)
            return _Slice(out, len(window), offset, rows[-1]["id"] if rows else None)

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
        self.tokens: list[str] = []  # every token issued, in order (tests search for them)

    @property
    def issued(self) -> int:
        return len(self.tokens)

    def issue(self, lifetime: int, token: str | None = None) -> str:
        """A new token, random unless a fault dictates its text (it is valid either way)."""
        token = secrets.token_urlsafe(32) if token is None else token
        with self._lock:
            self._expiry[token] = time.monotonic() + lifetime
            self.tokens.append(token)
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
    location: str | None = None  # redirect
    depth: int = DEFAULT_NEST_DEPTH  # nested, deep_nesting
    keys: int = DEFAULT_EXTRA_KEYS  # many_keys
    interval: float = DEFAULT_DRIP_SECONDS  # drip, drip_headers
    size: int | None = None  # gzip_bomb, chunked_trailer, empty_objects, long_field_names, token_value
    value: int | float | str | None = None  # total_lies, expires_in_value, token_value
    position: int = DEFAULT_ECHO_POSITION  # token_error_echo
    echo: str = "body"  # token_error_echo


class _Limiter:
    """Fixed windows of ``window`` seconds, each opened by the first request after the previous one closed.

    Anchoring windows on requests rather than on the wall clock makes the quota
    of a burst exact wherever it starts, which is what tests can assert on.
    """

    def __init__(self, quota: int, window: float) -> None:
        self.quota = quota
        self._window = window
        self._lock = threading.Lock()
        self._used = 0
        self._resets_at = -math.inf

    def take(self, now: float) -> tuple[bool, int, float]:
        """(admitted, requests left in the window, seconds until it resets) for a request arriving ``now``."""
        with self._lock:
            if now >= self._resets_at:
                self._resets_at, self._used = now + self._window, 0
            admitted = self._used < self.quota
            self._used += admitted
            return admitted, self.quota - self._used, self._resets_at - now


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
        path: str | None = None,
        times: int = 1,
        status: int | None = None,
        retry_after: RetryAfter = None,
        after: int = 0,
        location: str | None = None,
        depth: int = DEFAULT_NEST_DEPTH,
        keys: int = DEFAULT_EXTRA_KEYS,
        interval: float | None = None,
        size: int | None = None,
        value: int | float | str | None = None,
        position: int = DEFAULT_ECHO_POSITION,
        echo: str = "body",
    ) -> None:
        """Fault the next ``times`` requests to ``path`` once ``after`` of them went by.

        ``path`` defaults to TOKEN_PATH for the token kinds, else RESOURCE_PATH.
        Entries fire in the order queued; a request faulted by one entry still
        counts towards the ``after`` of the others (total_lies counts one-record
        requests only). The other options belong to some kinds each, as
        ``FAULT_DOCS`` lists: ``location`` to redirect, ``depth`` to nested,
        ``keys`` to many_keys, ``interval`` (seconds per byte) to drip and
        drip_headers, ``size`` (bytes or characters) and ``value`` to the kinds
        that take them, ``position`` and ``echo`` to token_error_echo. A
        gzip_bomb is built here, so that serving it costs the client no wait.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1 or after < 0:
            raise ValueError("times must be >= 1 and after >= 0")
        if kind == "redirect" and not location:
            raise ValueError("a redirect needs a location")
        interval = DEFAULT_INTERVALS.get(kind, DEFAULT_DRIP_SECONDS) if interval is None else interval
        if depth < 1 or keys < 1 or interval < 0:
            raise ValueError("depth and keys must be >= 1 and interval >= 0")
        if (size is not None and size < 1) or position < 0 or echo not in ECHO_CHOICES:
            raise ValueError(f"size must be >= 1, position >= 0 and echo one of {ECHO_CHOICES}")
        path = path or (TOKEN_PATH if kind in TOKEN_FAULT_KINDS else RESOURCE_PATH)
        if kind in TOKEN_FAULT_KINDS and path != TOKEN_PATH:
            raise ValueError(f"{kind} alters token answers: its path must be {TOKEN_PATH}")
        if kind != "token_value":  # a token_value without a size or a value has its own default
            size = DEFAULT_SIZES.get(kind) if size is None else size
        value = DEFAULT_VALUES.get(kind) if value is None else value
        fault = _Fault(kind, status, retry_after, location, depth, keys, interval, size, value, position, echo)
        if kind == "gzip_bomb" and size is not None:
            gzip_bomb(size)
        with self._lock:
            self._queued.append(_Queued(fault, path, times, after))

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

    def _take(self, path: str, one_record: bool = False) -> _Fault | None:
        """The fault for a request to ``path``; ``one_record`` says whether it asks for a one-record page."""
        with self._lock:
            chosen = None
            for entry in self._queued:
                if entry.path != path or (entry.fault.kind == "total_lies" and not one_record):
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

    def _sleep(self, seconds: float) -> bool:
        """Wait unless the server stops first; True when it does."""
        return self._stopping.wait(seconds)


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
        # The limiter stands in front, like a gateway: what it refuses never reaches faults or latency.
        limited, limit_headers = api._admit(path)
        fault = None if limited else api.faults._take(path, api._one_record(query))
        if not limited and path in api.config.resource_paths and api.config.latency_ms > 0:
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
        if kind == "endless_continue":  # interim answers only: there is no final one to log
            api._log(method, path, query, 100)
            self._trickle(repeat(_CONTINUES))
            self.close_connection = True
            return
        if kind == "slow":
            api.faults._sleep(DEFAULT_SLOW_SECONDS if fault.retry_after is None else float(fault.retry_after))
        try:
            response = limited
            if response is None and fault is not None:
                response = api._fault_response(fault, path, query, self.headers, body)
            if response is None:
                response = api._respond(method, path, query, self.headers, body)
        except Exception:  # e.g. a failing on_page callback: answer, keep serving
            traceback.print_exc()
            response = _json_response(500, {"error": "internal"})
        if limit_headers:
            response = response._replace(headers=response.headers + limit_headers)
        response = api._encoded(response, self.headers.get("Accept-Encoding"))
        api._log(method, path, query, response.status)
        self._send(response, fault)

    def _send(self, response: _Response, fault: _Fault | None = None) -> None:
        body = response.body
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        if not isinstance(body, bytes):
            self.send_header("Connection", "close")  # the body ends when the connection does
        elif response.status != 204:  # a 204 must not carry a Content-Length (RFC 9110 §8.6)
            self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers:
            self.send_header(name, value)
        kind = fault.kind if fault else None
        if fault is not None and kind == "drip_headers":
            # What end_headers() would flush at once goes out a byte at a time.
            buffered: list[bytes] = getattr(self, "_headers_buffer")  # where send_header() collects the head
            head = b"".join([*buffered, b"\r\n"])
            buffered.clear()
            if not self._trickle((head[i : i + 1] for i in range(len(head))), fault.interval):
                return
        else:
            self.end_headers()
        if not isinstance(body, bytes):
            self._trickle(body)
        elif fault is not None and kind == "drip":
            self._trickle((body[i : i + 1] for i in range(len(body))), fault.interval)
        elif kind == "close_mid_body":
            self.close_connection = True
            self.wfile.write(body[: len(body) // 2])
        else:
            self.wfile.write(body)

    def _trickle(self, pieces: Iterable[bytes], pause: float = 0.0) -> bool:
        """Write pieces ``pause`` seconds apart until done (True), the client hangs up or the server stops.

        Writes block while the client does not read, so an endless body costs no
        CPU; stop() shuts the socket down, which fails a blocked write at once.
        """
        try:
            for i, piece in enumerate(pieces):
                if self.server.api.faults._sleep(pause if i else 0):
                    break
                self.wfile.write(piece)
            else:
                return True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: routine for these faults
        self.close_connection = True
        return False


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


def _is_basic(header: str | None) -> bool:
    return (header or "").partition(" ")[0].lower() == "basic"


def _basic(header: str | None) -> tuple[str, str] | None:
    """The raw ``id:secret`` pair; RFC 6749 §2.3.1 form-encodes both first, which callers undo when they expect it."""
    if not _is_basic(header):
        return None
    encoded = (header or "").partition(" ")[2]
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


def _time_param(query: Mapping[str, str], name: str, window_format: str = "iso8601") -> str | None:
    if name not in query:
        return None
    parse, expected = _WINDOW_FORMATS[window_format]
    try:
        return timestamp_key(parse(query[name]))
    except ValueError:
        raise ValueError(f"{name} must be {expected}") from None


def _cursor(last_id: int) -> str:
    """Opaque to clients, but simply the last id served: base64url without padding."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _cursor_param(query: Mapping[str, str]) -> int | None:
    if "cursor" not in query:
        return None
    text = query["cursor"]
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        if not re.fullmatch(r"-?[0-9]+", decoded):
            raise ValueError(decoded)
    except ValueError:  # binascii.Error and UnicodeDecodeError included
        raise ValueError("cursor is invalid") from None
    return int(decoded)


def _link_headers(response: _Response) -> tuple[tuple[str, str], ...]:
    return tuple(header for header in response.headers if header[0] == "Link")


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
        config = _validated(dataclasses.replace(config or DemoApiConfig()))
        if config.end_date is None:
            config.end_date = datetime.now(UTC).date()
        self._config = config
        self.faults = Faults()
        rows = generate_records(config.records, config.days, config.end_date, config.seed)
        self._store = _Store(rows, _record_encoder(config))
        self._tokens = _Tokens()
        self._limiter = (
            None
            if config.rate_limit is None
            else _Limiter(max(1, int(config.rate_limit * config.rate_limit_window)), config.rate_limit_window)
        )
        self._stats_lock = threading.Lock()
        self._requests: list[RequestLog] = []
        self._request_times: list[float] = []
        self._rate_limited = 0
        self._in_flight_now = 0
        self.max_in_flight = 0  # most requests served at once: shows whether a client pages concurrently
        self._last_success: dict[str, _Response] = {}
        self._long_names = count(1)  # long_field_names: a new name on each page it distorts
        self._server: _Server | None = None
        self._origin = ""  # set once bound; next-page links are built from it even while stopping
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
        self._origin = f"http://127.0.0.1:{server.server_address[1]}"
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
        return self._origin

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def resource_url(self) -> str:
        """The first resource path's URL: /v1/resource unless ``resource_paths`` says otherwise."""
        return self.base_url + self._config.resource_paths[0]

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

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued so far, in order."""
        return list(self._tokens.tokens)

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

    @property
    def request_times(self) -> list[float]:
        """Snapshot of the ``time.monotonic()`` at which each resource request arrived, rate-limited ones included."""
        with self._stats_lock:
            return list(self._request_times)

    @property
    def rate_limited(self) -> int:
        """How many 429s the rate limiter sent (injected 429 faults are not counted)."""
        with self._stats_lock:
            return self._rate_limited

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._requests.clear()
            self._request_times.clear()
            self._rate_limited = 0
            self.max_in_flight = self._in_flight_now

    def _in_flight(self, change: int) -> None:
        with self._stats_lock:
            self._in_flight_now += change
            self.max_in_flight = max(self.max_in_flight, self._in_flight_now)

    def _log(self, method: str, path: str, query: dict[str, str], status: int | None) -> None:
        with self._stats_lock:
            self._requests.append(RequestLog(method, path, query, status))

    def _one_record(self, query: Mapping[str, str]) -> bool:
        """Whether a request asks for a one-record page: how the project asks a day's total (total_lies)."""
        return query.get("page_size" if self._config.pagination == "page_number" else "limit") == "1"

    def _encoded(self, response: _Response, accept_encoding: str | None) -> _Response:
        """The answer gzipped when ``compress`` is on and the client accepts gzip, as a compressing gateway would."""
        body = response.body
        if not self._config.compress or not isinstance(body, bytes) or not body:
            return response
        if any(name.lower() == "content-encoding" for name, _ in response.headers):
            return response  # a gzip_bomb is encoded already
        headers = (*response.headers, ("Vary", "Accept-Encoding"))
        if not _accepts_gzip(accept_encoding):
            return response._replace(headers=headers)
        return response._replace(body=gzip.compress(body, 6, mtime=0), headers=(*headers, ("Content-Encoding", "gzip")))

    def _admit(self, path: str) -> tuple[_Response | None, tuple[tuple[str, str], ...]]:
        """Note a resource request's arrival and pass it through the limiter.

        Returns the 429 to send instead (None when admitted) and the rate limit
        headers every resource response carries.
        """
        if path not in self._config.resource_paths:
            return None, ()
        now = time.monotonic()
        with self._stats_lock:
            self._request_times.append(now)
        if self._limiter is None:
            return None, ()
        admitted, remaining, reset = self._limiter.take(now)
        # Whole seconds, rounded up so a client never retries too early (past float noise: a fresh
        # window's now + 1000 - now may be 1000.0000000001).
        seconds = max(1, math.ceil(round(reset, 6)))
        headers: tuple[tuple[str, str], ...] = ()
        prefix = _RATE_HEADER_PREFIXES.get(self._config.rate_limit_headers or "")
        if prefix is not None:
            reset_value = math.ceil(time.time() + reset) if self._config.rate_limit_reset == "epoch" else seconds
            values = {"Limit": self._limiter.quota, "Remaining": remaining, "Reset": reset_value}
            headers = tuple((prefix + name, str(value)) for name, value in values.items())
        if admitted:
            return None, headers
        with self._stats_lock:
            self._rate_limited += 1
        return _json_response(429, {"error": "rate_limited"}, _retry_after_header(seconds)), headers

    # -- responses ---------------------------------------------------------

    def _respond(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response:
        if path != TOKEN_PATH and path not in self._config.resource_paths:
            return _json_response(404, {"error": "not_found"})
        if method != ("POST" if path == TOKEN_PATH else "GET"):
            return _json_response(405, {"error": "method_not_allowed"})
        response = self._token(headers, body) if path == TOKEN_PATH else self._resource(headers, query, path)
        if response.status == 200:  # what repeat_page replays: the body, and the link to the same next page
            self._last_success[path] = _Response(200, response.body, headers=_link_headers(response))
        return response

    def _token(self, headers: Mapping[str, str], body: bytes, fault: _Fault | None = None) -> _Response:
        """The token answer; a token_value or expires_in_value fault alters a successful one only."""
        config = self._config
        form = _last_values(body.decode("utf-8", "replace"))
        if form.get("grant_type") != "client_credentials":
            return _json_response(400, {"error": "unsupported_grant_type"})
        authorization = headers.get("Authorization")
        if config.token_auth_method == "client_secret_basic" and "client_secret" in form:
            return _oauth_error(401, "invalid_client", "client authentication must use HTTP Basic")
        if config.token_auth_method == "client_secret_post" and _is_basic(authorization):
            return _oauth_error(401, "invalid_client", "client credentials must be sent in the request body")
        if not any(self._is_client(*pair) for pair in self._credentials(form, _basic(authorization))):
            return _json_response(401, {"error": "invalid_client"})
        for name, expected in (config.required_token_fields or {}).items():
            if name not in form:
                return _oauth_error(400, "invalid_request", f"{name} is required")
            if form[name] != expected:
                return _oauth_error(400, "invalid_request", f"{name} has the wrong value")
        required = (config.required_scope or "").split()
        if not set(required) <= set(form.get("scope", "").split()):
            return _oauth_error(400, "invalid_scope", f"scope must include {' '.join(required)}")
        lifetime = int(config.token_lifetime)
        kind = fault.kind if fault else None
        given = None
        if fault is not None and kind == "token_value":
            fresh = secrets.token_urlsafe(32)
            if fault.value is not None:
                given = str(fault.value)
            elif fault.size is not None:
                given = (fresh + "A" * fault.size)[: fault.size]
            else:
                given = fresh + "\r\n"
        token = self._tokens.issue(lifetime, given)
        payload: dict[str, Any] = {"access_token": token, "token_type": config.token_type}
        expires_in = _EXPIRES_IN[config.expires_in_format]
        if expires_in is not None:
            payload["expires_in"] = expires_in(lifetime)
        no_store = (("Cache-Control", "no-store"),)
        if fault is not None and kind == "expires_in_value" and fault.value is not None:
            payload.pop("expires_in", None)  # glued in as text: json.dumps would refuse or quote it
            text = json.dumps(payload)[:-1] + ', "expires_in": ' + _raw_json(fault.value) + "}"
            return _Response(200, text.encode(), headers=no_store)
        return _json_response(200, payload, headers=no_store)

    def _credentials(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> list[tuple[str, str]]:
        """The (id, secret) readings of a token request that the configured auth method accepts."""
        method = self._config.token_auth_method
        posted = None
        if "client_id" in form and "client_secret" in form:
            posted = (form["client_id"], form["client_secret"])
        if method == "client_secret_post" or (method == "any" and posted):
            return [posted] if posted else []
        if basic is None:
            return []
        decoded = (unquote_plus(basic[0]), unquote_plus(basic[1]))
        # Many clients send the raw pair, spec-following ones form-encode it: "any" takes both.
        return [decoded] if method == "client_secret_basic" else [basic, decoded]

    def _is_client(self, client_id: str, client_secret: str) -> bool:
        pairs = ((client_id, self._config.client_id), (client_secret, self._config.client_secret))
        return all(secrets.compare_digest(given.encode(), known.encode()) for given, known in pairs)

    def _resource(self, headers: Mapping[str, str], query: Mapping[str, str], path: str = RESOURCE_PATH) -> _Response:
        if not self._tokens.valid(_bearer(headers.get("Authorization"))):
            return _invalid_token()
        try:
            request = self._page_request(query)
        except ValueError as exc:
            return _json_response(400, {"error": "invalid_request", "message": str(exc)})
        for callback in self.faults._due_page_hooks():
            callback(self)
        page = self._slice(request)
        empty = _EMPTY_PAGES[self._config.empty_page]
        if empty is not None and not page.fragments:
            return empty
        return self._page(query, request, page, path=path)

    def _page_request(self, query: Mapping[str, str]) -> _PageRequest:
        """Parse the paging and window parameters of the configured style; ValueError means a 400."""
        config = self._config
        style = config.pagination
        offset, after = 0, None
        if style == "offset":
            offset = _int_param(query, "offset", 0, minimum=0)
        elif style != "page_number":
            after = _cursor_param(query)
        asked = size = _int_param(query, "page_size" if style == "page_number" else "limit", 100, minimum=1)
        if config.page_cap is not None:
            size = min(size, config.page_cap)
        if style == "page_number":
            offset = (_int_param(query, "page", 1, minimum=1) - 1) * (asked if config.page_cap_skips else size)
        if config.ignore_window:  # such an API does not even look at the parameters, let alone reject them
            return _PageRequest(None, None, offset, size, after)
        lo, hi = (_time_param(query, name, config.window_format) for name in config.window_params)
        if config.ignore_window_start:
            lo = None
        if hi is not None and config.window_end_inclusive:
            hi += "\x00"  # keys never hold NUL, so `key < hi + NUL` is exactly `key <= hi`
        return _PageRequest(lo, hi, offset, size, after)

    def _slice(self, request: _PageRequest) -> _Slice:
        # Offset pages keep the store's four-argument call: reliability tests wrap it to reorder pages.
        keyset = {} if request.after is None else {"after": request.after}
        return self._store.page(request.lo, request.hi, request.offset, request.size, **keyset)

    def _page(
        self,
        query: Mapping[str, str],
        request: _PageRequest,
        page: _Slice,
        *,
        data: str | None = None,
        data_key: str = "data",
        total_json: str | None = None,
        path: str = RESOURCE_PATH,
    ) -> _Response:
        config = self._config
        if total_json is None and config.include_total:
            total_json = str(page.total + config.total_bias)
        fields = [] if total_json is None else [("total", total_json)]
        headers: tuple[tuple[str, str], ...] = ()
        more = page.offset + len(page.fragments) < page.total
        style = config.pagination
        if style == "offset":
            if config.has_more:
                fields.append(("has_more", "true" if more else "false"))
        elif style == "page_number":
            fields.append(("total_pages", str(-(-page.total // request.size))))
        else:  # keyset styles: where the next page starts, as a cursor or as a link carrying it
            cursor = _cursor(page.last_id) if more and page.last_id is not None else None
            link = cursor and f"{self._origin}{path}?{urlencode({**query, 'cursor': cursor})}"
            if style == "cursor":
                fields.append(("next_cursor", json.dumps(cursor)))
            elif style == "json_link":
                fields.append(("next", json.dumps(link)))
            elif link:
                headers = (("Link", f'<{link}>; rel="next"'),)
        body = _page_body(data or "[" + ",".join(page.fragments) + "]", fields, data_key)
        return _Response(200, body, headers=headers)

    def _fault_response(
        self, fault: _Fault, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response | None:
        """The response a fault dictates, or None when the normal one should go out."""
        kind = fault.kind
        if kind in ("slow", "close_mid_body", "drip", "drip_headers"):
            return None  # they alter timing or transport, not the response
        if kind in ("token_value", "expires_in_value"):
            return self._token(headers, body, fault)
        if kind == "token_error_echo":  # a secret hidden past where a client might cut a message short
            leaked = {
                "body": body.decode("utf-8", "replace"),
                "authorization": headers.get("Authorization") or "",
                "secret": self._config.client_secret,
            }[fault.echo]
            filler = (_ECHO_FILLER * (fault.position // len(_ECHO_FILLER) + 1))[: fault.position]
            return _oauth_error(400, "invalid_client", filler + leaked)
        if kind == "echo_authorization":
            message = "unusable Authorization header: " + (headers.get("Authorization") or "")
            return _json_response(400, {"error": "invalid_request", "message": message})
        if kind == "gzip_bomb":
            return _Response(200, gzip_bomb(fault.size or DEFAULT_SIZES[kind]), headers=(("Content-Encoding", "gzip"),))
        if kind == "status":
            return _json_response(fault.status or 503, {"error": "injected"}, _retry_after_header(fault.retry_after))
        if kind == "redirect":
            return _json_response(fault.status or 307, {}, (("Location", fault.location or "/"),))
        if kind == "echo_credentials":  # a careless identity provider, leaking what it was sent
            echoed = {"body": body.decode("utf-8", "replace"), "authorization": headers.get("Authorization")}
            payload = {"error": "invalid_client", "error_description": "bad client", "request": echoed}
            return _json_response(401, payload)
        if kind == "invalid_json":
            return _Response(200, b'{"data": [')
        if kind == "html":
            return _Response(200, MAINTENANCE_HTML, "text/html")
        if kind == "unauthorized":
            return _json_response(401, {"error": "invalid_client"}) if path == TOKEN_PATH else _invalid_token()
        if kind == "repeat_page":
            return self._last_success.get(path)
        # The remaining kinds distort a real page, whatever the token says.
        try:
            request = self._page_request(query)
        except ValueError:
            request = _PageRequest(None, None, 0, 100)
        page = self._slice(request)
        if kind == "endless_body":
            return _Response(200, _endless(page.fragments))
        if kind == "missing_data":
            return self._page(query, request, page, data_key="items", total_json=str(page.total))
        if kind == "data_not_list":
            return self._page(query, request, page, data='{"id":1}', total_json=str(page.total))
        if kind == "total_not_number":
            return self._page(query, request, page, total_json='"many"')
        if kind == "duplicate_record" and len(page.fragments) > 1:
            return self._page(query, request, page._replace(fragments=[*page.fragments[:-1], page.fragments[0]]))
        if kind == "total_lies":
            lie = DEFAULT_VALUES[kind] if fault.value is None else fault.value
            return self._page(query, request, page, total_json=_raw_json(lie))
        size = fault.size or DEFAULT_SIZES.get(kind, 1)
        if kind == "empty_objects":
            n = max(1, (size - 1) // 3)  # "[" + n * "{}," with the last comma for the "]"
            return self._page(query, request, page, data="[" + "{}," * (n - 1) + "{}]", total_json=str(n))
        if kind == "chunked_trailer":
            normal = self._page(query, request, page)
            trailer = (("Transfer-Encoding", "chunked"), ("Trailer", "X-Padding"))
            chunked = _chunked_with_trailer(cast(bytes, normal.body), size)  # _page() answers bytes
            return normal._replace(body=chunked, headers=normal.headers + trailer)
        if kind == "long_field_names":
            prefix = f"f{next(self._long_names)}_"
            name = prefix + "x" * max(0, size - len(prefix))
            return self._page(query, request, page._replace(fragments=_long_field_name(page.fragments, name)))
        distort = _nested if kind in ("nested", "deep_nesting") else _many_keys
        return self._page(query, request, page._replace(fragments=distort(page.fragments, fault)))
