"""The API definition: a dlt `rest_api` config dict, built in or read from ANALYTICS_API_CONFIG,
checked once (`config.py`), and the URLs and credentials a run uses with it.

The built-in definition is the seed's config dict, with the seed's neutral schema declared as dlt
column hints and the window declared as the endpoint's `incremental`. Names, asset specs, column
metadata and checks are derived from the dict itself: nothing is built to learn them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import SettingsError
from ..settings import Settings
from . import config
from .config import ApiConfig, Resource
from .urls import check_url, host_of

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
class Credentials:
    client_id: Optional[str]
    client_secret: Optional[str]


@dataclass(frozen=True)
class ApiDefinition:
    """The checked config (without credentials), and what it was read from, for messages."""

    config: ApiConfig
    read_from: str

    @property
    def resources(self) -> list[Resource]:
        return self.config.resources

    @property
    def names(self) -> list[str]:
        return [resource.name for resource in self.resources]

    def resource(self, name: str) -> Resource:
        return next(resource for resource in self.resources if resource.name == name)

    def url_sources(self, settings: Settings) -> tuple[str, str]:
        """Where the base URL and the token URL a run uses come from, as messages name them: the
        variable when one is set, else the key of the API config that holds it."""
        client = self.config.client
        base = settings.source("api_base_url") if settings.api_base_url or not client.base_url else \
            f"`client.base_url` in {self.read_from}"
        if settings.token_url:
            return base, settings.source("token_url")
        for key in ("token_url", "access_token_url"):
            if getattr(client.auth, key):
                return base, f"`client.auth.{key}` in {self.read_from}"
        return base, f"{base} (the token URL defaults to the base URL's {DEFAULT_TOKEN_PATH})"

    def urls(self, settings: Settings) -> tuple[str, str]:
        """The base URL and token URL a run uses: a variable that is set wins over the config.

        The client secret goes to the token URL, so it must be on the API's host, or on a host the
        deployment lists in ANALYTICS_ALLOWED_TOKEN_HOSTS."""
        client = self.config.client
        base_variable, token_variable = self.url_sources(settings)
        base_url = settings.api_base_url or client.base_url
        if not base_url:
            raise SettingsError(
                f"{base_variable} is not set: set it to the API's base URL (or `client.base_url` in the API "
                "config; `analytics-assets demo`/`dev` start the bundled demo API and set it)."
            )
        base_url = check_url(base_url, base_variable)
        token_url = settings.token_url or client.auth.token_url or client.auth.access_token_url
        token_url = check_url(token_url or base_url.rstrip("/") + DEFAULT_TOKEN_PATH, token_variable, query=True)
        token_host, api_host = host_of(token_url), host_of(base_url)
        if token_host != api_host and token_host not in settings.allowed_token_hosts:
            raise SettingsError(
                f"{token_variable} points at host {token_host!r}, not the API host {api_host!r}: client "
                "credentials are only sent to the API's own host. If this identity provider is intended, "
                "list it in ANALYTICS_ALLOWED_TOKEN_HOSTS."
            )
        return base_url, token_url


def load_definition(settings: Settings) -> ApiDefinition:
    """The deployment's API: the file ANALYTICS_API_CONFIG names, else the built-in definition."""
    if settings.api_config is None:
        return built_in_definition()
    read_from = f"ANALYTICS_API_CONFIG={settings.api_config}"
    return ApiDefinition(config.validate(config.read_file(settings.api_config), read_from), read_from)


def built_in_definition() -> ApiDefinition:
    return ApiDefinition(config.validate(BUILT_IN_CONFIG, BUILT_IN), BUILT_IN)


def parse_definition(config_dict: Mapping[str, Any], read_from: str) -> tuple[ApiDefinition, Credentials]:
    """The definition of a rest_api config dict that holds its credentials, as the seed's does:
    they are taken out, and the definition keeps none."""
    config_dict = copy.deepcopy(dict(config_dict))
    auth = (config_dict.get("client") or {}).get("auth") or {}
    credentials = Credentials(auth.pop("client_id", None), auth.pop("client_secret", None))
    return ApiDefinition(config.validate(config_dict, read_from), read_from), credentials
