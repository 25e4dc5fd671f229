"""Masking that follows what is sent: one function (`errors.masked`) for every error quoting a server
or a library, hiding every spelling of what a request carried and of the sync's credentials and
tokens (the previous ones too), in the whole text before it is shortened."""

from __future__ import annotations

import base64
import http.client
import json
import pickle
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from analytics_assets.api.http import Transport, build_session
from analytics_assets.api.stats import SyncStats
from analytics_assets.api.urls import origin_of
from analytics_assets.errors import MASK, RequestFailed, RequestRejected, masked
from analytics_assets_tests.conftest import settings_for

TOKEN = "Tok3n+/ =ü-7f3a9c1e\r\n"  # every character class a spelling treats differently

SPELLINGS = {
    "as it is": lambda s: s,
    "without the line break": lambda s: s.strip(),
    "form-urlencoded": quote_plus,
    "percent-encoded": lambda s: quote(s, safe=""),
    "JSON-escaped": lambda s: json.dumps(s)[1:-1],
    "JSON-escaped, not ASCII": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 unpadded": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "Python's str repr": lambda s: repr(s)[1:-1],
    "Python's bytes repr": lambda s: repr(s.encode())[2:-1],
    "Python's bytes repr, Latin-1 (http.client's header error)": lambda s: repr(s.encode("latin-1"))[2:-1],
}


def pieces(text: str) -> list[str]:
    """A spelling and its halves: cutting before masking would leave one."""
    return [text, text[: len(text) // 2], text[len(text) // 2:]]


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("position", [0, 150, 190])
def test_every_spelling_is_masked_in_the_whole_text_before_it_is_cut(spelling, position):
    spelled = SPELLINGS[spelling](TOKEN)
    text = "x" * position + spelled + " and the rest of the message" * 3
    shown = masked(text, [TOKEN], limit=200)
    assert MASK in shown
    for piece in pieces(spelled):
        assert piece not in shown, (spelling, shown)


def test_http_clients_own_header_error_is_masked():
    """The message http.client gives for a token ending in CR LF, produced by http.client itself."""
    connection = http.client.HTTPConnection("127.0.0.1")
    connection.putrequest("GET", "/")
    with pytest.raises(ValueError) as error:
        connection.putheader("Authorization", "Bearer " + TOKEN)
    assert "Invalid header value b'Bearer " in str(error.value)
    shown = masked(str(error.value), [TOKEN])
    assert shown == f"Invalid header value b'Bearer {MASK}'"


class CarelessAuth:
    """Credentials that put whatever token they were given in the header, and declare no secret: the
    transport masks what the request carries, whatever its credentials say."""

    def __init__(self, token: str) -> None:
        self.token = token

    def authorize(self, headers, rejected: bool = False) -> None:
        headers["Authorization"] = "Bearer " + self.token

    def secrets(self) -> list[str]:
        return []


def test_a_librarys_error_quoting_the_header_is_masked_and_not_chained(make_api):
    """http.client refuses the header, quoting it: the transport raises its own error with the words
    masked, and without the library's exception in its chain (dlt's trace records every link)."""
    api = make_api(records=10)
    transport = Transport(settings_for(api), SyncStats(), origin_of(api.base_url), CarelessAuth(TOKEN))
    with pytest.raises(RequestFailed) as failure:
        build_session(transport, api.base_url).get(api.resource_url)
    message = str(failure.value)
    assert "GET /v1/resource could not be sent or read: ValueError: Invalid header value b'Bearer ***'" in message
    assert "ANALYTICS_API_BASE_URL" in message
    assert failure.value.__cause__ is None and failure.value.__context__ is None
    for spelling in SPELLINGS.values():
        for piece in pieces(spelling(TOKEN)):
            assert piece not in message
    assert api.request_count() == 0


@pytest.mark.parametrize("token_size", [None, 300])
def test_a_400_echoing_the_authorization_header_is_masked_in_the_error_and_dlts_trace(make_api, syncer, token_size):
    """The API's 400 says "unusable Authorization header: Bearer <token>": the run's error shows the
    message with the token masked, and so does dlt's trace of the failed run (trace.pickle: every
    exception of the chain). A 300-character token runs past the 200 characters of body shown:
    masked whole first, no part of it shows after the cut."""
    api = make_api(records=300, days=3)
    if token_size:
        api.faults.queue("token_value", size=token_size)
    api.faults.queue("echo_authorization", after=1)
    with pytest.raises(RequestRejected) as failure:
        syncer.run(api)
    message = str(failure.value)
    assert "HTTP 400" in message and "unusable Authorization header: Bearer ***" in message
    tokens = api.issued_tokens
    assert tokens
    trace = b"".join(path.read_bytes() for path in Path(syncer.pipelines).rglob("trace.pickle"))
    assert trace, "dlt writes a trace of the failed run"
    chain = repr(pickle.loads(trace)).encode() if trace[:1] == b"\x80" else trace
    for token in tokens:
        for piece in pieces(token):
            assert piece not in message
            assert piece.encode() not in trace and piece.encode() not in chain


def test_the_current_and_previous_tokens_are_masked(make_api):
    from analytics_assets.api.client import ApiClient
    from analytics_assets.api.definition import built_in_definition

    api = make_api(records=10)
    with ApiClient(built_in_definition(), settings_for(api), SyncStats()) as client:
        first = client.auth.token()
        api.revoke_tokens()
        second = client.auth.token(rejected=first)
        assert first != second
        said = f"token {first} was revoked; use {second}; {json.dumps(first)}"
        shown = masked(said, client.auth.secrets())
    assert first not in shown and second not in shown and shown.count(MASK) == 3
