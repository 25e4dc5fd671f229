"""The stand-ins proven against their documentation and against plain dlt.

(a) each answers on the wire as its API documents (keys, headers, paging, stop flags, errors), and
its token endpoint follows RFC 6749; (b) plain dlt's `rest_api_source`, given `plain_dlt_config`,
loads a busy and a quiet window into DuckDB and the rows equal `expected_rows` exactly; (c) the
start-only APIs really serve records after the window's end.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed

from . import facebook, github, hubspot, jira, jsonapi, marketo, pipedrive, salesforce, shopify, slack, stripe, zendesk
from .apis import ALL, REQUIRED, SHAPES
from .compare import assert_rows_equal, dlt_row, load_with_plain_dlt, table_rows
from .server import (
    BUSY_DAY,
    CLOCK,
    DAY_COUNTS,
    QUIET_DAY,
    UTC,
    StandIn,
    epoch_millis,
    epoch_seconds,
    naive_utc,
    parse_instant,
    window_of,
)

BUSY, QUIET = window_of(BUSY_DAY), window_of(QUIET_DAY)
AFTER_ALL = (CLOCK, CLOCK + timedelta(days=1))
LOADABLE = [pytest.param(cls, resource, id=f"{cls.name}.{resource}") for cls in ALL for resource in cls.resources]
START_ONLY = [pytest.param(cls, resource, id=f"{cls.name}.{resource}") for cls in ALL for resource in cls.start_only]
EVERY = [pytest.param(cls, id=cls.name) for cls in ALL]


@pytest.fixture(scope="module")
def running() -> Iterator[dict[str, StandIn]]:
    """One server per stand-in for the module's read-only tests (tests that mutate start their own)."""
    started: dict[str, StandIn] = {}
    try:
        for cls in ALL:
            started[cls.name] = cls().start()
        yield started
    finally:
        for standin in started.values():
            standin.stop()


def call(standin: StandIn, path: str, params: Optional[dict[str, Any]] = None, *, method: str = "GET",
         body: Any = None, token: Optional[str] = "", headers: Optional[dict[str, str]] = None) -> requests.Response:
    """A raw request; `token=""` issues a valid one, None sends none."""
    token = standin.access_token() if token == "" else token
    all_headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    url = path if path.startswith("http") else standin.base_url + path
    return requests.request(method, url, params=params, json=body, headers=all_headers, timeout=10)


def walk(standin: StandIn, first: requests.Response, next_request: Any) -> list[requests.Response]:
    """The first page and every page `next_request(response)` asks for, until it returns None."""
    pages = [first]
    while (following := next_request(pages[-1])) is not None:
        pages.append(following)
        assert len(pages) < 50, "paging does not end"
    return pages


def ms(moment: datetime) -> int:
    return epoch_millis(moment)


def plain(standin: StandIn, start: datetime, end: datetime) -> dict[str, Any]:
    config = standin.plain_dlt_config(start, end)
    assert config is not None, f"plain dlt cannot load {standin.name}"
    return config


# --- the catalogue and the configs --------------------------------------------------------------

def test_the_stand_ins_cover_every_shape_asked_for() -> None:
    assert len(ALL) >= 9
    names = [cls.name for cls in ALL]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert all(cls.docs and "\n" not in cls.docs for cls in ALL)
    assert set(SHAPES) == set(names)
    covered = frozenset().union(*SHAPES.values())
    assert REQUIRED <= covered, f"not covered: {sorted(REQUIRED - covered)}"


@pytest.mark.parametrize("cls", EVERY)
def test_data_spreads_over_the_days_with_a_busy_and_a_quiet_one(running: dict[str, StandIn],
                                                                 cls: type[StandIn]) -> None:
    standin = running[cls.name]
    for resource in cls.resources:
        assert len(standin.expected(resource, *BUSY)) >= 250
        assert standin.expected(resource, *QUIET) == []
        assert len(standin.expected(resource, *window_of(BUSY_DAY + timedelta(days=2)))) > 0
    assert cls().expected(cls.resources[0], *BUSY) == standin.expected(cls.resources[0], *BUSY), "not deterministic"


@pytest.mark.parametrize("cls", EVERY)
def test_config_is_in_this_projects_form(running: dict[str, StandIn], cls: type[StandIn]) -> None:
    standin = running[cls.name]
    config = standin.config()
    text = json.dumps(config)
    auth = config["client"]["auth"]
    assert not {"client_id", "client_secret"} & set(auth) and standin.client_secret not in text
    assert not re.search(r'"client_(id|secret)":', text)
    assert auth["type"] == "oauth2_client_credentials" and auth["access_token_url"] == standin.token_url
    assert auth["token_endpoint_auth_method"] in ("client_secret_post", "client_secret_basic")
    tables = [r for r in config["resources"] if r.get("selected", True)]
    assert [r["name"] for r in tables] == list(cls.resources)
    for resource in tables:
        endpoint, name = resource["endpoint"], resource["name"]
        incremental = endpoint["incremental"]
        assert incremental["cursor_path"] and incremental["value_format"] in (
            "iso8601", "epoch_seconds", "epoch_millis", "date")
        in_params = json.dumps([endpoint.get("params"), endpoint.get("json")])
        if name in cls.start_only:
            assert incremental.get("end_param") is None
        elif not incremental.get("start_param"):
            assert "{incremental.start_value}" in in_params and "{incremental.end_value}" in in_params
        else:
            assert incremental.get("end_param"), f"{name}: a window needs its end"
    plain_config = plain(standin, *BUSY)
    assert plain_config["client"]["auth"]["client_id"] == standin.client_id


# --- (a) the token endpoint and the wire ---------------------------------------------------------

@pytest.mark.parametrize("cls", EVERY)
def test_token_endpoint_follows_rfc_6749(running: dict[str, StandIn], cls: type[StandIn]) -> None:
    standin = running[cls.name]
    grant = {"grant_type": "client_credentials"}
    by_post = requests.post(standin.token_url, data={**grant, "client_id": standin.client_id,
                                                     "client_secret": standin.client_secret}, timeout=10)
    by_basic = requests.post(standin.token_url, data=grant, auth=(standin.client_id, standin.client_secret), timeout=10)
    for answer in (by_post, by_basic):
        assert answer.status_code == 200 and answer.json()["access_token"], answer.text
        assert answer.headers["Cache-Control"] == "no-store"
    wrong_post = requests.post(standin.token_url, data={**grant, "client_id": standin.client_id,
                                                        "client_secret": "wrong"}, timeout=10)
    wrong_basic = requests.post(standin.token_url, data=grant, auth=(standin.client_id, "wrong"), timeout=10)
    for answer in (wrong_post, wrong_basic):
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert wrong_basic.headers["WWW-Authenticate"].startswith("Basic")
    other_grant = requests.post(standin.token_url, data={"grant_type": "password"},
                                auth=(standin.client_id, standin.client_secret), timeout=10)
    assert other_grant.status_code == 400 and other_grant.json()["error"] == "unsupported_grant_type"


FIRST_REQUEST: dict[str, tuple[str, str, dict[str, Any], Any]] = {
    "github_issues": ("GET", f"/repos/{github.OWNER}/{github.REPO}/issues", {"state": "all"}, None),
    "stripe_charges": ("GET", "/v1/charges", {}, None),
    "hubspot_contacts": ("POST", hubspot.SEARCH_PATH, {}, {"limit": 10}),
    "salesforce_accounts": ("GET", salesforce.QUERY_PATH, {"q": "SELECT Id FROM Account"}, None),
    "slack_messages": ("GET", "/api/conversations.list", {}, None),
    "zendesk_tickets": ("GET", zendesk.EXPORT_PATH, {"start_time": epoch_seconds(BUSY[0])}, None),
    "shopify_orders": ("GET", shopify.ORDERS_PATH, {"status": "any"}, None),
    "jira_issues": ("GET", jira.SEARCH_PATH, {"jql": "project = SAND"}, None),
    "pipedrive_deals": ("GET", pipedrive.RECENTS_PATH, {"since_timestamp": naive_utc(BUSY[0])}, None),
    "facebook_ads_insights": ("GET", facebook.INSIGHTS_PATH, {"time_increment": 1, "time_range": json.dumps(
        {"since": "2026-11-17", "until": "2026-11-17"})}, None),
    "jsonapi_articles": ("GET", jsonapi.ARTICLES_PATH, {}, None),
    "marketo_activities": ("GET", marketo.TOKEN_PATH, {"sinceDatetime": "2026-11-17T00:00:00Z"}, None),
}
# (status without a token, status with a bad one, text the bad one's answer holds), as each API documents
UNAUTHORIZED = {"github_issues": (404, 401, "Bad credentials"), "slack_messages": (200, 200, "invalid_auth"),
                "marketo_activities": (200, 200, '"601"'), "facebook_ads_insights": (400, 400, "OAuthException"),
                "stripe_charges": (401, 401, "invalid_request_error"),
                "hubspot_contacts": (401, 401, "INVALID_AUTHENTICATION"),
                "salesforce_accounts": (401, 401, "INVALID_SESSION_ID"), "zendesk_tickets": (401, 401, "authenticate"),
                "shopify_orders": (401, 401, "Invalid API key"), "jira_issues": (401, 401, "not authenticated"),
                "pipedrive_deals": (401, 401, "unauthorized access"), "jsonapi_articles": (401, 401, "Not authorized")}


@pytest.mark.parametrize("cls", EVERY)
def test_data_endpoints_need_a_valid_token(running: dict[str, StandIn], cls: type[StandIn]) -> None:
    standin = running[cls.name]
    method, path, params, body = FIRST_REQUEST[cls.name]
    missing_status, bad_status, fragment = UNAUTHORIZED[cls.name]
    granted = call(standin, path, params, method=method, body=body)
    assert granted.status_code == 200 and '"ok":false' not in granted.text and '"success":false' not in granted.text
    missing = call(standin, path, params, method=method, body=body, token=None)
    bad = call(standin, path, params, method=method, body=body, token="not-a-token")
    assert (missing.status_code, bad.status_code) == (missing_status, bad_status)
    assert fragment in bad.text


def test_a_revoked_token_is_refused() -> None:
    with stripe.StripeCharges() as standin:
        token = standin.access_token()
        assert call(standin, "/v1/charges", token=token).status_code == 200
        standin.revoke_tokens()
        refused = call(standin, "/v1/charges", token=token)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_request_error"


def test_github_issues_wire(running: dict[str, StandIn]) -> None:
    standin = running["github_issues"]
    params = {"state": "all", "sort": "updated", "direction": "asc", "since": "2026-11-17T00:00:00Z", "per_page": 100}
    first = call(standin, f"/repos/{github.OWNER}/{github.REPO}/issues", params)
    assert isinstance(first.json(), list) and len(first.json()) == 100
    assert set(first.links) == {"next", "last"}
    assert f"/repositories/{github.REPO_ID}/issues" in first.links["next"]["url"]
    pages = walk(standin, first, lambda r: call(standin, r.links["next"]["url"]) if "next" in r.links else None)
    assert set(pages[1].links) == {"prev", "next", "last", "first"} and set(pages[-1].links) == {"prev", "first"}
    issues = [issue for page in pages for issue in page.json()]
    stamps = [issue["updated_at"] for issue in issues]
    assert stamps == sorted(stamps) and stamps[0] >= "2026-11-17T00:00:00Z" and all(s.endswith("Z") for s in stamps)
    assert isinstance(issues[0]["user"], dict) and isinstance(issues[0]["labels"], list)
    assert any("pull_request" in issue for issue in issues) and any("pull_request" not in issue for issue in issues)
    assert call(standin, f"/repos/{github.OWNER}/{github.REPO}/issues", {"per_page": 500}).json().__len__() == 100
    quiet = call(standin, f"/repos/{github.OWNER}/{github.REPO}/issues", {"since": "2026-11-21T00:00:00Z"})
    assert quiet.json() == [] and "Link" not in quiet.headers
    assert call(standin, f"/repos/{github.OWNER}/{github.REPO}/issues", {"state": "x"}).status_code == 422


def test_stripe_charges_wire(running: dict[str, StandIn]) -> None:
    standin = running["stripe_charges"]
    window = {"created[gte]": epoch_seconds(BUSY[0]), "created[lt]": epoch_seconds(BUSY[1]), "limit": 100}
    first = call(standin, "/v1/charges", window)
    body = first.json()
    assert (body["object"], body["url"], body["has_more"], len(body["data"])) == ("list", "/v1/charges", True, 100)
    pages = walk(standin, first, lambda r: call(standin, "/v1/charges", {**window, "starting_after": r.json()[
        "data"][-1]["id"]}) if r.json()["has_more"] else None)
    charges = [c for page in pages for c in page.json()["data"]]
    created = [c["created"] for c in charges]
    assert created == sorted(created, reverse=True) and all(isinstance(c, int) for c in created)
    assert {c["id"] for c in charges} == {c["id"] for c in standin.expected("charges", *BUSY)}
    assert call(standin, "/v1/charges", {"limit": 101}).json()["error"]["type"] == "invalid_request_error"
    quiet = call(standin, "/v1/charges", {"created[gte]": epoch_seconds(QUIET[0]),
                                          "created[lt]": epoch_seconds(QUIET[1])})
    assert quiet.json()["data"] == [] and quiet.json()["has_more"] is False


def test_hubspot_contacts_wire(running: dict[str, StandIn]) -> None:
    standin = running["hubspot_contacts"]
    search = standin.config()["resources"][0]["endpoint"]["json"]
    body = json.loads(json.dumps(search).replace('"{incremental.start_value}"', str(ms(BUSY[0])))
                      .replace('"{incremental.end_value}"', f'"{ms(BUSY[1])}"'))
    first = call(standin, hubspot.SEARCH_PATH, method="POST", body=body)
    answer = first.json()
    assert answer["total"] == 260 and len(answer["results"]) == 100 and answer["paging"]["next"]["after"] == "100"
    contact = answer["results"][0]
    assert isinstance(contact["id"], str) and contact["updatedAt"] == contact["properties"]["hs_lastmodifieddate"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", contact["updatedAt"])
    last = call(standin, hubspot.SEARCH_PATH, method="POST", body={**body, "after": "200"}).json()
    assert len(last["results"]) == 60 and "paging" not in last
    iso = {**body, "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "BETWEEN",
                                                  "value": "2026-11-17T00:00:00Z",
                                                  "highValue": "2026-11-17T23:59:59.999Z"}]}]}
    assert call(standin, hubspot.SEARCH_PATH, method="POST", body=iso).json()["total"] == 260
    too_many = call(standin, hubspot.SEARCH_PATH, method="POST", body={**body, "limit": 201})
    assert too_many.status_code == 400 and too_many.json()["category"] == "VALIDATION_ERROR"
    quiet = json.loads(json.dumps(body).replace(str(ms(BUSY[0])), str(ms(QUIET[0]))).replace(
        str(ms(BUSY[1])), str(ms(QUIET[1]))))
    assert call(standin, hubspot.SEARCH_PATH, method="POST", body=quiet).json() == {"total": 0, "results": []}


def test_salesforce_accounts_wire(running: dict[str, StandIn]) -> None:
    standin = running["salesforce_accounts"]
    token = requests.post(standin.token_url, data={"grant_type": "client_credentials", "client_id": standin.client_id,
                                                   "client_secret": standin.client_secret}, timeout=10).json()
    assert token["instance_url"] == standin.base_url and "expires_in" not in token
    soql = salesforce.SalesforceAccounts.soql("2026-11-17T00:00:00Z", "2026-11-18T00:00:00Z")
    first = call(standin, salesforce.QUERY_PATH, {"q": soql}, headers={"Sforce-Query-Options": "batchSize=200"})
    body = first.json()
    assert (body["totalSize"], body["done"], len(body["records"])) == (260, False, 200)
    assert re.fullmatch(r"/services/data/v62\.0/query/01g\w+-200", body["nextRecordsUrl"])
    record = body["records"][0]
    assert record["attributes"]["type"] == "Account" and list(record)[1:] == list(salesforce.FIELDS)
    assert record["SystemModstamp"].endswith("+0000")
    second = call(standin, body["nextRecordsUrl"]).json()
    assert (second["done"], len(second["records"]), "nextRecordsUrl" in second) == (True, 60, False)
    assert call(standin, salesforce.QUERY_PATH, {"q": soql}).json()["done"] is True  # batches of 2000 by default
    quoted = call(standin, salesforce.QUERY_PATH, {"q": soql.replace(">= 2026-11-17T00:00:00Z", ">= '2026-11-17'")})
    assert quoted.status_code == 400 and quoted.json()[0]["errorCode"] == "MALFORMED_QUERY"
    unknown = call(standin, salesforce.QUERY_PATH, {"q": "SELECT Id, Foo__c FROM Account"})
    assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    quiet = salesforce.SalesforceAccounts.soql("2026-11-18T00:00:00Z", "2026-11-19T00:00:00Z")
    assert call(standin, salesforce.QUERY_PATH, {"q": quiet}).json() == {"totalSize": 0, "done": True, "records": []}


def test_slack_wire(running: dict[str, StandIn]) -> None:
    standin = running["slack_messages"]
    channels = walk(standin, call(standin, "/api/conversations.list", {"limit": 2}), lambda r: call(
        standin, "/api/conversations.list", {"limit": 2, "cursor": r.json()["response_metadata"]["next_cursor"]})
        if r.json()["response_metadata"]["next_cursor"] else None)
    assert [len(page.json()["channels"]) for page in channels] == [2, 2] and all(p.json()["ok"] for p in channels)
    window = {"channel": slack.CHANNELS[0][0], "oldest": str(epoch_seconds(BUSY[0])),
              "latest": str(epoch_seconds(BUSY[1])), "limit": 100}
    pages = walk(standin, call(standin, "/api/conversations.history", window), lambda r: call(
        standin, "/api/conversations.history", {**window, "cursor": r.json()["response_metadata"]["next_cursor"]})
        if r.json()["has_more"] else None)
    assert len(pages) >= 2 and "response_metadata" not in pages[-1].json() and pages[-1].json()["has_more"] is False
    messages = [m for page in pages for m in page.json()["messages"]]
    stamps = [m["ts"] for m in messages]
    assert stamps == sorted(stamps, reverse=True) and all(re.fullmatch(r"\d{10}\.\d{6}", ts) for ts in stamps)
    assert all("channel" not in m for m in messages)
    quiet = call(standin, "/api/conversations.history", {**window, "oldest": str(epoch_seconds(QUIET[0])),
                                                         "latest": str(epoch_seconds(QUIET[1]))}).json()
    assert quiet["ok"] and quiet["messages"] == [] and quiet["has_more"] is False
    assert call(standin, "/api/conversations.history", {}).json()["error"] == "invalid_arguments"
    assert call(standin, "/api/conversations.history", {"channel": "C999"}).json()["error"] == "channel_not_found"
    narrow = call(standin, "/api/conversations.history", window, token=standin.access_token("channels:read"))
    assert narrow.status_code == 200 and narrow.json() == {"ok": False, "error": "missing_scope",
                                                           "needed": "channels:history", "provided": "channels:read"}


def test_zendesk_tickets_wire(running: dict[str, StandIn]) -> None:
    standin = running["zendesk_tickets"]
    first = call(standin, zendesk.EXPORT_PATH, {"start_time": epoch_seconds(BUSY[0]), "per_page": 100})
    assert set(first.json()) == {"tickets", "after_url", "after_cursor", "before_url", "before_cursor", "end_of_stream"}
    assert first.json()["end_of_stream"] is False and len(first.json()["tickets"]) == 100
    pages = walk(standin, first, lambda r: None if r.json()["end_of_stream"] else call(standin, r.json()["after_url"]))
    assert pages[-1].json()["after_cursor"], "the last page still carries a cursor"
    tickets = [t for page in pages for t in page.json()["tickets"]]
    stamps = [t["generated_timestamp"] for t in tickets]
    assert stamps == sorted(stamps) and {t["id"] for t in tickets} == {
        t["id"] for t in standin.expected("tickets", BUSY[0], AFTER_ALL[1])}
    beyond = call(standin, zendesk.EXPORT_PATH, {"cursor": pages[-1].json()["after_cursor"]}).json()
    assert beyond["tickets"] == [] and beyond["end_of_stream"] is True and beyond["after_cursor"]
    recent = call(standin, zendesk.EXPORT_PATH, {"start_time": epoch_seconds(CLOCK)})
    assert recent.status_code == 400 and recent.json()["error"] == "InvalidValue"


def test_shopify_orders_wire(running: dict[str, StandIn]) -> None:
    standin = running["shopify_orders"]
    window = {"status": "any", "limit": 250, "updated_at_min": "2026-11-17T00:00:00Z",
              "updated_at_max": "2026-11-18T00:00:00Z"}
    first = call(standin, shopify.ORDERS_PATH, window)
    assert len(first.json()["orders"]) == 250 and set(first.links) == {"next"}
    assert set(parse_qs(urlsplit(first.links["next"]["url"]).query)) == {"limit", "page_info"}
    second = call(standin, first.links["next"]["url"])
    assert len(second.json()["orders"]) == 10 and set(second.links) == {"previous"}
    order = first.json()["orders"][0]
    assert order["updated_at"].endswith("+01:00") and isinstance(order["total_price"], str)
    assert isinstance(order["line_items"], list) and isinstance(order["customer"], dict)
    page_info = parse_qs(urlsplit(first.links["next"]["url"]).query)["page_info"][0]
    mixed = call(standin, shopify.ORDERS_PATH, {"page_info": page_info, "updated_at_min": "2026-11-17T00:00:00Z"})
    assert mixed.status_code == 400 and "page_info" in mixed.json()["errors"]
    assert call(standin, shopify.ORDERS_PATH, {"limit": 251}).status_code == 400
    quiet = call(standin, shopify.ORDERS_PATH, {**window, "updated_at_min": "2026-11-18T00:00:00Z",
                                                "updated_at_max": "2026-11-19T00:00:00Z"})
    assert quiet.json() == {"orders": []} and "Link" not in quiet.headers


def test_shopify_updated_at_max_is_inclusive() -> None:
    with shopify.ShopifyOrders() as standin:
        standin.insert("orders", BUSY[1])
        answer = call(standin, shopify.ORDERS_PATH, {"status": "any", "limit": 250,
                                                     "updated_at_min": "2026-11-17T23:00:00Z",
                                                     "updated_at_max": "2026-11-18T00:00:00Z"}).json()
        assert parse_instant(answer["orders"][-1]["updated_at"]) == BUSY[1]


def test_jira_wire(running: dict[str, StandIn]) -> None:
    standin = running["jira_issues"]
    jql = jira.JiraIssues.jql("2026-11-17", "2026-11-18")
    first = call(standin, jira.SEARCH_PATH, {"jql": jql, "startAt": 0, "maxResults": 100}).json()
    assert (first["startAt"], first["maxResults"], first["total"], len(first["issues"])) == (0, 100, 260, 100)
    issue = first["issues"][0]
    assert isinstance(issue["id"], str) and issue["key"].startswith("SAND-")
    assert issue["fields"]["updated"].endswith("+0000")
    last = call(standin, jira.SEARCH_PATH, {"jql": jql, "startAt": 200, "maxResults": 100}).json()
    assert len(last["issues"]) == 60
    capped = call(standin, jira.SEARCH_PATH, {"jql": jql, "maxResults": 500}).json()
    assert capped["maxResults"] == 100 and len(capped["issues"]) == 100
    only = call(standin, jira.SEARCH_PATH, {"jql": jql, "fields": "summary"}).json()
    assert set(only["issues"][0]["fields"]) == {"summary"}
    iso = call(standin, jira.SEARCH_PATH, {"jql": 'updated >= "2026-11-17T00:00:00Z"'})
    assert iso.status_code == 400 and iso.json()["errorMessages"][0].startswith("Error in the JQL Query")
    pages = walk(standin, call(standin, jira.WORKLOGS_PATH, {"since": ms(BUSY[0])}),
                 lambda r: None if r.json()["lastPage"] else call(standin, r.json()["nextPage"]))
    assert len(pages) >= 3 and all(set(p.json()) == {"values", "since", "until", "self", "nextPage", "lastPage"}
                                   for p in pages)
    times = [v["updatedTime"] for page in pages for v in page.json()["values"]]
    assert times == sorted(times) and times[0] > ms(BUSY[0]) and times[-1] > ms(BUSY[1])  # start-only
    after_last = call(standin, pages[-1].json()["nextPage"]).json()
    assert after_last["values"] == [] and after_last["lastPage"] is True and after_last["nextPage"], \
        "nextPage never runs out: following it alone would not end"


def test_pipedrive_wire(running: dict[str, StandIn]) -> None:
    standin = running["pipedrive_deals"]
    params = {"since_timestamp": "2026-11-17 00:00:00", "items": "deal", "limit": 100}
    first = call(standin, pipedrive.RECENTS_PATH, params).json()
    assert first["success"] is True and len(first["data"]) == 100
    assert first["additional_data"]["pagination"] == {"start": 0, "limit": 100, "more_items_in_collection": True,
                                                      "next_start": 100}
    item = first["data"][0]
    assert item["item"] == "deal" and item["id"] == item["data"]["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", item["data"]["update_time"])
    pages = walk(standin, call(standin, pipedrive.RECENTS_PATH, params), lambda r: call(
        standin, pipedrive.RECENTS_PATH, {**params, "start": r.json()["additional_data"]["pagination"]["next_start"]})
        if r.json()["additional_data"]["pagination"]["more_items_in_collection"] else None)
    assert "next_start" not in pages[-1].json()["additional_data"]["pagination"]
    assert sum(len(p.json()["data"]) for p in pages) == len(standin.expected("recents", BUSY[0], AFTER_ALL[1]))
    iso = call(standin, pipedrive.RECENTS_PATH, {**params, "since_timestamp": "2026-11-17T00:00:00Z"}).json()
    assert iso["data"] == first["data"]
    nothing = call(standin, pipedrive.RECENTS_PATH, {**params, "since_timestamp": "2026-11-21 00:00:00"}).json()
    assert nothing["data"] is None and nothing["additional_data"]["pagination"]["more_items_in_collection"] is False


def test_facebook_insights_wire(running: dict[str, StandIn]) -> None:
    standin = running["facebook_ads_insights"]
    token = requests.post(standin.token_url, data={"grant_type": "client_credentials", "client_id": standin.client_id,
                                                   "client_secret": standin.client_secret}, timeout=10).json()
    assert "expires_in" not in token
    params = {"level": "campaign", "time_increment": 1, "fields": ",".join(facebook.FIELDS), "limit": 100,
              "time_range": json.dumps({"since": "2026-11-17", "until": "2026-11-17"})}
    first = call(standin, facebook.INSIGHTS_PATH, params)
    assert first.json()["paging"]["next"].startswith(standin.base_url + facebook.INSIGHTS_PATH)
    pages = walk(standin, first, lambda r: call(standin, r.json()["paging"]["next"]) if "next" in r.json()[
        "paging"] else None)
    rows = [row for page in pages for row in page.json()["data"]]
    assert len(pages) == 3 and len(rows) == 260
    assert all(row["date_start"] == row["date_stop"] == "2026-11-17" for row in rows)
    assert all(isinstance(row[k], str) for row in rows for k in ("impressions", "spend", "campaign_id"))
    assert len({(row["date_start"], row["campaign_id"]) for row in rows}) == 260
    assert any("actions" not in row for row in rows) or all(int(row["clicks"]) > 0 for row in rows)
    two_days = {**params, "limit": 1000, "time_range": json.dumps({"since": "2026-11-16", "until": "2026-11-17"})}
    assert len(call(standin, facebook.INSIGHTS_PATH, two_days).json()["data"]) == DAY_COUNTS[BUSY_DAY] + 60  # inclusive
    bad = call(standin, facebook.INSIGHTS_PATH, {**params, "time_range": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 100
    quiet = call(standin, facebook.INSIGHTS_PATH, {**params, "time_range": json.dumps({"since": "2026-11-18",
                                                                                       "until": "2026-11-18"})})
    assert quiet.json() == {"data": []}


def test_jsonapi_wire(running: dict[str, StandIn]) -> None:
    standin = running["jsonapi_articles"]
    params = {"filter[updated-at][gte]": "2026-11-17T00:00:00Z", "filter[updated-at][lt]": "2026-11-18T00:00:00Z",
              "page[size]": 100}
    first = call(standin, jsonapi.ARTICLES_PATH, params)
    assert first.headers["Content-Type"] == jsonapi.MEDIA_TYPE
    body = first.json()
    assert body["meta"] == {"record-count": 260, "page-count": 3} and set(body["links"]) == {"first", "next", "last"}
    article = body["data"][0]
    assert set(article) == {"id", "type", "links", "attributes", "relationships"} and isinstance(article["id"], str)
    assert re.search(r"\.\d{3}\+01:00$", article["attributes"]["updated-at"])
    pages = walk(standin, first, lambda r: call(standin, r.json()["links"]["next"]) if "next" in r.json()[
        "links"] else None)
    assert [len(p.json()["data"]) for p in pages] == [100, 100, 60] and "prev" in pages[-1].json()["links"]
    unknown = call(standin, jsonapi.ARTICLES_PATH, {"filter[author]": "9"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["code"] == "102"
    quiet = call(standin, jsonapi.ARTICLES_PATH, {**params, "filter[updated-at][gte]": "2026-11-18T00:00:00Z",
                                                  "filter[updated-at][lt]": "2026-11-19T00:00:00Z"}).json()
    assert quiet["data"] == [] and quiet["meta"] == {"record-count": 0, "page-count": 0}
    assert "next" not in quiet["links"]


def test_marketo_wire(running: dict[str, StandIn]) -> None:
    standin = running["marketo_activities"]
    token = call(standin, marketo.TOKEN_PATH, {"sinceDatetime": "2026-11-17T00:00:00Z"}).json()
    assert token["success"] is True and token["nextPageToken"] and token["requestId"]
    params = {"activityTypeIds": "1,6,12", "batchSize": 100}
    pages = walk(standin, call(standin, marketo.ACTIVITIES_PATH, {**params, "nextPageToken": token["nextPageToken"]}),
                 lambda r: call(standin, marketo.ACTIVITIES_PATH, {**params, "nextPageToken": r.json()[
                     "nextPageToken"]}) if r.json()["moreResult"] else None)
    bodies = [p.json() for p in pages]
    empty_mid_stream = [b for b in bodies[:-1] if "result" not in b]
    assert empty_mid_stream and all(b["moreResult"] is True for b in empty_mid_stream), \
        "the quiet day is scanned as a page without `result` that still says moreResult"
    assert bodies[-1]["moreResult"] is False
    activities = [a for b in bodies for a in b.get("result", [])]
    assert [a["marketoGUID"] for a in activities] == [
        a["marketoGUID"] for a in standin.expected("activities", BUSY[0], AFTER_ALL[1])]  # start-only, oldest first
    assert {"activityDate", "leadId", "primaryAttributeValue", "attributes"} <= set(activities[0])
    only_email = call(standin, marketo.ACTIVITIES_PATH, {"activityTypeIds": "6", "batchSize": 300,
                                                         "nextPageToken": token["nextPageToken"]}).json()
    assert only_email["result"] and all(a["activityTypeId"] == 6 for a in only_email["result"])
    missing = call(standin, marketo.ACTIVITIES_PATH, {"nextPageToken": token["nextPageToken"]})
    assert missing.status_code == 200 and missing.json()["success"] is False
    assert missing.json()["errors"][0]["code"] == "1003"
    assert call(standin, marketo.ACTIVITIES_PATH, {**params, "batchSize": 301,
                                                   "nextPageToken": token["nextPageToken"]}).json()["success"] is False


# --- (b) plain dlt loads exactly what the stand-in holds -----------------------------------------

@pytest.mark.parametrize("window", [pytest.param(BUSY, id="busy"), pytest.param(QUIET, id="quiet")])
@pytest.mark.parametrize("cls, resource", LOADABLE)
def test_plain_dlt_loads_exactly_the_window(running: dict[str, StandIn], tmp_path: Path, cls: type[StandIn],
                                            resource: str, window: tuple[datetime, datetime]) -> None:
    standin = running[cls.name]
    before = len(standin.requests)
    load_with_plain_dlt(standin, resource, *window, tmp_path / "plain.duckdb")
    data_requests = [r for r in standin.requests[before:] if r.path != standin.token_path]
    assert all(r.status == 200 for r in data_requests)
    rows = table_rows(tmp_path / "plain.duckdb", resource)
    expected = standin.expected_rows(resource, *window)
    assert_rows_equal(rows, expected, standin.row_key(resource))
    if window is BUSY:
        assert len(rows) >= 250 and len(data_requests) >= 2, "the busy day must take several pages"
    else:
        assert rows == []


@pytest.mark.parametrize("cls, resource", START_ONLY)
def test_start_only_apis_serve_records_after_the_window_end(running: dict[str, StandIn], tmp_path: Path,
                                                            cls: type[StandIn], resource: str) -> None:
    """Without dlt's `end_value`, a start-only API's answer runs to now: every record from the window's
    start on, including all of the later days."""
    standin = running[cls.name]
    config = plain(standin, *BUSY)
    table = next(r for r in config["resources"] if r["name"] == resource)
    del table["endpoint"]["incremental"]["end_value"]
    load_with_plain_dlt(standin, resource, *BUSY, tmp_path / "plain.duckdb", config=config)
    rows = table_rows(tmp_path / "plain.duckdb", resource)
    assert_rows_equal(rows, standin.expected_rows(resource, BUSY[0], AFTER_ALL[1]), standin.row_key(resource))
    assert len(rows) > len(standin.expected(resource, *BUSY))


# --- switches and faults -------------------------------------------------------------------------

def test_slack_error_as_200_fails_plain_dlt_only_with_a_hook(tmp_path: Path) -> None:
    with slack.SlackMessages(errors_as_200=True) as standin:
        answer = call(standin, "/api/conversations.history", {"channel": slack.CHANNELS[0][0]})
        assert answer.status_code == 200 and answer.json()["error"] == "missing_scope"
        with pytest.raises(PipelineStepFailed, match="missing_scope"):
            load_with_plain_dlt(standin, "messages", *BUSY, tmp_path / "hooked.duckdb")
        config = plain(standin, *BUSY)
        for resource in config["resources"]:
            del resource["endpoint"]["response_actions"]
        load_with_plain_dlt(standin, "messages", *BUSY, tmp_path / "silent.duckdb", config=config)
        assert table_rows(tmp_path / "silent.duckdb", "messages") == [], "dlt reads ok=false as an empty page"


def test_marketo_errors_fail_plain_dlt_through_its_hook(tmp_path: Path) -> None:
    with marketo.MarketoActivities() as standin:
        config = plain(standin, *BUSY)
        config["resources"][1]["endpoint"]["params"]["activityTypeIds"] = ""
        with pytest.raises(PipelineStepFailed, match="1003"):
            load_with_plain_dlt(standin, "activities", *BUSY, tmp_path / "plain.duckdb", config=config)


def test_a_quiet_day_without_the_data_key_loads_no_rows(tmp_path: Path) -> None:
    with stripe.StripeCharges(omit_empty_data_key=True) as standin:
        quiet = call(standin, "/v1/charges", {"created[gte]": epoch_seconds(QUIET[0]),
                                              "created[lt]": epoch_seconds(QUIET[1])}).json()
        assert quiet == {"object": "list", "has_more": False, "url": "/v1/charges"}
        load_with_plain_dlt(standin, "charges", *QUIET, tmp_path / "plain.duckdb")
        assert table_rows(tmp_path / "plain.duckdb", "charges") == []


@pytest.mark.parametrize("cls", EVERY)
def test_inserted_and_updated_records_reach_the_next_load(tmp_path: Path, cls: type[StandIn]) -> None:
    with cls() as standin:
        resource = cls.resources[0]
        table = standin.tables[resource]
        parent = table.entries[0].parent
        moment = QUIET[0] + timedelta(hours=10, seconds=7)
        inserted = standin.insert(resource, moment, parent)
        expected = standin.expected(resource, *QUIET)
        served = table.moment(expected[0])  # to the API's precision; a day for daily insights
        assert len(expected) == 1 and (served == QUIET[0] if cls.name == "facebook_ads_insights"
                                       else abs(served - moment) < timedelta(seconds=1))
        load_with_plain_dlt(standin, resource, *QUIET, tmp_path / "plain.duckdb")
        rows = table_rows(tmp_path / "plain.duckdb", resource)
        assert_rows_equal(rows, standin.expected_rows(resource, *QUIET), standin.row_key(resource))
        assert dlt_row(inserted).items() <= standin.expected_rows(resource, *QUIET)[0].items()
        busy = table.key(standin.tables[resource].between(*BUSY)[0])
        if cls.name != "slack_messages":  # a Slack message's ts is its identity: it is edited, not moved
            standin.update(resource, busy, moment=QUIET[0] + timedelta(hours=11))
            assert len(standin.expected(resource, *QUIET)) == 2 and len(standin.expected(resource, *BUSY)) == 259


def test_a_slack_edit_keeps_the_message_in_its_window() -> None:
    with slack.SlackMessages() as standin:
        entry = standin.tables["messages"].between(*BUSY)[0]
        edited = standin.edit(entry.parent, entry.record["ts"], "edited text", QUIET[0])
        assert edited["text"] == "edited text" and edited["edited"]["ts"].startswith(str(epoch_seconds(QUIET[0])))
        assert edited in standin.expected("messages", *BUSY)


def test_a_basic_only_token_endpoint_is_out_of_plain_dlts_reach() -> None:
    """dlt's `OAuth2ClientCredentials` posts the credentials in the form body; an API whose token
    endpoint takes HTTP Basic alone (RFC 6749's recommended method) cannot be configured in plain dlt."""
    with pipedrive.PipedriveDeals(token_auth_methods={"client_secret_basic"}) as standin:
        assert standin.plain_dlt_config(*BUSY) is None
        form = {"grant_type": "client_credentials", "client_id": standin.client_id,
                "client_secret": standin.client_secret}
        refused = requests.post(standin.token_url, data=form, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert requests.post(standin.token_url, data={"grant_type": "client_credentials"},
                             auth=(standin.client_id, standin.client_secret), timeout=10).status_code == 200


def test_a_required_scope_is_enforced_and_plain_dlt_asks_for_it(tmp_path: Path) -> None:
    with hubspot.HubSpotContacts(required_scope="crm.objects.contacts.read") as standin:
        refused = requests.post(standin.token_url, data={"grant_type": "client_credentials"},
                                auth=(standin.client_id, standin.client_secret), timeout=10)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
        load_with_plain_dlt(standin, "contacts", *BUSY, tmp_path / "plain.duckdb")
        assert len(table_rows(tmp_path / "plain.duckdb", "contacts")) == 260


def test_timestamps_compare_as_utc_instants() -> None:
    spellings = ["2026-11-17T09:12:33Z", "2026-11-17T09:12:33.000+0000", "2026-11-17T10:12:33+01:00",
                 "2026-11-17 09:12:33"]
    rows = [dlt_row({"at": spelling}) for spelling in spellings]
    assert {row["at"] for row in rows} == {datetime(2026, 11, 17, 9, 12, 33, tzinfo=UTC)}
    assert dlt_row({"day": "2026-11-17", "ts": "1794906753.000100", "n": 1794906753, "price": "19.99"}) == {
        "day": "2026-11-17", "ts": "1794906753.000100", "n": 1794906753, "price": "19.99"}
    assert dlt_row({"updatedAt": None, "SystemModstamp": "2026-11-17T09:12:33Z", "updated-at": 1, "x": {"a-b": 1}}) == {
        "system_modstamp": datetime(2026, 11, 17, 9, 12, 33, tzinfo=UTC), "updated_at": 1, "x": {"a-b": 1}}


def test_fail_next_answers_the_next_data_requests_with_a_fault() -> None:
    with stripe.StripeCharges() as standin:
        token = standin.access_token()
        standin.fail_next(429, times=2, headers={"Retry-After": "1"})
        answers = [call(standin, "/v1/charges", token=token) for _ in range(3)]
        assert [a.status_code for a in answers] == [429, 429, 200]
        assert answers[0].headers["Retry-After"] == "1"


def test_pipedrive_null_data_loads_no_rows(tmp_path: Path) -> None:
    """Past the last change Pipedrive answers `"data": null`: dlt reads it as an empty page."""
    with pipedrive.PipedriveDeals() as standin:
        load_with_plain_dlt(standin, "recents", *AFTER_ALL, tmp_path / "plain.duckdb")
        assert table_rows(tmp_path / "plain.duckdb", "recents") == []
        assert [r.status for r in standin.requests_to(pipedrive.RECENTS_PATH)] == [200]


# --- dlt behaviour the stand-ins expose ----------------------------------------------------------

def test_dlt_incremental_compares_cursor_text_not_instants(tmp_path: Path) -> None:
    """dlt's `incremental` compares cursor values as they come: text bounds in `Z` against values in
    `+01:00` drop, silently, every article updated in the window's last UTC hour (its local text
    already reads the next day). A loader must compare instants."""
    with jsonapi.JsonApiArticles() as standin:
        config = plain(standin, *BUSY)
        endpoint = config["resources"][0]["endpoint"]
        for name in ("filter[updated-at][gte]", "filter[updated-at][lt]"):
            del endpoint["params"][name]
        endpoint["incremental"] = {"start_param": "filter[updated-at][gte]", "end_param": "filter[updated-at][lt]",
                                   "cursor_path": "attributes.updated-at", "initial_value": "2026-11-17T00:00:00Z",
                                   "end_value": "2026-11-18T00:00:00Z"}
        load_with_plain_dlt(standin, "articles", *BUSY, tmp_path / "plain.duckdb", config=config)
        rows = table_rows(tmp_path / "plain.duckdb", "articles")
        served = standin.expected("articles", *BUSY)
        last_hour = [a for a in served if parse_instant(a["attributes"]["updated-at"]).hour == 23]
        assert last_hour and len(rows) == len(served) - len(last_hour)


def test_dlt_offset_paging_steps_by_its_own_limit(tmp_path: Path) -> None:
    """Jira caps `maxResults` at 100 and says so; dlt's offset paginator steps by the limit it asked
    for, so asking 200 skips every other hundred issues without an error."""
    with jira.JiraIssues() as standin:
        config = plain(standin, *BUSY)
        config["resources"][0]["endpoint"]["paginator"]["limit"] = 200
        load_with_plain_dlt(standin, "issues", *BUSY, tmp_path / "plain.duckdb", config=config)
        assert len(table_rows(tmp_path / "plain.duckdb", "issues")) == 100 + 60 < 260
