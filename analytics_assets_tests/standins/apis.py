"""The stand-ins: local servers shaped like well-known public REST APIs, each following that API's
public documentation for auth, paging, field names, how records are wrapped, quiet days and errors.
Each is a real HTTP server on 127.0.0.1 with an OAuth2 client-credentials token endpoint and
deterministic data over the five UTC days 2026-11-16..20 (260 records on the busy day 2026-11-17,
none on the quiet day 2026-11-18). For the README ("APIs shaped like these are tested"):

- **GitHub** — REST API "List repository issues" (`GET /repos/{owner}/{repo}/issues`): top-level JSON
  list, RFC 8288 `Link` header (next URLs on `/repositories/{id}/...`), start-only `since`, ISO `Z`
  times, nested `user`/`labels`, optional `pull_request`.
- **Stripe** — "List all charges" (`GET /v1/charges`): `data` + `has_more`, next page by
  `starting_after=<last id>`, `created[gte]`/`created[lt]` in epoch seconds, nested `billing_details`.
- **HubSpot** — CRM v3 "Search contacts" (`POST /crm/v3/objects/contacts/search`): JSON body filters in
  epoch ms, `results`, `paging.next.after` sent back in the body, string ids, camelCase `updatedAt`,
  nested cursor `properties.hs_lastmodifieddate`.
- **Salesforce** — REST "Query" (`GET /services/data/v62.0/query?q=SOQL`): window in the SOQL WHERE
  clause, `records`, relative `nextRecordsUrl`, `done`, `totalSize`, PascalCase, `+0000` times,
  `Sforce-Query-Options: batchSize`.
- **Slack** — Web API `conversations.list` -> `conversations.history` (parent/child): `ok`/`error` on
  HTTP 200 (`missing_scope`), `messages`, `has_more`, `response_metadata.next_cursor`, `oldest`/`latest`,
  `ts` as decimal epoch text, key (channel, ts).
- **Zendesk** — "Incremental Ticket Export, Cursor Based" (`GET /api/v2/incremental/tickets/cursor.json`):
  `tickets`, `after_cursor`, `end_of_stream` (an inverse has-more), start-only `start_time` in epoch
  seconds, `generated_timestamp`.
- **Shopify** — Admin REST "Order list" (`GET /admin/api/2024-10/orders.json`): `orders`, `Link` header
  with `page_info` (filters refused alongside it), inclusive `updated_at_min`/`updated_at_max`, `+01:00`
  shop times, money as text, nested `customer`/`line_items`.
- **Jira Cloud** — REST v3 "Search for issues using JQL" (`GET /rest/api/3/search`): window in `jql`
  (dates), `startAt`/`maxResults`/`total`, `issues`, text ids, nested `fields.updated` (`+0000`); and
  "Get IDs of updated worklogs" (`GET /rest/api/3/worklog/updated`): start-only `since` in epoch ms,
  `updatedTime` epoch ms, `nextPage` always present, inverse `lastPage`.
- **Pipedrive** — API v1 "Get recents" (`GET /v1/recents?items=deal`): `data` (null when empty), offset
  paging with `additional_data.pagination.more_items_in_collection`/`next_start`, start-only naive UTC
  `since_timestamp`, nested cursor `data.update_time`.
- **Meta Marketing API** — "Ad account insights" (`GET /v21.0/act_{id}/insights?level=campaign&time_increment=1`):
  `data`, full `paging.next` URLs, `time_range` JSON of dates with inclusive `until`, metrics as text,
  composite key (`date_start`, `campaign_id`).
- **JSON:API** — JSON:API 1.0 as Rails jsonapi-resources serves it (`GET /api/v1/articles`):
  `data[].attributes`, dasherized `updated-at` (`+01:00`), `page[number]`/`page[size]`,
  `meta.page-count`, `links.next`, `filter[updated-at][gte]`/`[lt]`.
- **Marketo** — "Get Paging Token" -> "Get Lead Activities" (`GET /rest/v1/activities.json`, parent/child):
  `nextPageToken` page tokens, `moreResult`, `result` omitted when empty, empty pages mid-stream,
  start-only, errors as `success: false` on HTTP 200.

Where a real API authenticates otherwise (API keys, app JWTs, authorization codes), the stand-in uses
OAuth2 client credentials instead and its class docstring says so.
"""

from __future__ import annotations

from .facebook import FacebookAdsInsights
from .github import GitHubIssues
from .hubspot import HubSpotContacts
from .jira import JiraIssues
from .jsonapi import JsonApiArticles
from .marketo import MarketoActivities
from .pipedrive import PipedriveDeals
from .salesforce import SalesforceAccounts
from .server import StandIn
from .shopify import ShopifyOrders
from .slack import SlackMessages
from .stripe import StripeCharges
from .zendesk import ZendeskTickets

ALL: tuple[type[StandIn], ...] = (GitHubIssues, StripeCharges, HubSpotContacts, SalesforceAccounts, SlackMessages,
                                  ZendeskTickets, ShopifyOrders, JiraIssues, PipedriveDeals, FacebookAdsInsights,
                                  JsonApiArticles, MarketoActivities)

# The shapes each stand-in covers, in the brief's vocabulary; `REQUIRED` must all be covered.
SHAPES: dict[str, frozenset[str]] = {
    "github_issues": frozenset({"link_header", "page_number", "top_level_list", "start_only", "iso_z", "nested_data",
                                "quiet_empty_list"}),
    "stripe_charges": frozenset({"body_cursor", "has_more", "wrapped_records", "epoch_seconds", "nested_data",
                                 "quiet_empty_list"}),
    "hubspot_contacts": frozenset({"body_cursor", "wrapped_records", "camel_case", "nested_cursor", "iso_z",
                                   "window_in_body", "quiet_empty_list"}),
    "salesforce_accounts": frozenset({"next_url_in_body", "wrapped_records", "pascal_case", "iso_plus0000",
                                      "window_in_param", "nested_data", "quiet_empty_list"}),
    "slack_messages": frozenset({"body_cursor", "has_more", "wrapped_records", "error_as_200", "epoch_decimal_text",
                                 "parent_child", "composite_key", "quiet_empty_list"}),
    "zendesk_tickets": frozenset({"body_cursor", "end_of_stream", "wrapped_records", "start_only", "epoch_seconds",
                                  "nested_data"}),
    "shopify_orders": frozenset({"link_header", "page_token", "wrapped_records", "iso_offset", "nested_data",
                                 "quiet_empty_list"}),
    "jira_issues": frozenset({"offset_total", "wrapped_records", "nested_cursor", "iso_plus0000", "window_in_param",
                              "date", "start_only", "epoch_millis", "next_url_in_body", "quiet_empty_list"}),
    "pipedrive_deals": frozenset({"more_items_in_collection", "offset_has_more", "wrapped_records", "nested_cursor",
                                  "naive", "start_only", "quiet_null"}),
    "facebook_ads_insights": frozenset({"next_url_in_body", "wrapped_records", "date", "composite_key",
                                        "window_in_param", "nested_data", "quiet_empty_list"}),
    "jsonapi_articles": frozenset({"jsonapi", "page_number", "dashed_names", "nested_cursor", "iso_offset",
                                   "quiet_empty_list"}),
    "marketo_activities": frozenset({"page_token", "more_result", "quiet_omits_key", "camel_case", "parent_child",
                                     "start_only", "error_as_200", "iso_z", "wrapped_records"}),
}
REQUIRED = frozenset({
    "body_cursor", "link_header", "next_url_in_body", "page_token", "offset_total", "page_number",
    "has_more", "end_of_stream", "more_result", "more_items_in_collection",
    "camel_case", "pascal_case", "dashed_names", "nested_cursor",
    "top_level_list", "wrapped_records", "jsonapi", "quiet_omits_key", "quiet_empty_list", "error_as_200",
    "iso_z", "iso_plus0000", "iso_offset", "naive", "date", "epoch_seconds", "epoch_millis", "epoch_decimal_text",
    "parent_child", "composite_key", "start_only", "nested_data",
})


def by_name(name: str) -> type[StandIn]:
    return next(cls for cls in ALL if cls.name == name)
