"""Compression and the faults of the second security review, over real HTTP.

Where a client library would hide what is under test (interim 100 answers,
trailers, dripped headers, the compressed bytes) the tests read the raw
socket. Sizes and intervals are small so the file stays fast; the defaults
are checked where that is cheap (the gzip bomb's is, thanks to its cache).
"""

from __future__ import annotations

import gzip
import json
import resource
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets.demo_api.server import DEFAULT_SIZES, FAULT_DOCS, FAULT_KINDS, _chunked_with_trailer

from .test_server import CREDENTIALS, END, RESOURCE, TIMEOUT, TOKEN, get, get_token

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.fixture
def api() -> Iterator[DemoApi]:
    with DemoApi(DemoApiConfig(records=140, end_date=END)) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@contextmanager
def raw_get(api: DemoApi, token: str, target: str = RESOURCE + "?limit=3") -> Iterator[socket.socket]:
    """A GET on a bare socket, for what client libraries would swallow or refuse."""
    host, port = api.base_url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    try:
        client.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        yield client
    finally:
        client.close()


def read_until_closed(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def post_token(api: DemoApi, session: requests.Session, **kwargs: Any) -> requests.Response:
    return session.post(api.token_url, data=kwargs.pop("data", CREDENTIALS), timeout=TIMEOUT, **kwargs)


def test_every_fault_kind_is_documented() -> None:
    assert set(FAULT_DOCS) == FAULT_KINDS and all(FAULT_DOCS.values())


# -- compression -------------------------------------------------------------


def test_compress_gzips_pages_and_token_answers_for_clients_that_accept_it(session: requests.Session) -> None:
    with DemoApi(DemoApiConfig(records=140, end_date=END, compress=True)) as api, DemoApi(
        DemoApiConfig(records=140, end_date=END)
    ) as plain:
        token = get_token(api, session)  # requests accepts gzip and decodes it
        expected = get(plain, session, get_token(plain, session), limit=50).content
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
        response = session.get(api.resource_url, params={"limit": 50}, headers=headers, stream=True, timeout=TIMEOUT)
        wire = response.raw.read(decode_content=False)
        assert (response.headers["Content-Encoding"], response.headers["Vary"]) == ("gzip", "Accept-Encoding")
        assert int(response.headers["Content-Length"]) == len(wire) < len(expected) / 2
        assert gzip.decompress(wire) == expected
        assert get(api, session, token, limit=50).json() == json.loads(expected)
        answer = post_token(api, session, headers={"Accept-Encoding": "gzip"}, stream=True)
        assert answer.headers["Content-Encoding"] == "gzip"
        assert set(json.loads(gzip.decompress(answer.raw.read(decode_content=False)))) >= {"access_token"}
        for accept, compressed in [
            ("identity", False), ("gzip;q=0", False), ("br, gzip;q=0.5", True), ("*", True), ("deflate", False),
            ("x-gzip", True), ("*;q=0", False),
        ]:
            response = session.get(api.resource_url, params={"limit": 50},
                                   headers={**headers, "Accept-Encoding": accept}, timeout=TIMEOUT)
            assert ("Content-Encoding" in response.headers) == compressed, accept
            assert response.content == expected, accept
        assert "Content-Encoding" not in get(plain, session, get_token(plain, session)).headers  # off by default


# -- gzip bomb ---------------------------------------------------------------


def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_a_gigabyte_of_unclosed_json(
    api: DemoApi, session: requests.Session
) -> None:
    started = time.monotonic()
    api.faults.queue("gzip_bomb")  # built (and cached) here, not while the client waits
    assert time.monotonic() - started < 5
    token = get_token(api, session)
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}  # sent whatever the client accepts
    response = session.get(api.resource_url, headers=headers, stream=True, timeout=TIMEOUT)
    wire = response.raw.read(decode_content=False)
    assert (response.status_code, response.headers["Content-Encoding"]) == (200, "gzip")
    assert int(response.headers["Content-Length"]) == len(wire) < DEFAULT_SIZES["gzip_bomb"] // 1000  # ~1 MB
    inflater = zlib.decompressobj(wbits=31)
    first = inflater.decompress(wire, 8 * 2**20)  # never all of it
    assert first == (b'{"data":[' + b"{}," * 3 * 2**20)[: 8 * 2**20]
    assert wire[-4:] == (2**30).to_bytes(4, "little")  # ISIZE: what it claims to inflate to
    assert get(api, session, token, limit=3).status_code == 200


@pytest.mark.parametrize("size", [3, 9, 2**20 + 9, 3 * 2**20 + 11])
def test_gzip_bomb_inflates_to_exactly_size_bytes(api: DemoApi, session: requests.Session, size: int) -> None:
    api.faults.queue("gzip_bomb", size=size)
    response = session.get(api.resource_url, stream=True, timeout=TIMEOUT)
    wire = response.raw.read(decode_content=False)
    inflater = zlib.decompressobj(wbits=31)
    assert inflater.decompress(wire) == (b'{"data":[' + b"{}," * size)[:size]  # small sizes only: all of it
    assert inflater.eof and not inflater.unused_data  # a complete member, CRC and length checked
    assert len(wire) < 100 + size // 900


# -- transport-level faults --------------------------------------------------


def test_drip_headers_sends_the_head_a_byte_at_a_time_then_a_normal_page(
    api: DemoApi, session: requests.Session
) -> None:
    token = get_token(api, session)
    expected = get(api, session, token, limit=3).content
    api.faults.queue("drip_headers", interval=0.005)
    with raw_get(api, token) as client:
        head, reads, started = b"", 0, time.monotonic()
        while b"\r\n\r\n" not in head:
            piece = client.recv(65536)
            assert piece
            head, reads = head + piece, reads + 1
        elapsed = time.monotonic() - started
        head, _, body = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: %d" % len(expected) in head
        assert reads > len(head) // 2 and elapsed >= (len(head) + 3) * 0.005
        while len(body) < len(expected):
            body += client.recv(65536)
        assert body == expected
        client.sendall(f"GET {RESOURCE}?limit=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        assert client.recv(65536).startswith(b"HTTP/1.1 200 OK")  # the connection is still usable


def test_drip_headers_default_interval_and_stop() -> None:
    api = DemoApi(DemoApiConfig(records=10, end_date=END)).start()
    try:
        with requests.Session() as own:
            token = get_token(api, own)
        api.faults.queue("drip_headers")  # 0.5 s a byte
        with raw_get(api, token) as client:
            started = time.monotonic()
            assert client.recv(10) == b"H"
            assert client.recv(10) == b"T" and time.monotonic() - started >= 0.4
            started = time.monotonic()
            api.stop()
            assert time.monotonic() - started < 2
    finally:
        api.stop()


def test_endless_continue_until_the_client_leaves(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("endless_continue")
    with raw_get(api, token) as client:
        received = b""
        while len(received) < 2 * 2**20:
            chunk = client.recv(65536)
            assert chunk, "the interim answers ended"
            received += chunk
        whole = len(received) // len(CONTINUE) * len(CONTINUE)
        assert received[:whole] == CONTINUE * (whole // len(CONTINUE))
        cpu = time.process_time()
        time.sleep(0.3)  # a client that stops reading blocks the server's writes: no spinning
        assert time.process_time() - cpu < 0.2
    assert get(api, session, token, limit=3).status_code == 200
    assert [entry.status for entry in api.requests if entry.path == RESOURCE] == [100, 200]


@pytest.mark.parametrize("size", [13, 1030, 10_000, 64 * 1024 + 5, 3 * 64 * 1024])
def test_chunked_trailer_is_exactly_size_bytes_of_field_lines(size: int) -> None:
    first, *rest = _chunked_with_trailer(b"{}", size)
    trailer = b"".join(rest)
    assert first == b"2\r\n{}\r\n0\r\n" and trailer.endswith(b"\r\n\r\n")
    assert len(trailer) == size + 2
    assert all(line.startswith(b"X-Padding: ") for line in trailer[:-4].split(b"\r\n"))


def test_chunked_trailer_fault_serves_a_valid_page_then_the_trailer(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    expected = get(api, session, token, limit=3).content
    api.faults.queue("chunked_trailer", size=10_000)
    with raw_get(api, token) as client:
        received = read_until_closed(client)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert rest == b"%x\r\n%s\r\n0\r\n" % (len(expected), expected) + rest[-10_002:]
    assert rest.endswith(b"\r\n\r\n") and rest[-10_002:-2].count(b"X-Padding: ") == 10  # 9 KiB lines, 1 shorter
    api.faults.queue("chunked_trailer", size=10_000)
    assert get(api, session, token, limit=3).content == expected  # a client that tolerates the trailer reads the page


def test_chunked_trailer_default_is_streamed_not_built(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    api.faults.queue("chunked_trailer")
    with raw_get(api, token) as client:
        received = 0
        while received < 8 * 2**20:  # a little of the 512 MiB, then hang up
            chunk = client.recv(2**20)
            assert chunk
            received += len(chunk)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 64 * 1024
    assert get(api, session, token, limit=3).status_code == 200


# -- hostile bodies ----------------------------------------------------------


def test_empty_objects_fills_a_page_with_empty_records(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("empty_objects", size=3001)
    response = get(api, session, token, limit=3)
    assert response.content == b'{"data":[' + b"{}," * 999 + b'{}],"total":1000}'
    api.faults.queue("empty_objects")  # 16 MiB: millions of records
    response = get(api, session, token, limit=3)
    records = (DEFAULT_SIZES["empty_objects"] - 1) // 3
    assert response.content.endswith(b'{},{}],"total":%d}' % records) and records > 5_000_000
    assert len(response.content) == len(b'{"data":') + 3 * records + 1 + len(b',"total":%d}' % records)


def test_long_field_names_adds_a_new_huge_name_on_each_page(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    normal = get(api, session, token, limit=4).json()["data"]
    api.faults.queue("long_field_names", size=1000, times=2)
    names = []
    for _ in range(2):
        data = get(api, session, token, limit=4).json()["data"]
        (name,) = set(data[0]) - set(normal[0])
        assert len(name) == 1000 and data[0][name] == 1 and data[1:] == normal[1:]
        names.append(name)
    assert names[0] != names[1] and names[0].startswith("f1_") and names[1].startswith("f2_")
    assert get(api, session, token, limit=4).json()["data"] == normal
    api.faults.queue("long_field_names")
    (name,) = set(get(api, session, token, limit=4).json()["data"][0]) - set(normal[0])
    assert len(name) == DEFAULT_SIZES["long_field_names"] == 3_000_000


def test_deep_nesting_takes_a_depth(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("deep_nesting", depth=3)
    assert get(api, session, token, limit=2).json()["data"][0]["nested"] == {"a": {"a": {"a": None}}}
    api.faults.queue("deep_nesting", depth=5000)
    api.faults.queue("nested", depth=5000)
    for _ in range(2):
        content = get(api, session, token, limit=2).content
        assert content.count(b'{"a":') == 5000 and b'{"a":null' + b"}" * 5000 in content


def test_total_lies_only_on_one_record_requests(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("total_lies", times=2)
    one = get(api, session, token, limit=1).json()
    assert (one["total"], one["data"]) == (10_000_000, api.all_records()[:1])
    page = get(api, session, token, limit=5).json()  # a real page: unchanged, and it does not use the fault up
    assert (page["total"], page["data"]) == (140, api.all_records()[:5])
    assert [get(api, session, token, limit=1).json()["total"] for _ in range(2)] == [10_000_000, 140]
    api.faults.queue("total_lies", after=1, value='"lots"')  # only one-record requests count for `after`
    totals = [get(api, session, token, limit=n).json()["total"] for n in (1, 10, 1, 1)]
    assert totals == [140, 140, "lots", 140]


def test_total_lies_with_page_numbers_looks_at_page_size(session: requests.Session) -> None:
    with DemoApi(DemoApiConfig(records=140, end_date=END, pagination="page_number")) as api:
        token = get_token(api, session)
        api.faults.queue("total_lies", value=7)
        assert get(api, session, token, limit=1).json()["total"] == 140  # limit means nothing here
        assert get(api, session, token, page_size=1).json()["total"] == 7


def test_echo_authorization_leaks_the_header(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("echo_authorization")
    response = get(api, session, token)
    message = f"unusable Authorization header: Bearer {token}"
    assert (response.status_code, response.json()) == (400, {"error": "invalid_request", "message": message})
    assert get(api, session, token).status_code == 200


# -- token endpoint faults ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"), [({"value": "abc\r\n"}, "abc\r\n"), ({"size": 5000}, None), ({}, None)]
)
def test_token_value_replaces_the_access_token(
    api: DemoApi, session: requests.Session, options: dict[str, Any], expected: str | None
) -> None:
    api.faults.queue("token_value", **options)
    token = post_token(api, session).json()["access_token"]
    if expected is not None:
        assert token == expected
    elif "size" in options:
        assert len(token) == 5000 and get(api, session, token).status_code == 200  # valid, only huge
    else:
        assert token.endswith("\r\n") and len(token) == 45
    assert len(post_token(api, session).json()["access_token"]) == 43  # once only


def test_token_value_leaves_refusals_alone(api: DemoApi, session: requests.Session) -> None:
    api.faults.queue("token_value", value="x")
    response = post_token(api, session, data={**CREDENTIALS, "client_secret": "wrong"})
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})


@pytest.mark.parametrize("value", [None, "NaN", "1e308", "-5", '"NaN"', -5, 1e308])
def test_expires_in_value_is_sent_as_raw_json(api: DemoApi, session: requests.Session, value: Any) -> None:
    api.faults.queue("expires_in_value", **({} if value is None else {"value": value}))
    response = post_token(api, session)
    raw = {None: "NaN", -5: "-5", 1e308: "1e+308"}.get(value, value)
    assert response.status_code == 200 and response.text.endswith(f', "expires_in": {raw}}}')
    assert get(api, session, json.loads(response.text)["access_token"]).status_code == 200  # simplejson refuses NaN
    assert post_token(api, session).json()["expires_in"] == 3600


@pytest.mark.parametrize(("echo", "position"), [("body", 180), ("authorization", 180), ("secret", 180), ("secret", 7)])
def test_token_error_echo_puts_the_credentials_at_a_position(
    api: DemoApi, session: requests.Session, echo: str, position: int
) -> None:
    options: dict[str, Any] = {"echo": echo} if position == 180 else {"echo": echo, "position": position}
    api.faults.queue("token_error_echo", **options)
    response = post_token(api, session, auth=("demo-client", "demo-secret"))
    body = response.json()
    echoed = {
        "body": "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret",
        "authorization": "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=",
        "secret": "demo-secret",
    }[echo]
    assert (response.status_code, set(body), body["error"]) == (400, {"error", "error_description"}, "invalid_client")
    description = body["error_description"]
    assert description[position:] == echoed and "secret" not in description[:position].replace("its secret", "")
    assert post_token(api, session).status_code == 200


def test_token_fault_defaults_and_checks(api: DemoApi, session: requests.Session) -> None:
    api.faults.queue("token_error_echo")  # on the token path by default, echoing the body
    assert post_token(api, session).json()["error_description"][180:].startswith("grant_type=")
    with pytest.raises(ValueError):
        api.faults.queue("token_value", path=RESOURCE)
    for options in ({"echo": "cookie"}, {"position": -1}, {"size": 0}):
        with pytest.raises(ValueError):
            api.faults.queue("token_error_echo", **options)


def test_echo_credentials_still_leaks_the_request(api: DemoApi, session: requests.Session) -> None:
    api.faults.queue("echo_credentials", path=TOKEN)
    body = post_token(api, session).json()
    assert body["request"]["body"] == "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret"
