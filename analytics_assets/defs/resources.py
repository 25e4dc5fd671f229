"""Dagster resources: the OAuth2 API configuration and the warehouse the tables live in.

Both resolve their values at run time (field, then `ANALYTICS_*` variable, then dlt secrets for the
credentials), so the code location loads with an empty environment and a missing secret fails the
run that needs it, with the variable to set in the message.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Optional

from contextlib import contextmanager
from typing import Iterator

import dlt
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from .pipeline import DATASET_NAME, PIPELINE_NAME, make_pipeline
from .pool import prepare_pool, release_slots_of_dead_runs, writer_pool, writer_pool_limit
from .settings import (
    DESTINATIONS,
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_DESTINATION,
    ENV_SCHEMA_DRIFT,
    ENV_WRITER_POOL_LIMIT,
    ApiSettings,
    api_settings_from_env,
    check_destination,
    destination_from_env,
    duckdb_path_from_env,
    writer_pool_limit_from_env,
)
from .warehouse import WarehouseSql, WarehouseTarget, open_sql


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


class WarehouseResource(ConfigurableResource):
    """Where the merged tables live: a DuckDB file by default, or any destination in
    `settings.DESTINATIONS` (see README, "Running in production")."""

    destination: Optional[str] = Field(default=None, description=f"One of {', '.join(DESTINATIONS)}; default ${ENV_DESTINATION} or duckdb.")
    database_path: Optional[str] = Field(default=None, description="DuckDB file; default $ANALYTICS_DUCKDB_PATH or data/warehouse.duckdb.")
    credentials: Optional[str] = Field(
        default=None,
        description="Credentials of a non-DuckDB destination, e.g. EnvVar('...') holding a connection string; "
        "default: dlt's own lookup (DESTINATION__<NAME>__CREDENTIALS, .dlt/secrets.toml).",
    )
    writer_pool_limit: Optional[int] = Field(
        default=None,
        description=f"Steps writing at once (not DuckDB, which has one writer); default ${ENV_WRITER_POOL_LIMIT} "
        "or the instance's pool limit.",
    )
    pipelines_dir: Optional[str] = Field(
        default=None, description="Where dlt keeps per-run working folders; default beside the DuckDB file."
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Before this run's steps queue for the writer pool: its slots exist, slots held by dead
        runs are free, and working folders of finished runs are gone."""
        if context.instance is None:
            return
        self._prune_working_folders(context)
        target = self.target
        pool = writer_pool(target.destination)
        limit = writer_pool_limit(target.destination, self.writer_pool_limit or writer_pool_limit_from_env())
        prepare_pool(context.instance, pool, limit)
        if target.single_writer:  # one machine writes a DuckDB file, so a local pid check is sound
            for run_id in release_slots_of_dead_runs(context.instance, pool):
                context.log.warning(f"Released the `{pool}` slot of run {run_id}, whose process had died.")

    def _prune_working_folders(self, context: InitResourceContext) -> None:
        """Each run's dlt folder outlives it (state, trace, the files it loaded): one per run would
        fill the disk of a daily schedule. A finished run's folder is never read again (a failed
        run's packages are refetched, not resumed), so it goes; running runs keep theirs, and so
        do runs this instance does not know (another DAGSTER_HOME) until they are a day old."""
        base = self._pipelines_base()
        if not base.is_dir():
            return
        current = context.run.run_id if context.run else None
        for folder in base.iterdir():
            if folder.name == current or not folder.is_dir():
                continue
            run = context.instance.get_run_by_id(folder.name)
            stale = run.is_finished if run else time.time() - folder.stat().st_mtime > 86_400
            if stale:
                shutil.rmtree(folder, ignore_errors=True)

    def _pipelines_base(self) -> Path:
        return Path(self.pipelines_dir) if self.pipelines_dir else self.target.duckdb_path.parent / "dlt_pipelines"

    @property
    def target(self) -> WarehouseTarget:
        return WarehouseTarget(
            destination=check_destination(self.destination) if self.destination else destination_from_env(),
            duckdb_path=Path(self.database_path) if self.database_path else duckdb_path_from_env(),
            credentials=self.credentials,
        )

    def pipeline(self, run_id: str) -> dlt.Pipeline:
        """A pipeline with a working folder of its own: two runs of one pipeline name sharing a
        folder delete each other's files. Its state is restored from the destination each run."""
        return make_pipeline(
            self.target, PIPELINE_NAME, pipelines_dir=self._pipelines_base() / run_id, staging_suffix=run_id[:8]
        )

    @contextmanager
    def sql(self, run_id: str) -> Iterator[WarehouseSql]:
        """SQL on the warehouse through dlt's client for its destination (see warehouse.py)."""
        with open_sql(self.pipeline(run_id)) as sql:
            yield sql

    def table(self, resource: str) -> str:
        return f"{DATASET_NAME}.{resource}"
