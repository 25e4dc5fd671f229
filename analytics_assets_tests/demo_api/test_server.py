"""The demo API over real HTTP: the contract the pipeline, its tests and benchmarks rely on."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests

from analytics_assets.demo_api import DemoApi, DemoApiConfig, Faults

from .conftest import cli_server

END = date(2026, 11, 8)
RESOURCE = "/v1/resource"
TOKEN = "/oauth/token"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}
TIMEOUT = 5


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition the server will eventually meet, failing after a bound."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.05)


@pytest.fixture
def api() -> Iterator[DemoApi]:
    with DemoApi(DemoApiConfig(records=140, end_date=END)) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def get_token(api: DemoApi, session: requests.Session) -> str:
    response = session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def get(api: DemoApi, session: requests.Session, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return session.get(api.base_url + RESOURCE, params=params, headers=headers, timeout=TIMEOUT)


def fetch_all(api: DemoApi, session: requests.Session, token: str, limit: int, **params: Any) -> list[dict]:
    records: list[dict] = []
    while True:
        page = get(api, session, token, offset=len(records), limit=limit, **params).json()
        records += page["data"]
        if not page["data"]:
            return records


# -- OAuth -------------------------------------------------------------------


def test_token_is_issued_for_the_demo_client(api: DemoApi, session: requests.Session) -> None:
    response = session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 43
    assert api.tokens_issued == 1
    assert get(api, session, body["access_token"]).status_code == 200


def test_token_accepts_http_basic_credentials(api: DemoApi, session: requests.Session) -> None:
    response = session.post(
        api.token_url, data={"grant_type": "client_credentials"}, auth=("demo-client", "demo-secret"), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert get(api, session, response.json()["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({**CREDENTIALS, "client_secret": "wrong"}, 401, "invalid_client"),
        ({**CREDENTIALS, "client_id": "someone-else"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        ({**CREDENTIALS, "grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_rejects_bad_requests(
    api: DemoApi, session: requests.Session, form: dict[str, str], status: int, error: str
) -> None:
    response = session.post(api.token_url, data=form, timeout=TIMEOUT)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert api.tokens_issued == 0


def test_resource_requires_a_known_token(api: DemoApi, session: requests.Session) -> None:
    for token in (None, "not-a-token"):
        response = get(api, session, token)
        assert (response.status_code, response.json()) == (401, {"error": "invalid_token"})


def test_revoked_tokens_are_rejected_and_new_ones_work(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.revoke_tokens()
    assert get(api, session, token).status_code == 401
    assert get(api, session, get_token(api, session)).status_code == 200
    assert api.tokens_issued == 2


def test_tokens_expire_after_their_lifetime(api: DemoApi, session: requests.Session) -> None:
    api.set_token_lifetime(1)
    response = session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT)
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    wait_for(lambda: get(api, session, token).status_code == 401)
    assert get(api, session, token).json() == {"error": "invalid_token"}


# -- paging and windows ------------------------------------------------------


def test_paging_a_window_returns_exactly_the_window_in_id_order(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    since, until = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC)
    expected = api.records_in_window(since, until)
    first = get(api, session, token, updated_since="2026-11-03T00:00:00Z", updated_until="2026-11-06", limit=7).json()
    assert first["total"] == len(expected) == 60
    records = fetch_all(api, session, token, 7, updated_since="2026-11-03T00:00:00Z", updated_until="2026-11-06")
    assert records == expected
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)


def test_no_window_serves_everything_with_default_limit(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    page = get(api, session, token).json()
    assert page["total"] == 140
    assert page["data"] == api.all_records()[:100]


def test_window_since_is_inclusive_and_until_exclusive(api: DemoApi, session: requests.Session) -> None:
    api.update_record(1, updated_at="2026-11-05T00:00:00Z")
    api.update_record(2, updated_at=datetime(2026, 11, 4, 23, 59, 59, tzinfo=UTC))
    token = get_token(api, session)

    def ids(**params: str) -> set[int]:
        return {r["id"] for r in fetch_all(api, session, token, 100, **params)}

    for boundary in ("2026-11-05T00:00:00Z", "2026-11-05T00:00:00+00:00", "2026-11-05"):
        after, before = ids(updated_since=boundary), ids(updated_until=boundary)
        assert 1 in after and 1 not in before
        assert 2 in before and 2 not in after
        assert after | before == set(range(1, 141)) and not after & before
    assert ids(updated_since="2026-11-05", updated_until="2026-11-05") == set()


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "-1"},
        {"offset": "x"},
        {"limit": "0"},
        {"limit": "ten"},
        {"updated_since": "yesterday"},
        {"updated_until": "2026-13-01"},
    ],
)
def test_bad_query_parameters_are_400(api: DemoApi, session: requests.Session, params: dict[str, str]) -> None:
    assert get(api, session, get_token(api, session), **params).status_code == 400


def test_unknown_path_is_404(api: DemoApi, session: requests.Session) -> None:
    assert session.get(api.base_url + "/v2/nothing", timeout=TIMEOUT).status_code == 404


def test_responses_keep_the_connection_alive(api: DemoApi, session: requests.Session) -> None:
    response = get(api, session, get_token(api, session), limit=5)
    assert response.raw.version == 11
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert "close" not in response.headers.get("Connection", "")


def test_page_cap_limits_page_size_but_not_total(session: requests.Session) -> None:
    with DemoApi(DemoApiConfig(records=50, end_date=END, page_cap=10)) as api:
        token = get_token(api, session)
        page = get(api, session, token, limit=100).json()
        assert (len(page["data"]), page["total"]) == (10, 50)
        assert fetch_all(api, session, token, 100) == api.all_records()


def test_total_can_be_omitted_and_has_more_added(session: requests.Session) -> None:
    with DemoApi(DemoApiConfig(records=15, end_date=END, include_total=False, has_more=True)) as api:
        token = get_token(api, session)
        first, last = get(api, session, token, limit=10).json(), get(api, session, token, offset=10, limit=10).json()
        assert set(first) == {"data", "has_more"}
        assert (first["has_more"], last["has_more"], len(last["data"])) == (True, False, 5)


def test_data_mutations_are_served(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    get(api, session, token)  # warm the caches that mutations must invalidate
    api.update_record(3, metric_value="not a number", properties=None)
    api.delete_record(4)
    api.insert_record({**api.all_records()[0], "id": 1000, "name": "late"})
    records = fetch_all(api, session, token, 50)
    by_id = {r["id"]: r for r in records}
    assert (by_id[3]["metric_value"], by_id[3]["properties"]) == ("not a number", None)
    assert 4 not in by_id and by_id[1000]["name"] == "late"
    assert records == api.all_records()
    junk, dated = {"id": 1, "updated_at": None}, {"id": 2, "updated_at": "2026-11-01T00:00:00Z"}
    api.replace_records([dated, junk])
    assert fetch_all(api, session, token, 50) == [junk, dated]
    assert get(api, session, token, updated_since="2026-10-01").json()["data"] == [dated]


def test_mutating_unknown_or_duplicate_ids_fails(api: DemoApi) -> None:
    with pytest.raises(KeyError):
        api.update_record(9999, name="x")
    with pytest.raises(KeyError):
        api.delete_record(9999)
    with pytest.raises(ValueError):
        api.insert_record({"id": 1})


def test_returned_records_are_copies(api: DemoApi) -> None:
    record = next(r for r in api.records_in_window() if r["properties"] is not None)
    original = api.records_in_window()[record["id"] - 1]
    record["name"] = "mutated"
    record["properties"]["geo"]["country"] = "mutated"
    assert api.all_records()[record["id"] - 1] == original != record


def test_concurrent_clients_each_get_the_whole_window(api: DemoApi) -> None:
    results: list[list[dict]] = []

    def client() -> None:
        with requests.Session() as own:
            results.append(fetch_all(api, own, get_token(api, own), 9, updated_since="2026-11-02"))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [api.records_in_window(date(2026, 11, 2))] * 4


# -- records -----------------------------------------------------------------


def test_records_are_deterministic_and_typed() -> None:
    config = DemoApiConfig(records=700, days=7, end_date=END, seed=3)
    records = DemoApi(config).all_records()
    assert records == DemoApi(config).all_records()
    assert records != DemoApi(DemoApiConfig(records=700, days=7, end_date=END, seed=4)).all_records()
    assert [r["id"] for r in records] == list(range(1, 701))
    types = {
        "name": (str,),
        "category": (str, type(None)),
        "metric_value": (float, type(None)),
        "event_count": (int, type(None)),
        "is_active": (bool, type(None)),
        "properties": (dict, type(None)),
    }
    for record in records:
        for field, allowed in types.items():
            assert type(record[field]) in allowed, (field, record)
        for field in ("created_at", "updated_at"):
            assert record[field].endswith("Z") and datetime.fromisoformat(record[field]).microsecond == 0
        assert record["created_at"] <= record["updated_at"]
    assert all(any(r[field] is None for r in records) for field in types if field != "name")
    assert 0.05 < sum(r["category"] is None for r in records) / len(records) < 0.15
    assert any(isinstance(r["properties"], dict) and r["properties"]["geo"]["country"] for r in records)
    api = DemoApi(config)
    per_day = [len(api.records_in_window(END - timedelta(days=d + 1), END - timedelta(days=d))) for d in range(7)]
    assert per_day == [100] * 7


def test_default_window_ends_today_utc() -> None:
    api = DemoApi(DemoApiConfig(records=70))
    today = datetime.now(UTC).date()
    assert api.config.end_date in (today, today - timedelta(days=1))  # midnight may pass in between
    assert len(api.records_in_window(api.config.end_date - timedelta(days=7), api.config.end_date)) == 70


# -- faults ------------------------------------------------------------------


def test_status_fault_with_retry_after(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("status", status=429, retry_after=2)
    api.faults.queue("status", status=503, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    api.faults.queue("status")
    first, second, third = (get(api, session, token) for _ in range(3))
    assert (first.status_code, first.json(), first.headers["Retry-After"]) == (429, {"error": "injected"}, "2")
    assert (second.status_code, second.headers["Retry-After"]) == (503, "Wed, 21 Oct 2026 07:28:00 GMT")
    assert third.status_code == 503 and "Retry-After" not in third.headers
    assert get(api, session, token).status_code == 200


def test_queue_honours_times_after_and_path(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("status", status=500, times=2, after=1)
    api.faults.queue("status", status=502, path=TOKEN)
    assert [get(api, session, token).status_code for _ in range(4)] == [200, 500, 500, 200]
    assert session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT).status_code == 502
    assert session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT).status_code == 200


def test_reset_and_close_mid_body_break_the_connection(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("reset")
    with pytest.raises(requests.ConnectionError):
        get(api, session, token)
    api.faults.queue("close_mid_body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(api, session, token)
    assert get(api, session, token).status_code == 200
    statuses = [entry.status for entry in api.requests if entry.path == RESOURCE]
    assert statuses == [None, 200, 200]


def test_hang_holds_until_released(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("hang")
    with pytest.raises(requests.Timeout):
        session.get(api.base_url + RESOURCE, headers={"Authorization": f"Bearer {token}"}, timeout=0.3)
    api.faults.release()
    assert get(api, session, token).status_code == 200


def test_stop_frees_hung_handlers() -> None:
    api = DemoApi(DemoApiConfig(records=10, end_date=END)).start()
    api.faults.queue("hang", path=TOKEN)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(requests.post(api.token_url, data=CREDENTIALS, timeout=30))
        except requests.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    wait_for(lambda: api.request_count(TOKEN) == 1)
    api.stop()
    client.join(timeout=5)
    assert not client.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)


def test_slow_answers_normally_after_the_delay(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("slow", retry_after=0.2)
    response = get(api, session, token, limit=3)
    assert response.status_code == 200 and response.elapsed >= timedelta(seconds=0.2)
    assert response.json()["data"] == api.all_records()[:3]


def test_latency_is_added_to_resource_responses(session: requests.Session) -> None:
    with DemoApi(DemoApiConfig(records=5, end_date=END, latency_ms=150)) as api:
        response = get(api, session, get_token(api, session))
        assert response.status_code == 200 and response.elapsed >= timedelta(seconds=0.15)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("invalid_json", lambda r: r.text == '{"data": ['),
        ("html", lambda r: r.headers["Content-Type"] == "text/html" and "maintenance" in r.text),
        ("missing_data", lambda r: set(r.json()) == {"items", "total"} and len(r.json()["items"]) == 5),
        ("data_not_list", lambda r: r.json() == {"data": {"id": 1}, "total": 140}),
        ("total_not_number", lambda r: r.json()["total"] == "many" and len(r.json()["data"]) == 5),
    ],
)
def test_malformed_body_faults(
    api: DemoApi, session: requests.Session, kind: str, check: Callable[[requests.Response], bool]
) -> None:
    token = get_token(api, session)
    api.faults.queue(kind)
    response = get(api, session, token, limit=5)
    assert response.status_code == 200
    assert check(response), response.text
    assert get(api, session, token, limit=5).json()["total"] == 140


def test_repeat_page_serves_the_previous_page_again(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    first = get(api, session, token, offset=0, limit=10)
    api.faults.queue("repeat_page")
    assert get(api, session, token, offset=10, limit=10).content == first.content
    assert get(api, session, token, offset=10, limit=10).json()["data"][0]["id"] == 11


def test_unauthorized_fault_rejects_a_valid_token(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("unauthorized")
    response = get(api, session, token)
    assert (response.status_code, response.json()) == (401, {"error": "invalid_token"})
    assert get(api, session, token).status_code == 200


def test_faults_apply_to_the_token_endpoint(api: DemoApi, session: requests.Session) -> None:
    api.faults.queue("html", path=TOKEN)
    api.faults.queue("reset", path=TOKEN)
    assert "maintenance" in session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT).text
    with pytest.raises(requests.ConnectionError):
        session.post(api.token_url, data=CREDENTIALS, timeout=TIMEOUT)
    assert get(api, session, get_token(api, session)).status_code == 200


def test_fault_rate_is_deterministic_for_a_seed(session: requests.Session) -> None:
    def statuses(seed: int) -> list[int]:
        with DemoApi(DemoApiConfig(records=5, end_date=END)) as api:
            token = get_token(api, session)
            api.faults.set_rate(0.5, statuses=(429, 503), retry_after=1, seed=seed)
            return [get(api, session, token).status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert first != statuses(8)
    assert set(first) == {200, 429, 503}


def test_zero_rate_and_clear_disable_faults(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.set_rate(1.0, statuses=(503,))
    assert get(api, session, token).status_code == 503
    api.faults.set_rate(0)
    assert get(api, session, token).status_code == 200
    api.faults.set_rate(1.0)
    api.faults.queue("reset", times=5)
    api.faults.clear()
    assert get(api, session, token).status_code == 200


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        Faults().queue("explode")


def test_on_page_mutation_is_visible_in_that_page(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    original = api.all_records()
    api.faults.on_page(2, lambda a: a.delete_record(1))
    api.faults.on_page(3, lambda a: a.update_record(22, name="changed"))
    pages = [get(api, session, token, offset=offset, limit=10).json()["data"] for offset in (0, 10, 20)]
    assert pages[0] == original[:10]
    assert pages[1] == original[11:21]  # the delete shifted every later offset by one
    assert pages[2][0]["id"] == 22 and pages[2][0]["name"] == "changed"


# -- stats and CLI -----------------------------------------------------------


def test_request_stats_count_every_request(api: DemoApi, session: requests.Session) -> None:
    token = get_token(api, session)
    api.faults.queue("status", status=429)
    get(api, session, token, offset=0, limit=2)
    get(api, session, token, offset=2, limit=2)
    assert api.request_count() == 3
    assert (api.request_count(RESOURCE), api.request_count(RESOURCE, 429), api.request_count(status=200)) == (2, 1, 2)
    method, path, query, status = api.requests[-1]
    assert (method, path, query, status) == ("GET", RESOURCE, {"offset": "2", "limit": "2"}, 200)
    api.reset_stats()
    assert api.requests == [] and api.request_count() == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_until_interrupted(stop_signal: signal.Signals) -> None:
    with cli_server("--records", "30", stop_signal=stop_signal) as printed:
        assert printed["client_id"] == "demo-client" and printed["client_secret"] == "demo-secret"
        token = requests.post(printed["token URL"], data=CREDENTIALS, timeout=TIMEOUT).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        page = requests.get(printed["base URL"] + RESOURCE, headers=headers, timeout=TIMEOUT).json()
        assert page["total"] == 30
