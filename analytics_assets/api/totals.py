"""What the API says a day holds: one cheap request per day, the window's first page (one record
long where the paginator takes a limit), made by dlt's REST client from the same endpoint config
as a sync's, its record total read by the same paginator.

The reconcile sensor compares these totals with the table's rows per day, and a range run reports
each day's own total. A page without a total says nothing, except an empty first page: that day
holds no record.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from dlt.sources.helpers.rest_client import RESTClient

from ..window import Window
from .client import ApiClient
from .config import Paging, Resource
from .names import key_getter
from .paging import paginator_for
from .source import endpoint_config


def total_path(resource: Resource) -> Optional[str]:
    paging = resource.endpoint.paginator
    return paging.total_path if paging.type == "offset" else paging.records_total_path


def countable(resource: Resource) -> bool:
    """Whether the API can say what one day holds: a window with an end (an API filtering by the start
    only counts every record since), asked of the resource itself (not once per parent record)."""
    incremental = resource.incremental
    return incremental is not None and bool(incremental.end_param or "end_value" in resource.endpoint.placeholders()) \
        and not resource.parents and total_path(resource) is not None


def asks_one_record(paging: Paging) -> bool:
    """Whether the paging can ask for a page of one record (offset paging, by its `limit`)."""
    return paging.type == "offset"


def first_page(paging: Paging) -> Paging:
    """The resource's paging, asking for as few records as it can."""
    return paging.model_copy(update={"limit": 1}) if asks_one_record(paging) else paging


def day_totals(client: ApiClient, resource: Resource, days: Sequence[str]) -> dict[str, Optional[int]]:
    """The API's record total of each UTC day (a partition key), None where its pages carry none or
    the resource cannot be counted by day."""
    if not countable(resource):
        return dict.fromkeys(days)
    rest = RESTClient(client.base_url, headers=dict(client.definition.config.client.headers),
                      session=client.probing if asks_one_record(resource.endpoint.paginator) else client.retrying)

    def total_of(day: str) -> Optional[int]:
        probe = paginator_for(resource, key_getter(resource.key), first_page(resource.endpoint.paginator))
        page = next(iter(rest.paginate(**endpoint_config(client, resource, Window.of_days(day), probe))), None)
        if probe.api_total is not None:
            return probe.api_total
        return 0 if page is not None and not page else None

    # The days are asked at once, as many at a time as the sync's pages (the sync's throttle holds
    # either way): a range of 30 days waits one round trip, not thirty.
    with ThreadPoolExecutor(min(len(days), client.settings.max_concurrency) or 1,
                            thread_name_prefix="analytics-totals") as pool:
        return dict(zip(days, pool.map(total_of, days)))
