"""Slack Web API: conversations.list -> conversations.history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Optional

from .server import (
    UTC,
    Entry,
    Request,
    Response,
    Route,
    StandIn,
    Table,
    decode_token,
    encode_token,
    epoch_seconds,
    parse_instant,
)

CHANNELS = [("C01GENERAL0", "general"), ("C02RANDOM00", "random"), ("C03DEPLOYS0", "deploys"),
            ("C04SUPPORT0", "support")]
USERS = ["U012AB3CDE", "U023BC4DEF", "U034CD5EFG"]
NEEDS = {"conversations.list": "channels:read", "conversations.history": "channels:history"}


def slack_ts(moment: datetime, sequence: int) -> str:
    """A message `ts`: epoch seconds, a dot, six digits that make it unique in its channel (never
    `.000000`, so a `ts` never falls on a whole second)."""
    return f"{epoch_seconds(moment)}.{sequence % 999_999 + 1:06d}"


def raise_on_slack_error(response: Any, *args: Any, **kwargs: Any) -> None:
    """A dlt `response_actions` hook: Slack answers errors with HTTP 200 and `{"ok": false}`, which
    dlt would otherwise read as a page without records."""
    body = response.json()
    if isinstance(body, dict) and body.get("ok") is False:
        raise RuntimeError(f"Slack answered ok=false: {body.get('error')} (needed: {body.get('needed')})")


class SlackMessages(StandIn):
    """Slack's Web API: every answer is HTTP 200 with `"ok": true`, or `"ok": false` and an `error`
    (`not_authed`, `invalid_auth`, `missing_scope` with `needed`/`provided`, `channel_not_found`).

    - `GET /api/conversations.list?types=public_channel&limit=N&cursor=...` -> `channels`, paged by
      `response_metadata.next_cursor` (`""` on the last page); needs `channels:read`.
    - `GET /api/conversations.history?channel=C...&oldest=&latest=&inclusive=&limit=&cursor=` ->
      `messages`, newest first, `has_more`, and `response_metadata.next_cursor` while more follow; needs
      `channels:history`. `oldest`/`latest` are epoch seconds as text, exclusive unless
      `inclusive=true`; a message's `ts` is epoch seconds as decimal text (`"1763337600.000100"`) and,
      with its channel, its key. Messages do not name their channel: a loader adds it from the parent.

    Switches: `errors_as_200=True` makes conversations.history answer `missing_scope` (as when the
    token lacks `channels:history`, which a token asked with fewer scopes also produces).

    Substitution: Slack issues tokens through `oauth.v2.access` with authorization codes; here that
    path grants client credentials and answers Slack-style (`ok`, comma-separated `scope`)."""

    name = "slack_messages"
    docs = ("Slack Web API: conversations.list -> conversations.history (GET /api/conversations.history), "
            "`ok`/`error` on HTTP 200, `messages`, `has_more`, `response_metadata.next_cursor`, `ts` epoch text")
    resources = ("messages",)
    token_path = "/api/oauth.v2.access"
    scopes = ("channels:read", "channels:history")

    def __init__(self, *args: Any, errors_as_200: bool = False, **kwargs: Any) -> None:
        self.errors_as_200 = errors_as_200
        super().__init__(*args, **kwargs)

    def build(self) -> None:
        self.channels = [self._channel(i, cid, name) for i, (cid, name) in enumerate(CHANNELS)]
        self.tables["messages"] = Table(key=lambda e: (e.parent, e.record["ts"]),
                                        moment=lambda r: parse_instant(r["ts"]),
                                        touch=self._touch, row_key=("_channels_id", "ts"))
        weights = [5, 3, 2, 0]  # the last channel is always quiet
        for moment in self.spread():
            channel = self.rng.choices([c["id"] for c in self.channels], weights)[0]
            self.tables["messages"].entries.append(self.make_record("messages", moment, channel))

    def _channel(self, i: int, channel_id: str, name: str) -> dict[str, Any]:
        return {"id": channel_id, "name": name, "is_channel": True, "is_group": False, "is_im": False,
                "is_mpim": False, "is_private": False, "created": 1449252889 + i * 86400, "is_archived": False,
                "is_general": name == "general", "unlinked": 0, "name_normalized": name, "is_shared": False,
                "is_org_shared": False, "is_member": True, "creator": USERS[0],
                "topic": {"value": f"All about {name}", "creator": USERS[0], "last_set": 1449252889},
                "purpose": {"value": f"The {name} channel", "creator": USERS[0], "last_set": 1449252889},
                "previous_names": [], "num_members": 3 + i}

    @staticmethod
    def _touch(record: dict[str, Any], moment: datetime) -> None:
        raise ValueError("a Slack message's ts is its identity: edit it (`edited`) instead of moving it")

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["messages"].entries) + 1
        record: dict[str, Any] = {"type": "message", "user": rng.choice(USERS),
                                  "text": f"message {n}: {rng.choice(['deploying', 'lunch?', 'LGTM', 'on it'])}",
                                  "ts": slack_ts(moment, n * 37), "team": "T0STANDIN",
                                  "client_msg_id": str(uuid.UUID(int=rng.getrandbits(128)))}
        if rng.random() < 0.3:
            record["reactions"] = [{"name": "thumbsup", "users": rng.sample(USERS, 2), "count": 2}]
        if rng.random() < 0.1:
            record.update(thread_ts=record["ts"], reply_count=rng.randint(1, 4), reply_users_count=1,
                          latest_reply=record["ts"])
        return Entry(record, parent or CHANNELS[0][0])

    def edit(self, channel: str, ts: str, text: str, at: datetime) -> dict[str, Any]:
        """Edits a message as Slack does: new text and an `edited` stamp; `ts` (and the window) stay."""
        return self.update("messages", (channel, ts), {"text": text,
                                                       "edited": {"user": USERS[0], "ts": slack_ts(at, 1)}})

    def routes(self) -> list[Route]:
        return [Route("GET", r"/api/conversations\.list", self._list),
                Route("GET", r"/api/conversations\.history", self._history)]

    def token_answer(self, token: str, scopes: frozenset[str]) -> dict[str, Any]:
        return {"ok": True, "access_token": token, "token_type": "bot", "scope": ",".join(sorted(scopes)),
                "bot_user_id": "U0BOTSTAND", "app_id": "A0STANDIN", "team": {"id": "T0STANDIN", "name": "Stand-in"}}

    def unauthorized(self, request: Request, problem: str) -> Response:
        return self._error("not_authed" if problem == "missing" else "invalid_auth")

    @staticmethod
    def _error(error: str, **extra: Any) -> Response:
        return Response(200, {"ok": False, "error": error, **extra})

    def _scope_problem(self, request: Request, method: str) -> Optional[Response]:
        granted = self.granted_scopes(request)
        if self.errors_as_200 and method == "conversations.history":
            granted = granted - {NEEDS[method]}
        if NEEDS[method] not in granted:
            return self._error("missing_scope", needed=NEEDS[method], provided=",".join(sorted(granted)))
        return None

    def _list(self, request: Request, match: Any) -> Response:
        problem = self._scope_problem(request, "conversations.list")
        if problem:
            return problem
        limit, offset = self._paging(request, default_limit=100)
        if limit is None:
            return self._error("invalid_cursor")
        page = self.channels[offset: offset + limit]
        more = offset + limit < len(self.channels)
        next_cursor = encode_token(["ch", offset + limit]) if more else ""
        return Response(200, {"ok": True, **self.page_body("channels", page),
                              "response_metadata": {"next_cursor": next_cursor}})

    def _history(self, request: Request, match: Any) -> Response:
        problem = self._scope_problem(request, "conversations.history")
        if problem:
            return problem
        query = request.query
        if not query.get("channel"):
            return self._error("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required "
                                                                                    "field: channel"]})
        if query["channel"] not in {c["id"] for c in self.channels}:
            return self._error("channel_not_found")
        limit, offset = self._paging(request, default_limit=100)
        if limit is None:
            return self._error("invalid_cursor")
        try:
            oldest = parse_instant(query.get("oldest") or "0")
            latest = parse_instant(query["latest"]) if query.get("latest") else datetime.now(UTC)
        except ValueError:
            return self._error("invalid_ts_oldest" if "oldest" in query else "invalid_ts_latest")
        inclusive = query.get("inclusive") in ("true", "1")
        inside = (lambda m: oldest <= m <= latest) if inclusive else (lambda m: oldest < m < latest)
        table = self.tables["messages"]
        entries = [e for e in reversed(table.ordered())
                   if e.parent == query["channel"] and inside(table.moment(e.record))]
        page = [e.record for e in entries[offset: offset + limit]]
        more = offset + limit < len(entries)
        answer: dict[str, Any] = {"ok": True, **self.page_body("messages", page), "has_more": more, "pin_count": 0,
                                  "channel_actions_ts": None, "channel_actions_count": 0}
        if more:
            answer["response_metadata"] = {"next_cursor": encode_token(["ts", offset + limit])}
        return Response(200, answer)

    @staticmethod
    def _paging(request: Request, default_limit: int) -> tuple[Optional[int], int]:
        try:
            limit = max(1, min(int(request.query.get("limit") or default_limit), 999))
            cursor = request.query.get("cursor")
            return limit, int(decode_token(cursor)[1]) if cursor else 0
        except (ValueError, IndexError, TypeError):
            return None, 0

    def to_row(self, resource: str, record: dict[str, Any], parent: Any = None) -> dict[str, Any]:
        """The message, plus `_channels_id`: what `include_from_parent: ["id"]` adds (dlt names it
        `_<parent resource>_<field>`)."""
        return {**super().to_row(resource, record), "_channels_id": parent}

    def _resources(self, oldest: Any, latest: Any, incremental: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
        history: dict[str, Any] = {
            "path": "/api/conversations.history",
            "params": {"channel": "{resources.channels.id}", "limit": 100},
            "data_selector": "messages",
            "paginator": {"type": "cursor", "cursor_path": "response_metadata.next_cursor", "cursor_param": "cursor"},
        }
        if incremental:
            history["incremental"] = incremental
        else:
            history["params"].update(oldest=oldest, latest=latest)
        return [
            {"name": "channels", "selected": False, "primary_key": "id",
             "endpoint": {"path": "/api/conversations.list",
                          "params": {"types": "public_channel", "exclude_archived": "true", "limit": 200},
                          "data_selector": "channels",
                          "paginator": {"type": "cursor", "cursor_path": "response_metadata.next_cursor",
                                        "cursor_param": "cursor"}}},
            {"name": "messages", "primary_key": ["_channels_id", "ts"], "include_from_parent": ["id"],
             "endpoint": history},
        ]

    def config(self) -> dict[str, Any]:
        """Channels feed messages (`{resources.channels.id}`); only messages is a table, keyed by
        (`_channels_id`, `ts`). `oldest`/`latest` take epoch seconds."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"write_disposition": "merge"},
            "resources": self._resources(None, None, {"start_param": "oldest", "end_param": "latest",
                                                      "cursor_path": "ts", "value_format": "epoch_seconds"}),
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window as fixed `oldest`/`latest`, and a response hook that fails on `ok: false`
        (without it dlt loads an error answer as an empty page, silently)."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"] = self._resources(str(epoch_seconds(start)), str(epoch_seconds(end)), None)
        for resource in config["resources"]:
            resource["endpoint"]["response_actions"] = [raise_on_slack_error]
        return config
