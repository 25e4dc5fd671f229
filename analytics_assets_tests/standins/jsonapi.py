"""A JSON:API 1.0 server, as Rails' jsonapi-resources serves one: articles."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Optional
from zoneinfo import ZoneInfo

from .server import Entry, Request, Response, Route, StandIn, cursor_table, iso_offset, iso_z, parse_instant

ARTICLES_PATH = "/api/v1/articles"
HOST = "https://cms.example.com"
APP_ZONE = ZoneInfo("Europe/Berlin")  # Rails' config.time_zone: +01:00 in November
MEDIA_TYPE = "application/vnd.api+json"
FILTER = re.compile(r"filter\[updated-at\]\[(gte|gt|lte|lt)\]")
TESTS = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}


def _errors(status: int, title: str, detail: str, code: str) -> Response:
    return Response(status, {"errors": [{"title": title, "detail": detail, "code": code, "status": str(status)}]},
                    content_type=MEDIA_TYPE)


class JsonApiArticles(StandIn):
    """`GET /api/v1/articles`: a JSON:API document `{"data": [{"id" (text), "type", "attributes": {...},
    "relationships": {...}, "links": {...}}], "meta": {"record-count", "page-count"}, "links": {"first",
    "prev", "next", "last"}}` (`prev`/`next` only where they exist), media type
    `application/vnd.api+json`. Member names are dasherized (`updated-at`, `word-count`), as
    jsonapi-resources writes them by default; the cursor is nested, `attributes.updated-at`, in the
    app's zone (`2026-11-17T10:12:33.120+01:00`). Paging by page number: `page[number]` (from 1) and
    `page[size]` (default 10, at most 100); the window by `filter[updated-at][gte]`/`[lt]` (also
    `[gt]`/`[lte]`). Errors are JSON:API error objects; 401 carries Doorkeeper's challenge.

    An API of this shape usually sits behind Doorkeeper, whose `/oauth/token` grants client
    credentials (HTTP Basic or form), as here."""

    name = "jsonapi_articles"
    docs = ("JSON:API 1.0 (jsonapi.org) as Rails jsonapi-resources serves it: GET /api/v1/articles, "
            "`data[].attributes`, dasherized `attributes.updated-at` (+01:00), `page[number]`/`page[size]` with "
            "`meta.page-count`, `links.next`")
    resources = ("articles",)
    scopes = ("public",)

    def build(self) -> None:
        self.tables["articles"] = cursor_table("attributes.updated-at", lambda m: iso_offset(m, APP_ZONE, True),
                                               ("id",))
        for moment in self.spread():
            self.tables["articles"].entries.append(self.make_record("articles", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["articles"].entries) + 1
        article_id, author = str(n), str(rng.randint(1, 12))
        created = moment - timedelta(seconds=rng.randint(0, 60 * 86400))
        published = rng.choice([None, iso_offset(created + timedelta(hours=1), APP_ZONE, True)])
        return Entry({
            "id": article_id,
            "type": "articles",
            "links": {"self": f"{HOST}{ARTICLES_PATH}/{article_id}"},
            "attributes": {"title": f"Article {n}", "body": "Lorem ipsum.", "word-count": rng.randint(80, 3000),
                           "published-at": published, "created-at": iso_offset(created, APP_ZONE, True),
                           "updated-at": iso_offset(moment, APP_ZONE, True),
                           "tags": rng.sample(["rails", "api", "json", "howto"], rng.randint(0, 3))},
            "relationships": {"author": {"links": {"self": f"{HOST}{ARTICLES_PATH}/{article_id}/relationships/author",
                                                   "related": f"{HOST}{ARTICLES_PATH}/{article_id}/author"},
                                         "data": {"type": "people", "id": author}}},
        })

    def routes(self) -> list[Route]:
        return [Route("GET", ARTICLES_PATH, self._articles)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        response = _errors(401, "Not authorized", "The access token is invalid", "401")
        response.headers["WWW-Authenticate"] = 'Bearer realm="Doorkeeper", error="invalid_token"'
        return response

    def _articles(self, request: Request, match: Any) -> Response:
        query = request.query
        tests = []
        for name, value in query.items():
            if name.startswith("filter["):
                found = FILTER.fullmatch(name)
                if not found:
                    return _errors(400, "Filter not allowed", f"{name} is not allowed.", "102")
                try:
                    bound = parse_instant(value)
                except ValueError:
                    return _errors(400, "Invalid filter value", f"{value} is not a valid value for updated-at.", "103")
                tests.append((TESTS[found.group(1)], bound))
        try:
            number = int(query.get("page[number]", 1))
            size = int(query.get("page[size]", 10))
        except ValueError:
            return _errors(400, "Invalid page value", "page[number] and page[size] must be integers", "118")
        if number < 1 or not 1 <= size <= 100:
            return _errors(400, "Invalid page value", f"{size} is not a valid value for size page parameter.", "118")
        table = self.tables["articles"]
        entries = [e for e in table.entries if all(test(table.moment(e.record), bound) for test, bound in tests)]
        sort = query.get("sort", "id")
        field = sort.lstrip("-")
        if field not in ("id", "updated-at", "created-at"):
            return _errors(400, "Invalid sort criteria", f"{field} is not a valid sort criteria for articles", "114")
        entries.sort(key=lambda e: int(e.record["id"]) if field == "id"
                     else parse_instant(e.record["attributes"][field]), reverse=sort.startswith("-"))
        pages = -(-len(entries) // size)
        params = {k: v for k, v in query.items() if not k.startswith("page[")}
        link = lambda page: request.url(**params, **{"page[number]": page, "page[size]": size})  # noqa: E731
        links = {"first": link(1)}
        if number > 1:
            links["prev"] = link(number - 1)
        if number < pages:
            links["next"] = link(number + 1)
        links["last"] = link(max(pages, 1))
        page = [e.record for e in entries[(number - 1) * size: number * size]]
        return Response(200, {**self.page_body("data", page), "meta": {"record-count": len(entries),
                                                                       "page-count": pages}, "links": links},
                        content_type=MEDIA_TYPE)

    def config(self) -> dict[str, Any]:
        """Page-number paging with the page count at `meta.page-count` (a dashed key in dlt's JSONPath)."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth(),
                       "headers": {"Accept": MEDIA_TYPE}},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "articles",
                "endpoint": {
                    "path": ARTICLES_PATH,
                    "params": {"page[size]": 100, "sort": "updated-at"},
                    "data_selector": "data",
                    "paginator": {"type": "page_number", "page_param": "page[number]", "base_page": 1,
                                  "total_path": "meta.page-count"},
                    "incremental": {"start_param": "filter[updated-at][gte]", "end_param": "filter[updated-at][lt]",
                                    "cursor_path": "attributes.updated-at", "value_format": "iso8601"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window as fixed filter parameters."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        endpoint = config["resources"][0]["endpoint"]
        endpoint["params"].update({"filter[updated-at][gte]": iso_z(start), "filter[updated-at][lt]": iso_z(end)})
        del endpoint["incremental"]
        return config
