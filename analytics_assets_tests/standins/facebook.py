"""Meta (Facebook) Marketing API: ad account insights, one row per campaign and day."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any, Optional

from .server import (
    DAY_COUNTS,
    UTC,
    Entry,
    Request,
    Response,
    Route,
    StandIn,
    Table,
    decode_token,
    encode_token,
    parse_instant,
)

VERSION = "v21.0"
ACCOUNT = "1234567890"
INSIGHTS_PATH = f"/{VERSION}/act_{ACCOUNT}/insights"
FIELDS = ("campaign_id", "campaign_name", "account_id", "impressions", "clicks", "spend", "reach", "ctr", "actions")
CAMPAIGNS = 300


def _graph_error(message: str, code: int = 100, kind: str = "OAuthException") -> Response:
    return Response(400, {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AStandInTrace1"}})


class FacebookAdsInsights(StandIn):
    """`GET /v21.0/act_{ad_account_id}/insights?level=campaign&time_increment=1&time_range=
    {"since":"2026-11-17","until":"2026-11-17"}&fields=...&limit=`: `{"data": [...], "paging":
    {"cursors": {"before", "after"}, "next": "<full URL>"}}`, `next` only while more follow. One row
    per campaign and day, keyed by (`date_start`, `campaign_id`); `time_range` is JSON in a query
    parameter, in dates, and `until` is INCLUSIVE; every metric is text (`"12.34"`), ids are text,
    `actions` is a nested list left out when there are none. Errors: `{"error": {"message", "type",
    "code", "fbtrace_id"}}` with HTTP 400, a bad or missing token included (codes 190 and 104).

    The Graph API issues app access tokens by client credentials at `/oauth/access_token`, answering
    without `expires_in`, as here; it reads the token from a bearer header as well as `access_token`."""

    name = "facebook_ads_insights"
    docs = ("Meta Marketing API: Ad account insights (GET /v21.0/act_{id}/insights, level=campaign, "
            "time_increment=1), `data`, `paging.next` URL, `time_range` dates with inclusive `until`, "
            "composite key (date_start, campaign_id)")
    resources = ("campaign_insights",)
    token_path = "/oauth/access_token"
    scopes = ("ads_read",)

    def build(self) -> None:
        self.tables["campaign_insights"] = Table(
            key=lambda e: (e.record["date_start"], e.record["campaign_id"]),
            moment=lambda r: parse_instant(r["date_start"]), touch=self._touch, row_key=("date_start", "campaign_id"))
        for day, count in DAY_COUNTS.items():
            for campaign in sorted(self.rng.sample(range(1, CAMPAIGNS + 1), count)):
                moment = datetime.combine(day, datetime.min.time(), UTC)
                self.tables["campaign_insights"].entries.append(
                    self.make_record("campaign_insights", moment, str(120_210_000_000_000 + campaign)))

    @staticmethod
    def _touch(record: dict[str, Any], moment: datetime) -> None:
        record["date_start"] = record["date_stop"] = moment.date().isoformat()

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng = self.rng
        campaign_id = parent or str(120_210_000_000_000 + rng.randint(1, CAMPAIGNS))
        impressions = rng.randint(100, 50_000)
        clicks = rng.randint(0, impressions // 20)
        row: dict[str, Any] = {
            "campaign_id": campaign_id,
            "campaign_name": f"Campaign {int(campaign_id) % 1000}",
            "account_id": ACCOUNT,
            "impressions": str(impressions),
            "clicks": str(clicks),
            "spend": f"{rng.randint(100, 90_000) / 100:.2f}",
            "reach": str(int(impressions * 0.8)),
            "ctr": f"{100 * clicks / impressions:.6f}",
        }
        if clicks:
            row["actions"] = [{"action_type": "link_click", "value": str(clicks)},
                              {"action_type": "landing_page_view", "value": str(clicks // 2)}]
        day = moment.date().isoformat()
        row.update(date_start=day, date_stop=day)
        return Entry(row)

    def routes(self) -> list[Route]:
        return [Route("GET", INSIGHTS_PATH, self._insights)]

    def token_answer(self, token: str, scopes: frozenset[str]) -> dict[str, Any]:
        return {"access_token": token, "token_type": "bearer"}

    def unauthorized(self, request: Request, problem: str) -> Response:
        if problem == "missing":
            return _graph_error("An access token is required to request this resource.", 104)
        response = _graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        response.headers["WWW-Authenticate"] = 'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"'
        return response

    def _insights(self, request: Request, match: Any) -> Response:
        query = request.query
        if query.get("level", "campaign") != "campaign" or query.get("time_increment") != "1":
            return _graph_error("(#100) this stand-in serves level=campaign with time_increment=1")
        try:
            time_range = json.loads(query["time_range"])
            since, until = date.fromisoformat(time_range["since"]), date.fromisoformat(time_range["until"])
        except (KeyError, ValueError, TypeError):
            return _graph_error("(#100) time_range must be {'since':YYYY-MM-DD,'until':YYYY-MM-DD}")
        if until < since:
            return _graph_error("(#100) time_range: until must not precede since")
        fields = [f for f in query.get("fields", "impressions,spend").split(",") if f]
        unknown = [f for f in fields if f not in FIELDS + ("date_start", "date_stop")]
        if unknown:
            return _graph_error(f"(#100) {unknown[0]} is not valid for fields param")
        try:
            limit = min(max(int(query.get("limit", 25)), 1), 5000)
            offset = int(decode_token(query["after"])) if query.get("after") else 0
        except ValueError:
            return _graph_error("(#100) Invalid cursor or limit")
        start = datetime.combine(since, datetime.min.time(), UTC)
        entries = self.tables["campaign_insights"].between(start, start + timedelta(days=(until - since).days + 1))
        rows = [{k: v for k, v in e.record.items() if k in fields or k in ("date_start", "date_stop")}
                for e in entries[offset: offset + limit]]
        if not rows:
            return Response(200, self.page_body("data", []))
        paging: dict[str, Any] = {"cursors": {"before": encode_token(str(offset)),
                                              "after": encode_token(str(offset + len(rows)))}}
        if offset + limit < len(entries):
            params = {k: v for k, v in query.items() if k != "after"}
            paging["next"] = request.url(**params, after=encode_token(str(offset + limit)))
        return Response(200, {"data": rows, "paging": paging})

    @staticmethod
    def _params(since: str, until: str) -> dict[str, Any]:
        return {"level": "campaign", "time_increment": 1, "fields": ",".join(FIELDS), "limit": 100,
                "time_range": '{{"since":"%s","until":"%s"}}' % (since, until)}

    def config(self) -> dict[str, Any]:
        """`time_range` is JSON with dlt's placeholders inside (braces doubled, as `str.format`
        wants). `until` is inclusive, so a window `[start, end)` asks for the day `end` too: a loader
        must keep only rows whose `date_start` lies in the window (its cursor)."""
        params = self._params("{incremental.start_value}", "{incremental.end_value}")
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"write_disposition": "merge"},
            "resources": [{
                "name": "campaign_insights",
                "primary_key": ["date_start", "campaign_id"],
                "endpoint": {
                    "path": INSIGHTS_PATH,
                    "params": params,
                    "data_selector": "data",
                    "paginator": {"type": "json_link", "next_url_path": "paging.next"},
                    "incremental": {"cursor_path": "date_start", "value_format": "date"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window as a fixed `time_range` whose inclusive `until` is the window's last day. dlt runs
        every `params` value through `str.format` even without placeholders, so the JSON's braces stay
        doubled here too."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        endpoint = config["resources"][0]["endpoint"]
        last_day = (end - timedelta(days=1)).date().isoformat()
        endpoint["params"] = self._params(start.date().isoformat(), last_day)  # braces stay doubled: see above
        del endpoint["incremental"]
        return config
