"""Dagster resources: the OAuth2 API configuration and the DuckDB destination.

Both resolve their values at run time (field, then `ANALYTICS_*` variable, then dlt secrets for the
credentials), so the code location loads with an empty environment and a missing secret fails the
run that needs it, with the variable to set in the message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dlt
import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from .errors import AnalyticsSyncError, DatabaseLocked
from .pool import WRITER_POOL, prepare_pool, release_slots_of_dead_runs
from .pipeline import DATASET_NAME, DUCKDB_CONFIG, PIPELINE_NAME, make_pipeline
from .settings import (
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_SCHEMA_DRIFT,
    ApiSettings,
    api_settings_from_env,
    duckdb_path_from_env,
)


class AnalyticsApiResource(ConfigurableResource):
    """OAuth2 client credentials and HTTP tuning for the analytics API.

    Unset fields fall back to the ANALYTICS_* environment variables, and the credentials finally to
    the seed's dlt secrets `client_id`/`client_secret`. Pass `dagster.EnvVar("...")` to take a
    value from another variable.
    """

    base_url: Optional[str] = Field(default=None, description=f"API base URL; default ${ENV_BASE_URL}.")
    token_url: Optional[str] = Field(default=None, description="Token URL; default <base_url>/oauth/token.")
    client_id: Optional[str] = Field(default=None, description=f"Default ${ENV_CLIENT_ID} or dlt secret client_id.")
    client_secret: Optional[str] = Field(
        default=None, description=f"Default ${ENV_CLIENT_SECRET} or dlt secret client_secret."
    )
    timeout_seconds: Optional[float] = Field(default=None, description="Per-request timeout.")
    max_retries: Optional[int] = Field(default=None, description="Retries after the first attempt (seed: 3).")
    backoff_factor: Optional[float] = Field(default=None, description="Exponential backoff factor (seed: 2).")
    max_retry_wait_seconds: Optional[float] = Field(
        default=None, description="Cap on one wait, backoff or Retry-After."
    )
    schema_drift: Optional[str] = Field(default=None, description=f"evolve or freeze; default ${ENV_SCHEMA_DRIFT}.")
    max_concurrency: Optional[int] = Field(
        default=None, description="Page requests in flight once `total` is known; 1 pages in turn."
    )

    def settings(self) -> ApiSettings:
        env = dict(os.environ)
        overrides = {
            "ANALYTICS_API_BASE_URL": self.base_url,
            "ANALYTICS_TOKEN_URL": self.token_url,
            "ANALYTICS_CLIENT_ID": self.client_id,
            "ANALYTICS_CLIENT_SECRET": self.client_secret,
            "ANALYTICS_HTTP_TIMEOUT": self.timeout_seconds,
            "ANALYTICS_MAX_RETRIES": self.max_retries,
            "ANALYTICS_BACKOFF_FACTOR": self.backoff_factor,
            "ANALYTICS_MAX_RETRY_WAIT": self.max_retry_wait_seconds,
            "ANALYTICS_SCHEMA_DRIFT": self.schema_drift,
            "ANALYTICS_MAX_CONCURRENCY": self.max_concurrency,
        }
        env.update({k: str(v) for k, v in overrides.items() if v is not None})
        return api_settings_from_env(env)


class DuckDBDestination(ConfigurableResource):
    """The DuckDB file the merged table lives in (one writer at a time: see the `duckdb_writer` pool)."""

    database_path: Optional[str] = Field(default=None, description="Default $ANALYTICS_DUCKDB_PATH or data/warehouse.duckdb.")
    pipelines_dir: Optional[str] = Field(
        default=None, description="Where dlt keeps per-run working folders; default beside the database."
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Before this run's steps queue for the writer pool: its slot exists, and slots held by
        dead runs are free."""
        if context.instance is not None:
            prepare_pool(context.instance)
            for run_id in release_slots_of_dead_runs(context.instance):
                context.log.warning(f"Released the `{WRITER_POOL}` slot of run {run_id}, whose process had died.")

    @property
    def path(self) -> Path:
        return Path(self.database_path) if self.database_path else duckdb_path_from_env()

    def pipeline(self, run_id: str) -> dlt.Pipeline:
        """A pipeline with a working folder of its own: two runs of one pipeline name sharing a
        folder delete each other's files. Its state is restored from the destination each run."""
        base = Path(self.pipelines_dir) if self.pipelines_dir else self.path.parent / "dlt_pipelines"
        return make_pipeline(self.path, PIPELINE_NAME, pipelines_dir=base / run_id)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if read_only and not self.path.exists():
            raise AnalyticsSyncError(f"The DuckDB file {self.path} does not exist yet: materialize the analytics assets first.")
        try:
            return duckdb.connect(str(self.path), read_only=read_only, config=DUCKDB_CONFIG)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise DatabaseLocked(str(error)) from None
            raise

    def table(self, resource: str) -> str:
        return f"{DATASET_NAME}.{resource}"

    def has_table(self, connection: duckdb.DuckDBPyConnection, resource: str) -> bool:
        """A first run over an empty window creates no table: readers must not fail on that."""
        return bool(
            connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [DATASET_NAME, resource],
            ).fetchone()[0]
        )

