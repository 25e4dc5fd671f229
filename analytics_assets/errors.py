"""Errors a user can act on: each says what went wrong and which setting fixes it, never a secret."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from .settings import SettingsError


class AnalyticsSyncError(RuntimeError):
    """Base class: every failure of a sync that we diagnosed ourselves."""


class CredentialsRejected(AnalyticsSyncError):
    def __init__(self, token_url: str, status: int) -> None:
        super().__init__(
            f"The token endpoint {token_url} rejected the client credentials (HTTP {status}). "
            "Check ANALYTICS_CLIENT_ID and ANALYTICS_CLIENT_SECRET (or dlt secrets client_id/"
            "client_secret) and that ANALYTICS_TOKEN_URL is the right identity provider."
        )


class MissingCredentials(AnalyticsSyncError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"No OAuth2 {name} configured: set ANALYTICS_{name.upper()} (or `{name}` in .dlt/secrets.toml)."
        )


class TokenRejected(AnalyticsSyncError):
    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where} answered 401 twice, the second time to a freshly issued access token: the "
            "client is authenticated but not authorised for this endpoint. Check the client's "
            "scopes/permissions with the API provider."
        )


class RequestRejected(AnalyticsSyncError):
    """A status that retrying cannot fix (4xx other than 429)."""

    def __init__(self, where: str, status: int, reason: str, body: str) -> None:
        self.status = status
        detail = f" Response: {body}" if body else ""
        super().__init__(
            f"{where} failed with HTTP {status} {reason}; this status is not retried. "
            f"Check ANALYTICS_API_BASE_URL and the endpoint configuration.{detail}"
        )


class RetriesExhausted(AnalyticsSyncError):
    def __init__(self, where: str, cause: str, attempts: int) -> None:
        super().__init__(
            f"{where} still failed after {attempts} attempts ({attempts - 1} retries): {cause}. "
            "The API is unavailable or throttling; nothing was written. Run again later, or raise "
            "ANALYTICS_MAX_RETRIES / ANALYTICS_MAX_RETRY_WAIT."
        )


class MalformedResponse(AnalyticsSyncError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"{where} returned a response we cannot read: {problem}. Nothing was written; "
            "check that ANALYTICS_API_BASE_URL points at the analytics API (not a proxy or login page)."
        )


class PaginationError(AnalyticsSyncError):
    pass


class SchemaViolation(AnalyticsSyncError):
    def __init__(self, table: str, record_id: object, field: str, problem: str,
                 advice: str = "Fix the record upstream or update the resource's `columns` in the API config.") -> None:
        self.field = field
        self.record_id = record_id
        super().__init__(
            f"Record id={record_id!r} of {table} breaks the declared schema: field {field!r} "
            f"{problem}. Nothing of this run was committed. {advice}"
        )


class WarehouseFileError(AnalyticsSyncError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"DuckDB could not open the {path}: {detail.strip().splitlines()[0][:300]}. If it is held open "
            "by another process (a notebook, the DuckDB shell), close that connection and run again; runs "
            "of this project queue on the `duckdb_writer` pool instead of colliding."
        )


class WarehouseUnreachable(AnalyticsSyncError):
    def __init__(self, destination: str, where: str, detail: str) -> None:
        variable = f"DESTINATION__{destination.upper()}__CREDENTIALS"
        super().__init__(
            f"Could not connect to the {where}: {detail.strip().splitlines()[-1][:300]}. Check the "
            f"warehouse credentials: ${variable} or [destination.{destination}] in .dlt/secrets.toml; "
            "and that the server is reachable from here."
        )


def root_cause(error: BaseException) -> BaseException:
    """The first of our own errors in the chain dlt wraps around failures, or `error` itself.

    dlt reports a failed step as `PipelineStepFailed` > `ResourceExtractionError` > ours; users
    should read our message first, not three layers of wrapping.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (AnalyticsSyncError, SettingsError)):
            return current
        current = current.__cause__ or current.__context__
    return error


@contextmanager
def diagnosed() -> Iterator[None]:
    """Raise our own diagnosis of a failure in place of the wrapping around it."""
    try:
        yield
    except Exception as error:
        cause = root_cause(error)
        if cause is error:
            raise
        raise cause from error
