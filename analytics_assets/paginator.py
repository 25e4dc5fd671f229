"""Offset pagination that never loses or duplicates a record silently.

dlt's `OffsetPaginator` advances by `limit` (a server that caps pages below it makes it skip
records), stops only on `total` or an empty page, and cannot notice records entering or leaving
the window while it pages. This paginator advances by what was actually served, stops on `total`,
`has_more` or a short page, and guards against loops.

Drift: every page after the first starts one record early, at the last record already read. If a
record before the offset left or entered the window meanwhile, that overlap record is a different
one, and the rows under the offsets have shifted: the window is read again from the start (a
bounded number of times), and the duplicates this brings into the load are settled by the merge's
dedup on the newest `updated_at`. Within a pass `total` must not change, and the pass must end
with exactly as many records as `total`.
"""

from __future__ import annotations

from typing import Any, List, Optional

from requests import Request, Response

from dlt.sources.helpers.rest_client.paginators import BasePaginator

from .errors import PaginationError
from .prefetch import Prefetcher
from .stats import SyncStats

DEFAULT_MAX_PAGES = 100_000
DEFAULT_MAX_PASSES = 3


class SafeOffsetPaginator(BasePaginator):
    def __init__(
        self,
        resource: str,
        stats: SyncStats,
        limit: int = 100,
        offset: int = 0,
        offset_param: str = "offset",
        limit_param: str = "limit",
        total_path: str = "total",
        has_more_path: str = "has_more",
        max_pages: int = DEFAULT_MAX_PAGES,
        max_passes: int = DEFAULT_MAX_PASSES,
        prefetcher: Optional[Prefetcher] = None,
    ) -> None:
        super().__init__()
        if limit <= 0:
            raise ValueError(f"The offset paginator's limit must be positive; got {limit}.")
        self.resource = resource
        self.stats = stats
        self.limit = limit
        self.initial_offset = offset
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.total_path = total_path
        self.has_more_path = has_more_path
        self.max_pages = max_pages
        self.max_passes = max_passes
        self.prefetcher = prefetcher
        self.template: Optional[Request] = None

    def init_request(self, request: Request) -> None:
        self._has_next_page = True
        self.passes = 1
        self._start_pass()
        self.update_request(request)

    def _start_pass(self) -> None:
        self.offset = self.initial_offset  # records of this pass read so far, from the start
        self.pages = 0
        self.first_total: Optional[int] = None
        self.last_id: Any = None
        self.previous_ids: Optional[List[Any]] = None
        self.widest_page = 0
        self.drift: Optional[str] = None

    def update_request(self, request: Request) -> None:
        if request.params is None:
            request.params = {}
        offset = request.params[self.offset_param] = self._next_offset()
        request.params[self.limit_param] = self.limit
        self.template = request
        if self.prefetcher is not None:
            # The page may already be in flight: the session then sends that request (prefetch.py).
            request._aa_prefetched = self.prefetcher.take(self, offset)  # type: ignore[attr-defined]

    def _next_offset(self) -> int:
        overlap = 1 if self.pages and self.last_id is not None else 0
        return self.offset - overlap

    def _prefetch(self, total: Optional[int]) -> None:
        """Ask for the pages that follow, assuming each brings as many records as the widest so far;
        a wrong guess only costs the prefetched request, never a row."""
        if self.prefetcher is None or not self.prefetcher.enabled or total is None or not self.widest_page:
            return
        step = max(1, self.widest_page - 1)
        self.prefetcher.want(self, range(self._next_offset(), total - 1, step), self._request_at)

    def _request_at(self, offset: int) -> Request:
        t = self.template
        params = {**t.params, self.offset_param: offset, self.limit_param: self.limit}
        return Request(method=t.method, url=t.url, headers=t.headers, params=params, json=t.json,
                       data=t.data, auth=t.auth, hooks=t.hooks)

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        data = data if data is not None else []
        payload = response.json()
        total = payload.get(self.total_path) if isinstance(payload, dict) else None
        has_more = payload.get(self.has_more_path) if isinstance(payload, dict) else None
        ids = [record.get("id") for record in data if isinstance(record, dict)]
        self._guard_loops(ids)
        raw_length = len(data)
        if self.pages and self.last_id is not None:
            if not ids or ids[0] != self.last_id:
                self.drift = f"the record at offset {self.offset - 1} is no longer id {self.last_id}"
            else:
                del data[0]  # the overlap record: already read; dlt yields this same list
        self.pages += 1
        self.stats.page_fetched(self.resource, data, total)
        self.offset += len(data)
        self.widest_page = max(self.widest_page, raw_length)
        if data and isinstance(data[-1], dict):
            self.last_id = data[-1].get("id")

        if total is not None and self.first_total is None:
            self.first_total = total
        elif total is not None and total != self.first_total:
            # Pages fetched concurrently arrive out of order: the total of one page alone cannot
            # tell whether records entered the window meanwhile, a change of it can.
            self.drift = self.drift or f"the window's total changed from {self.first_total} to {total}"
        if self.drift:
            done = True
        elif total is not None:
            done = self.offset >= total or not data
            if done and self.offset != total:
                self.drift = f"{self.offset} records were served for a total of {total}"
        elif isinstance(has_more, bool):
            done = not has_more
        else:
            # A page shorter than the widest seen ends the window; a server-side cap below
            # `limit` makes every page short, so the widest page, not `limit`, is the yardstick.
            done = not data or raw_length < self.widest_page
        if done:
            self._finish_pass()
        if self._has_next_page and not self.drift:
            self._prefetch(total)

    def _guard_loops(self, ids: List[Any]) -> None:
        if ids and ids == self.previous_ids:
            raise PaginationError(
                f"The page at offset {self.offset} of {self.resource} repeats the previous page "
                f"(ids {ids[0]}..{ids[-1]}): the API does not seem to honour "
                f"`{self.offset_param}`. Stopped to avoid an endless loop; check the paginator "
                "configuration."
            )
        if self.pages >= self.max_pages:
            raise PaginationError(
                f"{self.resource}: more than {self.max_pages} pages without reaching the end "
                "(no `total`, `has_more` or short page); stopped to avoid an endless loop."
            )
        self.previous_ids = ids

    def _finish_pass(self) -> None:
        if self.drift is None:
            if self.prefetcher is not None:
                self.prefetcher.close()
            self._has_next_page = False
            return
        if self.prefetcher is not None:
            self.prefetcher.clear()
        if self.passes >= self.max_passes:
            raise PaginationError(
                f"The data of {self.resource} kept changing while it was paged ({self.drift}) in "
                f"{self.passes} reads of the window; records would have been skipped or duplicated, "
                "so nothing was written. Run again when the API is quieter."
            )
        self.passes += 1
        self.stats.restart_window(self.resource)
        self._start_pass()
