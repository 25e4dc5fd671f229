"""What the API says a day holds: one cheap request per day, the window's first page (one record
long where the paginator takes a limit), its record total read where the paginator reads it.

The reconcile sensor compares these totals with the table's rows per day, and a range run reports
each day's own total. A page without a total says nothing, except an empty first page: that day
holds no record.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from dlt.sources.helpers.rest_client.utils import join_url

from .definition import Endpoint, Window
from .http import ApiClient
from .paging import page_check, reader


def total_path(endpoint: Endpoint) -> str:
    paging = endpoint.endpoint.paginator
    return paging.total_path if paging.type == "offset" else paging.records_total_path


def first_page_params(endpoint: Endpoint, window: Window) -> dict:
    paging = endpoint.endpoint.paginator
    params = {**endpoint.endpoint.params, **endpoint.incremental.params(window.start, window.end)}
    if paging.type == "offset":
        params.update({paging.offset_param: paging.offset, paging.limit_param: 1})
    elif paging.type == "page_number":
        params[paging.page_param] = paging.base_page
    return params


def day_totals(client: ApiClient, endpoint: Endpoint, days: Sequence[str]) -> dict[str, Optional[int]]:
    """The API's record total of each UTC day (a partition key), None where its pages carry none."""
    url = join_url(client.base_url, endpoint.path)
    headers = {**client.definition.config.client.headers, **endpoint.endpoint.headers}
    selector = endpoint.endpoint.data_selector
    check, read_total = page_check(selector), reader(total_path(endpoint))

    def total_of(day: str) -> Optional[int]:
        response = check(client.retrying.get(url, params=first_page_params(endpoint, Window.of_days(day)),
                                             headers=headers, auth=client.auth))
        payload = response.json() if response.content else {selector: []}
        total = read_total(payload)
        if isinstance(total, int) and not isinstance(total, bool):
            return total
        return 0 if not payload.get(selector) else None

    # The days are asked at once, as many at a time as the sync's pages (the transport's slots and
    # rate limiter hold either way): a range of 30 days waits one round trip, not thirty.
    with ThreadPoolExecutor(min(len(days), client.settings.max_concurrency) or 1,
                            thread_name_prefix="analytics-totals") as pool:
        return dict(zip(days, pool.map(total_of, days)))
