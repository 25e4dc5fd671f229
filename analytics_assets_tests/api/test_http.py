"""The seed's retry policy against a real server: what is retried, how often, how long we wait."""

from email.utils import formatdate
import time

import pytest

from analytics_assets.errors import HostNotFound, RequestRejected, ResponseRefused, RetriesExhausted
from analytics_assets.settings import Settings
from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_checksum


def resource_statuses(api):
    return [status for (_, path, _, status) in api.requests if path == "/v1/resource"]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_recovered_within_three_retries(demo_api, syncer, status):
    demo_api.faults.queue("status", status=status, times=3, after=1)
    stats = syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert resource_statuses(demo_api).count(status) == 3
    assert stats.retries == 3


@pytest.mark.parametrize("status", [503, 429])
def test_retries_exhausted_after_four_attempts_leaves_table_unchanged(demo_api, syncer, status):
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    demo_api.update_record(2, name="changed-upstream")
    demo_api.reset_stats()
    demo_api.faults.queue("status", status=status, times=4, after=2)
    with pytest.raises(RetriesExhausted) as failure:
        syncer.run(demo_api)
    message = str(failure.value)
    assert f"HTTP {status}" in message and "GET /v1/resource" in message and "4 attempts" in message
    host = demo_api.base_url.split("://")[1]
    kind, advice = {503: ("refusing", "ANALYTICS_MAX_RETRIES / ANALYTICS_BACKOFF_FACTOR"),
                    429: ("throttling", "ANALYTICS_MAX_RETRIES / ANALYTICS_MAX_RETRY_WAIT")}[status]
    assert failure.value.kind == kind and f"The server at {host} was {kind}" in message and advice in message, message
    assert resource_statuses(demo_api).count(status) == 4
    assert table_checksum(syncer.db) == before


@pytest.mark.parametrize("status", [400, 403, 404, 501])
def test_other_statuses_fail_at_once(demo_api, syncer, status):
    demo_api.faults.queue("status", status=status, after=1)
    with pytest.raises(RequestRejected, match=f"HTTP {status}.*not retried"):
        syncer.run(demo_api)
    assert resource_statuses(demo_api) == [200, status]


@pytest.mark.parametrize("kind", ["reset", "close_mid_body"])
def test_broken_connections_are_retried(demo_api, syncer, kind):
    demo_api.faults.queue(kind, times=2, after=1)
    stats = syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert stats.retries == 2


def test_read_timeout_is_retried(demo_api, syncer):
    demo_api.faults.queue("hang", after=1)
    settings = settings_for(demo_api, http_timeout=0.5)
    stats = syncer.run(demo_api, settings=settings)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert stats.retries == 1


def test_server_that_stops_answering_fails_clearly(demo_api, syncer):
    demo_api.faults.queue("hang", times=4, after=1)
    settings = settings_for(demo_api, http_timeout=0.3)
    with pytest.raises(RetriesExhausted, match=r"GET /v1/resource.*4 attempts.*(Timeout|timed out)") as failure:
        syncer.run(demo_api, settings=settings)
    assert failure.value.kind == "unresponsive" and "raise ANALYTICS_HTTP_TIMEOUT" in str(failure.value)


def test_unreachable_api_names_the_url_path_and_attempts(make_api, syncer):
    api = make_api(records=10)
    settings = settings_for(api)
    api.stop()
    with pytest.raises(RetriesExhausted, match=r"POST /oauth/token still failed after 4 attempts.*ConnectionError"):
        syncer.run(api, settings=settings)


def test_a_stopped_server_fails_naming_its_host_as_unreachable_and_each_retry_is_said(make_api, syncer):
    """Connection refused: the advice is the address and the server, not more retries; and the
    message quotes the refusal without the brackets urllib3 nests it in."""
    api = make_api(records=10)
    settings, host = settings_for(api), api.base_url.split("://")[1]
    api.stop()
    said: list[str] = []
    with pytest.raises(RetriesExhausted) as failure:
        syncer.run(api, settings=settings, warn=said.append)
    message = str(failure.value)
    assert failure.value.kind == "unreachable"
    assert (f"still failed after 4 attempts (3 retries) at {host}: ConnectionError ([Errno 111] Connection refused). "
            f"The server at {host} was unreachable") in message, message
    assert "ANALYTICS_TOKEN_URL is the right address, and that the server runs" in message
    assert "ANALYTICS_MAX_RETRIES" not in message and '")' not in message and "')" not in message, message
    assert [line.split("; ", 1)[1] for line in said] == [
        f"attempt {n} of 4 failed, retrying in {wait} s." for n, wait in ((1, "0.05"), (2, "0.1"), (3, "0.2"))]
    assert all(line.startswith(f"POST /oauth/token at {host}: ConnectionError ([Errno 111] Connection refused)")
               for line in said), said


def test_each_retry_is_said_with_its_status_attempt_wait_and_host(demo_api, syncer):
    said: list[str] = []
    demo_api.faults.queue("status", status=503, times=2)
    stats = syncer.run(demo_api, warn=said.append)
    assert_table_matches(syncer.db, demo_api.all_records())
    host = demo_api.base_url.split("://")[1]
    assert stats.retries == 2 and said == [
        f"GET /v1/resource?offset=0&limit=100 at {host}: HTTP 503 Service Unavailable; attempt {n} of 4 failed, "
        f"retrying in {wait} s." for n, wait in ((1, "0.05"), (2, "0.1"))]


def test_a_rate_limit_pause_of_more_than_a_second_is_said(make_api, syncer):
    """A pace of one request every 2.5 s (ANALYTICS_MAX_REQUESTS_PER_SECOND=0.4): the first wait
    says it once, with the host and the setting; the run's other waits do not repeat it."""
    api = make_api(records=250, days=2)
    said: list[str] = []
    syncer.run(api, settings=settings_for(api, max_requests_per_second=0.4), say=said.append)
    assert_table_matches(syncer.db, api.all_records())
    pauses = [line for line in said if "waiting" in line]
    assert len(pauses) == 1, said
    assert pauses[0].startswith(f"Requests to {api.base_url.split('://')[1]}: waiting ") and \
        "paced at one every 2.5 s (ANALYTICS_MAX_REQUESTS_PER_SECOND=0.4)" in pauses[0], pauses[0]


@pytest.mark.parametrize("retry_after", [1, "date"])
def test_retry_after_is_honoured(demo_api, syncer, retry_after):
    """With a 0.05 s backoff factor, only the server's Retry-After explains a wait of ~1 s or more."""
    # An HTTP date has whole seconds and the run needs a moment to reach the faulted page: +4 s
    # leaves well over one second to wait.
    header = formatdate(time.time() + 4, usegmt=True) if retry_after == "date" else retry_after
    demo_api.faults.queue("status", status=429, retry_after=header, after=1)
    stats = syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert stats.throttle_wait_seconds >= 0.9
    assert stats.retries == 1


def test_retry_after_is_capped(demo_api, syncer):
    demo_api.faults.queue("status", status=429, retry_after=3600, after=1)
    settings = settings_for(demo_api, max_retry_wait=0.5)
    stats = syncer.run(demo_api, settings=settings)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert 0.4 <= stats.throttle_wait_seconds < 30


def test_a_response_is_freed_without_the_cycle_collector(demo_api):
    """Nothing of ours ties a response to its request in a reference cycle: a page's decoded body
    is freed as soon as the page is processed, not whenever Python's cyclic collector next runs
    (which, with every page of a run waiting for it, cost about a fifth of a run's CPU)."""
    import gc
    import weakref

    from analytics_assets.api.urls import origin_of
    from analytics_assets.api.http import Transport, build_session
    from analytics_assets.api.stats import SyncStats

    session = build_session(Transport(settings_for(demo_api), SyncStats(), origin_of(demo_api.base_url)), demo_api.base_url)
    credentials = {"grant_type": "client_credentials", "client_id": demo_api.config.client_id,
                   "client_secret": demo_api.config.client_secret}
    gc.collect()
    gc.disable()
    try:
        response = session.post(demo_api.token_url, data=credentials)
        assert response.status_code == 200
        freed = weakref.ref(response)
        del response
        assert freed() is None
    finally:
        gc.enable()


@pytest.mark.slow
def test_backoff_waits_two_four_and_eight_seconds(make_api, syncer):
    """The seed's policy at its real scale, from the settings' defaults (every other test shortens the
    backoff): three 503s for one page are retried after 2, 4 and 8 s."""
    api = make_api(records=150, days=1)
    api.faults.queue("status", status=503, times=3, after=1)
    # The deployment's defaults for backing off, not values of this test's own.
    fast = {"backoff_factor", "max_retry_wait"}
    settings = Settings(**{k: v for k, v in settings_for(api).model_dump().items() if k not in fast and v is not None})
    syncer.run(api, settings=settings)
    assert_table_matches(syncer.db, api.all_records())
    arrivals = api.request_times  # the resource requests: page 1, page 2 four times
    gaps = [later - earlier for earlier, later in zip(arrivals[1:], arrivals[2:5])]
    for gap, wait in zip(gaps, (2, 4, 8)):
        assert wait <= gap < wait + 1.5, f"waits between attempts were {gaps}, not 2, 4 and 8 s"


def test_a_name_that_does_not_resolve_fails_at_once_naming_the_host(syncer):
    settings = Settings(api_base_url="https://analytics-api.invalid", client_id="id", client_secret="secret",
                        http_timeout=2.0, backoff_factor=0.05)
    started = time.monotonic()
    # The token URL is the base URL's /oauth/token: the variable to fix is the base URL's.
    with pytest.raises(HostNotFound, match="'analytics-api.invalid' is unreachable: it does not resolve.*"
                                           r"ANALYTICS_API_BASE_URL \(the token URL defaults to the base URL's"):
        syncer.run(None, settings=settings)
    assert time.monotonic() - started < 5, "a name that does not resolve is not retried"


def test_a_retry_after_beyond_the_cap_is_reported_and_named_when_retries_run_out(demo_api, syncer):
    warnings: list[str] = []
    demo_api.faults.queue("status", status=429, retry_after=120, times=4, after=1)
    with pytest.raises(RetriesExhausted) as failure:
        syncer.run(demo_api, settings=settings_for(demo_api, max_retry_wait=0.1), warn=warnings.append)
    assert "asked to wait 120 s" in str(failure.value) and "ANALYTICS_MAX_RETRY_WAIT=0.1" in str(failure.value)
    capped = [w for w in warnings if "caps the wait" in w]
    assert len(capped) == 4 and all("asked to wait 120 s" in w and "ANALYTICS_MAX_RETRY_WAIT" in w for w in capped)
    assert len([w for w in warnings if "retrying in 0.1 s" in w]) == 3, "each retry is said, at the capped wait"


def test_gzip_pages_land(make_api, syncer):
    api = make_api(records=350, days=3, compress=True)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())


def test_a_gzip_bomb_is_refused_on_its_decompressed_size(make_api, syncer):
    """A megabyte on the wire that inflates to a gigabyte: the cap counts what the body decodes to."""
    api = make_api(records=350, days=3)
    api.faults.queue("gzip_bomb", after=1)
    started = time.monotonic()
    with pytest.raises(ResponseRefused, match="more than 67,108,864 bytes.*ANALYTICS_MAX_RESPONSE_BYTES"):
        syncer.run(api)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("nesting", [None, 3], ids=["json_columns", "child_tables"])
@pytest.mark.parametrize("depth", [1100, 5000, 100_000])
def test_a_value_nested_deeper_than_any_decoder_goes_fails_naming_its_field_and_record(demo_api, syncer, depth,
                                                                                       nesting):
    """orjson stops at 1,024 levels and Python's decoder at its recursion limit: past both, the page
    still fails as a shallower one does, on the record's field, and nothing is written; so too when
    dlt makes child tables of the upper levels (`max_table_nesting`) and would encode the rest."""
    import copy

    from analytics_assets.api.definition import BUILT_IN_CONFIG, parse_definition
    from analytics_assets.errors import SchemaViolation

    config = copy.deepcopy(BUILT_IN_CONFIG)
    if nesting is not None:
        config["resources"][0]["max_table_nesting"] = nesting
    definition = parse_definition(config, "test")[0]
    syncer.run(demo_api, definition=definition)
    before = table_checksum(syncer.db)
    demo_api.faults.queue("deep_nesting", depth=depth, after=0)
    with pytest.raises(SchemaViolation, match="field 'nested' is nested more than 255 levels deep") as failure:
        syncer.run(demo_api, definition=definition)
    assert failure.value.record_id in {record["id"] for record in demo_api.all_records()}
    assert table_checksum(syncer.db) == before


def test_a_body_too_deep_to_decode_loses_only_what_lies_below_the_cut():
    """The cut replaces the value that opens past DECODED_DEPTH levels; brackets inside strings are
    text; everything else reads as Python's decoder reads it."""
    import json

    from analytics_assets.api.http import DECODED_DEPTH, decode
    from analytics_assets.api.records import MAX_NESTING, _depth

    deep = '{"a":' * 5000 + "1" + "}" * 5000
    body = f'{{"data":[{{"id":1,"deep":{deep},"s":"[[{{\\"]"}},{{"id":2,"s":"}}]"}}],"total":2}}'.encode()
    decoded = decode(body)
    assert decoded["data"][1] == {"id": 2, "s": "}]"} and decoded["total"] == 2
    assert decoded["data"][0]["s"] == '[[{"]'
    assert MAX_NESTING < _depth(decoded["data"][0]["deep"]) < DECODED_DEPTH
    shallow = json.dumps({"data": [{"id": 1, "deep": json.loads('[' * 300 + ']' * 300)}]}).encode()
    assert decode(shallow) == json.loads(shallow)


def test_a_page_of_more_values_than_the_setting_is_refused_before_it_is_decoded(demo_api, syncer):
    """16 MiB of `{},` are 5.6 million records, 400 MB once decoded: counted on the bytes, refused."""
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    demo_api.faults.queue("empty_objects", after=1)
    with pytest.raises(ResponseRefused, match=r"GET /v1/resource\?offset=99&limit=100 sent a body of more than "
                                              r"500,000 values \(11,184,8\d\d counted\).*ANALYTICS_MAX_PAGE_VALUES"):
        syncer.run(demo_api)
    assert table_checksum(syncer.db) == before


def test_an_unreachable_url_from_the_config_file_is_named_by_its_key_not_a_variable(make_api, syncer):
    """The base URL came from the file's `client.base_url` (no variable set): the error names that
    key and the file, where the fix is, and names no variable the user never set."""
    import copy
    import socket

    from analytics_assets.api.definition import BUILT_IN_CONFIG, parse_definition

    api = make_api(records=100, days=2)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["base_url"] = f"http://127.0.0.1:{port}"
    settings = settings_for(api, api_base_url=None, max_retries=0)
    with pytest.raises(RetriesExhausted) as failure:
        syncer.run(api, settings=settings, definition=parse_definition(config, "ANALYTICS_API_CONFIG=api.yaml")[0])
    message = str(failure.value)
    assert "`client.base_url` in ANALYTICS_API_CONFIG=api.yaml" in message and f"127.0.0.1:{port}" in message
    assert "ANALYTICS_API_BASE_URL" not in message
