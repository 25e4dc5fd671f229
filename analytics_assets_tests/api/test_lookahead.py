"""Pages requested ahead: the same rows as paging in turn, bounded, and backing off on 429."""

import copy

import pytest

from analytics_assets.api.definition import BUILT_IN_CONFIG, built_in_definition, parse_definition
from analytics_assets.api.client import ApiClient
from analytics_assets.api.stats import SyncStats
from analytics_assets.errors import RetriesExhausted
from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_checksum, table_rows


def test_concurrent_paging_loads_what_sequential_paging_loads(make_api, tmp_path):
    from analytics_assets_tests.conftest import Syncer

    api = make_api(records=1200, days=3, latency_ms=20)
    sequential, concurrent = Syncer(tmp_path / "seq"), Syncer(tmp_path / "con")
    sequential.run(api, settings=settings_for(api, max_concurrency=1))
    assert api.max_in_flight == 1
    api.reset_stats()
    stats = concurrent.run(api, settings=settings_for(api, max_concurrency=6))
    assert 1 < api.max_in_flight <= 6
    # Every page was requested once: a page requested ahead is handed to the paging loop, not fetched again.
    assert len([r for r in api.requests if r[1] == "/v1/resource"]) == stats.pages
    assert table_rows(concurrent.db) == table_rows(sequential.db)
    assert_table_matches(concurrent.db, api.all_records())


def test_throttling_under_concurrency_recovers_every_row(make_api, syncer):
    api = make_api(records=1500, days=3, latency_ms=5)
    api.faults.set_rate(0.3, statuses=(429,), retry_after=None, seed=7)
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=8))
    assert_table_matches(syncer.db, api.all_records())
    assert stats.retries > 0


def test_exhausted_retries_under_concurrency_fail_clearly(make_api, syncer):
    api = make_api(records=1500, days=3)
    syncer.run(api, settings=settings_for(api, max_concurrency=1))
    before = table_checksum(syncer.db)
    api.update_record(1, name="changed-upstream")
    api.faults.queue("status", status=503, times=10_000, after=2)
    with pytest.raises(RetriesExhausted, match="4 attempts"):
        syncer.run(api, settings=settings_for(api, max_concurrency=8))
    assert table_checksum(syncer.db) == before


def test_drift_is_detected_when_pages_are_fetched_concurrently(make_api, syncer):
    api = make_api(records=1500, days=3, latency_ms=5)
    newcomer = dict(api.all_records()[0], id=0, name="inserted-while-paging")
    api.faults.on_page(3, lambda a: a.insert_record(newcomer))
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=8))
    assert_table_matches(syncer.db, api.all_records())
    assert stats.window_rereads >= 1


def test_pages_sent_ahead_follow_what_the_throttle_allows_in_flight(demo_api):
    """One owner of backing off: after a 429 the throttle allows one request in flight, and the
    lookahead keeps no more than that in flight; it grows back with the throttle."""
    with ApiClient(built_in_definition(), settings_for(demo_api, max_concurrency=8), SyncStats()) as client:
        throttle, lookahead = client.throttle, client.lookahead
        assert lookahead.depth == 8
        throttle.release(throttle.acquire(), 429, {})
        assert throttle.allowed_in_flight == 1 and lookahead.depth == 1
        throttle.release(throttle.acquire(), 200, {})
        assert throttle.allowed_in_flight == 2 and lookahead.depth == 2


def test_two_resources_request_each_page_once_within_the_cap(make_api, syncer):
    """Both resources page the same API, one after the other, through one sync's lookahead."""
    api = make_api(records=3000, days=3, latency_ms=20)
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["resources"].append({**copy.deepcopy(config["resources"][0]), "name": "resource_copy"})
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=4), definition=parse_definition(config, "test")[0])
    assert 1 < api.max_in_flight <= 4
    assert api.request_count(path="/v1/resource") == stats.pages == 2 * 31
    assert_table_matches(syncer.db, api.all_records())
    assert_table_matches(syncer.db, api.all_records(), table="analytics.resource_copy")
