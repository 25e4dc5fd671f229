"""Pipedrive API v1: recents (changes since a timestamp)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from .server import Entry, Request, Response, Route, StandIn, Table, naive_utc, parse_instant

RECENTS_PATH = "/v1/recents"
OWNERS = [{"id": 8877, "name": "Ada Owner", "email": "ada@example.com", "has_pic": 0, "pic_hash": None,
           "active_flag": True, "value": 8877},
          {"id": 8878, "name": "Ben Owner", "email": "ben@example.com", "has_pic": 0, "pic_hash": None,
           "active_flag": True, "value": 8878}]


class PipedriveDeals(StandIn):
    """`GET /v1/recents?since_timestamp=YYYY-MM-DD HH:MM:SS&items=deal&start=0&limit=100`:
    `{"success": true, "data": [{"item": "deal", "id", "data": {...deal...}}], "additional_data":
    {"since_timestamp", "last_timestamp_on_page", "pagination": {"start", "limit",
    "more_items_in_collection", "next_start"}}}`, oldest change first. `since_timestamp` is start-only
    (every change at or after it, up to now) and naive UTC text, as are the deal's `add_time`/
    `update_time`: the cursor is nested, `data.update_time`. Offset paging; `next_start` only while
    `more_items_in_collection`; `limit` at most 500. With nothing to return, `data` is null (not an
    empty list). Unauthenticated: 401 `{"success": false, "error": "unauthorized access",
    "errorCode": 401, ...}`.

    Assumption: `since_timestamp` is also read in ISO 8601 (`2026-11-17T00:00:00Z`), which this
    project writes; Pipedrive documents only `YYYY-MM-DD HH:MM:SS`. Substitution: Pipedrive's OAuth
    token endpoint (`/oauth/token`, HTTP Basic client authentication) grants authorization codes;
    here client credentials."""

    name = "pipedrive_deals"
    docs = ("Pipedrive API v1: Get recents (GET /v1/recents?items=deal), `data` (null when empty), "
            "`additional_data.pagination.more_items_in_collection`/`next_start`, start-only naive `since_timestamp`, "
            "nested `data.update_time`")
    resources = ("recents",)
    start_only = frozenset({"recents"})
    token_auth_method = "client_secret_basic"
    scopes = ("deals:read", "recents:read")

    def build(self) -> None:
        self.tables["recents"] = Table(key=lambda e: e.record["id"],
                                       moment=lambda r: parse_instant(r["data"]["update_time"]),
                                       touch=lambda r, m: r["data"].__setitem__("update_time", naive_utc(m)),
                                       row_key=("id",))
        for moment in self.spread():
            self.tables["recents"].entries.append(self.make_record("recents", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["recents"].entries) + 1
        deal_id = 700 + n
        value = float(rng.randint(1, 400) * 250)
        status = rng.choice(["open", "won", "lost"])
        added = moment - timedelta(seconds=rng.randint(0, 20 * 86400))
        deal = {
            "id": deal_id,
            "creator_user_id": dict(OWNERS[0]),
            "user_id": dict(rng.choice(OWNERS)),
            "person_id": rng.choice([None, {"active_flag": True, "name": f"Person {n}",
                                            "email": [{"label": "work", "value": f"p{n}@example.com", "primary": True}],
                                            "phone": [], "value": 1200 + n}]),
            "org_id": rng.choice([None, {"name": "Acme", "people_count": 3, "owner_id": 8877, "active_flag": True,
                                         "value": 42}]),
            "stage_id": rng.randint(1, 5),
            "title": f"Deal {n}",
            "value": value,
            "currency": "EUR",
            "add_time": naive_utc(added),
            "update_time": naive_utc(moment),
            "stage_change_time": naive_utc(added),
            "active": status == "open",
            "deleted": False,
            "status": status,
            "probability": None,
            "lost_reason": "Too expensive" if status == "lost" else None,
            "close_time": naive_utc(moment) if status != "open" else None,
            "pipeline_id": 1,
            "won_time": naive_utc(moment) if status == "won" else None,
            "expected_close_date": rng.choice([None, (moment + timedelta(days=30)).date().isoformat()]),
            "formatted_value": f"€{value:,.0f}",
            "visible_to": "3",
        }
        return Entry({"item": "deal", "id": deal_id, "data": deal})

    def routes(self) -> list[Route]:
        return [Route("GET", RECENTS_PATH, self._recents)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, {"success": False, "error": "unauthorized access", "errorCode": 401,
                              "error_info": "Please check developers.pipedrive.com for more information about "
                                            "Pipedrive API."})

    @staticmethod
    def _invalid(message: str) -> Response:
        return Response(400, {"success": False, "error": message, "error_info": "Please check developers.pipedrive."
                              "com for more information about Pipedrive API.", "data": None, "additional_data": None})

    def _recents(self, request: Request, match: Any) -> Response:
        query = request.query
        if not query.get("since_timestamp"):
            return self._invalid("since_timestamp is required")
        try:
            since = parse_instant(query["since_timestamp"])
            start, limit = int(query.get("start", 0)), min(int(query.get("limit", 100)), 500)
        except ValueError:
            return self._invalid("Invalid since_timestamp, start or limit")
        items = set((query.get("items") or "deal").split(","))
        entries = [e for e in self.tables["recents"].between(since, None) if e.record["item"] in items]
        page = [e.record for e in entries[start: start + limit]]
        more = start + limit < len(entries)
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        body: dict[str, Any] = {"success": True}
        body.update(self.page_body("data", page) if page or self.omit_empty_data_key else {"data": None})
        body["additional_data"] = {"since_timestamp": naive_utc(since),
                                   "last_timestamp_on_page": page[-1]["data"]["update_time"] if page else None,
                                   "pagination": pagination}
        return Response(200, body)

    def config(self) -> dict[str, Any]:
        """Offset paging stopped by `additional_data.pagination.more_items_in_collection` (dlt's
        `has_more_path`; there is no total)."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "recents",
                "endpoint": {
                    "path": RECENTS_PATH,
                    "params": {"items": "deal"},
                    "data_selector": "data",
                    "paginator": {"type": "offset", "limit": 100, "offset_param": "start", "limit_param": "limit",
                                  "total_path": None,
                                  "has_more_path": "additional_data.pagination.more_items_in_collection"},
                    "incremental": {"start_param": "since_timestamp", "end_param": None,
                                    "cursor_path": "data.update_time", "value_format": "iso8601"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """dlt's `incremental` on the nested cursor `data.update_time`, bounds written as Pipedrive
        writes it (naive text compares right as text)."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"][0]["endpoint"]["incremental"] = {
            "start_param": "since_timestamp", "cursor_path": "data.update_time",
            "initial_value": naive_utc(start), "end_value": naive_utc(end)}
        return config
