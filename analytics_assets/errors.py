"""Errors a user can act on: each says what went wrong and which setting fixes it, never a secret."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_MASKED = 4  # shorter text is no secret worth hiding, and masking it would garble messages


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable or key."""


class AnalyticsSyncError(RuntimeError):
    """Base class: every failure of a sync that we diagnosed ourselves."""


class CredentialsRejected(AnalyticsSyncError):
    def __init__(self, token_url: str, status: int, reason: str = "") -> None:
        said = f" The identity provider says: {reason}." if reason else ""
        super().__init__(
            f"The token endpoint {token_url} rejected the client credentials (HTTP {status}).{said} "
            "Check ANALYTICS_CLIENT_ID and ANALYTICS_CLIENT_SECRET (or dlt secrets client_id/"
            "client_secret), that ANALYTICS_TOKEN_URL is the right identity provider, and how the API "
            "config's `client.auth` asks for a token (`token_endpoint_auth_method`, `scope`, "
            "`access_token_request_data`)."
        )


class TokenEndpointError(AnalyticsSyncError):
    def __init__(self, token_url: str, problem: str) -> None:
        super().__init__(
            f"The token endpoint {token_url} {problem}. Check ANALYTICS_TOKEN_URL (or `client.auth.token_url` "
            "in the API config): the client secret is sent there, and only there."
        )


class ResponseRefused(AnalyticsSyncError):
    """A response this project does not read: too large, too slow, or from somewhere else."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        super().__init__(f"{where} {problem}; nothing was written. {fix}")


class HostNotFound(AnalyticsSyncError):
    def __init__(self, host: str, setting: str) -> None:
        super().__init__(
            f"The host {host!r} does not resolve (DNS): check {setting}. Not retried: a name that does "
            "not resolve does not resolve a few seconds later either."
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


class RequestFailed(AnalyticsSyncError):
    """A request that a library refused to send or to read, for a reason other than the network's:
    its words, masked (they may quote a header, a token least of all)."""

    def __init__(self, where: str, detail: str, setting: str = "ANALYTICS_API_BASE_URL") -> None:
        super().__init__(
            f"{where} could not be sent or read: {detail}. Nothing was written; this is not retried. Check "
            f"{setting} and the headers of the API config (`client.headers`, `endpoint.headers`)."
        )


class RetriesExhausted(AnalyticsSyncError):
    def __init__(self, where: str, cause: str, attempts: int, setting: str = "ANALYTICS_API_BASE_URL",
                 asked_wait: Optional[float] = None, max_wait: Optional[float] = None) -> None:
        asked = (f" The server asked to wait {asked_wait:.0f} s before retrying (Retry-After), more than "
                 f"ANALYTICS_MAX_RETRY_WAIT={max_wait:g} lets a retry wait: raise it to wait as the server "
                 "asks.") if asked_wait else ""
        unreachable = "HTTP" not in cause
        super().__init__(
            f"{where} still failed after {attempts} attempts ({attempts - 1} retries): {cause}.{asked} "
            + ("The server did not answer" if unreachable else "The API is unavailable or throttling")
            + "; nothing was written. Run again later, or raise ANALYTICS_MAX_RETRIES / ANALYTICS_MAX_RETRY_WAIT"
            + (f"; check that {setting} is the right address." if unreachable else ".")
        )


class MalformedResponse(AnalyticsSyncError):
    def __init__(self, where: str, problem: str, fix: str = "check that ANALYTICS_API_BASE_URL points at the "
                 "analytics API (not a proxy or login page)") -> None:
        super().__init__(f"{where} returned a response we cannot read: {problem}. Nothing was written; {fix}.")


class ApiReportedError(AnalyticsSyncError):
    """A successful status whose body says the request failed (`ok: false`, `error: ...`)."""

    def __init__(self, where: str, said: str) -> None:
        super().__init__(
            f"{where} answered with a success status, but its body says the request failed: {said}. Nothing was "
            "written. This is the API's own reason: fix what it names (often the client's scopes or permissions, "
            "`client.auth.scope`, or a parameter of the endpoint)."
        )


class PaginationError(AnalyticsSyncError):
    pass


class WindowViolation(AnalyticsSyncError):
    def __init__(self, table: str, sent: dict, window: str, record_id: object, cursor: str, value: object) -> None:
        params = "&".join(f"{name}={value}" for name, value in sent.items())
        super().__init__(
            f"Record id={record_id!r} of {table} has {cursor}={str(value)[:40]!r}, outside the window {window} "
            f"asked for with `{params}`: the API ignored or misread the window's parameters. Nothing was "
            "written. Set the endpoint's `incremental` in the API config (ANALYTICS_API_CONFIG): "
            "`start_param`/`end_param` to the names the API filters by, `value_format` to how it reads them, "
            "`cursor_path` to the field they filter."
        )


class SchemaViolation(AnalyticsSyncError):
    def __init__(self, table: str, record_id: object, field: str, problem: str,
                 advice: str = "Fix the record upstream or update the resource's `columns` in the API config.") -> None:
        self.field = field
        self.record_id = record_id
        super().__init__(
            f"Record id={_short(record_id)} of {table} breaks the declared schema: field {field!r} "
            f"{problem}. Nothing of this run was committed. {advice}"
        )


class WarehouseFileError(AnalyticsSyncError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"DuckDB could not open the {path}: {detail.strip().splitlines()[0][:300]}. If it is held open "
            "by another process (a notebook, the DuckDB shell), close that connection and run again; runs "
            "of this project wait for each other, and for such a process, up to "
            "ANALYTICS_WAREHOUSE_LOCK_WAIT seconds."
        )


class WarehouseUnreachable(AnalyticsSyncError):
    def __init__(self, destination: str, where: str, detail: str) -> None:
        variable = f"DESTINATION__{destination.upper()}__CREDENTIALS"
        super().__init__(
            f"Could not connect to the {where}: {detail.strip().splitlines()[-1][:300]}. Check the "
            f"warehouse credentials: ${variable} or [destination.{destination}] in .dlt/secrets.toml; "
            "and that the server is reachable from here."
        )


def _short(value: object, limit: int = 80) -> str:
    """A value the API sent, quoted in a message at a bounded length."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def spellings(secret: str) -> set[str]:
    """Every way a secret travels in a request or comes back in an echo of it or in a library's
    message about it: as it is (and without surrounding whitespace), form-urlencoded,
    percent-encoded, JSON-escaped (ASCII or not), in base64 (an HTTP Basic header), and as Python
    writes a str or bytes (UTF-8 or Latin-1) in a message (`repr`: http.client's "Invalid header
    value b'Bearer ...\\r\\n'")."""
    encoded = base64.b64encode(secret.encode()).decode()
    forms = {secret, secret.strip(), quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], encoded, encoded.rstrip("="), repr(secret)[1:-1],
             repr(secret.encode())[2:-1]}
    try:
        forms.add(repr(secret.encode("latin-1"))[2:-1])  # how http.client encodes a header value
    except UnicodeEncodeError:
        pass  # http.client cannot send it either: its error names the character, not the value
    return {form for form in forms if len(form) >= MIN_MASKED}


def masked(text: str, secrets: Iterable[str], limit: Optional[int] = None) -> str:
    """`text` with every spelling of every secret replaced by `***`, and only then cut to `limit`
    characters: cutting first could leave half a secret that no longer matches."""
    for form in sorted({form for secret in secrets if secret for form in spellings(secret)}, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text if limit is None or len(text) <= limit else text[:limit] + "…"


def mask_error(error: BaseException, secrets: Iterable[str]) -> BaseException:
    """`error` with its message (`args`) masked in place: raised on as it is, the type callers catch
    unchanged. For our errors, whose messages quote a server's words, a URL or a library's."""
    error.args = tuple(masked(arg, secrets) if isinstance(arg, str) else arg for arg in error.args)
    return error


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
