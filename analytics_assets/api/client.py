"""What one sync talks to an API with: the credentials, the throttle, the sessions and the pages
requested ahead, each built once per sync and ended with it.

dlt builds a source's paginators from plain config values (`register_paginator`), so a paginator
that sends pages ahead finds its sync here, by the id its config names (`ApiClient.open`): the
clients of the syncs running in this process, each from its `with` block's start to its end.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import ClassVar, Optional

import dlt
from requests import Session

from ..errors import MissingCredentials
from ..settings import Settings
from .auth import ClientCredentials
from .definition import ApiDefinition, Credentials
from .http import TokenTransport, Transport, authority, build_session
from .lookahead import Lookahead, PagingSession
from .shared_budget import open_shared_budget
from .stats import SyncStats
from .throttle import Throttle
from .urls import origin_of

# What a page asking for one record may send (a record, a total, a link): the days' totals read no
# more, so a sensor in the code location holds a few of them at most.
ONE_RECORD_PAGE_BYTES = 2**20


class ApiClient:
    """Use it as a context manager: leaving it ends its threads and closes its connections, whether
    the sync succeeded or not.

    `budget_folder` is where the rate limit budget shared by every run and sensor of the deployment
    lives (`shared_budget.py`): the Dagster instance's, given by the asset and the sensor;
    ANALYTICS_RATE_BUDGET_DIR, where set, is used instead. Without either the sync paces alone."""

    _open: ClassVar[dict[str, "ApiClient"]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, definition: ApiDefinition, settings: Settings, stats: SyncStats,
                 credentials: Optional[Credentials] = None, budget_folder: Optional[Path] = None) -> None:
        self.id = secrets.token_hex(8)
        self.definition = definition
        self.settings = settings
        self.stats = stats
        self.base_url, self.token_url = definition.urls(settings)
        base_from, token_from = definition.url_sources(settings)
        client_id = _credential("client_id", settings, credentials)
        self.auth = ClientCredentials.of(
            definition.config.client.auth, self.token_url, client_id,
            _credential("client_secret", settings, credentials), settings.token_refresh_margin,
            build_session(TokenTransport(settings, stats, origin_of(self.token_url), setting=token_from),
                          self.token_url), stats,
            settings.max_token_bytes,
        )
        host = authority(origin_of(self.base_url))
        # No request is out longer than its deadline (ANALYTICS_REQUEST_DEADLINE, from connecting on); the
        # timeout is added to spare.
        shared = open_shared_budget(settings.rate_budget_dir or budget_folder, origin_of(self.base_url), client_id,
                                    settings.http_timeout + settings.request_deadline, stats.warn, stats.say)
        self.throttle = Throttle(settings.max_retry_wait, settings.max_requests_per_second, settings.max_concurrency,
                                 stats.warn, shared=shared,
                                 say=lambda text: stats.say(f"Requests to {host}: {text}"))
        pool = max(10, settings.max_concurrency)
        transport = Transport(settings, stats, origin_of(self.base_url), self.auth, self.throttle,
                              setting=base_from, pool_connections=pool, pool_maxsize=pool)
        self.retrying: Session = build_session(transport, self.base_url)  # safe to share between threads
        # The days' totals ask one-record pages (`totals.py`), from the code location's sensor too.
        self.probing: Session = build_session(Transport(settings, stats, origin_of(self.base_url), self.auth,
                                                        self.throttle, max_bytes=ONE_RECORD_PAGE_BYTES,
                                                        setting=base_from), self.base_url)
        self.lookahead: Optional[Lookahead] = None
        self.session: Session = self.retrying  # what dlt's paging loop talks to
        if settings.max_concurrency > 1:
            self.lookahead = Lookahead(self.retrying, self.throttle, settings.max_concurrency)
            self.session = PagingSession(self.retrying, self.lookahead)

    @classmethod
    def open(cls, sync_id: Optional[str]) -> Optional["ApiClient"]:
        """The client of a sync running in this process, by its id (None: none named)."""
        with cls._open_lock:
            return cls._open.get(sync_id) if sync_id else None

    def __enter__(self) -> "ApiClient":
        with self._open_lock:
            self._open[self.id] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._open_lock:
            self._open.pop(self.id, None)
        if self.lookahead is not None:
            self.lookahead.close()
        self.session.close()
        self.probing.close()
        self.auth.session.close()
        self.throttle.close()


def _credential(name: str, settings: Settings, credentials: Optional[Credentials]) -> str:
    """From the settings (ANALYTICS_*, or the variable the API's component names), the config dict
    (the seed's), or dlt's secrets, in order."""
    value = settings.secret(name) or (getattr(credentials, name) if credentials else None) or \
        dlt.secrets.get(settings.secret_key(name))
    if not value:
        raise MissingCredentials(name, settings.source(name), settings.secret_key(name))
    return value
