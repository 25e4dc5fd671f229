"""The API definition: a dlt `rest_api` config dict, built in or read from ANALYTICS_API_CONFIG,
checked once (`config.py`) into what this project needs, and the window a run asks it for.

The built-in definition is the seed's config dict, with the seed's neutral schema declared as dlt
column hints and the window declared as the endpoint's `incremental`. Names, asset specs, column
metadata and checks are derived from the dict itself: nothing is built to learn them.

Where requests, and above all credentials, may go is decided here too, with the URL parser that
connects: requests hands URLs to urllib3, so they are checked with urllib3's own `parse_url`. A
second parser (`urllib.parse`) can read the same text as another host (`http://evil\\@127.0.0.1/`
is `127.0.0.1` to one and `evil` to the other); anything either could read two ways is refused
outright: backslashes, whitespace and control characters, and credentials in the URL.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Optional

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..settings import Settings, SettingsError
from . import config
from .config import ApiConfig, ResourceOptions

BUILT_IN = "the built-in API definition"
DEFAULT_TOKEN_PATH = "/oauth/token"

BUILT_IN_CONFIG: dict[str, Any] = {
    "client": {"auth": {"type": "oauth2"}},  # URLs and credentials: the deployment's (README, Configuration)
    "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
    "resources": [
        {
            "name": "resource_name",
            "endpoint": {
                "path": "/v1/resource",
                "data_selector": "data",
                "paginator": {"type": "offset", "limit": 100},
                "incremental": {"start_param": "updated_since", "end_param": "updated_until",
                                "cursor_path": "updated_at", "value_format": "iso8601"},
            },
            "columns": {
                "id": {"data_type": "bigint", "nullable": False, "description": "Primary key of the record in the API."},
                "name": {"data_type": "text", "nullable": False, "description": "Display name of the record."},
                "category": {"data_type": "text", "nullable": True, "description": "Category the record belongs to."},
                "metric_value": {"data_type": "double", "nullable": True, "description": "The record's measured value."},
                "event_count": {"data_type": "bigint", "nullable": True,
                                "description": "Number of events counted for the record."},
                "is_active": {"data_type": "bool", "nullable": True, "description": "Whether the record is active."},
                "properties": {"data_type": "json", "nullable": True,
                               "description": "Free-form attributes, kept as one JSON column."},
                "created_at": {"data_type": "timestamp", "nullable": False,
                               "description": "When the record was created (UTC)."},
                "updated_at": {"data_type": "timestamp", "nullable": False,
                               "description": "When the record last changed (UTC); partitions filter on it."},
            },
        }
    ],
}

@dataclass(frozen=True)
class Window:
    """Half-open `[start, end)`, both aware and in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def of_days(cls, first: date | str, last: date | str | None = None) -> "Window":
        """The days `first`..`last` (inclusive), as daily partitions name them."""
        first_day = date.fromisoformat(first) if isinstance(first, str) else first
        last_day = (date.fromisoformat(last) if isinstance(last, str) else last) if last else first_day
        start = datetime.combine(first_day, datetime.min.time(), timezone.utc)
        return cls(start, datetime.combine(last_day, datetime.min.time(), timezone.utc) + timedelta(days=1))

    @property
    def days(self) -> list[str]:
        """The partition keys of the whole days in the window."""
        day, keys = self.start.date(), []
        while datetime.combine(day, datetime.min.time(), timezone.utc) < self.end:
            keys.append(day.isoformat())
            day += timedelta(days=1)
        return keys

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"


DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: what a redirect must keep and what the token-host rule compares."""

    scheme: str
    host: str
    port: int


def check_url(url: object, setting: str, query: bool = False) -> str:
    """`url` as urllib3 normalises it, or SettingsError naming `setting`. A URL holding credentials
    is refused without being quoted. A `query` is allowed where nothing is appended to the URL (a
    token URL: some identity providers name a policy there)."""
    example = "an http(s) URL such as https://api.example.com"
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{setting} must be {example}; got {url!r}.")
    if any(char == "\\" or char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise SettingsError(f"{setting} must be {example}, without backslashes, spaces or control characters; "
                            f"got {_quoted(url)}.")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise SettingsError(f"{setting} must be {example}; got {_quoted(url)}.") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise SettingsError(f"{setting} must be {example}; got {_quoted(url)}.")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise SettingsError(
            f"{setting}={_quoted(url)} uses plain http to a non-loopback host: client credentials and tokens "
            "would travel in clear text. Use https (plain http is allowed only for 127.0.0.1/localhost, "
            "e.g. the bundled demo API)."
        )
    if parsed.auth is not None or "@" in _authority(url)[1]:
        raise SettingsError(
            f"{setting} holds credentials (user:password@) in the URL; they would be logged and stored. "
            "Remove them: the client id and secret go in ANALYTICS_CLIENT_ID / ANALYTICS_CLIENT_SECRET."
        )
    if parsed.fragment is not None or (parsed.query is not None and not query):
        parts = "a fragment (#)" if query else "a query (?) or fragment (#)"
        raise SettingsError(f"{setting} must be {example}, without {parts}; got {_quoted(url)}.")
    return parsed.url


def origin(url: str) -> Origin:
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return Origin(scheme, _host(parsed.host or ""), parsed.port or DEFAULT_PORTS.get(scheme, 0))


def host_of(url: str) -> str:
    return origin(url).host


def is_loopback(host: str) -> bool:
    host = _host(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(host: str) -> str:
    """Hosts compare case-insensitively and without the DNS root's trailing dot."""
    return host.lower().rstrip(".")


def _authority(url: str) -> tuple[str, str, str]:
    """(`scheme://`, the authority, the rest): the authority ends at the first `/`, `?` or `#`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return scheme + sep, authority, rest[len(authority):]


def _quoted(url: str) -> str:
    """The URL for a message, with anything before an `@` in its authority masked."""
    prefix, authority, rest = _authority(url)
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return repr(prefix + authority + rest)


@dataclass(frozen=True)
class Credentials:
    client_id: Optional[str]
    client_secret: Optional[str]


Endpoint = ResourceOptions  # one configured resource: a table, an asset, an external API asset and checks


@dataclass(frozen=True)
class ApiDefinition:
    """The checked config (without credentials), and where it came from, for messages."""

    config: ApiConfig
    origin: str

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.config.resources

    @property
    def names(self) -> list[str]:
        return [endpoint.name for endpoint in self.endpoints]

    def endpoint(self, name: str) -> Endpoint:
        return next(endpoint for endpoint in self.endpoints if endpoint.name == name)

    def urls(self, settings: Settings) -> tuple[str, str]:
        """The base URL and token URL a run uses: a variable that is set wins over the config.

        The client secret goes to the token URL, so it must be on the API's host, or on a host the
        deployment lists in ANALYTICS_ALLOWED_TOKEN_HOSTS."""
        client = self.config.client
        base_url = settings.api_base_url or client.base_url
        if not base_url:
            raise SettingsError(
                "ANALYTICS_API_BASE_URL is not set: set it to the analytics API's base URL (or `client.base_url` "
                "in the API config; `analytics-assets demo`/`dev` start the bundled demo API and set it)."
            )
        base_url = check_url(base_url, "ANALYTICS_API_BASE_URL")
        token_url = settings.token_url or client.auth.token_url or client.auth.access_token_url
        token_url = check_url(token_url or base_url.rstrip("/") + DEFAULT_TOKEN_PATH, "ANALYTICS_TOKEN_URL", query=True)
        token_host, api_host = host_of(token_url), host_of(base_url)
        if token_host != api_host and token_host not in settings.allowed_token_hosts:
            raise SettingsError(
                f"ANALYTICS_TOKEN_URL points at host {token_host!r}, not the API host {api_host!r}: client "
                "credentials are only sent to the API's own host. If this identity provider is intended, "
                "list it in ANALYTICS_ALLOWED_TOKEN_HOSTS."
            )
        return base_url, token_url

    def rest_api_config(self, base_url: str) -> dict[str, Any]:
        """The definition in dlt's own form, for `rest_api_source`: what dlt reads as it is. The
        auth, session, paginators, page checks and column hints are added by the source."""
        return {
            "client": {"base_url": base_url, "headers": dict(self.config.client.headers)},
            "resources": [
                {
                    "name": endpoint.name,
                    "primary_key": endpoint.primary_key,
                    "write_disposition": endpoint.write_disposition,
                    "endpoint": {"path": endpoint.path, "method": endpoint.endpoint.method,
                                 "params": dict(endpoint.endpoint.params), "headers": dict(endpoint.endpoint.headers)},
                }
                for endpoint in self.endpoints
            ],
        }


def load_definition(settings: Settings) -> ApiDefinition:
    """The deployment's API: the file ANALYTICS_API_CONFIG names, else the built-in definition."""
    if settings.api_config is None:
        return built_in_definition()
    origin = f"ANALYTICS_API_CONFIG={settings.api_config}"
    return ApiDefinition(config.validate(config.read_file(settings.api_config), origin), origin)


def built_in_definition() -> ApiDefinition:
    return ApiDefinition(config.validate(BUILT_IN_CONFIG, BUILT_IN), BUILT_IN)


def parse_definition(config_dict: Mapping[str, Any], origin: str) -> tuple[ApiDefinition, Credentials]:
    """The definition of a rest_api config dict that holds its credentials, as the seed's does:
    they are taken out, and the definition keeps none."""
    config_dict = copy.deepcopy(dict(config_dict))
    auth = (config_dict.get("client") or {}).get("auth") or {}
    credentials = Credentials(auth.pop("client_id", None), auth.pop("client_secret", None))
    return ApiDefinition(config.validate(config_dict, origin), origin), credentials
