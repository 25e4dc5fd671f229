"""OAuth2 client credentials for a sync, on dlt's own `OAuth2ClientCredentials`.

dlt's class renews a token only once its clock says it has expired, has no 401 path, and fetches
tokens through dlt's global HTTP client. The subclass here renews ahead of expiry, renews once when
the API rejects a token, fetches through the sync's token session (the seed's retry policy), and
fails on refused credentials without echoing them. The API's transport (`http.py`) gives every
attempt of every request a currently valid token from here.
"""

from __future__ import annotations

import base64
import threading
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
    stats: Annotated[Optional[SyncStats], NotResolved()] = None

    @classmethod
    def of(cls, options: AuthOptions, token_url: str, client_id: str, client_secret: str, refresh_margin: float,
           session: Session, stats: SyncStats) -> "ClientCredentials":
        scope = " ".join(options.scope) if isinstance(options.scope, list) else options.scope
        return cls(
            access_token_url=token_url, client_id=client_id, client_secret=client_secret, scope=scope,
            token_endpoint_auth_method=options.token_endpoint_auth_method,
            access_token_request_data=dict(options.access_token_request_data),
            default_token_expiration=options.default_token_expiration, refresh_margin=refresh_margin,
            session=session, stats=stats,
        ).resolve()  # values are explicit: no lookup in config providers that could override them

    def __post_init__(self) -> None:
        super().__post_init__()
        self._lock = threading.Lock()

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
        self.parse_native_representation(self.parse_access_token(payload))
        lifetime = self.parse_expiration_in_seconds(payload)
        # Renew ahead of expiry, but never spend more than half a short token's life on the margin.
        self.token_expiry = pendulum.now().add(seconds=lifetime - min(self.refresh_margin, lifetime / 2))
        if renewing and self.stats is not None:
            self.stats.add(token_refreshes=1)

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
        first), and the access token."""
        return [str(self.client_secret), str(self.client_id), self._basic_pair(), str(self.access_token or "")]

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
