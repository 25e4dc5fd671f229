"""The fault matrix: every way the API can misbehave, each through a full Dagster materialization,
each ending in outcome (a) (recovered: table == server) or (b) (clear failure: table untouched).

Scenarios run over the window 2026-11-16..18 of the shared `dagster_api` (300 records: four pages
of at most 100 with the one-record overlap), so that a fault `after=1` lands mid-run, once a page
was fetched. The window is materialized once per module through the job; each scenario starts from
a copy of that DuckDB file (the table to protect) and changes a record upstream, so that a run
that wrongly commits shows in the checksum.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import duckdb
import pytest

from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets_tests.conftest import day_bounds, set_api_env, table_checksum
from analytics_assets_tests.reliability.conftest import (
    END_DATE,
    RESOURCE_PATH,
    TOKEN_PATH,
    Harness,
    assert_matches_server,
    assert_outcome,
    assert_succeeded,
    meta,
)

FIRST, LAST = "2026-11-16", "2026-11-18"
EXHAUSTED = ("still failed after 4 attempts", "GET /v1/resource")
UNREADABLE = ("GET /v1/resource", "cannot read", "ANALYTICS_API_BASE_URL")


# --- the table to protect ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def primed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FIRST..LAST materialized through the job once, from an API holding exactly the records of
    the shared `dagster_api` (same seed and shape), and checked row by row."""
    folder = tmp_path_factory.mktemp("primed")
    db = folder / "warehouse.duckdb"
    with DemoApi(DemoApiConfig(records=500, days=5, end_date=END_DATE)) as api, pytest.MonkeyPatch.context() as mp:
        set_api_env(mp, api, db)
        harness = Harness(api, db)
        assert_succeeded(harness.run(FIRST, LAST), db, harness.expected(FIRST, LAST), count=False)
    return db


@pytest.fixture
def primed(harness: Harness, primed_template: Path) -> str:
    """A copy of the primed DuckDB file, then one record of the window changed upstream. Returns
    the table's checksum: what a failed run must leave untouched."""
    for suffix in ("", ".wal"):
        source = Path(str(primed_template) + suffix)
        if source.exists():
            shutil.copyfile(source, Path(str(harness.db) + suffix))
    assert_matches_server(harness.db, harness.expected(FIRST, LAST), count=False)
    victim = harness.expected(FIRST, LAST)[-1]
    harness.api.update_record(victim["id"], name=f"changed-upstream-{victim['id']}")
    harness.api.reset_stats()
    return table_checksum(harness.db)


# --- scenario building blocks --------------------------------------------------------------------


def statuses(api, path=RESOURCE_PATH) -> list:
    return [status for (_, p, _, status) in api.requests if p == path]


def window_record(api, index: int) -> dict:
    return api.records_in_window(*day_bounds(FIRST, LAST))[index]


@dataclass(frozen=True)
class Case:
    """One scenario.

    `inject(api, setenv)` arms the fault; it may return {"words": [...]} (more words the failure
    must contain) and {"also": [...]} (records that stay in the table besides the server's window:
    merges never delete). The expected outcome is (b) when `fails_with` is given, else (a);
    `either=True` accepts both (the words still apply to (b)). `verify(result, api, armed)` checks
    what the run reported. `heal`: after a failure, the fault is removed and the next run must converge.
    """

    id: str
    inject: Callable[[Any, Callable[[str, str], None]], Optional[dict]]
    fails_with: tuple = ()
    verify: Optional[Callable[[Any, Any, dict], Any]] = None
    heal: bool = False
    either: bool = False
    marks: tuple = field(default=())

    @property
    def expect(self) -> str:
        return "either" if self.either else ("b" if self.fails_with else "a")


def queue(kind: str, **options: Any) -> Callable:
    def inject(api, setenv):
        api.faults.queue(kind, **options)

    return inject


def in_turn(inject: Callable) -> Callable:
    """The scenario with pages requested strictly one after another (ANALYTICS_MAX_CONCURRENCY=1):
    for changes whose exact outcome depends on which pages were served before them."""

    def sequential(api, setenv):
        setenv("ANALYTICS_MAX_CONCURRENCY", "1")
        return inject(api, setenv)

    return sequential


def retries(expected: int, throttle_at_least: float = 0.0) -> Callable:
    def verify(result, api, armed=None):
        assert meta(result, "run_retries") == expected
        assert meta(result, "run_seconds_waited_on_429_retry_after") >= throttle_at_least

    return verify


# --- HTTP statuses and throttling ----------------------------------------------------------------


def retry_after_date_storm(api, setenv):
    # The HTTP date is computed as the first page is served, not at queue time, so that the whole
    # wait the server asks for is still ahead when the 429s arrive.
    def arm(a):
        a.faults.queue("status", status=429, retry_after=formatdate(time.time() + 2, usegmt=True), times=3)

    api.faults.on_page(1, arm)


def throttled(times: int, at_least: float) -> Callable:
    def verify(result, api, armed=None):
        assert statuses(api).count(429) == times
        # The backoff factor is 0.05 (waits of 0.05..0.2 s): only Retry-After explains these waits.
        retries(times, at_least)(result, api)

    return verify


HTTP_CASES = [
    Case("429_storm_retry_after_seconds", queue("status", status=429, retry_after=1, times=3, after=1),
         verify=throttled(3, 2.5)),
    Case("429_storm_retry_after_http_date", retry_after_date_storm, verify=throttled(3, 0.9)),
    *[Case(f"{status}_burst_within_budget", queue("status", status=status, times=3, after=1), verify=retries(3))
      for status in (500, 502, 503, 504)],
    # Four failures of one request: the first page's, the only request in flight.
    Case("503_burst_beyond_budget", queue("status", status=503, times=4),
         fails_with=(*EXHAUSTED, "HTTP 503"), verify=lambda result, api, armed: statuses(api) == [503] * 4, heal=True),
    Case("502_burst_beyond_budget", queue("status", status=502, times=4), fails_with=(*EXHAUSTED, "HTTP 502")),
    Case("429_storm_beyond_budget", queue("status", status=429, retry_after=0, times=4),
         fails_with=(*EXHAUSTED, "HTTP 429", "ANALYTICS_MAX_RETRIES")),
    # The API goes down after the first page: the next request exhausts its retries.
    Case("503_outage_mid_run", queue("status", status=503, times=1000, after=1),
         fails_with=("still failed after 4 attempts", "HTTP 503"), heal=True),
    Case("403_not_retried", queue("status", status=403, after=1),
         fails_with=("HTTP 403", "not retried", "GET /v1/resource")),
]


# --- the network ---------------------------------------------------------------------------------


def hang(times: int, timeout: str) -> Callable:
    def inject(api, setenv):
        setenv("ANALYTICS_HTTP_TIMEOUT", timeout)
        api.faults.queue("hang", times=times, after=1)

    return inject


NETWORK_CASES = [
    Case("connection_reset", queue("reset", times=2, after=1), verify=retries(2)),
    Case("connection_reset_beyond_budget", queue("reset", times=4),
         fails_with=(*EXHAUSTED, "ConnectionError"), heal=True),
    Case("server_closes_mid_response", queue("close_mid_body", times=2, after=1), verify=retries(2)),
    Case("read_timeout", hang(1, "1"), verify=lambda result, api, armed: (
        meta(result, "run_retries") >= 1 and statuses(api).count(None) == 1)),
    Case("server_stops_answering", hang(1000, "0.3"), fails_with=(*EXHAUSTED, "timed out"), heal=True),
]


# --- OAuth2 --------------------------------------------------------------------------------------


def revoke_mid_run(api, setenv):
    """Revoked as the first page is served: every later request carries a dead token. 300 ms per
    response, so requests already in flight (when pages are fetched concurrently) all see a 401."""
    api.config.latency_ms = 300
    api.faults.on_page(1, lambda a: a.revoke_tokens())


def wrong_secret(api, setenv):
    setenv("ANALYTICS_CLIENT_SECRET", "not-the-secret")
    return {"words": [api.token_url]}


def exactly_one_token_request(result, api, armed=None):
    assert api.request_count(path=TOKEN_PATH) == 1, "rejected credentials must not be retried"
    assert api.request_count(path=RESOURCE_PATH) == 0


def revoked_token_replaced_once(result, api, armed=None):
    # Every request in flight with the revoked token may see a 401, but one new token serves them all.
    assert api.request_count(path=RESOURCE_PATH, status=401) >= 1
    assert api.request_count(path=TOKEN_PATH) == 2, "one token at the start, then exactly one replacement"
    assert meta(result, "run_token_refreshes") == 1


def token_endpoint_retried(result, api, armed=None):
    assert statuses(api, TOKEN_PATH) == [503, 503, 503, 200]


AUTH_CASES = [
    Case("token_revoked_mid_run", revoke_mid_run, verify=revoked_token_replaced_once),
    Case("token_revoked_mid_run_paging_in_turn", in_turn(revoke_mid_run), verify=revoked_token_replaced_once),
    Case("token_endpoint_5xx", queue("status", path=TOKEN_PATH, status=503, times=3), verify=token_endpoint_retried),
    Case("token_endpoint_rejects_secret", wrong_secret,
         fails_with=("rejected the client credentials", "ANALYTICS_CLIENT_SECRET"),
         verify=exactly_one_token_request, heal=True),
    Case("token_endpoint_down", queue("status", path=TOKEN_PATH, status=503, times=4),
         fails_with=("POST /oauth/token still failed after 4 attempts", "HTTP 503")),
]


# --- malformed bodies ----------------------------------------------------------------------------

BODY_CASES = [
    Case("body_invalid_json", queue("invalid_json", after=1), fails_with=(*UNREADABLE, "invalid JSON")),
    Case("body_html", queue("html", after=1), fails_with=(*UNREADABLE, "HTML page")),
    Case("body_missing_data", queue("missing_data", after=1),
         fails_with=("GET /v1/resource", "cannot read", "no records at `data`", "a list of records at `items`",
                     "data_selector")),
    Case("body_data_not_list", queue("data_not_list", after=1),
         fails_with=("GET /v1/resource", "cannot read", "`data` is not a list", "data_selector")),
    Case("body_total_not_number", queue("total_not_number", after=1),
         fails_with=(*UNREADABLE, "`total` is not a whole number")),
]


# --- pagination ----------------------------------------------------------------------------------


def insert_at_end(api, setenv):
    """`total` grows while paging: a record lands after the cursor (highest id, inside the window)."""
    template = window_record(api, 0)
    api.faults.on_page(2, lambda a: a.insert_record(dict(template, id=10_000_000, name="appended-while-paging")))


def append_while_pages_in_flight(api, setenv):
    """Pages fetched concurrently are answered out of order: the window's last page (offset 297)
    first, then a record is appended at the end of the window, then pages 2 and 3, which report the
    new `total` (301). The client has seen 301 but its last page says 300."""
    setenv("ANALYTICS_MAX_CONCURRENCY", "4")
    template = window_record(api, 0)
    store, original = api._store, api._store.page
    appended = threading.Event()
    served: list[int] = []

    def page(lo, hi, offset, size):
        if offset == 0 or appended.is_set():
            pass
        elif offset == 297:
            result = original(lo, hi, offset, size)
            served.append(offset)
            api.insert_record(dict(template, id=10_000_000, name="appended-while-in-flight"))
            appended.set()
            return result
        else:
            appended.wait(10)  # pages 2 and 3 wait for the last page, requested alongside them
        served.append(offset)
        return original(lo, hi, offset, size)

    store.page = page
    return {"served": served}


def last_page_answered_first(result, api, armed):
    assert armed["served"][:4] in ([0, 297, 99, 198], [0, 297, 198, 99]), (
        f"the scenario needs pages 2..4 requested at once; pages were served at offsets {armed['served']}")


def delete_ahead(api, setenv):
    """`total` shrinks while paging: a record near the window's end goes away. It stays in the
    table as the earlier materialization loaded it (merges never delete)."""
    doomed = window_record(api, -3)  # not the record `primed` changed upstream
    api.faults.on_page(2, lambda a: a.delete_record(doomed["id"]))
    return {"also": [doomed]}


def insert_behind(api, setenv):
    """A record enters the window before the cursor: offsets shift, the window is read again."""
    template = window_record(api, 0)
    api.faults.on_page(2, lambda a: a.insert_record(dict(template, id=0, name="inserted-while-paging")))


def update_ahead(api, setenv):
    """The window's last record changes (and moves later within its day) once paging started."""
    record = window_record(api, -2)
    newer = record["updated_at"][:10] + "T23:59:59Z"
    api.faults.on_page(2, lambda a: a.update_record(record["id"], name="updated-while-paging", updated_at=newer))


def never_settles(api, setenv):
    counter = iter(range(-1, -10_000, -1))
    template = window_record(api, 0)
    for page in range(1, 60):
        api.faults.on_page(page, lambda a: a.insert_record(dict(template, id=next(counter))))


def rereads(expected: int) -> Callable:
    def verify(result, api, armed=None):
        assert meta(result, "run_window_rereads") == expected

    return verify


def serves_one_short(api, setenv):
    api.config.total_bias = 1


PAGING_CASES = [
    Case("total_larger_than_served", serves_one_short, fails_with=("300 records were served for a total of 301",
                                                                  "resource_name", "nothing was written")),
    # Sequential paging stops on the loop guard; if pages are fetched concurrently, the repeated body
    # may answer a later offset, where the overlap check sees drift and re-reads: both are right.
    Case("repeated_page", queue("repeat_page", after=1), fails_with=("repeats the previous page", "resource_name"),
         either=True),
    Case("total_grows_while_paging", in_turn(insert_at_end)),
    Case("total_grows_while_pages_in_flight", append_while_pages_in_flight, verify=last_page_answered_first),
    Case("total_shrinks_while_paging", delete_ahead),
    Case("record_inserted_behind_cursor", insert_behind, verify=rereads(1)),
    Case("record_updated_while_paging", in_turn(update_ahead)),
    Case("data_never_settles", never_settles, fails_with=("kept changing", "nothing was written"), heal=True),
]


# --- schema --------------------------------------------------------------------------------------


def set_field(index: int, **fields: Any) -> Callable:
    def inject(api, setenv):
        victim = window_record(api, index)["id"]
        api.update_record(victim, **fields)
        return {"words": [f"id={victim}"]}

    return inject


def drop_field(name: str) -> Callable:
    def inject(api, setenv):
        victim = window_record(api, 150)["id"]
        records = api.all_records()
        for record in records:
            if record["id"] == victim:
                del record[name]
        api.replace_records(records)
        return {"words": [f"id={victim}"]}

    return inject


def drift_reported(result, api, armed=None):
    assert meta(result, "schema_drift") == "campaign"
    with duckdb.connect(os.environ["ANALYTICS_DUCKDB_PATH"], read_only=True) as connection:
        values = [v for (v,) in connection.execute("SELECT campaign FROM analytics.resource_name").fetchall()]
    assert sorted(v for v in values if v is not None) == ["spring"], "the new field became a column"


ODD_TEXT = "Zoë 🚀👩🏽‍💻 ‮right-to-left‬ עברית العربية 中文 \u0000 nul \u200b zero-width é"

SCHEMA_CASES = [
    Case("required_field_null", set_field(150, name=None), fails_with=("'name'", "is null", "NOT NULL")),
    Case("required_field_missing", drop_field("created_at"), fails_with=("'created_at'", "is missing")),
    Case("wrong_type", set_field(150, metric_value="twelve"), fails_with=("'metric_value'", "is not a number")),
    Case("wrong_timestamp", set_field(150, created_at="yesterday"),
         fails_with=("'created_at'", "is not a timestamp")),
    Case("new_undeclared_field", set_field(120, campaign="spring"), verify=drift_reported),
    Case("huge_string", set_field(10, name="x" * 1_000_000, category="y" * 100_000)),
    Case("odd_unicode", set_field(20, name=ODD_TEXT, category="tab\tnew\nline\r\n",
                                  properties={"emoji": "🚀", "rtl": "‮x‬", "nul": "a\u0000b"})),
    Case("lone_surrogate", set_field(150, name="bad \ud800 text"), fails_with=("'name'", "not valid Unicode")),
]


# --- a hostile API -------------------------------------------------------------------------------


def redirected(path: str) -> Callable:
    """The API redirects to a server elsewhere (another port: another origin), which must receive
    nothing, the secret and the token least of all."""

    def inject(api, setenv):
        elsewhere = DemoApi(DemoApiConfig(records=1)).start()
        target = elsewhere.token_url if path == TOKEN_PATH else elsewhere.resource_url
        api.faults.queue("redirect", path=path, location=target, after=0 if path == TOKEN_PATH else 1)
        return {"elsewhere": elsewhere}

    return inject


def nothing_reached_elsewhere(result, api, armed):
    try:
        assert armed["elsewhere"].requests == [], "a request reached the server the API redirected to"
    finally:
        armed["elsewhere"].stop()


def hostile(kind: str, env: Optional[dict] = None, after: int = 1, **options: Any) -> Callable:
    def inject(api, setenv):
        for name, value in (env or {}).items():
            setenv(name, value)
        api.faults.queue(kind, after=after, **options)

    return inject


def _nested_text(api) -> str:
    with duckdb.connect(os.environ["ANALYTICS_DUCKDB_PATH"], read_only=True) as connection:
        return connection.execute("SELECT nested FROM analytics.resource_name WHERE nested IS NOT NULL").fetchone()[0]


HOSTILE_CASES = [
    Case("token_request_redirected", redirected(TOKEN_PATH), fails_with=("never redirected", "ANALYTICS_TOKEN_URL"),
         verify=nothing_reached_elsewhere),
    Case("data_request_redirected", redirected(RESOURCE_PATH),
         fails_with=("GET /v1/resource", "would go to http://127.0.0.1", "ANALYTICS_API_BASE_URL"),
         verify=nothing_reached_elsewhere),
    # On the first page: a later page's first record is the overlap record, already read.
    Case("field_nested_1000_deep", hostile("nested", after=0, depth=1000),
         fails_with=("'nested'", "nested more than 255 levels deep")),
    Case("field_nested_100_deep_kept_as_json_text", hostile("nested", after=0, depth=100), verify=lambda result, api, armed:
         _nested_text(api) == '{"a":' * 100 + "null" + "}" * 100),
    Case("thousands_of_new_keys", hostile("many_keys", keys=5000),
         fails_with=("undeclared fields, more than ANALYTICS_MAX_NEW_COLUMNS=100",)),
    Case("endless_body", hostile("endless_body", {"ANALYTICS_MAX_RESPONSE_BYTES": str(2**20)}),
         fails_with=("GET /v1/resource", "more than 1,048,576 bytes", "ANALYTICS_MAX_RESPONSE_BYTES")),
    Case("body_dripping", hostile("drip", {"ANALYTICS_REQUEST_DEADLINE": "1.5"}, interval=0.05),
         fails_with=("GET /v1/resource", "took more than 1.5 s", "ANALYTICS_REQUEST_DEADLINE")),
    Case("token_error_echoing_the_request", queue("echo_credentials", path=TOKEN_PATH),
         fails_with=("rejected the client credentials", "invalid_client: bad client")),
]


ALL_CASES = HTTP_CASES + NETWORK_CASES + AUTH_CASES + BODY_CASES + PAGING_CASES + SCHEMA_CASES + HOSTILE_CASES


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in ALL_CASES])
def test_fault(harness: Harness, primed: str, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    api = harness.api
    original_env: dict[str, Optional[str]] = {}

    def setenv(name: str, value: str) -> None:
        original_env.setdefault(name, os.environ.get(name))
        monkeypatch.setenv(name, value)

    armed = case.inject(api, setenv) or {}
    result = harness.run(FIRST, LAST)

    expected = harness.expected(FIRST, LAST) + armed.get("also", [])
    words = [*case.fails_with, *armed.get("words", [])]
    outcome = assert_outcome(result, harness.db, expected, words, primed, case.expect)
    if case.verify:
        assert case.verify(result, api, armed) is not False

    if outcome == "b" and case.heal:
        # The fault is gone: the next run converges to exactly the server's data.
        api.faults.clear()
        api.faults.release()
        for name, value in original_env.items():
            if value is None:
                monkeypatch.delenv(name)
            else:
                monkeypatch.setenv(name, value)
        harness.succeeded(harness.run(FIRST, LAST), FIRST, LAST)


# --- scenarios that need an API of their own, or several runs ----------------------------------


def test_token_expires_during_long_run(harness_for, monkeypatch: pytest.MonkeyPatch) -> None:
    """5 s tokens (a token is renewed at most every 5 s on its expiry's account) and no refresh
    margin; the second page takes 5.5 s to answer, so the ~25 pages after it are requested with an
    expired token unless the run renews it."""
    harness = harness_for(records=2500, token_lifetime=5, latency_ms=10)
    monkeypatch.setenv("ANALYTICS_TOKEN_REFRESH_MARGIN", "0")
    monkeypatch.setenv("ANALYTICS_HTTP_TIMEOUT", "10")  # the slow page is not a read timeout
    harness.api.faults.queue("slow", retry_after=5.5, after=1)
    result = harness.run("2026-11-15", "2026-11-19")
    harness.succeeded(result, "2026-11-15", "2026-11-19")
    assert meta(result, "run_token_refreshes") >= 1 and harness.api.tokens_issued >= 2
    # Every request refused for an expired token was answered by a renewed one.
    assert harness.api.request_count(path=RESOURCE_PATH, status=401) <= meta(result, "run_token_refreshes")


def test_page_cap_below_limit(harness_for) -> None:
    """A server serving 30 records per page for a limit of 100 loses nothing."""
    harness = harness_for(records=500, page_cap=30)
    result = harness.run("2026-11-17")
    harness.succeeded(result, "2026-11-17")
    assert meta(result, "run_pages_fetched") >= 4  # 100 records, at most 30 a page
    assert meta(result, "records_fetched", "2026-11-17") == 100


def test_record_moved_to_another_day_while_paging_converges(harness: Harness, primed: str) -> None:
    """A record already read moves to the next day: the window is read again; the table keeps the
    record as read until that day is synced, after which the table equals the server for both."""
    moved = window_record(harness.api, 5)["id"]
    harness.api.faults.on_page(
        2, lambda a: a.update_record(moved, name="moved-while-paging", updated_at="2026-11-19T08:00:00Z"))
    first_run = harness.run(FIRST, LAST)
    assert first_run.success
    harness.succeeded(harness.run("2026-11-19"), FIRST, "2026-11-19")


def test_empty_window_after_data(harness: Harness, primed: str) -> None:
    """A day before the data (2026-11-10) loads nothing, reports 0 and leaves the table as it was."""
    assert harness.expected("2026-11-10") == []
    victim = window_record(harness.api, -1)["id"]
    harness.api.update_record(victim, name=f"item-{victim:05d}")  # undo `primed`'s change: nothing to sync
    result = harness.run("2026-11-10")
    harness.succeeded(result, "2026-11-10", expected=harness.expected(FIRST, LAST))
    assert table_checksum(harness.db) == primed
    assert meta(result, "records_fetched", "2026-11-10") == 0
    assert meta(result, "dagster/partition_row_count", "2026-11-10") == 0


def test_empty_window_as_first_run(harness: Harness) -> None:
    result = harness.run("2026-11-10")
    harness.succeeded(result, "2026-11-10", expected=[])
    assert meta(result, "records_fetched", "2026-11-10") == 0


def test_a_redirect_within_the_apis_origin_is_followed(harness: Harness, primed: str) -> None:
    """Same scheme, host and port: the API moved a path, not the credentials' destination."""
    harness.run(FIRST, LAST)
    first_page = next(r.query for r in harness.api.requests if r.path == RESOURCE_PATH and r.query.get("offset") == "0")
    harness.api.faults.queue("redirect", location=f"{harness.api.resource_url}?{urlencode(first_page)}")
    harness.api.reset_stats()
    harness.succeeded(harness.run(FIRST, LAST), FIRST, LAST)
    assert harness.api.request_count(path=RESOURCE_PATH, status=307) == 1
