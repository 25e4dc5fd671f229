"""OAuth2 client credentials as the seed writes them (`"type": "oauth2"`, `token_url`), built on dlt's
own `OAuth2ClientCredentials`.

dlt's class refreshes only once its clock says the token has expired, has no 401 path and fetches
tokens through dlt's global HTTP client. This subclass adds a refresh margin, a forced refresh used
by the HTTP adapter after a 401, a token session with the run's retry policy, and errors that say
the credentials were rejected without echoing them.
"""

from __future__ import annotations

import copy
import threading
from typing import Annotated, Any, Mapping, Optional

import pendulum
from requests import PreparedRequest, Session
from typing_extensions import Self

from dlt.common.configuration import NotResolved, configspec
from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials

from .errors import CredentialsRejected, RequestRejected
from .settings import ENV_TOKEN_URL, check_url
from .stats import SyncStats

SEED_AUTH_TYPE = "oauth2"


@configspec
class RefreshingOAuth2ClientCredentials(OAuth2ClientCredentials):
    """One token per run, shared by every request, renewed ahead of its expiry."""

    refresh_margin: float = 60.0
    stats: Annotated[Optional[SyncStats], NotResolved()] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> Self:
        """dlt deep-copies configs to mask their secrets before validating them; the copy gets a
        lock of its own (locks cannot be copied) and is never used to fetch."""
        clone = copy.copy(self)
        clone._lock = threading.Lock()
        return clone

    def is_token_expired(self) -> bool:
        return pendulum.now() >= self.token_expiry

    def obtain_token(self) -> None:
        try:
            response = self.session.post(self.access_token_url, **self.build_access_token_request())
        except RequestRejected as rejected:
            if rejected.status in (400, 401, 403):
                raise CredentialsRejected(self.access_token_url, rejected.status) from None
            raise
        renewing = self.access_token is not None
        payload = response.json()
        self.parse_native_representation(self.parse_access_token(payload))
        lifetime = self.parse_expiration_in_seconds(payload)
        # Renew ahead of expiry, but never spend more than half a short token's life on the margin.
        margin = min(self.refresh_margin, lifetime / 2)
        self.token_expiry = pendulum.now().add(seconds=lifetime - margin)
        if renewing and self.stats is not None:
            self.stats.add(token_refreshes=1)

    def ensure_token(self, rejected: Optional[str] = None) -> str:
        """The current token, renewed first if it is due, or if it is still the `rejected` one
        (several requests in flight may all get a 401 for the same token: one renewal serves all)."""
        with self._lock:
            stale = self.access_token is None or self.is_token_expired()
            if stale or (rejected is not None and str(self.access_token) == rejected):
                self.obtain_token()
            return str(self.access_token)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.ensure_token()}"
        return request

    def reauthorize(self, request: PreparedRequest, after_401: bool) -> None:
        """Called by the HTTP adapter before every attempt, so retries never carry a stale token,
        and after a 401, to replace the token that request carried."""
        header = request.headers.get("Authorization")
        if header is not None:
            rejected = header.removeprefix("Bearer ") if after_401 else None
            request.headers["Authorization"] = f"Bearer {self.ensure_token(rejected)}"

    def __repr__(self) -> str:  # dataclass repr would print the secrets
        return f"{type(self).__name__}(access_token_url={self.access_token_url!r})"

    __str__ = __repr__


def auth_from_seed(
    auth: Mapping[str, Any], refresh_margin: float, session: Session, stats: SyncStats
) -> RefreshingOAuth2ClientCredentials:
    """Turn the seed's auth dict into dlt's auth object: dlt validates dict forms against its own
    field names (`access_token_url`), but accepts any `AuthConfigBase` instance as is."""
    unknown = set(auth) - {"type", "client_id", "client_secret", "token_url", "access_token_url"}
    if unknown:
        raise ValueError(f"Unknown keys in the oauth2 auth config: {', '.join(sorted(unknown))}.")
    token_url = auth.get("token_url") or auth.get("access_token_url")
    check_url(token_url, ENV_TOKEN_URL)
    return RefreshingOAuth2ClientCredentials(
        access_token_url=token_url,
        client_id=auth.get("client_id"),
        client_secret=auth.get("client_secret"),
        refresh_margin=refresh_margin,
        session=session,
        stats=stats,
    ).resolve()  # values are explicit: no lookup in config providers that could override them


def is_seed_auth(auth: Optional[Any]) -> bool:
    return isinstance(auth, Mapping) and auth.get("type") == SEED_AUTH_TYPE
