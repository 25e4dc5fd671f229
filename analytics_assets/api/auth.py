"""OAuth2 client credentials for a sync, on dlt's own `OAuth2ClientCredentials`.

dlt's class renews a token only once its clock says it has expired, has no 401 path, and fetches
tokens through dlt's global HTTP client. The subclass here renews ahead of expiry, renews once when
the API rejects a token, fetches through the sync's token session (the seed's retry policy), and
fails on refused credentials without echoing them. What the token endpoint answers is input like
any other: a token is checked when it arrives (a header value, ANALYTICS_MAX_TOKEN_BYTES at most),
and an `expires_in` that is no lifetime is not believed. The API's transport (`http.py`) gives every
attempt of every request a currently valid token from here.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import threading
from collections import deque
from typing import Annotated, Any, Optional
from urllib.parse import quote_plus

import pendulum
from requests import Response, Session

from dlt.common.configuration import NotResolved, configspec
from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials

from ..errors import CredentialsRejected, TokenEndpointError, masked
from .config import AuthOptions
from .stats import SyncStats
from .urls import host_of

BEARER = "Bearer "
MAX_REASON = 400  # characters of the provider's reason shown, after masking
LIFETIMES = (1.0, 365 * 86_400.0)  # an `expires_in` outside 1 s .. 1 year is no lifetime a provider means
MIN_RENEWAL = 5.0  # seconds between two renewals a token's expiry may cause, whatever `expires_in` says
PREVIOUS_TOKENS = 16  # tokens of the sync masked besides the current one (a run renews a few an hour)
HEADER_VALUE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a Bearer header carries unchanged


@configspec
class ClientCredentials(OAuth2ClientCredentials):
    """One token per sync, shared by every request and resource, renewed ahead of its expiry.

    The token request is RFC 6749's (§4.4): the grant, the `scope` and the provider's extra fields
    (dlt's `access_token_request_data`, e.g. an `audience`), with the client authenticated in the
    form (`client_secret_post`) or with HTTP Basic (`client_secret_basic`, §2.3.1: id and secret
    form-urlencoded first), never both."""

    refresh_margin: float = 60.0
    scope: Optional[str] = None
    token_endpoint_auth_method: str = "client_secret_post"
    max_token_bytes: int = 16 * 1024
    stats: Annotated[Optional[SyncStats], NotResolved()] = None

    @classmethod
    def of(cls, options: AuthOptions, token_url: str, client_id: str, client_secret: str, refresh_margin: float,
           session: Session, stats: SyncStats, max_token_bytes: int = 16 * 1024) -> "ClientCredentials":
        scope = " ".join(options.scope) if isinstance(options.scope, list) else options.scope
        return cls(
            access_token_url=token_url, client_id=client_id, client_secret=client_secret, scope=scope,
            token_endpoint_auth_method=options.token_endpoint_auth_method,
            access_token_request_data=dict(options.access_token_request_data),
            default_token_expiration=options.default_token_expiration, refresh_margin=refresh_margin,
            max_token_bytes=max_token_bytes, session=session, stats=stats,
        ).resolve()  # values are explicit: no lookup in config providers that could override them

    def __post_init__(self) -> None:
        super().__post_init__()
        self._lock = threading.Lock()
        self._previous: deque[str] = deque(maxlen=PREVIOUS_TOKENS)  # a 400 may echo the token a request carried

    def build_access_token_request(self) -> dict[str, Any]:
        data = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {}),
                **self.access_token_request_data}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.token_endpoint_auth_method == "client_secret_basic":
            headers["Authorization"] = "Basic " + base64.b64encode(self._basic_pair().encode()).decode()
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        return {"headers": headers, "data": data}

    def obtain_token(self) -> None:
        """A token, or an error that says why not: the token request is never redirected (the
        secret would go where the redirect says), and a refusal shows the provider's own reason
        (RFC 6749 §5.2 `error`, `error_description`), never the credentials."""
        response = self.session.post(self.access_token_url, allow_redirects=False, **self.build_access_token_request())
        status = response.status_code
        if 300 <= status < 400:
            raise TokenEndpointError(self.access_token_url, f"answered HTTP {status}, a redirect to "
                                     f"{host_of(response.headers.get('Location') or '') or 'elsewhere'}; the token "
                                     "request is never redirected")
        if status in (400, 401, 403):
            raise CredentialsRejected(self.access_token_url, status, self._reason(response))
        if status >= 400:
            raise TokenEndpointError(self.access_token_url, f"answered HTTP {status} {response.reason or ''}".rstrip())
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise TokenEndpointError(self.access_token_url, "answered without an `access_token`")
        renewing = self.access_token is not None
        token = self.parse_access_token(payload)
        if renewing:
            self._previous.append(str(self.access_token))
        self.parse_native_representation(token)
        lifetime = self.parse_expiration_in_seconds(payload)
        # Renew ahead of expiry, but never spend more than half a short token's life on the margin,
        # and never sooner than MIN_RENEWAL: a token said to last a second is not fetched each second.
        ahead = lifetime - min(self.refresh_margin, lifetime / 2)
        self.token_expiry = pendulum.now().add(seconds=max(MIN_RENEWAL, ahead))
        if renewing and self.stats is not None:
            self.stats.add(token_refreshes=1)

    def parse_access_token(self, response_json: Any) -> str:
        """The token, if a header can carry it as it is: visible ASCII (no space, line break or
        control character, which would corrupt or split the request's headers) and at most
        ANALYTICS_MAX_TOKEN_BYTES. The token is not quoted: it may be half a credential."""
        token = response_json.get("access_token")
        if not isinstance(token, str):
            raise TokenEndpointError(self.access_token_url, "answered an `access_token` that is not text")
        if len(token.encode()) > self.max_token_bytes:
            raise TokenEndpointError(
                self.access_token_url, f"answered an access token of more than {self.max_token_bytes:,} bytes "
                "(ANALYTICS_MAX_TOKEN_BYTES; raise it if the provider's tokens are that long)")
        if not HEADER_VALUE.fullmatch(token):
            raise TokenEndpointError(
                self.access_token_url, "answered an access token that an HTTP header cannot carry (characters "
                "other than visible ASCII: a space, a line break or a control character); it is not shown here")
        return token

    def parse_expiration_in_seconds(self, response_json: Any) -> float:  # type: ignore[override]
        """`expires_in` (RFC 6749 §5.1: seconds), when it is a finite number, or numeric text, between
        1 s and a year. Anything else (NaN, 1e308, -5, "soon") is taken for a missing one, said
        in the run's log, and the token is taken to last `default_token_expiration`."""
        value = response_json.get("expires_in")
        if value is None:
            return float(self.default_token_expiration)
        seconds = _number(value)
        if seconds is not None and LIFETIMES[0] <= seconds <= LIFETIMES[1]:
            if seconds < MIN_RENEWAL:
                self._warn(f"The token endpoint {self.access_token_url} says its tokens last {seconds:g} s: they "
                           f"are renewed at most every {MIN_RENEWAL:g} s, and a request refused (401) for an "
                           "expired token is sent again with a new one.")
            return seconds
        self._warn(f"The token endpoint {self.access_token_url} answered expires_in={str(value)[:40]!r}, not a "
                   f"number of seconds between {LIFETIMES[0]:g} and {LIFETIMES[1]:,.0f}: the token is taken to "
                   f"last {self.default_token_expiration} s (`client.auth.default_token_expiration` in the API "
                   "config), and renewed sooner if the API refuses it.")
        return float(self.default_token_expiration)

    def _warn(self, message: str) -> None:
        (self.stats.warn if self.stats is not None else logging.getLogger(__name__).warning)(message)

    def _reason(self, response: Response) -> str:
        """The provider's `error` and `error_description`, short, with anything that spells the
        credentials masked (a careless provider may echo the request)."""
        try:
            payload = response.json()
        except ValueError:
            return ""
        if not isinstance(payload, dict):
            return ""
        said = ": ".join(str(payload[key]) for key in ("error", "error_description") if payload.get(key))
        return masked(said, self.secrets(), limit=MAX_REASON)

    def secrets(self) -> list[str]:
        """What must never be shown: the credentials, alone and as the HTTP Basic pair (form-urlencoded
        first), the access token and the ones it replaced (`errors.masked` spells each every way)."""
        return [str(self.client_secret), str(self.client_id), self._basic_pair(), str(self.access_token or ""),
                *self._previous]

    def _basic_pair(self) -> str:
        return f"{quote_plus(str(self.client_id))}:{quote_plus(str(self.client_secret))}"

    def token(self, rejected: Optional[str] = None) -> str:
        """The current token, renewed first if it is due, or if it is still the `rejected` one
        (several requests in flight may all get a 401 for one token: one renewal serves all)."""
        with self._lock:
            stale = self.access_token is None or self.is_token_expired()
            if stale or (rejected is not None and str(self.access_token) == rejected):
                self.obtain_token()
            return str(self.access_token)

    def authorize(self, headers: Any, rejected: bool = False) -> None:
        """Give a request's headers a currently valid token: before every attempt, so a retry never
        carries a token that expired while it waited, and with `rejected=True` after a 401, to
        replace the token that request carried."""
        carried = headers.get("Authorization", "").removeprefix(BEARER) if rejected else None
        headers["Authorization"] = BEARER + self.token(carried)

    def __repr__(self) -> str:  # the dataclass repr would print the secrets
        return f"{type(self).__name__}(access_token_url={self.access_token_url!r})"

    __str__ = __repr__


def _number(value: Any) -> Optional[float]:
    """A finite number from a JSON number or numeric text (some providers send "3600"); not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
