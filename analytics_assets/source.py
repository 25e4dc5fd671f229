"""The seed's `rest_api` config dict, accepted as written, handed to dlt's `rest_api_source`.

dlt validates dict configs against its own names and rejects the seed's `"type": "oauth2"`,
`token_url` and plain offset paging semantics we need. Rather than rewrite the source, each seed
form is replaced by the object dlt accepts at the same place (an auth object, a paginator object, a
session), and our checks ride on dlt's own hooks (`response_actions`, `processing_steps`, column
hints). The result is an ordinary dlt source that runs in a plain dlt pipeline.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional

import orjson
from requests import Response

from dlt.common import jsonpath
from dlt.extract import DltSource
from dlt.sources.rest_api import rest_api_source as dlt_rest_api_source

from .auth import RefreshingOAuth2ClientCredentials, auth_from_seed, is_seed_auth
from .errors import MalformedResponse, MissingCredentials
from .http import attach_prefetcher, build_session, describe
from .paginator import SafeOffsetPaginator
from .prefetch import Prefetcher
from .pages import PageToArrow
from .schema import PageValidator, column_hints, declared_columns
from .settings import ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ApiSettings, check_url, default_token_url
from .stats import SyncStats

SOURCE_NAME = "analytics"


@dataclass(frozen=True)
class Window:
    """A half-open interval on `updated_at`, as the API filters it."""

    start: datetime
    end: datetime

    def params(self) -> dict[str, str]:
        return {"updated_since": _iso(self.start), "updated_until": _iso(self.end)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rest_api_source(
    config: Mapping[str, Any],
    name: str = SOURCE_NAME,
    *,
    settings: Optional[ApiSettings] = None,
    window: Optional[Window] = None,
    stats: Optional[SyncStats] = None,
    **source_kwargs: Any,
) -> DltSource:
    """Drop-in for dlt's `rest_api_source` that takes the seed's config as written."""
    config = copy.deepcopy(dict(config))
    stats = stats if stats is not None else SyncStats()
    client = config["client"]
    auth = client.get("auth")
    if settings is None:  # the config alone, as in the seed: our defaults, which are the seed's policy
        token_url = auth.get("token_url") if is_seed_auth(auth) else None
        settings = ApiSettings(client["base_url"], token_url or default_token_url(client["base_url"]))
    else:
        check_url(client["base_url"], ENV_BASE_URL)
    policy = settings.retry

    if is_seed_auth(auth):
        for key, variable in (("client_id", ENV_CLIENT_ID), ("client_secret", ENV_CLIENT_SECRET)):
            if not auth.get(key):
                raise MissingCredentials(key, variable)
        auth = auth_from_seed(
            auth,
            refresh_margin=settings.token_refresh_margin,
            session=build_session(policy, stats, base_url=settings.token_url),
            stats=stats,
        )
        client["auth"] = auth
    reauthorize = auth.reauthorize if isinstance(auth, RefreshingOAuth2ClientCredentials) else None
    client["session"] = build_session(
        policy, stats, reauthorize, pool_size=max(10, settings.max_concurrency), base_url=client["base_url"]
    )
    prefetcher = attach_prefetcher(client["session"], settings.max_concurrency)

    defaults = config.get("resource_defaults") or {}
    freeze = settings.schema_drift == "freeze"
    config["resources"] = [
        _prepare_resource(resource, defaults, stats, window, freeze, prefetcher) for resource in config["resources"]
    ]
    source = dlt_rest_api_source(config, name=name, **source_kwargs)
    for resource in source.resources.values():
        if declared_columns(resource.name):
            resource.add_step(PageToArrow(PageValidator(resource.name, stats, freeze)))
    source.stats = stats  # type: ignore[attr-defined]
    return source


def _prepare_resource(
    resource: Any,
    defaults: Mapping[str, Any],
    stats: SyncStats,
    window: Optional[Window],
    freeze: bool,
    prefetcher: Prefetcher,
) -> Any:
    if not isinstance(resource, dict):
        return resource
    name = resource["name"]
    endpoint = resource.setdefault("endpoint", {})
    if isinstance(endpoint, str):
        endpoint = resource["endpoint"] = {"path": endpoint}
    paginator = endpoint.get("paginator", (defaults.get("endpoint") or {}).get("paginator"))
    if isinstance(paginator, dict) and paginator.get("type") == "offset":
        options = {k: v for k, v in paginator.items() if k not in ("type", "stop_after_empty_page")}
        endpoint["paginator"] = SafeOffsetPaginator(name, stats, prefetcher=prefetcher, **options)
    if window is not None:
        endpoint["params"] = {**endpoint.get("params", {}), **window.params()}
    selector = endpoint.get("data_selector")
    if isinstance(selector, str):
        endpoint["response_actions"] = [
            *endpoint.get("response_actions", []),
            page_body_check(selector),
        ]
        endpoint["data_selector"] = jsonpath.compile_path(selector)  # dlt would parse it per page
    if declared_columns(name):
        resource["columns"] = {**column_hints(name), **resource.get("columns", {})}
    return resource


# orjson reads an integer beyond 64 bits (from 19 digits on, for negative ones) as a float, losing
# digits silently. A run of 19 digits anywhere in the body sends it to Python's decoder, which keeps
# integers exact; finding one costs a byte translation and a substring search (~20 µs a page).
_DIGITS_AS_ONES = bytes.maketrans(b"0123456789", b"1" * 10)
_LONG_NUMBER = b"1" * 19


def _decode(response: Response) -> Any:
    content = response.content
    if isinstance(content, bytes) and _LONG_NUMBER not in content.translate(_DIGITS_AS_ONES):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return response.json()  # Python's decoder: more lenient; raises ValueError when it fails too


def page_body_check(data_selector: str) -> Callable[..., Response]:
    """A dlt response action: a page must be a JSON object with a list under `data_selector`.

    dlt would otherwise fail on invalid JSON with a bare decoder error, and load zero rows without
    a word when the selector finds nothing. The parsed body is kept on the response so dlt and the
    paginator do not parse it again.

    The body is decoded by orjson straight from the response bytes (about three times faster than
    requests' `json()` here, and the largest single cost of a page). orjson is stricter than
    Python's decoder (a lone surrogate escape, NaN, a byte order mark, non-UTF-8 bodies) and reads
    integers beyond 64 bits as floats: such bodies are decoded by `response.json()` instead, so
    the records are exactly those Python's decoder reads, and a bad one reaches the schema check,
    which names the record and field, as before.
    """

    def check(response: Response, *args: Any, **kwargs: Any) -> Response:
        if response.status_code >= 300 or getattr(response, "_aa_checked", False):
            return response
        where = describe(response.request)
        content_type = response.headers.get("Content-Type", "")
        try:
            payload = _decode(response)
        except ValueError:
            kind = "an HTML page" if "html" in content_type else "invalid JSON"
            raise MalformedResponse(where, f"{kind} (Content-Type {content_type or 'missing'!r})") from None
        if not isinstance(payload, dict) or data_selector not in payload:
            raise MalformedResponse(where, f"no `{data_selector}` key in the response body")
        if not isinstance(payload[data_selector], list):
            raise MalformedResponse(where, f"`{data_selector}` is not a list of records")
        total = payload.get("total")
        if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
            raise MalformedResponse(where, f"`total` is not a whole number ({str(total)[:20]!r})")
        response.json = lambda **_: payload  # type: ignore[method-assign]
        response._aa_checked = True  # type: ignore[attr-defined]
        return response

    return check
