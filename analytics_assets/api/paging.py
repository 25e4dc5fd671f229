"""Pages: their bodies checked, offset paging that never loses or duplicates a record silently, and
dlt's other paginators held to the same rules.

dlt's `OffsetPaginator` advances by `limit` (a server that caps pages below it makes it skip
records), stops only on `total` or an empty page, and cannot notice records entering or leaving
the window while it pages. `SafeOffsetPaginator` advances by what was actually served, stops on
`total`, `has_more` or a short page, and guards against loops.

Drift: every page after the first starts one record early, at the last record already read. If a
record before the offset left or entered the window meanwhile, that overlap record is a different
one, and the rows under the offsets have shifted: the window is read again from the start (a
bounded number of times), and the duplicates this brings into the load are settled by the merge's
dedup on the newest cursor value. Within a read `total` must not change, and the read must end
with exactly as many records as `total`.

dlt's cursor, link, page-number and single-page paginators are used as they are (`has_more_path`
and `stop_after_empty_page` included: dlt's paginator decides when a read ends), guarded
(`PageGuard`): a page that repeats an earlier page of the read (a cycle), or more pages than
`max_pages`, stop it with a clear error; and a read must end with exactly as many records as the pages' record total
(`records_total_path`) says, when they say: a page-number API that caps its pages below what was
asked, but numbers them as if it did not, skips records, and fails here instead of loading a gap.

What a page holds at `data_selector` (`PageChecks`): records, or nothing. Nothing is an empty page
(an API may leave the key out on a quiet day), unless the body says the request failed (`ok:
false`, `error`...: it fails showing the API's words) or holds a list of records elsewhere (the
selector is wrong: it fails naming it and the body's keys). dlt alone would load zero rows.

The paginators are value objects: dlt copies them (once per parent record for a child resource),
and what they say about a read (`api_total`, `passes`) is read from the page they are attached to.
A paginator that requests pages ahead finds its sync's `ApiClient` by the id it was given.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from requests import Request, Response

from dlt.common import jsonpath
from dlt.sources.helpers.rest_client.paginators import (
    BasePaginator,
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    JSONLinkPaginator,
    JSONResponseCursorPaginator,
    PageNumberPaginator,
    SinglePagePaginator,
)

from ..errors import ApiReportedError, MalformedResponse, PaginationError, masked
from .client import ApiClient
from .config import OffsetPaging, Paging, Resource
from .http import where
from .lookahead import RequestKey
from .names import reader

MAX_SAID = 300  # characters of an API's own error shown
# Fields in which APIs say a request failed, in a body answered with a success status.
ERROR_FIELDS = ("error", "errors", "error_description", "message", "fault", "detail")
FAILED_FLAGS = ("ok", "success")


class PageChecks:
    """What every page is held to, whatever the paginator (see the module's docstring)."""

    data_selector: str
    resource: str
    sync: Optional[str] = None
    _compiled: Any = None
    single_record: bool = False  # a selector that may find one object: the one record of a single page

    def _check_page(self, response: Response) -> None:
        if not response.content:
            return  # an empty answer (a 204, an empty 200) is an empty page: the end
        payload = response.json()
        if isinstance(payload, dict) and any(payload.get(flag) is False for flag in FAILED_FLAGS):
            self._api_said(response, _failure_said(payload))
        found = [value for value in self._selected(payload) if value is not None]
        if found:
            if len(found) == 1 and not isinstance(found[0], list) and not self.single_record:
                raise MalformedResponse(where(response.request), f"`{self.data_selector}` is not a list of records",
                                        "set the endpoint's `data_selector` to where the list is (a single object "
                                        "is one record only with the `single_page` paginator)")
            return
        said = _failure_said(payload)
        if said:
            self._api_said(response, said)
        elsewhere = _lists_of_records(payload)
        if elsewhere:
            keys = ", ".join(sorted(str(key) for key in payload)[:20]) if isinstance(payload, dict) else "a list"
            raise MalformedResponse(
                where(response.request), f"no records at `{self.data_selector}`, while the body holds a list of "
                f"records at `{elsewhere[0]}` (its keys: {keys})",
                "set the endpoint's `data_selector` to where the records are (a key, a dotted path, a JSONPath, "
                "or `$` for a top-level list)")

    def _selected(self, payload: Any) -> list:
        """What the selector finds in a page: a plain key is read directly, anything else by a
        JSONPath compiled once per paginator (parsing one costs more than a page's paging)."""
        if self.data_selector.isidentifier():
            return [payload[self.data_selector]] if isinstance(payload, dict) and self.data_selector in payload else []
        if self._compiled is None:
            self._compiled = jsonpath.compile_path(self.data_selector)
        return jsonpath.find_values(self._compiled, payload) if isinstance(payload, (dict, list)) else []

    def _api_said(self, response: Response, said: str) -> None:
        client = ApiClient.open(self.sync)
        raise ApiReportedError(where(response.request), masked(said, client.auth.secrets() if client else [],
                                                                limit=MAX_SAID))

    @staticmethod
    def _total(response: Response, path: Optional[str]) -> Optional[int]:
        """The record total a page states at `path` (None if it states none); a total that is not a
        whole number is not the API's word."""
        if path is None or not response.content:
            return None
        total = reader(path)(response.json())
        if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
            raise MalformedResponse(where(response.request), f"`{path}` is not a whole number ({str(total)[:20]!r})")
        return total


def _failure_said(payload: Any) -> str:
    """What a body says of its own failure: a false `ok`/`success`, or error fields; '' if nothing."""
    if not isinstance(payload, dict):
        return ""
    failed = any(payload.get(flag) is False for flag in FAILED_FLAGS)
    said = [f"{key}: {str(payload[key])[:MAX_SAID]}" for key in ERROR_FIELDS if payload.get(key)]
    if failed:
        said.insert(0, ", ".join(f"{flag}: false" for flag in FAILED_FLAGS if payload.get(flag) is False))
    return "; ".join(said) if (failed or said) else ""


def _lists_of_records(payload: Any, path: str = "$", depth: int = 0) -> list[str]:
    """Where a body holds non-empty lists of objects (three levels deep at most)."""
    if isinstance(payload, list):
        return [path] if payload and all(isinstance(item, dict) for item in payload[:10]) else []
    if not isinstance(payload, dict) or depth >= 3:
        return []
    return [found for key, value in payload.items() for found in _lists_of_records(value, f"{path}.{key}"[2:]
                                                                                  if path == "$" else f"{path}.{key}",
                                                                                  depth + 1)]


class SafeOffsetPaginator(PageChecks, BasePaginator):
    """Offset paging by what was served, with a one-record overlap, drift detection and re-reads;
    the pages that follow are requested ahead once `total` is known, when the sync `sync` (an
    `ApiClient` id) sends pages ahead."""

    def __init__(self, resource: str, key_of: Callable[[Any], Any], data_selector: str, paging: OffsetPaging,
                 sync: Optional[str] = None) -> None:
        super().__init__()
        self.resource = resource
        self.key_of = key_of
        self.data_selector = data_selector
        self.paging = paging
        self.sync = sync
        self.passes = 1
        self.api_total: Optional[int] = None  # the current read's total, as the API first said it
        self.template: Optional[Request] = None
        self.ahead: dict[int, RequestKey] = {}  # offset -> the request sent ahead for it
        self._start_pass()

    def init_request(self, request: Request) -> None:
        self._has_next_page = True
        self.passes = 1
        self._start_pass()
        self.update_request(request)

    def _start_pass(self) -> None:
        self.offset = self.paging.offset  # records of this read so far, from the start
        self.pages = 0
        self.api_total = None
        self.last_id: Any = None
        self.previous_ids: Optional[List[Any]] = None
        self.widest_page = 0
        self.drift: Optional[str] = None

    def update_request(self, request: Request) -> None:
        if request.params is None:
            request.params = {}
        request.params[self.paging.offset_param] = self._next_offset()
        request.params[self.paging.limit_param] = self.paging.limit
        self.template = request

    def _next_offset(self) -> int:
        overlap = 1 if self.pages and self.last_id is not None else 0
        return self.offset - overlap

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        data = data if data is not None else []
        if len(data) > self.paging.limit:  # before anything is built per record
            raise MalformedResponse(
                where(response.request), f"{len(data):,} records on a page asked for {self.paging.limit_param}="
                f"{self.paging.limit}", f"check the endpoint's `paginator`: `limit_param` names the parameter the API "
                "reads for its page size")
        total = self._total(response, self.paging.total_path)
        has_more = reader(self.paging.has_more_path)(response.json()) if self.paging.has_more_path \
            and response.content else None
        ids = [self.key_of(record) for record in data if isinstance(record, dict)]
        self._guard_loops(ids)
        raw_length = len(data)
        if self.pages and self.last_id is not None:
            if not ids or ids[0] != self.last_id:
                self.drift = f"the record at offset {self.offset - 1} is no longer id {self.last_id}"
            else:
                del data[0]  # the overlap record: already read; dlt yields this same list
        self.pages += 1
        self.offset += len(data)
        self.widest_page = max(self.widest_page, raw_length)
        if data and isinstance(data[-1], dict):
            self.last_id = self.key_of(data[-1])

        if total is not None and self.api_total is None:
            self.api_total = total
        elif total is not None and total != self.api_total:
            # Pages fetched ahead arrive out of order: the total of one page alone cannot tell
            # whether records entered the window meanwhile, a change of it can.
            self.drift = self.drift or f"the window's total changed from {self.api_total} to {total}"
        if self.drift:
            done = True
        elif total is not None:
            done = self.offset >= total or not data
            if done and self.offset != total:
                self.drift = f"{self.offset} records were served for a total of {total}"
        elif isinstance(has_more, bool):
            done = not has_more or not data
        else:
            # A page shorter than the widest seen ends the window; a server-side cap below
            # `limit` makes every page short, so the widest page, not `limit`, is the yardstick.
            done = not data or raw_length < self.widest_page
        self._check_page(response)
        if self.drift:
            data.clear()  # read again from the start: this page is not loaded, nor counted
        if done:
            self._finish_pass()
        elif total is not None:
            self._request_ahead(total)

    def _request_ahead(self, total: int) -> None:
        """Ask for the pages that follow, assuming each brings as many records as the widest so
        far; a wrong guess only costs the request, never a row."""
        client = ApiClient.open(self.sync)
        if client is None or client.lookahead is None or self.template is None:
            return
        lookahead = client.lookahead
        step = max(1, self.widest_page - 1)
        upcoming = range(self._next_offset(), total - 1, step)
        lookahead.drop(self.ahead.pop(offset) for offset in list(self.ahead) if offset not in upcoming)
        wanted = [offset for offset in upcoming[: lookahead.depth] if offset not in self.ahead]
        params = self.template.params or {}
        keys = lookahead.send_ahead(self.template, (
            {**params, self.paging.offset_param: offset, self.paging.limit_param: self.paging.limit} for offset in wanted))
        self.ahead.update(zip(wanted, keys))

    def _guard_loops(self, ids: List[Any]) -> None:
        if ids and ids == self.previous_ids:
            raise PaginationError(
                f"The page at offset {self.offset} of {self.resource} repeats the previous page "
                f"(ids {ids[0]}..{ids[-1]}): the API does not seem to honour "
                f"`{self.paging.offset_param}`. Stopped to avoid an endless loop; check the paginator "
                "configuration."
            )
        if self.pages >= self.paging.max_pages:
            raise PaginationError(
                f"{self.resource}: more than {self.paging.max_pages} pages without reaching the end "
                "(no `total`, `has_more` or short page); stopped to avoid an endless loop."
            )
        self.previous_ids = ids

    def _finish_pass(self) -> None:
        client = ApiClient.open(self.sync)
        if client is not None and client.lookahead is not None:
            client.lookahead.drop(self.ahead.values())
        self.ahead.clear()
        if self.drift is None:
            self._has_next_page = False
            return
        if self.passes >= self.paging.max_passes:
            raise PaginationError(
                f"The data of {self.resource} kept changing while it was paged ({self.drift}) in "
                f"{self.passes} reads of the window; records would have been skipped or duplicated, "
                "so nothing was written. Run again when the API is quieter."
            )
        self.passes += 1
        self._start_pass()


class PageGuard(PageChecks, BasePaginator):
    """What every page of one of dlt's paginators is held to (a base placed before dlt's class)."""

    passes = 1  # dlt's paginators read a window once

    def __init__(self, resource: str, key_of: Callable[[Any], Any], data_selector: str, max_pages: int,
                 records_total_path: Optional[str], sync: Optional[str] = None, **options: Any) -> None:
        super().__init__(**options)
        self.resource, self.key_of, self.data_selector, self.max_pages = resource, key_of, data_selector, max_pages
        self.records_total_path, self.sync = records_total_path, sync
        self.single_record = isinstance(self, SinglePagePaginator)
        self.pages, self.records = 0, 0
        self.seen: dict[int, int] = {}  # a fingerprint of each page's keys -> its number
        self.api_total: Optional[int] = None

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        data = data if data is not None else []
        total = self._total(response, self.records_total_path)
        self.pages += 1
        ids = tuple(self.key_of(record) for record in data if isinstance(record, dict))
        if any(key is not None for key in ids):
            earlier = self.seen.setdefault(hash(ids), self.pages)
            if earlier != self.pages:
                raise PaginationError(
                    f"Page {self.pages} of {self.resource} repeats page {earlier} (keys {ids[0]}..{ids[-1]}): the API "
                    "sends pages in a cycle, or does not honour the paginator's parameter. Stopped to avoid an endless "
                    "loop; check the endpoint's `paginator` in the API config.")
        if self.pages > self.max_pages:
            raise PaginationError(f"{self.resource}: more than {self.max_pages} pages without reaching the end; "
                                  "stopped to avoid an endless loop (raise the paginator's `max_pages` if intended).")
        self.records += len(data)
        if response.content:
            super().update_state(response, data)  # dlt's own paginator decides whether more follow
        else:
            self._has_next_page = False  # an empty answer (a 204, an empty 200) is the end
        self._check_page(response)
        if total is not None:
            self.api_total = total
            if not self._has_next_page and self.records != total:
                raise PaginationError(
                    f"{self.records} records of {self.resource} were served for a total of {total}: pages were "
                    "skipped or cut short (an API that caps its page size below what was asked?). Nothing was "
                    "written; check the endpoint's `paginator` and `params` in the API config.")


class GuardedCursorPaginator(PageGuard, JSONResponseCursorPaginator):
    pass


class GuardedJsonLinkPaginator(PageGuard, JSONLinkPaginator):
    pass


class GuardedHeaderLinkPaginator(PageGuard, HeaderLinkPaginator):
    pass


class GuardedHeaderCursorPaginator(PageGuard, HeaderCursorPaginator):
    pass


class GuardedPageNumberPaginator(PageGuard, PageNumberPaginator):
    pass


class GuardedSinglePagePaginator(PageGuard, SinglePagePaginator):
    pass


GUARDED = {"cursor": GuardedCursorPaginator, "json_link": GuardedJsonLinkPaginator,
           "header_link": GuardedHeaderLinkPaginator, "header_cursor": GuardedHeaderCursorPaginator,
           "page_number": GuardedPageNumberPaginator, "single_page": GuardedSinglePagePaginator}


def paginator_for(resource: Resource, key_of: Callable[[Any], Any], paging: Optional[Paging] = None,
                  sync: Optional[str] = None) -> BasePaginator:
    """A fresh paginator for `resource` (its own `paging`, unless another is given)."""
    paging = paging or resource.endpoint.paginator
    selector = resource.endpoint.data_selector
    if paging.type == "offset":
        return SafeOffsetPaginator(resource.name, key_of, selector, paging, sync)
    options = paging.model_dump(exclude={"type", "max_pages", "records_total_path"}, exclude_none=True)
    return GUARDED[paging.type](resource.name, key_of, selector, paging.max_pages, paging.records_total_path, sync,
                                **options)
