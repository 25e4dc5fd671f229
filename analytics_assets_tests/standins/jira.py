"""Jira Cloud platform REST API v3: issue search (JQL) and updated worklogs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Optional

from .server import (
    UTC,
    Entry,
    Request,
    Response,
    Route,
    StandIn,
    cursor_table,
    epoch_millis,
    iso_ms_plus0000,
    parse_instant,
)

SITE = "https://standin.atlassian.net"
SEARCH_PATH = "/rest/api/3/search"
WORKLOGS_PATH = "/rest/api/3/worklog/updated"
FIELDS = ("summary", "status", "priority", "labels", "assignee", "issuetype", "project", "created", "updated")
DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
CLAUSE = re.compile(r'(?P<field>\w+)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>"[^"]*"|\'[^\']*\'|[^\s"\']+)')
TESTS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
         "=": lambda a, b: a == b, "!=": lambda a, b: a != b}
STATUSES = [("10000", "To Do", "new"), ("3", "In Progress", "indeterminate"), ("10001", "Done", "done")]
PEOPLE = [None, {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof", "active": True},
          {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Emma Richards", "active": True}]


class JiraIssues(StandIn):
    """Two endpoints of Jira Cloud's REST API v3.

    `GET /rest/api/3/search?jql=...&startAt=&maxResults=&fields=`: `{"expand", "startAt",
    "maxResults", "total", "issues"}`, offset paging with a total; `maxResults` is capped at 100 (the
    answer says what was used). Each issue is `{"expand", "id" (text), "self", "key", "fields": {...}}`:
    the cursor is nested (`fields.updated`, `2026-11-17T09:12:33.120+0000`). The window is a JQL
    clause: `updated >= "2026-11-17" AND updated < "2026-11-18"` (JQL dates are `yyyy-MM-dd` or
    `yyyy/MM/dd`, optionally ` HH:mm`, in the user's zone: UTC here; ISO 8601 is a JQL error, 400
    `{"errorMessages": [...], "errors": {}}`).

    `GET /rest/api/3/worklog/updated?since=<epoch ms>`: `{"values": [{"worklogId", "updatedTime"
    (epoch ms, an int), "properties"}], "since", "until", "self", "nextPage", "lastPage"}`, worklogs
    updated AFTER `since` (start-only), oldest first. As in Jira's documented example, `nextPage`
    (`since=<until>`) is present even when `lastPage` is true, so following it never ends by itself;
    `lastPage` is an inverse flag. Jira pages 1000 worklogs; `worklog_page_size` (default 100) is
    smaller here so a few hundred records take several pages.

    Atlassian grants client credentials to service accounts; the token endpoint is `/oauth/token`."""

    name = "jira_issues"
    docs = ("Jira Cloud REST API v3: Search for issues using JQL (GET /rest/api/3/search) with `startAt`/"
            "`maxResults`/`total`, nested `fields.updated` (`+0000`), window in `jql`; Get IDs of updated "
            "worklogs (GET /rest/api/3/worklog/updated), start-only `since` epoch ms, `lastPage`")
    resources = ("issues", "worklogs")
    start_only = frozenset({"worklogs"})
    scopes = ("read:jira-work",)

    def __init__(self, *args: Any, worklog_page_size: int = 100, **kwargs: Any) -> None:
        self.worklog_page_size = worklog_page_size
        super().__init__(*args, **kwargs)

    def build(self) -> None:
        self.tables["issues"] = cursor_table("fields.updated", iso_ms_plus0000, ("id",))
        self.tables["worklogs"] = cursor_table("updatedTime", epoch_millis, ("worklog_id",),
                                               key=lambda e: e.record["worklogId"])
        for moment in self.spread():
            self.tables["issues"].entries.append(self.make_record("issues", moment))
        for moment in self.spread():
            self.tables["worklogs"].entries.append(self.make_record("worklogs", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables[resource].entries) + 1
        if resource == "worklogs":
            return Entry({"worklogId": 10_000 + n, "updatedTime": epoch_millis(moment), "properties": []})
        issue_id = str(10_000 + n)
        status_id, status, category = rng.choice(STATUSES)
        fields = {
            "summary": f"Issue {n}: {rng.choice(['Login fails', 'Export is slow', 'Update docs'])}",
            "status": {"self": f"{SITE}/rest/api/3/status/{status_id}", "name": status, "id": status_id,
                       "statusCategory": {"key": category, "name": status}},
            "priority": {"self": f"{SITE}/rest/api/3/priority/3", "name": rng.choice(["Low", "Medium", "High"]),
                         "id": "3"},
            "labels": rng.sample(["backend", "frontend", "customer"], rng.randint(0, 2)),
            "assignee": rng.choice(PEOPLE),
            "issuetype": {"id": "10001", "name": rng.choice(["Bug", "Task", "Story"]), "subtask": False},
            "project": {"id": "10000", "key": "SAND", "name": "Sandbox"},
            "created": iso_ms_plus0000(moment - timedelta(seconds=rng.randint(0, 30 * 86400))),
            "updated": iso_ms_plus0000(moment),
        }
        return Entry({"expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
                      "id": issue_id, "self": f"{SITE}/rest/api/3/issue/{issue_id}", "key": f"SAND-{n}",
                      "fields": fields})

    def routes(self) -> list[Route]:
        return [Route("GET", SEARCH_PATH, self._search), Route("GET", WORKLOGS_PATH, self._worklogs)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, {"errorMessages": ["You are not authenticated. Authentication required to perform "
                                                "this operation."], "errors": {}})

    @staticmethod
    def _jql_error(message: str) -> Response:
        return Response(400, {"errorMessages": [f"Error in the JQL Query: {message}"], "errors": {},
                              "warningMessages": []})

    def _search(self, request: Request, match: Any) -> Response:
        query = request.query
        try:
            start_at = max(int(query.get("startAt", 0)), 0)
            max_results = min(max(int(query.get("maxResults", 50)), 0), 100)
        except ValueError:
            return Response(400, {"errorMessages": ["startAt and maxResults must be integers"], "errors": {}})
        jql, order = (re.split(r"(?i)\s+ORDER\s+BY\s+", query.get("jql", ""), maxsplit=1) + [""])[:2]
        try:
            tests = [self._clause(c) for c in re.split(r"\s+AND\s+", jql.strip(), flags=re.I) if c.strip()]
        except ValueError as error:
            return self._jql_error(str(error))
        table = self.tables["issues"]
        entries = [e for e in table.entries if all(test(e.record) for test in tests)]
        entries.sort(key=lambda e: int(e.record["id"]))
        for term in reversed([t.strip() for t in order.split(",") if t.strip()]):
            name, _, direction = term.partition(" ")
            field = name.lower()
            if field not in ("updated", "created", "key"):
                return self._jql_error(f"Field '{name}' does not exist or you do not have permission to view it.")
            entries.sort(key=lambda e: int(e.record["id"]) if field == "key"
                         else parse_instant(e.record["fields"][field]), reverse=direction.strip().upper() == "DESC")
        wanted = [f.strip() for f in query.get("fields", "*navigable").split(",")]
        issues = [self._render(e.record, wanted) for e in entries[start_at: start_at + max_results]]
        return Response(200, {"expand": "schema,names", "startAt": start_at, "maxResults": max_results,
                              "total": len(entries), **self.page_body("issues", issues)})

    @staticmethod
    def _render(record: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
        if any(w in ("*all", "*navigable") for w in wanted):
            return record
        return {**record, "fields": {k: v for k, v in record["fields"].items() if k in wanted}}

    @staticmethod
    def _clause(text: str) -> Any:
        clause = CLAUSE.fullmatch(text.strip())
        if not clause:
            raise ValueError(f"The JQL could not be parsed near {text.strip()[:40]!r}.")
        field, op, value = clause["field"].lower(), clause["op"], clause["value"].strip("\"'")
        if field == "project":
            return lambda record: TESTS[op](record["fields"]["project"]["key"], value)
        if field not in ("updated", "created"):
            raise ValueError(f"Field '{clause['field']}' does not exist or you do not have permission to view it.")
        for pattern in DATE_FORMATS:
            try:
                bound = datetime.strptime(value, pattern).replace(tzinfo=UTC)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"Date value '{value}' for field '{field}' is invalid. Valid formats include: "
                             "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format.")
        return lambda record: TESTS[op](parse_instant(record["fields"][field]), bound)

    def _worklogs(self, request: Request, match: Any) -> Response:
        try:
            since = int(request.query.get("since", 0))
        except ValueError:
            return Response(400, {"errorMessages": ["since must be a number"], "errors": {}})
        entries = [e for e in self.tables["worklogs"].ordered() if e.record["updatedTime"] > since]
        page = [e.record for e in entries[: self.worklog_page_size]]
        until = page[-1]["updatedTime"] if page else since
        return Response(200, {**self.page_body("values", page), "since": since, "until": until,
                              "self": request.url(WORKLOGS_PATH, since=since),
                              "nextPage": request.url(WORKLOGS_PATH, since=until),
                              "lastPage": len(entries) <= self.worklog_page_size})

    @staticmethod
    def jql(start: str, end: str) -> str:
        """The config's JQL for a window, its bounds written as given."""
        return f'project = SAND AND updated >= "{start}" AND updated < "{end}" ORDER BY updated ASC'

    def _resources(self, jql: str, issues_incremental: Optional[dict[str, Any]],
                   worklogs_incremental: dict[str, Any]) -> list[dict[str, Any]]:
        issues: dict[str, Any] = {
            "path": SEARCH_PATH,
            "params": {"jql": jql, "fields": ",".join(FIELDS)},
            "data_selector": "issues",
            "paginator": {"type": "offset", "limit": 100, "offset_param": "startAt", "limit_param": "maxResults",
                          "total_path": "total"},
        }
        if issues_incremental:
            issues["incremental"] = issues_incremental
        return [
            {"name": "issues", "primary_key": "id", "endpoint": issues},
            {"name": "worklogs", "primary_key": "worklogId",
             "endpoint": {"path": WORKLOGS_PATH, "data_selector": "values",
                          "paginator": {"type": "cursor", "cursor_path": "until", "cursor_param": "since",
                                        "stop_after_empty_page": True},
                          "incremental": worklogs_incremental}},
        ]

    def config(self) -> dict[str, Any]:
        """Issues: the window inside `jql` through dlt's placeholders, written as dates (JQL reads no
        ISO 8601). Worklogs: `since` in epoch ms, start-only; paged by the body's `until` into `since`,
        ending on the first empty page (`nextPage` never runs out, `lastPage` is inverse)."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"write_disposition": "merge"},
            "resources": self._resources(
                self.jql("{incremental.start_value}", "{incremental.end_value}"),
                {"cursor_path": "fields.updated", "value_format": "date"},
                {"start_param": "since", "end_param": None, "cursor_path": "updatedTime",
                 "value_format": "epoch_millis"}),
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """Issues: the window written into `jql`. Worklogs: dlt's `incremental` with integer bounds
        sends `since` and drops what lies at or past `end_value`."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"] = self._resources(
            self.jql(start.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M")), None,
            {"start_param": "since", "cursor_path": "updatedTime", "initial_value": epoch_millis(start),
             "end_value": epoch_millis(end)})
        return config
