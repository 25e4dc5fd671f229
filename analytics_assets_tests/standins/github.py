"""GitHub REST API: list repository issues."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from .server import Entry, Request, Response, Route, StandIn, cursor_table, iso_z, link_header, parse_instant

OWNER, REPO, REPO_ID = "dlt-hub", "standin", 1296269
DOCS_URL = "https://docs.github.com/rest/issues/issues#list-repository-issues"
LABELS = [{"id": 208045946 + i, "node_id": f"MDU6TGFiZWwyMDgwNDU5N{i}", "url": f"https://api.github.com/repos/{OWNER}/"
           f"{REPO}/labels/{name}", "name": name, "color": color, "default": i == 0,
           "description": None} for i, (name, color) in enumerate(
    [("bug", "d73a4a"), ("enhancement", "a2eeef"), ("question", "d876e3"), ("good first issue", "7057ff")])]
USERS = [{"login": login, "id": 583231 + i, "node_id": f"MDQ6VXNlcjU4MzIz{i}", "type": "User", "site_admin": False}
         for i, login in enumerate(["octocat", "hubot", "monalisa", "mona-bot"])]


class GitHubIssues(StandIn):
    """`GET /repos/{owner}/{repo}/issues`: a top-level JSON list, pages by `page`/`per_page` (at most
    100) linked in an RFC 8288 `Link` header (first/prev/next/last), `state`, `sort`, `direction`, and
    `since`, a start-only filter (issues updated at or after it, up to now). Pull requests are issues
    too and carry a `pull_request` object. As on github.com, the `Link` URLs point at
    `/repositories/{id}/issues` rather than the path asked for, a private repository without a token
    answers 404, and a bad token 401 "Bad credentials".

    Substitution: GitHub issues tokens through apps and personal tokens, and its OAuth token endpoint
    (`/login/oauth/access_token`) answers form-encoded text unless asked for JSON; here it is a plain
    OAuth2 client-credentials endpoint at that path answering JSON."""

    name = "github_issues"
    docs = ("GitHub REST API: List repository issues (GET /repos/{owner}/{repo}/issues), Link header "
            "pagination, top-level list, start-only `since`")
    resources = ("issues",)
    start_only = frozenset({"issues"})
    token_path = "/login/oauth/access_token"

    def build(self) -> None:
        self.tables["issues"] = cursor_table("updated_at", iso_z, ("id",))
        for moment in self.spread():
            self.tables["issues"].entries.append(self.make_record("issues", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, number = self.rng, len(self.tables["issues"].entries) + 1
        created = moment - timedelta(seconds=rng.randint(0, 20 * 86400))
        closed = rng.random() < 0.4
        record: dict[str, Any] = {
            "id": 1_100_000_000 + number * 7,
            "node_id": f"I_kwDOABCD{number:06d}",
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}",
            "html_url": f"https://github.com/{OWNER}/{REPO}/issues/{number}",
            "number": number,
            "state": "closed" if closed else "open",
            "state_reason": "completed" if closed else None,
            "title": f"Issue {number}: {rng.choice(['crash on load', 'typo in docs', 'add retries', 'slow query'])}",
            "body": rng.choice([None, f"Steps to reproduce #{number}.\n\n1. run\n2. see"]),
            "user": dict(rng.choice(USERS)),
            "labels": [dict(label) for label in rng.sample(LABELS, rng.randint(0, 2))],
            "assignee": rng.choice([None, dict(rng.choice(USERS))]),
            "locked": False,
            "comments": rng.randint(0, 12),
            "created_at": iso_z(created),
            "updated_at": iso_z(moment),
            "closed_at": iso_z(moment) if closed else None,
            "author_association": rng.choice(["OWNER", "MEMBER", "CONTRIBUTOR", "NONE"]),
        }
        if rng.random() < 0.25:
            record["pull_request"] = {"url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}",
                                      "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}",
                                      "merged_at": None}
        return Entry(record)

    def routes(self) -> list[Route]:
        return [Route("GET", rf"/repos/{OWNER}/{REPO}/issues", self._issues),
                Route("GET", rf"/repositories/{REPO_ID}/issues", self._issues)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        if problem == "missing":  # a private repository is invisible without a token
            return Response(404, {"message": "Not Found", "documentation_url": DOCS_URL, "status": "404"})
        return Response(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                              "status": "401"})

    def _issues(self, request: Request, match: Any) -> Response:
        query = request.query
        state, sort, direction = query.get("state", "open"), query.get("sort", "created"), query.get("direction")
        try:
            since = parse_instant(query["since"]) if query.get("since") else None
            per_page, page = min(int(query.get("per_page", 30)), 100), max(int(query.get("page", 1)), 1)
        except ValueError:
            return self._invalid("since" if "since" in query else "per_page")
        if state not in ("open", "closed", "all"):
            return self._invalid("state")
        if sort not in ("created", "updated", "comments"):
            return self._invalid("sort")
        descending = (direction or "desc") == "desc"
        entries = [e for e in self.tables["issues"].between(since, None)
                   if state == "all" or e.record["state"] == state]
        entries.sort(key=lambda e: (e.record[f"{sort}_at"] if sort != "comments" else e.record["comments"],
                                    e.record["number"]), reverse=descending)
        last = max(1, -(-len(entries) // per_page))
        records = [e.record for e in entries[(page - 1) * per_page: page * per_page]]
        params = {k: v for k, v in query.items() if k != "page"}
        url = lambda number: request.url(f"/repositories/{REPO_ID}/issues", **params, page=number)  # noqa: E731
        links = ([(url(page - 1), "prev")] if page > 1 else []) + ([(url(page + 1), "next"), (url(last), "last")]
                                                                  if page < last else []) \
            + ([(url(1), "first")] if page > 1 else [])
        return Response(200, records, {"Link": link_header(links)} if links else {})

    @staticmethod
    def _invalid(field: str) -> Response:
        return Response(422, {"message": "Validation Failed", "documentation_url": DOCS_URL, "status": "422",
                              "errors": [{"resource": "Issue", "field": field, "code": "invalid"}]})

    def config(self) -> dict[str, Any]:
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth(),
                       "headers": {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "issues",
                "endpoint": {
                    "path": f"/repos/{OWNER}/{REPO}/issues",
                    "params": {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100},
                    "data_selector": "$",
                    "paginator": {"type": "header_link"},
                    "incremental": {"start_param": "since", "end_param": None, "cursor_path": "updated_at",
                                    "value_format": "iso8601"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """`since` is start-only: dlt's own `incremental` sends it and drops what lies at or past
        `end_value`. Both bounds are text spelled like GitHub's `updated_at`, so dlt's plain
        comparison of cursor values is right."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"][0]["endpoint"]["incremental"] = {
            "start_param": "since", "cursor_path": "updated_at", "initial_value": iso_z(start), "end_value": iso_z(end)}
        return config
