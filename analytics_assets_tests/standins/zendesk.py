"""Zendesk Support API: incremental ticket export, cursor based."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any, Optional

from .server import CLOCK, Entry, Request, Response, Route, StandIn, Table, epoch_seconds, iso_z, parse_instant

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"


def _cursor(generated: int, ticket_id: int) -> str:
    """Zendesk's cursors look like base64 of `<timestamp>.0||<id>|`; these are."""
    return base64.b64encode(f"{generated}.0||{ticket_id}|".encode()).decode()


def _position(cursor: str) -> tuple[int, int]:
    text = base64.b64decode(cursor.encode()).decode()
    stamp, _, rest = text.partition("||")
    return int(float(stamp)), int(rest.strip("|"))


class ZendeskTickets(StandIn):
    """`GET /api/v2/incremental/tickets/cursor.json?start_time=<epoch seconds>` (first request), then
    `?cursor=<after_cursor>`: `{"tickets", "after_url", "after_cursor", "before_url", "before_cursor",
    "end_of_stream"}`. `start_time` is start-only: every ticket whose `generated_timestamp` is at or
    after it, up to now, oldest first. `end_of_stream` is true on the page that reaches now, and is the
    INVERSE of a has-more flag; `after_cursor` is still set there (it resumes later), and asking for
    it answers an empty page, again with `end_of_stream` true. `per_page` is at most 1000 (the
    default). A cursor wins over `start_time` when both come. A `start_time` less than a minute ago is
    refused (400). Unauthenticated: 401 `{"error": "Couldn't authenticate you"}`.

    Zendesk's OAuth token endpoint is `/oauth/tokens`; it grants client credentials to confidential
    clients, as here."""

    name = "zendesk_tickets"
    docs = ("Zendesk Support API: Incremental Ticket Export, Cursor Based (GET /api/v2/incremental/tickets/"
            "cursor.json), `tickets`, `after_cursor`, `end_of_stream`, start-only `start_time` epoch seconds")
    resources = ("tickets",)
    start_only = frozenset({"tickets"})
    token_path = "/oauth/tokens"
    scopes = ("read",)

    def build(self) -> None:
        self.tables["tickets"] = Table(key=lambda e: e.record["id"],
                                       moment=lambda r: parse_instant(r["generated_timestamp"]),
                                       touch=self._touch, row_key=("id",))
        for moment in self.spread():
            self.tables["tickets"].entries.append(self.make_record("tickets", moment))

    @staticmethod
    def _touch(record: dict[str, Any], moment: datetime) -> None:
        record["updated_at"], record["generated_timestamp"] = iso_z(moment), epoch_seconds(moment)

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["tickets"].entries) + 1
        ticket_id = 35400 + n
        return Entry({
            "url": f"https://standin.zendesk.com/api/v2/tickets/{ticket_id}.json",
            "id": ticket_id,
            "external_id": None,
            "via": {"channel": rng.choice(["web", "email", "api"]), "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso_z(moment - timedelta(seconds=rng.randint(0, 9 * 86400))),
            "updated_at": iso_z(moment),
            "generated_timestamp": epoch_seconds(moment),
            "type": rng.choice(["incident", "problem", "question", None]),
            "subject": f"Ticket {n}",
            "raw_subject": f"Ticket {n}",
            "description": "Help, something broke.",
            "priority": rng.choice(["low", "normal", "high", "urgent", None]),
            "status": rng.choice(["new", "open", "pending", "solved"]),
            "recipient": None,
            "requester_id": 1_900_000 + rng.randint(1, 50),
            "submitter_id": 1_900_000 + rng.randint(1, 50),
            "assignee_id": rng.choice([None, 1_800_001, 1_800_002]),
            "organization_id": rng.choice([None, 360_001]),
            "group_id": 360_010,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": rng.sample(["vip", "billing", "bug", "refund"], rng.randint(0, 2)),
            "custom_fields": [{"id": 360_020, "value": rng.choice([None, "tier_1", "tier_2"])}],
            "satisfaction_rating": None,
            "brand_id": 360_030,
            "allow_attachments": True,
        })

    def routes(self) -> list[Route]:
        return [Route("GET", EXPORT_PATH, self._export)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, {"error": "Couldn't authenticate you"})

    def _export(self, request: Request, match: Any) -> Response:
        query = request.query
        try:
            per_page = min(int(query.get("per_page", 1000)), 1000)
            if query.get("cursor"):
                after = _position(query["cursor"])
            elif query.get("start_time"):
                start_time = int(query["start_time"])
                if start_time > epoch_seconds(CLOCK - timedelta(minutes=1)):
                    return Response(400, {"error": "InvalidValue",
                                          "description": "Too recent start_time. Use a start_time older than 1 minute"})
                after = (start_time, -1)
            else:
                return Response(400, {"error": "InvalidValue", "description": "start_time or cursor is required"})
        except ValueError:
            return Response(400, {"error": "InvalidValue", "description": "Invalid start_time or cursor"})
        entries = [e for e in self.tables["tickets"].ordered()
                   if (e.record["generated_timestamp"], e.record["id"]) > after]
        page = entries[:per_page]
        last = (page[-1].record["generated_timestamp"], page[-1].record["id"]) if page else after
        cursor = _cursor(*last) if last[1] >= 0 else _cursor(last[0] - 1, 2**31)
        return Response(200, {
            **self.page_body("tickets", [e.record for e in page]),
            "after_url": request.url(EXPORT_PATH, cursor=cursor, per_page=query.get("per_page")),
            "after_cursor": cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": len(entries) <= per_page,
        })

    def config(self) -> dict[str, Any]:
        """Cursor paging that ends on the first empty page: `after_cursor` never runs out, and
        `end_of_stream` is an inverse flag, which dlt's `has_more_path` cannot read."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "tickets",
                "endpoint": {
                    "path": EXPORT_PATH,
                    "params": {"per_page": 100},
                    "data_selector": "tickets",
                    "paginator": {"type": "cursor", "cursor_path": "after_cursor", "cursor_param": "cursor",
                                  "stop_after_empty_page": True},
                    "incremental": {"start_param": "start_time", "end_param": None,
                                    "cursor_path": "generated_timestamp", "value_format": "epoch_seconds"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """dlt's `incremental` sends `start_time` and drops tickets at or past `end_value`; the cursor
        paginator stops on the empty page that follows `end_of_stream` (one request more than needed)."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"][0]["endpoint"]["incremental"] = {
            "start_param": "start_time", "cursor_path": "generated_timestamp",
            "initial_value": epoch_seconds(start), "end_value": epoch_seconds(end)}
        return config
