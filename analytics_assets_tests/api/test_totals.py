"""The days' totals: one cheap request per day, read within a one-record page's bounds."""

import pytest

from analytics_assets.api.client import ONE_RECORD_PAGE_BYTES, ApiClient
from analytics_assets.api.definition import built_in_definition
from analytics_assets.api.stats import SyncStats
from analytics_assets.api.totals import day_totals
from analytics_assets.errors import ResponseRefused
from analytics_assets_tests.conftest import day_bounds, settings_for


def test_a_days_total_is_read_from_a_one_record_page(make_api):
    api = make_api(records=350, days=5)
    definition = built_in_definition()
    with ApiClient(definition, settings_for(api), SyncStats()) as client:
        days = sorted({record["updated_at"][:10] for record in api.all_records()})[:2]
        totals = day_totals(client, definition.resources[0], days)
    assert totals == {day: len(api.records_in_window(*day_bounds(day))) for day in totals}
    assert all(totals.values())
    assert {query["limit"] for _, path, query, _ in api.requests if path == "/v1/resource"} == {"1"}


def test_a_days_total_reads_no_more_than_a_one_record_page_holds(make_api):
    """The reconcile sensor asks these in the code location's process: a page of 16 MiB answering a
    one-record request is refused at the first MiB, whatever ANALYTICS_MAX_RESPONSE_BYTES allows."""
    api = make_api(records=350, days=5)
    definition = built_in_definition()
    with ApiClient(definition, settings_for(api, max_retries=0), SyncStats()) as client:
        api.faults.queue("empty_objects")
        with pytest.raises(ResponseRefused, match=f"sent a body of more than {ONE_RECORD_PAGE_BYTES:,} bytes"):
            day_totals(client, definition.resources[0], [api.all_records()[0]["updated_at"][:10]])
