"""Salesforce REST API: SOQL query of Accounts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Optional

from .server import Entry, Request, Response, Route, StandIn, cursor_table, iso_ms_plus0000, iso_z, parse_instant

VERSION = "v62.0"
QUERY_PATH = f"/services/data/{VERSION}/query"
FIELDS = ("Id", "Name", "Industry", "Type", "AnnualRevenue", "NumberOfEmployees", "BillingAddress", "Website",
          "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
DATETIME_FIELDS = {"CreatedDate", "LastModifiedDate", "SystemModstamp"}
SOQL = re.compile(r"SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
                  r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*", re.IGNORECASE | re.DOTALL)
CONDITION = re.compile(r"(?P<field>\w+)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>\S+)")
DATETIME_LITERAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})")
TESTS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
         "=": lambda a, b: a == b, "!=": lambda a, b: a != b}


class SalesforceAccounts(StandIn):
    """`GET /services/data/vXX.X/query?q=<SOQL>`: `{"totalSize", "done", "nextRecordsUrl", "records"}`,
    `nextRecordsUrl` (a path, `/services/data/v62.0/query/01g...-200`) only while `done` is false. The
    window is a SOQL WHERE clause on `SystemModstamp` with datetime literals
    (`2026-11-17T00:00:00Z`, unquoted); only the SELECTed fields come back, PascalCase, each record with
    an `attributes` object; datetimes are `2026-11-17T09:12:33.000+0000`; `BillingAddress` is a
    compound (nested) field. The batch size is 2000, or what the `Sforce-Query-Options: batchSize=N`
    header asks (200-2000). The result set is a snapshot, as a server-side query locator is. Errors are
    lists: `[{"message", "errorCode"}]` (`MALFORMED_QUERY`, `INVALID_FIELD`, 401 `INVALID_SESSION_ID`).

    Salesforce supports the OAuth 2.0 client-credentials flow at `/services/oauth2/token`, whose
    answer carries `instance_url` and no `expires_in`, as here."""

    name = "salesforce_accounts"
    docs = ("Salesforce REST API: Execute a SOQL query (GET /services/data/vXX.X/query), `records`, "
            "`nextRecordsUrl`, `done`, `totalSize`, PascalCase fields, `+0000` datetimes, window in `q`")
    resources = ("accounts",)
    token_path = "/services/oauth2/token"
    scopes = ("api",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locators: dict[str, tuple[list[dict[str, Any]], int]] = {}

    def build(self) -> None:
        self.tables["accounts"] = cursor_table("SystemModstamp", iso_ms_plus0000, ("id",),
                                               key=lambda e: e.record["Id"])
        for moment in self.spread():
            self.tables["accounts"].entries.append(self.make_record("accounts", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["accounts"].entries) + 1
        record_id = f"001Dn{n:07d}ABC{'AEIMQU'[n % 6]}AA"
        address = rng.choice([None, {"city": "San Francisco", "country": "US", "geocodeAccuracy": None,
                                     "latitude": None, "longitude": None, "postalCode": "94105", "state": "CA",
                                     "street": f"{n} Market St"}])
        return Entry({
            "attributes": {"type": "Account", "url": f"/services/data/{VERSION}/sobjects/Account/{record_id}"},
            "Id": record_id,
            "Name": f"{rng.choice(['Acme', 'Globex', 'Initech', 'Umbrella'])} {n}",
            "Industry": rng.choice(["Technology", "Retail", "Banking", None]),
            "Type": rng.choice(["Customer - Direct", "Prospect", "Partner"]),
            "AnnualRevenue": rng.choice([None, float(rng.randint(1, 900) * 10_000)]),
            "NumberOfEmployees": rng.choice([None, rng.randint(1, 5000)]),
            "BillingAddress": address,
            "Website": rng.choice([None, f"https://example{n}.com"]),
            "IsDeleted": False,
            "CreatedDate": iso_ms_plus0000(moment - timedelta(days=rng.randint(1, 400))),
            "LastModifiedDate": iso_ms_plus0000(moment),
            "SystemModstamp": iso_ms_plus0000(moment),
        })

    def routes(self) -> list[Route]:
        return [Route("GET", QUERY_PATH, self._query), Route("GET", QUERY_PATH + r"/(01g\w+)-(\d+)", self._more)]

    def token_answer(self, token: str, scopes: frozenset[str]) -> dict[str, Any]:
        return {"access_token": token, "signature": "c3RhbmRpbg==", "scope": " ".join(sorted(scopes)),
                "instance_url": self.base_url, "id": f"{self.base_url}/id/00Dxx0000001gPL/005xx000001Sv6e",
                "token_type": "Bearer", "issued_at": "1794906753000"}

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                        {"WWW-Authenticate": 'Token'})

    @staticmethod
    def _error(code: str, message: str) -> Response:
        return Response(400, [{"message": message, "errorCode": code}])

    def _query(self, request: Request, match: Any) -> Response:
        soql = request.query.get("q", "")
        parsed = SOQL.fullmatch(soql.strip())
        if not parsed or parsed["object"].lower() != "account":
            return self._error("MALFORMED_QUERY", f"unexpected token in: {soql[:80]!r}")
        canonical = {name.lower(): name for name in FIELDS}
        fields = [f.strip() for f in parsed["fields"].split(",")]
        unknown = [f for f in fields if f.lower() not in canonical]
        if unknown:
            return self._error("INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Account'.")
        fields = [canonical[f.lower()] for f in fields]
        try:
            tests = [self._condition(c, canonical) for c in re.split(r"\s+AND\s+", parsed["where"] or "", flags=re.I)
                     if c.strip()]
        except ValueError as error:
            return self._error("MALFORMED_QUERY", str(error))
        entries = [e for e in self.tables["accounts"].entries if all(test(e.record) for test in tests)]
        entries.sort(key=lambda e: e.record["Id"])
        for term in reversed([t.strip() for t in (parsed["order"] or "").split(",") if t.strip()]):
            name, _, direction = term.partition(" ")
            if name.lower() not in canonical:
                return self._error("INVALID_FIELD", f"No such column '{name}' on entity 'Account'.")
            field = canonical[name.lower()]
            entries.sort(key=lambda e: (e.record[field] is None, e.record[field] or ""),
                         reverse=direction.strip().upper() == "DESC")
        if parsed["limit"]:
            entries = entries[: int(parsed["limit"])]
        records = [{"attributes": e.record["attributes"], **{f: e.record[f] for f in fields}} for e in entries]
        locator = f"01g{len(self.locators) + 1:012d}AAA"
        self.locators[locator] = (records, self._batch_size(request))
        return self._batch(locator, 0)

    def _condition(self, text: str, canonical: dict[str, str]) -> Any:
        condition = CONDITION.fullmatch(text.strip())
        if not condition or condition["field"].lower() not in canonical:
            raise ValueError(f"unexpected token: {text.strip()!r}")
        field, op, literal = canonical[condition["field"].lower()], condition["op"], condition["value"]
        if field in DATETIME_FIELDS:
            if not DATETIME_LITERAL.fullmatch(literal):
                raise ValueError(f"line 1: value of filter criterion for field '{field}' must be of type dateTime "
                                 f"and should not be enclosed in quotes: {literal}")
            bound = parse_instant(literal)
            return lambda record: TESTS[op](parse_instant(record[field]), bound)
        value = {"true": True, "false": False}.get(literal.lower(), literal.strip("'"))
        return lambda record: TESTS[op](record[field], value)

    @staticmethod
    def _batch_size(request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        found = re.search(r"batchSize=(\d+)", options)
        return min(max(int(found.group(1)), 200), 2000) if found else 2000

    def _more(self, request: Request, match: Any) -> Response:
        if match.group(1) not in self.locators:
            return self._error("INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._batch(match.group(1), int(match.group(2)))

    def _batch(self, locator: str, offset: int) -> Response:
        records, size = self.locators[locator]
        done = offset + size >= len(records)
        answer: dict[str, Any] = {"totalSize": len(records), "done": done}
        if not done:
            answer["nextRecordsUrl"] = f"{QUERY_PATH}/{locator}-{offset + size}"
        answer.update(self.page_body("records", records[offset: offset + size]))
        return Response(200, answer)

    @staticmethod
    def soql(start: str, end: str) -> str:
        """The config's query for a window, its bounds written as given."""
        return (f"SELECT {', '.join(FIELDS)} FROM Account WHERE SystemModstamp >= {start} "
                f"AND SystemModstamp < {end} ORDER BY SystemModstamp ASC")

    def config(self) -> dict[str, Any]:
        """The window goes inside `q` through dlt's placeholders; `value_format: iso8601` writes the
        SOQL datetime literal (`2026-11-17T00:00:00Z`)."""
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "Id", "write_disposition": "merge"},
            "resources": [{
                "name": "accounts",
                "endpoint": {
                    "path": QUERY_PATH,
                    "headers": {"Sforce-Query-Options": "batchSize=200"},
                    "params": {"q": self.soql("{incremental.start_value}", "{incremental.end_value}")},
                    "data_selector": "records",
                    "paginator": {"type": "json_link", "next_url_path": "nextRecordsUrl"},
                    "incremental": {"cursor_path": "SystemModstamp", "value_format": "iso8601"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window written into `q`. Not dlt's `incremental`: its bounds would be compared as text
        with `SystemModstamp` (`...00.000+0000` sorts before `...00Z`), dropping a record at the start."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        endpoint = config["resources"][0]["endpoint"]
        endpoint["params"] = {"q": self.soql(iso_z(start), iso_z(end))}
        del endpoint["incremental"]
        return config
