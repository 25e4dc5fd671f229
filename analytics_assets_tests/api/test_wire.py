"""One deadline per request, whole, and the bounds http.client lacks (interim answers, trailers),
against servers on 127.0.0.1: the demo API's hostile faults, and a scripted socket server for what
the demo API does not send (a few interim answers before a good one)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from analytics_assets.api.definition import built_in_definition
from analytics_assets.api.http import Transport, build_session
from analytics_assets.api.stats import SyncStats
from analytics_assets.api.urls import origin_of
from analytics_assets.api.wire import MAX_INTERIM, Deadline, deadline
from analytics_assets.errors import ResponseRefused
from analytics_assets_tests.conftest import assert_table_matches, settings_for

SECONDS = 1.0  # ANALYTICS_REQUEST_DEADLINE in these tests
SLACK = 1.5  # what ending a request takes once the deadline has passed


def one_try(api, **overrides):
    return settings_for(api, request_deadline=SECONDS, max_retries=0, **overrides)


@pytest.mark.parametrize(("kind", "interval"), [("drip_headers", 0.2), ("drip", 0.01)])
def test_a_request_ends_at_its_deadline_however_fast_each_read_returns(make_api, syncer, kind, interval):
    """Every read returns within a fifth of a second or less, far inside the 2 s read timeout: only a
    timer on the whole exchange ends it."""
    api = make_api(records=350, days=5)
    api.faults.queue(kind, interval=interval, after=1)
    started = time.monotonic()
    with pytest.raises(ResponseRefused, match=r"GET /v1/resource\?offset=99&limit=100 took more than 1 s "
                                              r"\(ANALYTICS_REQUEST_DEADLINE\)"):
        syncer.run(api, settings=one_try(api))
    assert time.monotonic() - started < SECONDS + SLACK + 1  # the first page and the token, then the deadline


def test_the_token_request_has_the_same_deadline(make_api, syncer):
    api = make_api(records=350, days=5)
    api.faults.queue("drip_headers", interval=0.2, path="/oauth/token")
    started = time.monotonic()
    with pytest.raises(ResponseRefused, match=r"POST /oauth/token took more than 1 s \(ANALYTICS_REQUEST_DEADLINE\)"):
        syncer.run(api, settings=one_try(api))
    assert time.monotonic() - started < SECONDS + SLACK
    assert api.request_count(path="/v1/resource") == 0


def test_the_days_totals_requests_have_the_same_deadline(make_api):
    from analytics_assets.api.client import ApiClient
    from analytics_assets.api.totals import day_totals

    api = make_api(records=350, days=5)
    definition = built_in_definition()
    with ApiClient(definition, one_try(api), SyncStats()) as client:
        client.auth.token()
        api.faults.queue("drip_headers", interval=0.2)
        started = time.monotonic()
        with pytest.raises(ResponseRefused, match=r"GET /v1/resource\?.*took more than 1 s"):
            day_totals(client, definition.resources[0], ["2026-11-17"])
        assert time.monotonic() - started < SECONDS + SLACK


def test_endless_interim_answers_are_refused(make_api, syncer):
    api = make_api(records=350, days=5)
    api.faults.queue("endless_continue", after=1)
    started = time.monotonic()
    with pytest.raises(ResponseRefused, match=r"GET /v1/resource\?offset=99&limit=100 sent more than 5 interim "
                                              r"\(1xx\) answers.*ANALYTICS_API_BASE_URL"):
        syncer.run(api, settings=settings_for(api, request_deadline=60.0, max_retries=0))
    assert time.monotonic() - started < 5, "refused by counting, not by the deadline"


@pytest.mark.parametrize(("size", "refused"), [(10_000, False), (64 * 1024 - 2, False), (64 * 1024 + 5, True),
                                                (512 * 2**20, True)])
def test_a_chunked_trailer_is_read_within_64_kib(make_api, syncer, size, refused):
    """A trailer after a valid page: read and discarded up to 64 KiB (the last line break counted),
    refused beyond, without reading the rest of it (512 MiB is the fault's default)."""
    api = make_api(records=350, days=5)
    api.faults.queue("chunked_trailer", size=size, after=1)
    started = time.monotonic()
    if not refused:
        syncer.run(api, settings=one_try(api))
        assert_table_matches(syncer.db, api.all_records())
        return
    with pytest.raises(ResponseRefused, match=r"GET /v1/resource\?offset=99&limit=100 sent a chunked trailer of "
                                              r"more than 65,536 bytes after its body.*ANALYTICS_API_BASE_URL"):
        syncer.run(api, settings=settings_for(api, request_deadline=60.0, max_retries=0))
    assert time.monotonic() - started < 5


# -- a scripted server, for answers the demo API does not give ------------------------------------

BODY = b'{"ok": true}'
FINAL = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


@pytest.fixture
def scripted() -> Iterator[tuple[str, list]]:
    """A server on 127.0.0.1 that answers every request with the bytes last put in `script[0]`."""
    listener = socket.create_server(("127.0.0.1", 0))
    script: list = [FINAL]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            with connection:
                connection.settimeout(5)
                received = b""
                try:
                    while b"\r\n\r\n" not in received:
                        received += connection.recv(65536) or b"\r\n\r\n"
                    connection.sendall(script[0])
                    connection.recv(1)  # until the client hangs up
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", script
    stop.set()
    thread.join(5)
    listener.close()


def session_for(url: str, **overrides):
    from analytics_assets.settings import Settings

    settings = Settings(api_base_url=url, http_timeout=2.0, max_retries=0, backoff_factor=0.05, **overrides)
    return build_session(Transport(settings, SyncStats(), origin_of(url)), url)


def test_a_few_interim_answers_of_any_kind_are_skipped(scripted):
    """100, 102 and 103 before the answer: read past, as http.client reads past a 100 (a 103 it would
    take for the answer, an empty page)."""
    url, script = scripted
    script[0] = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                 b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + FINAL)
    response = session_for(url).get(url + "/v1/resource")
    assert (response.status_code, response.json()) == (200, {"ok": True})


@pytest.mark.parametrize("status", [100, 103])
def test_more_interim_answers_than_five_are_refused(scripted, status):
    url, script = scripted
    script[0] = b"HTTP/1.1 %d Wait\r\n\r\n" % status * (MAX_INTERIM + 1) + FINAL
    with pytest.raises(ResponseRefused, match=r"GET /v1/resource sent more than 5 interim \(1xx\) answers"):
        session_for(url).get(url + "/v1/resource")
    script[0] = b"HTTP/1.1 %d Wait\r\n\r\n" % status * MAX_INTERIM + FINAL
    assert session_for(url).get(url + "/v1/resource").json() == {"ok": True}


def test_a_connection_cut_by_the_deadline_is_not_used_again(make_api):
    """The pool gets a fresh connection for the next request, not the one shut down."""
    api = make_api(records=350, days=5)
    session = session_for(api.base_url, request_deadline=SECONDS)
    token = session.post(api.token_url, data={"grant_type": "client_credentials", "client_id": "demo-client",
                                              "client_secret": "demo-secret"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    api.faults.queue("drip_headers", interval=0.2)
    with pytest.raises(ResponseRefused, match="took more than 1 s"):
        session.get(api.resource_url, headers=headers)
    for _ in range(3):
        assert session.get(api.resource_url, headers=headers).status_code == 200


def test_a_deadline_shuts_the_socket_it_watches_when_it_passes_and_not_after_it_ended():
    left, right = socket.socketpair()
    try:
        with deadline(0.2) as clock:
            clock.watch(left)
            started = time.monotonic()
            assert left.recv(10) == b""  # nothing was sent: the read ends when the deadline passes
            assert clock.expired and 0.15 < time.monotonic() - started < 1.5
        other_left, other_right = socket.socketpair()
        with other_left, other_right:
            ended = Deadline(0.05)
            ended.watch(other_left)
            ended.end()
            time.sleep(0.1)
            ended.expire()
            other_right.sendall(b"x")
            assert other_left.recv(10) == b"x" and not ended.expired
    finally:
        left.close()
        right.close()
