"""Offset paging that never skips or duplicates records silently."""

import copy
from datetime import datetime, timedelta, timezone

import pytest

from analytics_assets.api.definition import BUILT_IN_CONFIG, parse_definition
from analytics_assets.errors import PaginationError
from analytics_assets.window import Window
from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_checksum, table_rows


@pytest.mark.parametrize("include_total, has_more", [(True, False), (False, True), (False, False)])
def test_server_page_cap_below_limit_skips_nothing(make_api, syncer, include_total, has_more):
    """dlt's OffsetPaginator loaded 150 of 250 records here; every stop rule must survive a cap."""
    api = make_api(records=250, days=2, page_cap=50, include_total=include_total, has_more=has_more)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())


def test_without_total_a_short_page_ends_the_window(make_api, syncer):
    api = make_api(records=250, days=2, include_total=False)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())
    # Three requests, no trailing empty page; each page after the first overlaps the last by one.
    assert [q["offset"] for (_, p, q, _) in api.requests if p == "/v1/resource"] == ["0", "99", "198"]


def test_repeated_page_stops_with_loop_guard(demo_api, syncer):
    demo_api.faults.queue("repeat_page", after=1)
    with pytest.raises(PaginationError, match="repeats the previous page"):
        syncer.run(demo_api)


def test_endless_offsets_stop_at_the_page_limit(make_api, syncer):
    api = make_api(records=500, days=2, include_total=False)
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["resources"][0]["endpoint"]["paginator"]["max_pages"] = 3
    with pytest.raises(PaginationError, match="more than 3 pages"):
        syncer.run(api, definition=parse_definition(config, "test")[0])


@pytest.mark.parametrize("include_total", [True, False])
def test_record_deleted_while_paging_is_not_silently_skipped(make_api, syncer, include_total):
    """Deleting record 10 after page 1 shifts record 101 to offset 99: a naive pager skips it."""
    api = make_api(records=350, days=3, include_total=include_total)
    already_read = api.all_records()[9]
    api.faults.on_page(2, lambda a: a.delete_record(10))
    stats = syncer.run(api)
    # Record 10 was read before it was deleted and merges never delete: it stays, as it was.
    assert_table_matches(syncer.db, api.all_records() + [already_read])
    assert stats.window_rereads == 1


@pytest.mark.parametrize("include_total", [True, False])
def test_record_inserted_while_paging_causes_a_reread(make_api, syncer, include_total):
    api = make_api(records=350, days=3, include_total=include_total)
    newcomer = dict(api.all_records()[0], id=0, name="inserted-while-paging")
    api.faults.on_page(2, lambda a: a.insert_record(newcomer))
    stats = syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())
    assert stats.window_rereads == 1


def test_record_updated_while_paging_keeps_its_newest_version(make_api, syncer):
    """The re-read brings the record twice into one load; the newest `updated_at` wins."""
    api = make_api(records=350, days=3)
    newer = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    api.faults.on_page(2, lambda a: (a.update_record(5, name="updated-while-paging", updated_at=newer), a.delete_record(7)))
    syncer.run(api)
    rows = {r["id"]: r for r in table_rows(syncer.db)}
    assert rows[5]["name"] == "updated-while-paging"
    assert [r["id"] for r in table_rows(syncer.db)].count(5) == 1


def test_record_moving_to_another_window_converges_after_both_windows(make_api, syncer):
    api = make_api(records=300, days=3)
    days = sorted({r["updated_at"][:10] for r in api.all_records()})
    first = datetime.fromisoformat(days[0]).replace(tzinfo=timezone.utc)
    moved_id = api.records_in_window(first, first + timedelta(days=1))[3]["id"]
    later = days[1] + "T12:00:00Z"
    api.faults.on_page(1, lambda a: a.update_record(moved_id, updated_at=later, name="moved"))
    syncer.run(api, Window(first, first + timedelta(days=1)))
    syncer.run(api, Window(first + timedelta(days=1), first + timedelta(days=2)))
    assert_table_matches(syncer.db, api.records_in_window(first, first + timedelta(days=2)))


def test_data_that_never_settles_fails_loudly(demo_api, syncer):
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    counter = iter(range(10_000, 20_000))
    for page in range(1, 40):
        demo_api.faults.on_page(page, lambda a: a.insert_record(dict(a.all_records()[0], id=-next(counter))))
    with pytest.raises(PaginationError, match="kept changing"):
        syncer.run(demo_api)
    assert table_checksum(syncer.db) == before


@pytest.mark.parametrize("concurrency", [1, 8], ids=["in_turn", "ahead"])
def test_server_serving_fewer_records_than_its_total_fails_loudly(make_api, syncer, concurrency):
    """351 reported, 350 served: loading the 350 would be a silently incomplete table."""
    api = make_api(records=350, days=3, latency_ms=5)
    syncer.run(api)
    before = table_checksum(syncer.db)
    api.update_record(2, name="changed-upstream")
    api.config.total_bias = 1
    with pytest.raises(PaginationError, match="350 records were served for a total of 351"):
        syncer.run(api, settings=settings_for(api, max_concurrency=concurrency))
    assert table_checksum(syncer.db) == before


def cursor_definition(**paginator):
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["resources"][0]["endpoint"]["paginator"] = {"type": "cursor", "cursor_path": "next_cursor", **paginator}
    return parse_definition(config, "test")[0]


def test_a_cursor_api_repeating_a_page_stops_with_the_loop_guard(make_api, syncer):
    api = make_api(records=350, days=3, pagination="cursor")
    api.faults.queue("repeat_page", after=1)
    with pytest.raises(PaginationError, match="Page 2 of resource_name repeats page 1"):
        syncer.run(api, definition=cursor_definition())


def test_a_cursor_api_that_never_ends_stops_at_max_pages(make_api, syncer):
    api = make_api(records=350, days=3, pagination="cursor")
    with pytest.raises(PaginationError, match="more than 2 pages"):
        syncer.run(api, definition=cursor_definition(max_pages=2))


def test_a_cursor_api_whose_pages_fall_short_of_its_total_fails(make_api, syncer):
    api = make_api(records=350, days=3, pagination="cursor", total_bias=1)
    with pytest.raises(PaginationError, match="350 records of resource_name were served for a total of 351"):
        syncer.run(api, definition=cursor_definition())


def test_a_page_of_more_records_than_its_limit_fails_before_they_are_read(demo_api, syncer):
    """An API that ignores `limit` may send any number of records a page: more than asked fails the
    run at once, naming the paginator's parameter."""
    from analytics_assets.errors import MalformedResponse

    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    demo_api.faults.queue("empty_objects", size=3 * 1000, after=1)  # about 1,000 empty records
    with pytest.raises(MalformedResponse, match=r"offset=99&limit=100 .*9\d\d records on a page asked for limit=100"
                                                r".*`limit_param`"):
        syncer.run(demo_api)
    assert table_checksum(syncer.db) == before
