"""Adobe Marketo Engage REST API: paging token -> lead activities."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from .server import (
    CLOCK,
    UTC,
    Entry,
    Request,
    Response,
    Route,
    StandIn,
    cursor_table,
    decode_token,
    encode_token,
    epoch_seconds,
    iso_z,
    parse_instant,
)

TOKEN_PATH = "/rest/v1/activities/pagingtoken.json"
ACTIVITIES_PATH = "/rest/v1/activities.json"
ACTIVITY_TYPES = {1: "Visit Webpage", 6: "Send Email", 12: "New Lead"}


def raise_on_marketo_error(response: Any, *args: Any, **kwargs: Any) -> None:
    """A dlt `response_actions` hook: Marketo answers errors with HTTP 200 and `"success": false`,
    which dlt would otherwise read as a page without records."""
    body = response.json()
    if isinstance(body, dict) and body.get("success") is False:
        raise RuntimeError(f"Marketo answered success=false: {body.get('errors')}")


class MarketoActivities(StandIn):
    """Marketo's lead-database API, where every answer is HTTP 200 with `"success"` and `"requestId"`;
    errors are `"success": false, "errors": [{"code", "message"}]` (600 no token, 601 bad token,
    1003 bad parameter), still HTTP 200.

    - `GET /rest/v1/activities/pagingtoken.json?sinceDatetime=2026-11-17T00:00:00Z` ->
      `{"nextPageToken"}`: a date-based token, the only way to name a window's start.
    - `GET /rest/v1/activities.json?nextPageToken=&activityTypeIds=1,6,12&batchSize=` ->
      `{"nextPageToken", "moreResult", "result": [...]}`: activities from the token's position to NOW
      (start-only), oldest first; `batchSize` at most 300 (the default). Marketo scans in blocks (here:
      UTC days), so a page can hold no activity yet say `moreResult: true`; and a page without
      activities has NO `result` key at all. `moreResult` is false once the scan reaches now.
    Activities are camelCase (`activityDate`, `leadId`, `marketoGUID`, `primaryAttributeValue`) with a
    nested `attributes` list of `{"name", "value"}`.

    Marketo grants client credentials at `/identity/oauth/token` (answering `expires_in` and a
    `scope`, as here); it is the real flow."""

    name = "marketo_activities"
    docs = ("Adobe Marketo Engage REST API: Get Paging Token -> Get Lead Activities (GET /rest/v1/activities.json), "
            "`nextPageToken`, `moreResult`, `result` omitted when empty, empty pages mid-stream, start-only")
    resources = ("activities",)
    start_only = frozenset({"activities"})
    token_path = "/identity/oauth/token"
    omit_empty_data_key_default = True

    def __init__(self, *args: Any, batch_limit: int = 300, **kwargs: Any) -> None:
        self.batch_limit = batch_limit
        self.request_count = 0
        super().__init__(*args, **kwargs)

    def build(self) -> None:
        self.tables["activities"] = cursor_table("activityDate", iso_z, ("marketo_guid",),
                                                 key=lambda e: e.record["marketoGUID"])
        for moment in self.spread():
            self.tables["activities"].entries.append(self.make_record("activities", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["activities"].entries) + 1
        activity_id = 102_900 + n
        type_id = rng.choice(list(ACTIVITY_TYPES))
        attributes = [{"name": "Client IP Address", "value": f"203.0.113.{n % 250}"},
                      {"name": "User Agent", "value": "Mozilla/5.0"}] if type_id == 1 else \
            [{"name": "Campaign Run ID", "value": str(rng.randint(1, 9))}] if type_id == 6 else []
        record: dict[str, Any] = {
            "id": activity_id,
            "marketoGUID": str(activity_id),
            "leadId": 6000 + rng.randint(1, 80),
            "activityDate": iso_z(moment),
            "activityTypeId": type_id,
            "primaryAttributeValueId": rng.randint(1, 40),
            "primaryAttributeValue": {1: "www.example.com/pricing", 6: "Welcome email", 12: "Web form"}[type_id],
            "attributes": attributes,
        }
        if type_id == 6:
            record["campaignId"] = rng.randint(1000, 1010)
        return Entry(record)

    def routes(self) -> list[Route]:
        return [Route("GET", TOKEN_PATH, self._paging_token), Route("GET", ACTIVITIES_PATH, self._activities)]

    def token_answer(self, token: str, scopes: frozenset[str]) -> dict[str, Any]:
        return {"access_token": token, "token_type": "bearer", "expires_in": 3599, "scope": "apis@standin.com"}

    def _envelope(self, **body: Any) -> dict[str, Any]:
        self.request_count += 1
        return {"requestId": f"{self.request_count:x}#18c7d1e2f3a", "success": True, **body}

    def _error(self, code: str, message: str) -> Response:
        return Response(200, {**self._envelope(success=False), "errors": [{"code": code, "message": message}]})

    def unauthorized(self, request: Request, problem: str) -> Response:
        return self._error("600", "Access token not specified") if problem == "missing" \
            else self._error("601", "Access token invalid")

    def _paging_token(self, request: Request, match: Any) -> Response:
        since = request.query.get("sinceDatetime", "")
        try:
            moment = parse_instant(since)
        except ValueError:
            return self._error("1003", f"Invalid value '{since}'. Required of type 'DateTime'")
        return Response(200, self._envelope(nextPageToken=self._position_token(epoch_seconds(moment), -1)))

    @staticmethod
    def _position_token(seconds: int, last_id: int) -> str:
        return "GIYD" + encode_token([seconds, last_id])

    def _activities(self, request: Request, match: Any) -> Response:
        query = request.query
        try:
            seconds, last_id = decode_token(query.get("nextPageToken", "")[4:])
            types = {int(t) for t in query["activityTypeIds"].split(",")}
            batch = int(query.get("batchSize", 300))
        except (ValueError, KeyError, TypeError):
            return self._error("1003", "nextPageToken and activityTypeIds are required, batchSize is an integer")
        if not 1 <= batch <= self.batch_limit:
            return self._error("1003", f"Invalid value '{batch}'. batchSize must be between 1 and {self.batch_limit}")
        position = datetime.fromtimestamp(seconds, UTC)
        block_end = min(datetime.combine(position.date() + timedelta(days=1), datetime.min.time(), UTC), CLOCK)
        table = self.tables["activities"]
        candidates = [e for e in table.ordered()
                      if (table.moment(e.record), e.record["id"]) > (position, last_id)
                      and table.moment(e.record) < block_end and e.record["activityTypeId"] in types]
        page = candidates[:batch]
        if len(candidates) > batch:
            last = page[-1].record
            token, more = self._position_token(epoch_seconds(table.moment(last)), last["id"]), True
        else:
            token, more = self._position_token(epoch_seconds(block_end), -1), block_end < CLOCK
        return Response(200, self._envelope(nextPageToken=token, moreResult=more,
                                            **self.page_body("result", [e.record for e in page])))

    def _resources(self, since: Any, incremental: dict[str, Any], parent_incremental: Optional[dict[str, Any]],
                   hooks: list[Any]) -> list[dict[str, Any]]:
        paging_token: dict[str, Any] = {"path": TOKEN_PATH, "data_selector": "$", "paginator": {"type": "single_page"}}
        if parent_incremental:
            paging_token["incremental"] = parent_incremental
        else:
            paging_token["params"] = {"sinceDatetime": since}
        activities: dict[str, Any] = {
            "path": ACTIVITIES_PATH,
            "params": {"nextPageToken": "{resources.paging_token.nextPageToken}", "activityTypeIds": "1,6,12",
                       "batchSize": 100},
            "data_selector": "result",
            "paginator": {"type": "cursor", "cursor_path": "nextPageToken", "cursor_param": "nextPageToken",
                          "has_more_path": "moreResult"},
            "incremental": incremental,
        }
        if hooks:
            paging_token["response_actions"] = activities["response_actions"] = hooks
        return [{"name": "paging_token", "selected": False, "endpoint": paging_token},
                {"name": "activities", "primary_key": "marketoGUID", "endpoint": activities}]

    def config(self) -> dict[str, Any]:
        """A proposal in this project's terms: the window's start goes to the PARENT's `sinceDatetime`
        (its `incremental` has no cursor: the answer is one token), the window is enforced on the
        child's `activityDate`, and the API's end is "now" (start-only). dlt itself has no single key
        for "the window's start is a parent's parameter"."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"write_disposition": "merge"},
            "resources": self._resources(
                None,
                {"start_param": None, "end_param": None, "cursor_path": "activityDate", "value_format": "iso8601"},
                {"start_param": "sinceDatetime", "end_param": None, "cursor_path": None, "value_format": "iso8601"},
                []),
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The parent gets a fixed `sinceDatetime`; the child's dlt `incremental` (no start parameter)
        drops activities at or past `end_value`; a response hook fails on `success: false`. The cursor
        paginator must NOT stop on an empty page (Marketo sends empty pages with `moreResult: true`)."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"] = self._resources(
            iso_z(start), {"cursor_path": "activityDate", "initial_value": iso_z(start), "end_value": iso_z(end)},
            None, [raise_on_marketo_error])
        return config
