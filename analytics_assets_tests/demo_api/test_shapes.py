"""The demo API's shape switches and hostile faults over real HTTP.

Each switch mimics something a real API does, so a client can be tested
against it; every test starts a server with the switch and checks the exact
bytes a client would see.
"""

from __future__ import annotations

import base64
import json
import math
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
import requests

from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets.demo_api.cli import _config as cli_config
from analytics_assets.demo_api.cli import _parser as cli_parser
from analytics_assets.demo_api.cli import main as cli_main
from analytics_assets.demo_api.server import FAULT_KINDS, PAGINATION_STYLES

from .conftest import cli_server
from .test_server import END, RESOURCE, TIMEOUT, TOKEN, fetch_all, get, get_token, wait_for

GRANT = {"grant_type": "client_credentials"}
SINCE, UNTIL = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC)
WINDOW = {"updated_since": "2026-11-03T00:00:00Z", "updated_until": "2026-11-06"}
# An id and a secret that only survive HTTP Basic when form-encoded first (RFC 6749 §2.3.1).
ODD_ID, ODD_SECRET = "team:a+b", "p%ss+w:rd ok"
# What each paging style adds to a page besides "data" (and "total").
STYLE_KEYS: dict[str, set[str]] = {
    "offset": set(),
    "cursor": {"next_cursor"},
    "json_link": {"next"},
    "header_link": set(),
    "page_number": {"total_pages"},
}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@contextmanager
def serve(**config: Any) -> Iterator[DemoApi]:
    with DemoApi(DemoApiConfig(**{"records": 140, "end_date": END, **config})) as api:
        yield api


def basic(client_id: str, secret: str, *, form_encoded: bool) -> dict[str, str]:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}" if form_encoded else f"{client_id}:{secret}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def post_token(api: DemoApi, session: requests.Session, data: dict, **headers: str) -> requests.Response:
    return session.post(api.token_url, data=data, headers=headers, timeout=TIMEOUT)


def page_through(
    api: DemoApi, session: requests.Session, token: str, **params: Any
) -> tuple[list[dict], list[requests.Response]]:
    """Follow the server's paging style to the end, as a client of that style would."""
    style = api.config.pagination
    url, query = api.resource_url, dict(params)
    records: list[dict] = []
    responses: list[requests.Response] = []
    while len(responses) < 100:
        response = session.get(url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        responses.append(response)
        body = response.json()
        records += body["data"]
        if style == "offset":
            if not body["data"]:
                return records, responses
            query["offset"] = query.get("offset", 0) + len(body["data"])
        elif style == "page_number":
            if query.setdefault("page", 1) >= body["total_pages"]:
                return records, responses
            query["page"] += 1
        elif style == "cursor":
            if body["next_cursor"] is None:
                return records, responses
            query["cursor"] = body["next_cursor"]
        else:
            link = body["next"] if style == "json_link" else response.links.get("next", {}).get("url")
            if link is None:
                return records, responses
            url, query = link, {}
    raise AssertionError("paging never ended")


# -- token endpoint ----------------------------------------------------------


def test_client_secret_basic_takes_only_form_encoded_basic(session: requests.Session) -> None:
    with serve(token_auth_method="client_secret_basic", client_id=ODD_ID, client_secret=ODD_SECRET) as api:
        encoded = basic(ODD_ID, ODD_SECRET, form_encoded=True)
        assert post_token(api, session, GRANT, **encoded).status_code == 200
        raw = post_token(api, session, GRANT, **basic(ODD_ID, ODD_SECRET, form_encoded=False))
        assert (raw.status_code, raw.json()) == (401, {"error": "invalid_client"})
        refusal = {"error": "invalid_client", "error_description": "client authentication must use HTTP Basic"}
        posted = {**GRANT, "client_id": ODD_ID, "client_secret": ODD_SECRET}
        for headers in ({}, encoded):
            response = post_token(api, session, posted, **headers)
            assert (response.status_code, response.json()) == (401, refusal)
        assert api.tokens_issued == 1
    with serve(token_auth_method="client_secret_basic", client_secret=ODD_SECRET) as api:
        # Unencoded, "+" would decode to a space: a client that skips the encoding is refused.
        unencoded = basic("demo-client", ODD_SECRET, form_encoded=False)
        assert post_token(api, session, GRANT, **unencoded).status_code == 401


def test_client_secret_post_refuses_http_basic(session: requests.Session) -> None:
    with serve(token_auth_method="client_secret_post", client_id=ODD_ID, client_secret=ODD_SECRET) as api:
        posted = {**GRANT, "client_id": ODD_ID, "client_secret": ODD_SECRET}
        assert post_token(api, session, posted).status_code == 200
        description = "client credentials must be sent in the request body"
        refusal = {"error": "invalid_client", "error_description": description}
        for data in (GRANT, posted):
            response = post_token(api, session, data, **basic(ODD_ID, ODD_SECRET, form_encoded=True))
            assert (response.status_code, response.json()) == (401, refusal)
        assert api.tokens_issued == 1


def test_any_auth_method_takes_raw_and_form_encoded_basic(session: requests.Session) -> None:
    with serve(client_secret=ODD_SECRET) as api:
        for form_encoded in (False, True):
            response = post_token(api, session, GRANT, **basic("demo-client", ODD_SECRET, form_encoded=form_encoded))
            assert response.status_code == 200, form_encoded
    with serve(client_id=ODD_ID, client_secret=ODD_SECRET) as api:  # a ":" in the id needs the encoding
        assert post_token(api, session, GRANT, **basic(ODD_ID, ODD_SECRET, form_encoded=True)).status_code == 200
        assert post_token(api, session, {**GRANT, "client_id": ODD_ID, "client_secret": ODD_SECRET}).status_code == 200
        assert post_token(api, session, GRANT, **basic(ODD_ID, ODD_SECRET, form_encoded=False)).status_code == 401


def test_required_scope_must_be_covered(session: requests.Session) -> None:
    with serve(required_scope="read:data  write:data") as api:
        refusal = {"error": "invalid_scope", "error_description": "scope must include read:data write:data"}
        for scope in (None, "read:data", "write:data openid"):
            data = {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}
            response = post_token(api, session, data if scope is None else {**data, "scope": scope})
            assert (response.status_code, response.json()) == (400, refusal), scope
        data = {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret", "scope": "write:data x read:data"}
        assert post_token(api, session, data).status_code == 200
        assert api.tokens_issued == 1


def test_required_token_fields_must_be_present_and_equal(session: requests.Session) -> None:
    with serve(required_token_fields={"audience": "https://api.example.com"}) as api:
        data = {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}
        for extra, description in (({}, "audience is required"), ({"audience": "x"}, "audience has the wrong value")):
            response = post_token(api, session, {**data, **extra})
            assert response.json() == {"error": "invalid_request", "error_description": description}
            assert response.status_code == 400
        assert post_token(api, session, {**data, "audience": "https://api.example.com"}).status_code == 200


@pytest.mark.parametrize(("expires_in_format", "expected"), [("int", 3600), ("string", "3600"), ("missing", None)])
def test_expires_in_format(session: requests.Session, expires_in_format: str, expected: object) -> None:
    with serve(expires_in_format=expires_in_format) as api:
        body = post_token(api, session, {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}).json()
        assert body.get("expires_in") == expected
        assert set(body) == {"access_token", "token_type"} | ({"expires_in"} if expected is not None else set())


def test_a_token_without_expires_in_still_expires(session: requests.Session) -> None:
    with serve(expires_in_format="missing", token_lifetime=1) as api:
        token = get_token(api, session)
        assert get(api, session, token).status_code == 200
        wait_for(lambda: get(api, session, token).status_code == 401)


@pytest.mark.parametrize("token_type", ["Bearer", "BEARER"])
def test_token_type_is_served_as_configured(session: requests.Session, token_type: str) -> None:
    with serve(token_type=token_type) as api:
        body = post_token(api, session, {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}).json()
        assert body["token_type"] == token_type
        for scheme in ("bearer", "Bearer", "BEARER"):
            headers = {"Authorization": f"{scheme} {body['access_token']}"}
            assert session.get(api.resource_url, headers=headers, timeout=TIMEOUT).status_code == 200


# -- window parameters -------------------------------------------------------


def test_window_params_can_be_renamed_and_others_are_ignored(session: requests.Session) -> None:
    with serve(window_params=("from", "to")) as api:
        token = get_token(api, session)
        params = {"from": "2026-11-03T00:00:00Z", "to": "2026-11-06"}
        assert fetch_all(api, session, token, 50, **params) == api.records_in_window(SINCE, UNTIL)
        assert get(api, session, token, **WINDOW).json()["total"] == 140
        response = get(api, session, token, **{"from": "yesterday"})
        message = "from must be an ISO 8601 timestamp or date"
        assert (response.status_code, response.json()) == (400, {"error": "invalid_request", "message": message})


@pytest.mark.parametrize(
    ("window_format", "since", "until"),
    [
        ("iso8601", "2026-11-03T01:00:00+01:00", "2026-11-06"),
        ("epoch_seconds", str(int(SINCE.timestamp())), str(int(UNTIL.timestamp()))),
        ("epoch_millis", str(int(SINCE.timestamp()) * 1000), str(int(UNTIL.timestamp()) * 1000)),
        ("date", "2026-11-03", "2026-11-06"),
    ],
)
def test_window_formats_select_the_same_window(
    session: requests.Session, window_format: str, since: str, until: str
) -> None:
    with serve(window_format=window_format) as api:
        token = get_token(api, session)
        records = fetch_all(api, session, token, 50, updated_since=since, updated_until=until)
        assert records == api.records_in_window(SINCE, UNTIL) and len(records) == 60


def test_epoch_millis_windows_keep_sub_second_precision(session: requests.Session) -> None:
    with serve(window_format="epoch_millis") as api:
        api.update_record(1, updated_at="2026-11-05T00:00:00.500Z")
        millis = int(datetime(2026, 11, 5, tzinfo=UTC).timestamp()) * 1000 + 500
        token = get_token(api, session)
        assert 1 in {r["id"] for r in fetch_all(api, session, token, 100, updated_since=str(millis))}
        assert 1 not in {r["id"] for r in fetch_all(api, session, token, 100, updated_since=str(millis + 1))}


@pytest.mark.parametrize(
    ("window_format", "value", "expected"),
    [
        ("iso8601", "yesterday", "an ISO 8601 timestamp or date"),
        ("epoch_seconds", "2026-11-03", "an integer number of seconds since the Unix epoch"),
        ("epoch_seconds", "1.5", "an integer number of seconds since the Unix epoch"),
        ("epoch_seconds", "99999999999999999999", "an integer number of seconds since the Unix epoch"),
        ("epoch_millis", "1e3", "an integer number of milliseconds since the Unix epoch"),
        ("date", "2026-11-03T00:00:00Z", "a date as YYYY-MM-DD"),
        ("date", "2026-11-31", "a date as YYYY-MM-DD"),
    ],
)
def test_window_values_in_another_format_are_400(
    session: requests.Session, window_format: str, value: str, expected: str
) -> None:
    with serve(window_format=window_format) as api:
        response = get(api, session, get_token(api, session), updated_until=value)
        body = {"error": "invalid_request", "message": f"updated_until must be {expected}"}
        assert (response.status_code, response.json()) == (400, body)


def test_ignore_window_serves_everything(session: requests.Session) -> None:
    with serve(ignore_window=True) as api:
        token = get_token(api, session)
        assert fetch_all(api, session, token, 50, **WINDOW) == api.all_records()
        assert get(api, session, token, updated_since="garbage").status_code == 200


def test_window_end_inclusive(session: requests.Session) -> None:
    boundary = "2026-11-05T00:00:00Z"
    with serve(window_end_inclusive=True) as api:
        api.update_record(1, updated_at=boundary)
        api.update_record(2, updated_at="2026-11-05T00:00:00.5Z")  # just after the bound: still out
        token = get_token(api, session)
        served = fetch_all(api, session, token, 100, updated_until=boundary)
        assert served == sorted(api.records_in_window(None, boundary) + [api.all_records()[0]], key=lambda r: r["id"])
        assert 1 in {r["id"] for r in fetch_all(api, session, token, 100, updated_since=boundary)}
    with serve() as api:  # the default stays half-open
        api.update_record(1, updated_at=boundary)
        served = fetch_all(api, session, get_token(api, session), 100, updated_until=boundary)
        assert served == api.records_in_window(None, boundary)


# -- record rendering --------------------------------------------------------

NOON = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp_format", "odd", "even"),
    [
        ("z", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
        ("offset", "2026-11-20T05:00:00-05:00", "2026-11-20T12:00:00+02:00"),
        ("naive", "2026-11-20 10:00:00", "2026-11-20 10:00:00"),
        ("epoch_seconds", int(NOON.timestamp()), int(NOON.timestamp())),
        ("epoch_millis", int(NOON.timestamp()) * 1000, int(NOON.timestamp()) * 1000),
    ],
)
def test_timestamp_formats_render_the_same_instants(
    session: requests.Session, timestamp_format: str, odd: object, even: object
) -> None:
    def instant(value: object) -> datetime:
        if isinstance(value, int):
            return datetime.fromtimestamp(value / (1000 if timestamp_format == "epoch_millis" else 1), UTC)
        parsed = datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    with serve(timestamp_format=timestamp_format) as api:
        for record_id in (1, 2):
            api.update_record(record_id, updated_at=NOON)
        api.update_record(3, created_at="junk", updated_at=None)
        token = get_token(api, session)
        served, stored = fetch_all(api, session, token, 50), api.all_records()
        assert (served[0]["updated_at"], served[1]["updated_at"]) == (odd, even)
        assert (served[2]["created_at"], served[2]["updated_at"]) == ("junk", None)
        for got, record in zip(served, stored):
            assert {k: v for k, v in got.items() if not k.endswith("_at")} == {
                k: v for k, v in record.items() if not k.endswith("_at")
            }
            for field in ("created_at", "updated_at"):
                if record[field] not in ("junk", None):
                    assert record[field].endswith("Z")  # the store keeps the canonical form
                    assert instant(got[field]) == instant(record[field])
        window = get(api, session, token, updated_since="2026-11-20T10:00:00Z").json()["data"]
        assert [r["id"] for r in window] == [1, 2]  # the filter still compares instants


def test_numbers_as_strings(session: requests.Session) -> None:
    with serve(numbers_as_strings=True) as api:
        api.update_record(1, metric_value=12.5, event_count=42)
        api.update_record(2, metric_value=None, event_count=None)
        served, stored = fetch_all(api, session, get_token(api, session), 50), api.all_records()
        assert [(r["metric_value"], r["event_count"]) for r in served[:2]] == [("12.5", "42"), (None, None)]
        for got, record in zip(served, stored, strict=True):
            for field in ("metric_value", "event_count"):
                assert got[field] == (None if record[field] is None else json.dumps(record[field]))
            assert got["created_at"] == record["created_at"]


# -- empty pages -------------------------------------------------------------


@pytest.mark.parametrize(
    ("empty_page", "status", "body", "content_type"),
    [
        ("json", 200, b'{"data":[],"total":140}', "application/json"),
        ("204", 204, b"", None),
        ("empty_200", 200, b"", "application/json"),
    ],
)
def test_empty_page_shapes(
    session: requests.Session, empty_page: str, status: int, body: bytes, content_type: str | None
) -> None:
    with serve(empty_page=empty_page) as api:
        token = get_token(api, session)
        response = get(api, session, token, offset=500)
        assert (response.status_code, response.content) == (status, body)
        assert response.headers.get("Content-Type") == content_type
        assert response.headers.get("Content-Length") == (None if status == 204 else str(len(body)))
        assert len(get(api, session, token, limit=5).json()["data"]) == 5  # same connection, still in step


# -- paging styles -----------------------------------------------------------


@pytest.mark.parametrize("style", PAGINATION_STYLES)
@pytest.mark.parametrize("shape", [{}, {"page_cap": 5, "include_total": False}], ids=["default", "capped"])
def test_every_paging_style_serves_the_window_exactly_once(
    session: requests.Session, style: str, shape: dict[str, Any]
) -> None:
    with serve(pagination=style, **shape) as api:
        size = {"page_size" if style == "page_number" else "limit": 7}
        records, responses = page_through(api, session, get_token(api, session), **WINDOW, extra="kept", **size)
        assert records == api.records_in_window(SINCE, UNTIL)
        assert len({r["id"] for r in records}) == len(records) == 60
        per_page = min(7, shape.get("page_cap", 7))
        assert all(len(r.json()["data"]) == per_page for r in responses[:-2])
        total = {"total"} if shape.get("include_total", True) else set()
        for response in responses:
            assert set(response.json()) == {"data"} | STYLE_KEYS[style] | total
            assert response.json().get("total", 60) == 60
        if style == "page_number":
            assert responses[0].json()["total_pages"] == -(-60 // per_page) == len(responses)


def test_cursor_is_base64url_of_the_last_id(session: requests.Session) -> None:
    with serve(pagination="cursor") as api:
        token = get_token(api, session)
        first = get(api, session, token, limit=3).json()
        assert first["next_cursor"] == base64.urlsafe_b64encode(b"3").decode().rstrip("=") == "Mw"
        second = get(api, session, token, limit=3, cursor=first["next_cursor"]).json()
        assert [r["id"] for r in second["data"]] == [4, 5, 6]
        last = get(api, session, token, limit=200, cursor="MTM4").json()  # after id 138
        assert ([r["id"] for r in last["data"]], last["next_cursor"]) == ([139, 140], None)
        for bad in ("!!", base64.urlsafe_b64encode(b"abc").decode(), ""):
            response = get(api, session, token, cursor=bad)
            body = {"error": "invalid_request", "message": "cursor is invalid"}
            assert (response.status_code, response.json()) == (400, body)


@pytest.mark.parametrize("style", ["json_link", "header_link"])
def test_next_links_are_absolute_and_keep_every_parameter(session: requests.Session, style: str) -> None:
    with serve(pagination=style) as api:
        token = get_token(api, session)
        response = get(api, session, token, limit=3, extra="kept", **WINDOW)
        link = response.json()["next"] if style == "json_link" else response.links["next"]["url"]
        if style == "header_link":
            assert response.headers["Link"] == f'<{link}>; rel="next"'
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == api.resource_url
        last_id = str(response.json()["data"][-1]["id"]).encode()
        cursor = base64.urlsafe_b64encode(last_id).decode().rstrip("=")
        expected = {"limit": "3", "extra": "kept", **WINDOW, "cursor": cursor}
        assert parse_qs(parts.query) == {key: [value] for key, value in expected.items()}
        last = get(api, session, token, limit=500)
        assert "Link" not in last.headers and last.json().get("next") is None


def test_page_number_paging(session: requests.Session) -> None:
    with serve(pagination="page_number", page_cap=40) as api:
        token = get_token(api, session)
        first = get(api, session, token, page_size=100).json()
        assert (len(first["data"]), first["total_pages"], first["total"]) == (40, 4, 140)
        assert get(api, session, token, page=2, page_size=50).json()["data"] == api.all_records()[40:80]
        assert get(api, session, token, page=9).json() == {"data": [], "total": 140, "total_pages": 4}
        for bad in ({"page": "0"}, {"page_size": "0"}, {"page": "two"}):
            assert get(api, session, token, **bad).status_code == 400
    with serve(pagination="page_number", empty_page="204") as api:
        assert get(api, session, get_token(api, session), page=9).status_code == 204


def test_page_cap_skips_starts_pages_where_uncapped_ones_would(session: requests.Session) -> None:
    with serve(pagination="page_number", page_cap=40, page_cap_skips=True) as api:
        token = get_token(api, session)
        second = get(api, session, token, page=2, page_size=100).json()["data"]
        assert second == api.all_records()[100:140]  # records 40..99 are never served


def test_several_resource_paths_serve_the_records(session: requests.Session) -> None:
    with serve(resource_paths=("/v1/resource", "/v1/other")) as api:
        token = get_token(api, session)
        for path in ("/v1/resource", "/v1/other"):
            response = session.get(api.base_url + path, params={"limit": 500},
                                   headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
            assert response.json()["data"] == api.all_records()
        assert session.get(api.base_url + "/v1/nothing", timeout=TIMEOUT).status_code == 404
        assert [path for (_, path, _, _) in api.requests if path != "/oauth/token"] == ["/v1/resource", "/v1/other", "/v1/nothing"]


@pytest.mark.parametrize("style", ["cursor", "json_link", "header_link"])
def test_keyset_paging_skips_nothing_when_served_records_are_deleted(session: requests.Session, style: str) -> None:
    with serve(pagination=style) as api:
        expected = api.records_in_window(SINCE, UNTIL)
        api.faults.on_page(2, lambda a: a.delete_record(expected[0]["id"]))  # offset paging would skip one here
        records, _ = page_through(api, session, get_token(api, session), limit=7, **WINDOW)
        assert records == expected


@pytest.mark.parametrize("style", PAGINATION_STYLES)
def test_faults_work_in_every_paging_style(session: requests.Session, style: str) -> None:
    with serve(pagination=style) as api:
        token = get_token(api, session)
        size = {"page_size" if style == "page_number" else "limit": 5}

        def faulted(kind: str, **options: Any) -> requests.Response:
            api.faults.queue(kind, **options)
            return get(api, session, token, **size)

        assert faulted("status", status=503).status_code == 503
        api.faults.on_page(1, lambda a: a.update_record(1, name="hooked"))
        normal = get(api, session, token, **size)
        assert normal.json()["data"][0]["name"] == "hooked"
        assert set(normal.json()) == {"data", "total"} | STYLE_KEYS[style]
        repeated = faulted("repeat_page")
        assert (repeated.content, repeated.headers.get("Link")) == (normal.content, normal.headers.get("Link"))
        assert faulted("invalid_json").text == '{"data": ['
        assert set(faulted("missing_data").json()) == {"items", "total"} | STYLE_KEYS[style]
        assert faulted("nested", depth=2).json()["data"][0]["nested"] == {"a": {"a": None}}
        with pytest.raises(requests.ConnectionError):
            faulted("reset")
        assert get(api, session, token, **size).content == normal.content


# -- rate limiting -----------------------------------------------------------


def test_rate_limit_admits_a_quota_per_window(session: requests.Session) -> None:
    with serve(rate_limit=0.5, rate_limit_window=10) as api:  # 5 per 10 s window
        tokens = [get_token(api, session) for _ in range(7)]  # the token path is not limited
        responses = [get(api, session, tokens[0]) for _ in range(7)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
        for response in responses[5:]:
            assert response.json() == {"error": "rate_limited"}
            assert 1 <= int(response.headers["Retry-After"]) <= 10
        assert not any("ratelimit" in name.lower() for r in responses for name in r.headers)  # a silent limiter
        assert (api.rate_limited, api.request_count(RESOURCE, 429)) == (2, 2)
        times = api.request_times
        assert len(times) == 7 and times == sorted(times)
        api.reset_stats()
        assert (api.rate_limited, api.request_times) == (0, [])


def test_rate_limit_window_resets_and_limited_requests_reach_no_fault(session: requests.Session) -> None:
    with serve(rate_limit=2, rate_limit_window=1.0) as api:  # 2 per 1 s window
        token = get_token(api, session)
        statuses = [get(api, session, token).status_code for _ in range(2)]
        api.faults.queue("status", status=500)
        statuses.append(get(api, session, token).status_code)
        assert statuses == [200, 200, 429]  # the limiter answered: the fault is still queued

        def admitted() -> bool:
            statuses.append(get(api, session, token).status_code)
            return statuses[-1] != 429

        wait_for(admitted)
        times = api.request_times
        assert statuses[-1] == 500 and times[-1] - times[0] >= 1.0
        assert [get(api, session, token).status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(
    ("headers", "reset", "prefix"),
    [("x", "delta", "X-RateLimit-"), ("x", "epoch", "X-RateLimit-"), ("ietf", "delta", "RateLimit-")],
)
def test_rate_limit_headers(session: requests.Session, headers: str, reset: str, prefix: str) -> None:
    with serve(rate_limit=0.3, rate_limit_window=10, rate_limit_headers=headers, rate_limit_reset=reset) as api:
        token = get_token(api, session)
        wall_before = time.time()
        responses = [get(api, session, token), get(api, session, token), get(api, session, None)]
        api.faults.queue("status", status=503)
        responses.append(get(api, session, token))
        wall_after = time.time()
        assert [r.status_code for r in responses] == [200, 200, 401, 429]  # every request counts
        times = api.request_times  # the instants the server computed its resets from
        # The window opened with the first request; resets are whole seconds, rounded up.
        seconds_left = [math.ceil(times[0] + 10 - arrival) for arrival in times]
        for response, remaining, left in zip(responses, (2, 1, 0, 0), seconds_left, strict=True):
            assert response.headers[prefix + "Limit"] == "3"
            assert response.headers[prefix + "Remaining"] == str(remaining)
            value = int(response.headers[prefix + "Reset"])
            if reset == "epoch":
                assert wall_before + left - 1 <= value <= wall_after + left + 1  # Unix time of the reset
            else:
                assert value == left
        assert responses[-1].headers["Retry-After"] == str(seconds_left[-1])
        other = "RateLimit-" if prefix.startswith("X-") else "X-RateLimit-"
        assert not any(name.startswith(other) for r in responses for name in r.headers)
        token_response = post_token(api, session, {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"})
        assert not any("ratelimit" in name.lower() for name in token_response.headers)


@pytest.mark.parametrize(
    "config",
    [
        {"pagination": "bogus"},
        {"timestamp_format": "unix"},
        {"window_format": "rfc2822"},
        {"empty_page": "404"},
        {"token_auth_method": "private_key_jwt"},
        {"expires_in_format": "float"},
        {"window_params": ("since",)},
        {"rate_limit": 0},
        {"rate_limit_headers": "x"},
        {"rate_limit": 1, "rate_limit_headers": "ietf", "rate_limit_reset": "epoch"},
        {"resource_paths": ()},
        {"resource_paths": ("v1/events",)},
        {"resource_paths": ("/v1/events", "/oauth/token")},
    ],
)
def test_contradictory_or_unknown_shapes_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DemoApi(DemoApiConfig(records=1, **config))


# -- hostile faults ----------------------------------------------------------


@pytest.mark.parametrize("path", [RESOURCE, TOKEN])
def test_redirect_fault(session: requests.Session, path: str) -> None:
    with serve() as api:
        token = get_token(api, session)
        elsewhere = "https://login.example.com/oauth/token"
        api.faults.queue("redirect", path=path, location=elsewhere)
        api.faults.queue("redirect", path=path, location="/moved", status=302)

        def call() -> requests.Response:
            if path == TOKEN:
                data = {**GRANT, "client_id": "x"}
                return session.post(api.token_url, data=data, allow_redirects=False, timeout=TIMEOUT)
            headers = {"Authorization": f"Bearer {token}"}
            return session.get(api.resource_url, headers=headers, allow_redirects=False, timeout=TIMEOUT)

        first, second = call(), call()
        assert (first.status_code, first.headers["Location"], first.json()) == (307, elsewhere, {})
        assert (second.status_code, second.headers["Location"]) == (302, "/moved")
        assert call().status_code in (200, 401)


def test_nested_fault(session: requests.Session) -> None:
    with serve() as api:
        token = get_token(api, session)
        api.faults.queue("nested", depth=3)
        data = get(api, session, token, limit=4).json()["data"]
        assert data[0].pop("nested") == {"a": {"a": {"a": None}}}
        assert data == api.all_records()[:4]
        api.faults.queue("nested", depth=200_000)  # far beyond any recursion limit
        response = get(api, session, token, limit=4)
        assert response.status_code == 200
        assert response.content.count(b'{"a":') == 200_000 and b'{"a":null' + b"}" * 200_000 in response.content
        assert get(api, session, token, limit=4).json()["data"] == api.all_records()[:4]


def test_many_keys_fault(session: requests.Session) -> None:
    with serve() as api:
        token = get_token(api, session)
        api.faults.queue("many_keys", keys=1000)
        data = get(api, session, token, limit=7).json()["data"]
        extra = [key for record in data for key in record if key.startswith("k_")]
        assert len(extra) == len(set(extra)) == 1000
        assert all(len([k for k in record if k.startswith("k_")]) >= 142 for record in data)
        stored = api.all_records()[:7]
        assert [{k: v for k, v in r.items() if not k.startswith("k_")} for r in data] == stored


def test_endless_body_keeps_sending_until_the_client_leaves(session: requests.Session) -> None:
    with serve() as api:
        token = get_token(api, session)
        api.faults.queue("endless_body")
        headers = {"Authorization": f"Bearer {token}"}
        response = session.get(api.resource_url, headers=headers, stream=True, timeout=TIMEOUT)
        assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json")
        assert "Content-Length" not in response.headers and response.headers["Connection"] == "close"
        received = b""
        while len(received) < 4 * 1024 * 1024:  # far more than the whole store
            chunk = response.raw.read(256 * 1024)
            assert chunk, "the endless body ended"
            received += chunk
        assert received.startswith(b'{"data": [{"id":1,')
        response.close()
        assert get(api, session, token, limit=3).status_code == 200
        started = time.monotonic()
    assert time.monotonic() - started < 2


def test_endless_body_blocks_on_a_client_that_stops_reading() -> None:
    api = DemoApi(DemoApiConfig(records=140, end_date=END)).start()
    with requests.Session() as own:
        token = get_token(api, own)
    api.faults.queue("endless_body")
    host, port = api.base_url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    try:
        client.sendall(f"GET {RESOURCE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
        cpu = time.process_time()
        threading.Event().wait(0.5)  # the idle time under test: the server should block, not spin
        assert time.process_time() - cpu < 0.25
    finally:
        started = time.monotonic()
        api.stop()
        assert time.monotonic() - started < 2
        client.close()


def test_drip_sends_a_valid_page_one_byte_at_a_time(session: requests.Session) -> None:
    with serve() as api:
        token = get_token(api, session)
        api.replace_records([{"id": 1}])
        expected = get(api, session, token).content
        api.faults.queue("drip", interval=0.02)
        started = time.monotonic()
        response = get(api, session, token)
        assert (response.content, response.headers["Content-Length"]) == (expected, str(len(expected)))
        assert time.monotonic() - started >= (len(expected) - 1) * 0.02
        assert get(api, session, token).content == expected  # the connection is still usable


def test_drip_stops_when_the_client_or_the_server_leaves(session: requests.Session) -> None:
    api = DemoApi(DemoApiConfig(records=140, end_date=END)).start()
    try:
        token = get_token(api, session)
        headers = {"Authorization": f"Bearer {token}"}
        api.faults.queue("drip", interval=0.1)
        response = session.get(api.resource_url, headers=headers, params={"limit": 3}, stream=True, timeout=TIMEOUT)
        started = time.monotonic()
        assert response.raw.read(3) == b'{"d'
        assert time.monotonic() - started >= 0.15  # three bytes take two intervals
        response.close()
        assert get(api, session, token).status_code == 200
        api.faults.queue("drip")  # 5 s a byte: only stopping the server ends it in time
        dripping = session.get(api.resource_url, headers=headers, stream=True, timeout=TIMEOUT)
        assert dripping.raw.read(1) == b"{"
    finally:
        started = time.monotonic()
        api.stop()
        assert time.monotonic() - started < 2


def test_echo_credentials_fault_leaks_the_request(session: requests.Session) -> None:
    with serve() as api:
        api.faults.queue("echo_credentials", path=TOKEN)
        data = {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}
        response = session.post(api.token_url, data=data, auth=("demo-client", "demo-secret"), timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_client",
            "error_description": "bad client",
            "request": {
                "body": "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret",
                "authorization": "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=",
            },
        }
        assert post_token(api, session, data).status_code == 200


def test_new_fault_kinds_are_known_and_their_options_checked() -> None:
    assert {"redirect", "nested", "many_keys", "endless_body", "drip", "echo_credentials"} <= FAULT_KINDS
    api = DemoApi(DemoApiConfig(records=1))
    bad = [("redirect", {}), ("nested", {"depth": 0}), ("many_keys", {"keys": 0}), ("drip", {"interval": -1})]
    for kind, options in bad:
        with pytest.raises(ValueError):
            api.faults.queue(kind, **options)


# -- CLI ---------------------------------------------------------------------


def test_cli_flags_map_onto_config_fields() -> None:
    assert cli_config(cli_parser().parse_args([])) == DemoApiConfig(port=8765)  # no flag: the shape as it always was
    flags = ["--token-auth-method", "client_secret_post", "--window-params", "from", "to"]
    flags += ["--window-format", "date", "--ignore-window", "--window-end-inclusive", "--timestamp-format", "naive"]
    flags += ["--numbers-as-strings", "--empty-page", "empty_200", "--pagination", "header_link", "--rate-limit", "2.5"]
    flags += ["--rate-limit-window", "4", "--rate-limit-headers", "x", "--rate-limit-reset", "epoch"]
    shape = {
        "token_auth_method": "client_secret_post",
        "window_params": ("from", "to"),
        "window_format": "date",
        "ignore_window": True,
        "window_end_inclusive": True,
        "timestamp_format": "naive",
        "numbers_as_strings": True,
        "empty_page": "empty_200",
        "pagination": "header_link",
        "rate_limit": 2.5,
        "rate_limit_window": 4.0,
        "rate_limit_headers": "x",
        "rate_limit_reset": "epoch",
    }
    assert cli_config(cli_parser().parse_args(flags)) == DemoApiConfig(port=8765, **shape)


def test_cli_serves_the_shape_its_flags_ask_for() -> None:
    until = str(int(datetime(2026, 11, 8, tzinfo=UTC).timestamp()))
    flags = ["--records", "30", "--end-date", "2026-11-08", "--token-auth-method", "client_secret_basic"]
    flags += ["--window-params", "from", "to", "--window-format", "epoch_seconds", "--timestamp-format", "epoch_millis"]
    flags += ["--numbers-as-strings", "--empty-page", "204", "--pagination", "cursor"]
    flags += ["--rate-limit", "50", "--rate-limit-headers", "ietf"]
    with cli_server(*flags) as printed, requests.Session() as session:
        posted = {**GRANT, "client_id": "demo-client", "client_secret": "demo-secret"}
        assert session.post(printed["token URL"], data=posted, timeout=TIMEOUT).status_code == 401
        encoded = basic("demo-client", "demo-secret", form_encoded=True)
        response = session.post(printed["token URL"], data=GRANT, headers=encoded, timeout=TIMEOUT)
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

        def page(**params: Any) -> requests.Response:
            return session.get(printed["base URL"] + RESOURCE, params=params, headers=headers, timeout=TIMEOUT)

        first = page(limit=10, to=until)
        body = first.json()
        assert (len(body["data"]), body["total"], body["next_cursor"]) == (10, 30, "MTA")
        assert first.headers["RateLimit-Limit"] == "50"
        assert isinstance(body["data"][0]["updated_at"], int)
        assert {type(r["event_count"]) for r in body["data"]} <= {str, type(None)}
        assert page(**{"from": until}).status_code == 204
        assert page(to="2026-11-08").json()["message"] == "to must be an integer number of seconds since the Unix epoch"


def test_cli_refuses_contradictory_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--rate-limit-headers", "x"])
    assert exit_info.value.code == 2 and "rate_limit_headers needs rate_limit" in capsys.readouterr().err
