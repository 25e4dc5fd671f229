"""HubSpot CRM API v3: search contacts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from .server import Entry, Request, Response, Route, StandIn, Table, epoch_millis, iso_ms_z, parse_instant

SEARCH_PATH = "/crm/v3/objects/contacts/search"
DEFAULT_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
PROPERTIES = ("email", "firstname", "lastname", "company", "lifecyclestage", "hs_lastmodifieddate")
OPERATORS = {"GTE": lambda v, a, b: v >= a, "GT": lambda v, a, b: v > a, "LTE": lambda v, a, b: v <= a,
             "LT": lambda v, a, b: v < a, "EQ": lambda v, a, b: v == a, "BETWEEN": lambda v, a, b: a <= v <= b}


class HubSpotContacts(StandIn):
    """`POST /crm/v3/objects/contacts/search` with a JSON body: `filterGroups[].filters[]`
    (`propertyName`, `operator` GTE/GT/LT/LTE/EQ/BETWEEN, `value`, `highValue`; a datetime value in
    epoch milliseconds, as a number or text, or ISO 8601), `sorts`, `properties`, `limit` (at most 200)
    and `after`. The answer is `{"total", "results": [...], "paging": {"next": {"after": "100"}}}`,
    `paging` only while more follow. Ids are text; every property value is text (dates ISO with
    milliseconds and `Z`); `createdAt`/`updatedAt` are camelCase. Errors: `{"status": "error",
    "message", "correlationId", "category"}`; 401 `INVALID_AUTHENTICATION`.

    Substitution: HubSpot's token endpoint `/oauth/v1/token` grants authorization codes; here it
    grants client credentials."""

    name = "hubspot_contacts"
    docs = ("HubSpot CRM API v3: Search contacts (POST /crm/v3/objects/contacts/search), `results`, "
            "`paging.next.after`, string ids, camelCase `updatedAt`, nested `properties.hs_lastmodifieddate`")
    resources = ("contacts",)
    token_path = "/oauth/v1/token"
    scopes = ("crm.objects.contacts.read",)

    def build(self) -> None:
        self.tables["contacts"] = Table(key=lambda e: e.record["id"],
                                        moment=lambda r: parse_instant(r["properties"]["hs_lastmodifieddate"]),
                                        touch=self._touch, row_key=("id",))
        for moment in self.spread():
            self.tables["contacts"].entries.append(self.make_record("contacts", moment))

    @staticmethod
    def _touch(record: dict[str, Any], moment: datetime) -> None:
        for key in ("hs_lastmodifieddate", "lastmodifieddate"):
            record["properties"][key] = iso_ms_z(moment)
        record["updatedAt"] = iso_ms_z(moment)

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["contacts"].entries) + 1
        object_id = str(51 + n * 3)
        created = iso_ms_z(moment - timedelta(seconds=rng.randint(0, 40 * 86400)))
        first, last = rng.choice(["Ada", "Brian", "Chen", "Dana", "Emeka"]), rng.choice(["Lovelace", "Okafor", "Ng"])
        properties = {"createdate": created, "email": f"{first.lower()}.{n}@example.com", "firstname": first,
                      "lastname": last, "company": rng.choice(["HubSpot", "Acme", None]),
                      "lifecyclestage": rng.choice(["lead", "customer", "subscriber"]),
                      "hs_lastmodifieddate": iso_ms_z(moment), "lastmodifieddate": iso_ms_z(moment),
                      "hs_object_id": object_id}
        return Entry({"id": object_id, "properties": properties, "createdAt": created, "updatedAt": iso_ms_z(moment),
                      "archived": False})

    def routes(self) -> list[Route]:
        return [Route("POST", SEARCH_PATH, self._search)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, {"status": "error", "message": "Authentication credentials not found. This API supports "
                              "OAuth 2.0 authentication.", "correlationId": "5c0d7a5e-0000-4000-8000-000000000401",
                              "category": "INVALID_AUTHENTICATION"})

    @staticmethod
    def _invalid(message: str) -> Response:
        return Response(400, {"status": "error", "message": message,
                              "correlationId": "5c0d7a5e-0000-4000-8000-000000000400", "category": "VALIDATION_ERROR"})

    def _search(self, request: Request, match: Any) -> Response:
        try:
            body = request.json() or {}
            limit = int(body.get("limit", 10))
            offset = int(body.get("after") or 0)
            groups = [[self._filter(f) for f in group.get("filters", [])] for group in body.get("filterGroups", [])]
        except (ValueError, TypeError, KeyError) as error:
            return self._invalid(f"Invalid input JSON on line 1: {error}")
        if not 0 < limit <= 200:
            return self._invalid("Limit must be between 1 and 200.")
        entries = [e for e in self.tables["contacts"].ordered()
                   if not groups or any(all(test(e.record) for test in group) for group in groups)]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        for sort in reversed(sorts):
            name = sort["propertyName"] if isinstance(sort, dict) else str(sort)
            descending = isinstance(sort, dict) and sort.get("direction") == "DESCENDING"
            entries.sort(key=lambda e: self._sort_value(e.record, name), reverse=descending)
        wanted = list(body.get("properties") or PROPERTIES)
        page = [self._render(e.record, wanted) for e in entries[offset: offset + limit]]
        answer: dict[str, Any] = {"total": len(entries), **self.page_body("results", page)}
        if offset + limit < len(entries):
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, answer)

    def _filter(self, spec: dict[str, Any]) -> Any:
        name, operator = spec["propertyName"], spec["operator"]
        if operator not in OPERATORS:
            raise ValueError(f"operator {operator!r}")
        low = self._as_value(name, spec.get("value"))
        high = self._as_value(name, spec.get("highValue")) if operator == "BETWEEN" else None
        return lambda record: record["properties"].get(name) is not None and OPERATORS[operator](
            self._as_value(name, record["properties"][name]), low, high)

    @staticmethod
    def _as_value(name: str, value: Any) -> Any:
        return parse_instant(value) if name.endswith("date") and value is not None else value

    @staticmethod
    def _sort_value(record: dict[str, Any], name: str) -> Any:
        value = record["properties"].get(name) or ""
        return int(value) if name == "hs_object_id" else value

    @staticmethod
    def _render(record: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
        names = set(wanted) | set(DEFAULT_PROPERTIES)
        return {**record, "properties": {k: v for k, v in record["properties"].items() if k in names}}

    def expected(self, resource: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """As served to the configs' `properties` list (the search returns only what it is asked for)."""
        return [self._render(record, list(PROPERTIES)) for record in super().expected(resource, start, end)]

    def expected_rows(self, resource: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return [self.to_row(resource, record) for record in self.expected(resource, start, end)]

    def _body(self, start: Any, end: Any) -> dict[str, Any]:
        return {
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": start},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": end}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(PROPERTIES),
            "limit": 100,
        }

    def config(self) -> dict[str, Any]:
        """The window goes into the JSON body through dlt's placeholders (a single placeholder keeps
        its value's type in `json`): there are no window query parameters to name."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "contacts",
                "endpoint": {
                    "path": SEARCH_PATH,
                    "method": "POST",
                    "json": self._body("{incremental.start_value}", "{incremental.end_value}"),
                    "data_selector": "results",
                    "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_body_path": "after"},
                    "incremental": {"cursor_path": "properties.hs_lastmodifieddate", "value_format": "epoch_millis"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window as fixed epoch milliseconds in the body."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        endpoint = config["resources"][0]["endpoint"]
        endpoint["json"] = self._body(epoch_millis(start), epoch_millis(end))
        del endpoint["incremental"]
        return config
