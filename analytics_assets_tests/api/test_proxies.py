"""No proxy for loopback, no plain http through one: with HTTP_PROXY, HTTPS_PROXY and ALL_PROXY
naming a recording proxy of the test's own on 127.0.0.1, a sync against the demo API (plain http on
loopback) sends the proxy nothing; an https API elsewhere still goes through it."""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from analytics_assets.api.http import Transport, build_session, proxies_for
from analytics_assets.api.stats import SyncStats
from analytics_assets.api.urls import origin_of
from analytics_assets.errors import RetriesExhausted
from analytics_assets.settings import Settings
from analytics_assets_tests.conftest import assert_table_matches

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class RecordingProxy:
    """A proxy on 127.0.0.1 that forwards nothing: it records what each connection sends first and
    answers 502."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    self.received.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    self.received.append(b"")

    def environment(self) -> dict[str, str]:
        return {name: self.url for name in PROXY_VARIABLES}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    recording = RecordingProxy()
    for name, value in recording.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield recording
    recording.close()


def test_a_sync_of_a_loopback_api_sends_the_proxy_nothing(make_api, syncer, proxy):
    """The token request and every page, in plain http to 127.0.0.1: none through the proxy (where
    it would see the secret and the token in clear)."""
    api = make_api(records=350, days=5)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())
    assert proxy.received == [], "the proxy received a request"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://127.0.0.2",
                                 "http://[::1]:8080", "https://localhost", "https://127.0.0.1:8443",
                                 "http://api.example.com"])
def test_no_proxy_for_loopback_or_plain_http(proxy, url):
    """Plain http to another host is refused by the settings anyway (`urls.check_url`); were it not,
    it would still not cross a proxy."""
    assert proxies_for(url) == {}


def test_an_https_api_elsewhere_still_goes_through_the_proxy(proxy):
    """The deployment's proxy is honoured where it belongs: a TLS tunnel (CONNECT) to an https
    host. The proxy here refuses it; no token or secret crossed it."""
    url = "https://api.example.invalid"
    assert proxies_for(url) == {"https": proxy.url, "http": proxy.url, "all": proxy.url}
    settings = Settings(api_base_url=url, client_id="id", client_secret="never-sent", max_retries=0, http_timeout=2.0)
    session = build_session(Transport(settings, SyncStats(), origin_of(url)), url)
    with pytest.raises(RetriesExhausted, match="GET /v1/resource still failed after 1 attempts"):
        session.get(url + "/v1/resource", headers={"Authorization": "Bearer never-sent-token"})
    assert [data.split(b"\r\n")[0] for data in proxy.received] == [b"CONNECT api.example.invalid:443 HTTP/1.0"]
    assert b"never-sent" not in b"".join(proxy.received)
