"""Settings read from the environment: the project's public configuration interface.

Every value is validated here, once, so that a typo in a variable fails with a message that
names the variable instead of surfacing later as an obscure HTTP or DuckDB error.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

ENV_BASE_URL = "ANALYTICS_API_BASE_URL"
ENV_TOKEN_URL = "ANALYTICS_TOKEN_URL"
ENV_CLIENT_ID = "ANALYTICS_CLIENT_ID"
ENV_CLIENT_SECRET = "ANALYTICS_CLIENT_SECRET"
ENV_DUCKDB_PATH = "ANALYTICS_DUCKDB_PATH"
ENV_PARTITIONS_START = "ANALYTICS_PARTITIONS_START"
ENV_HTTP_TIMEOUT = "ANALYTICS_HTTP_TIMEOUT"
ENV_MAX_RETRIES = "ANALYTICS_MAX_RETRIES"
ENV_BACKOFF_FACTOR = "ANALYTICS_BACKOFF_FACTOR"
ENV_MAX_RETRY_WAIT = "ANALYTICS_MAX_RETRY_WAIT"
ENV_TOKEN_REFRESH_MARGIN = "ANALYTICS_TOKEN_REFRESH_MARGIN"
ENV_SCHEMA_DRIFT = "ANALYTICS_SCHEMA_DRIFT"
ENV_ALLOWED_TOKEN_HOSTS = "ANALYTICS_ALLOWED_TOKEN_HOSTS"
ENV_MAX_CONCURRENCY = "ANALYTICS_MAX_CONCURRENCY"
ENV_DESTINATION = "ANALYTICS_DESTINATION"
ENV_WRITER_POOL_LIMIT = "ANALYTICS_WRITER_POOL_LIMIT"

# dlt destinations a table can live in; DuckDB in a file is the embedded default. Credentials for
# the others are read the way dlt reads them (DESTINATION__<NAME>__CREDENTIALS, .dlt/secrets.toml)
# or given to the `warehouse` resource, e.g. as a Dagster EnvVar.
DESTINATIONS = ("duckdb", "postgres", "motherduck", "snowflake", "bigquery")

DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
# A recent fixed day: a newcomer's first backfill stays small, and the partition set does not
# shift under the UI every day as a date computed at import would.
DEFAULT_PARTITIONS_START = "2026-11-01"
SCHEMA_DRIFT_MODES = ("evolve", "freeze")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class RetryPolicy:
    """The seed's error-handling policy: which statuses are retried, how often, how long to wait."""

    statuses: tuple[int, ...] = (429, 500, 502, 503, 504)
    max_retries: int = 3
    backoff_factor: float = 2.0
    max_wait: float = 60.0  # caps both the exponential backoff and a server's Retry-After
    timeout: float = 30.0

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


@dataclass(frozen=True)
class ApiSettings:
    """Where the API lives and how to talk to it. Credentials may be absent until a run needs them."""

    base_url: str
    token_url: str
    client_id: Optional[str] = field(default=None, repr=False)
    client_secret: Optional[str] = field(default=None, repr=False)
    retry: RetryPolicy = RetryPolicy()
    token_refresh_margin: float = 60.0
    schema_drift: str = "evolve"
    allowed_token_hosts: tuple[str, ...] = ()
    # Requests in flight while paging a window whose `total` is known; 1 pages strictly in turn.
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        check_url(self.base_url, ENV_BASE_URL)
        check_url(self.token_url, ENV_TOKEN_URL)
        token_host = urlsplit(self.token_url).hostname  # urlsplit lowercases host names
        api_host = urlsplit(self.base_url).hostname
        if token_host != api_host and token_host not in {h.lower() for h in self.allowed_token_hosts}:
            raise SettingsError(
                f"{ENV_TOKEN_URL} points at host {token_host!r}, not the API host {api_host!r}: "
                "client credentials are only sent to the API's own host. If this identity "
                f"provider is intended, list it in {ENV_ALLOWED_TOKEN_HOSTS}."
            )
        if self.schema_drift not in SCHEMA_DRIFT_MODES:
            raise SettingsError(
                f"{ENV_SCHEMA_DRIFT} must be one of {', '.join(SCHEMA_DRIFT_MODES)}; "
                f"got {self.schema_drift!r}."
            )

    def with_credentials(self, client_id: str, client_secret: str) -> "ApiSettings":
        return replace(self, client_id=client_id, client_secret=client_secret)


def check_url(url: str, variable: str) -> str:
    """Refuse URLs that would send credentials in clear text or are not URLs at all."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"{variable} must be an http(s) URL such as https://api.example.com; got {url!r}."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            f"{variable}={url!r} uses plain http to a non-loopback host: client credentials and "
            "tokens would travel in clear text. Use https (plain http is allowed only for "
            "127.0.0.1/localhost, e.g. the bundled demo API)."
        )
    return url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_token_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/oauth/token"


def _number(
    env: Mapping[str, str], name: str, default: float, kind: type = float, allow_zero: bool = False
) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole ' if kind is int else ''}number; got {raw!r}.")
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number; got {raw!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise SettingsError(f"{name} must be {'zero or more' if allow_zero else 'positive'}; got {raw!r}.")
    return value


def retry_policy_from_env(env: Mapping[str, str] = os.environ) -> RetryPolicy:
    return RetryPolicy(
        max_retries=int(_number(env, ENV_MAX_RETRIES, RetryPolicy.max_retries, int, allow_zero=True)),
        backoff_factor=_number(env, ENV_BACKOFF_FACTOR, RetryPolicy.backoff_factor),
        max_wait=_number(env, ENV_MAX_RETRY_WAIT, RetryPolicy.max_wait),
        timeout=_number(env, ENV_HTTP_TIMEOUT, RetryPolicy.timeout),
    )


def api_settings_from_env(env: Mapping[str, str] = os.environ) -> ApiSettings:
    """Settings for a run. Raises SettingsError naming the variable when the API URL is unset."""
    base_url = env.get(ENV_BASE_URL)
    if not base_url:
        raise SettingsError(
            f"{ENV_BASE_URL} is not set: set it to the analytics API's base URL "
            "(or run `analytics-assets demo`/`analytics-assets dev`, which start the bundled demo API)."
        )
    allowed = tuple(h.strip() for h in env.get(ENV_ALLOWED_TOKEN_HOSTS, "").split(",") if h.strip())
    return ApiSettings(
        base_url=base_url,
        token_url=env.get(ENV_TOKEN_URL) or default_token_url(base_url),
        client_id=env.get(ENV_CLIENT_ID) or None,
        client_secret=env.get(ENV_CLIENT_SECRET) or None,
        retry=retry_policy_from_env(env),
        token_refresh_margin=_number(env, ENV_TOKEN_REFRESH_MARGIN, 60.0, allow_zero=True),
        schema_drift=env.get(ENV_SCHEMA_DRIFT, "evolve"),
        allowed_token_hosts=allowed,
        max_concurrency=int(_number(env, ENV_MAX_CONCURRENCY, 8, int)),
    )


def duckdb_path_from_env(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(ENV_DUCKDB_PATH) or DEFAULT_DUCKDB_PATH)


def destination_from_env(env: Mapping[str, str] = os.environ) -> str:
    return check_destination(env.get(ENV_DESTINATION) or "duckdb")


def check_destination(name: str) -> str:
    if name not in DESTINATIONS:
        raise SettingsError(f"{ENV_DESTINATION} must be one of {', '.join(DESTINATIONS)}; got {name!r}.")
    return name


def writer_pool_limit_from_env(env: Mapping[str, str] = os.environ) -> Optional[int]:
    """Steps writing to the warehouse at once; unset leaves the Dagster instance's pool limit."""
    if env.get(ENV_WRITER_POOL_LIMIT) in (None, ""):
        return None
    return int(_number(env, ENV_WRITER_POOL_LIMIT, 1, int))


def partitions_start_from_env(env: Mapping[str, str] = os.environ) -> str:
    raw = env.get(ENV_PARTITIONS_START) or DEFAULT_PARTITIONS_START
    try:
        date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PARTITIONS_START} must be a date like 2026-11-01; got {raw!r}.")
    return raw
