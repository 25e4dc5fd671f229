"""Errors a user can act on: each message says what went wrong and what to do, never a secret."""

from __future__ import annotations


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
    def __init__(self, name: str, variable: str) -> None:
        super().__init__(
            f"No OAuth2 {name} configured: set {variable} (or `{name}` in .dlt/secrets.toml)."
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
    def __init__(self, table: str, record_id: object, field: str, problem: str) -> None:
        self.field = field
        self.record_id = record_id
        super().__init__(
            f"Record id={record_id!r} of {table} breaks the declared schema: field {field!r} "
            f"{problem}. Nothing of this run was committed. Fix the record upstream or update the "
            "declared schema in analytics_assets/schema.py."
        )


def root_cause(error: BaseException) -> BaseException:
    """The first of our own errors (or a DuckDB lock) in the chain dlt wraps around failures.

    dlt reports a failed step as `PipelineStepFailed` > `ResourceExtractionError` > ours; users
    should read our message first, not three layers of wrapping.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AnalyticsSyncError):
            return current
        if "Could not set lock on file" in str(current):
            return DatabaseLocked(str(current))
        current = current.__cause__ or current.__context__
    return error


class DatabaseLocked(AnalyticsSyncError):
    def __init__(self, detail: str) -> None:
        holder = detail.split("Conflicting lock is held in ")[-1].split("\n")[0][:160]
        super().__init__(
            "The DuckDB file is held open by another process "
            f"({holder if holder != detail else 'lock conflict'}). Close that connection (a "
            "notebook or DuckDB shell) and run again; runs of this project queue on the "
            "`duckdb_writer` pool instead of colliding."
        )


class WarehouseUnreachable(AnalyticsSyncError):
    def __init__(self, destination: str, where: str, detail: str) -> None:
        variable = f"DESTINATION__{destination.upper()}__CREDENTIALS"
        super().__init__(
            f"Could not connect to the {where}: {detail.strip().splitlines()[-1][:300]}. Check the "
            f"warehouse credentials: ${variable}, [destination.{destination}] in .dlt/secrets.toml, "
            "or the `warehouse` resource's `credentials`; and that the server is reachable from here."
        )
