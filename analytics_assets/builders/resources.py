"""Dagster resources: the API as the deployment defines it, and the warehouse the tables live in.

Where credentials go is the deployment's decision, never a run's: the API's URLs, the client
credentials, the warehouse, its credentials and every path come from the deployment's environment
(`ANALYTICS_*`, dlt's own variables and secrets), which a run's launch config cannot reach. The
`analytics_api` resource's fields are the launch-time tunables of `Settings`, derived from it, with
the same bounds (checked by the run's first step: Dagster's config types hold none); unset, the
deployment's values apply.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
import logging
from typing import Annotated, Callable, Iterator, Optional

import dlt
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, ValidationError, create_model

from ..api.instance import ApiInstance
from ..errors import SettingsError
from ..settings import Settings, bounds, explain
from ..warehouse.pipeline import make_pipeline
from ..warehouse.pool import create_pool, release_slots_of_dead_runs
from ..warehouse.destinations import DESTINATIONS, WarehouseTarget, private_folder
from ..warehouse.sql import WarehouseSql, open_sql

logger = logging.getLogger(__name__)
RUN_FOLDER_MARK = ".analytics-assets-run"  # marks a dlt working folder this project created
WAREHOUSE_SETTINGS = ("destination", "duckdb_path", "writer_pool_limit", "warehouse_lock_wait")  # the warehouse resource reads no other


class _AnalyticsApi(ConfigurableResource):
    """An API's settings for a run: launch-time tunables, then the API's own values (its file's),
    then the deployment's environment, then the defaults. Each API has its own (`<name>_api`)."""

    def settings(self, instance: Optional[ApiInstance] = None) -> Settings:
        """Raises SettingsError, one line naming the launch field and its bounds, for a launch value
        out of them (the environment's and the API file's are named by their own variables)."""
        launch = {name: getattr(self, name) for name in LAUNCH_FIELDS}
        check_launch(launch, instance.resource_key if instance is not None else "analytics_api")
        return instance.settings(**launch) if instance is not None else Settings.from_env(**launch)


LAUNCH_FIELDS = {name: field for name, field in Settings.model_fields.items()
                 if (field.json_schema_extra or {}).get("launch")}

# The launch fields as Dagster's config takes them: Dagster's config types hold no numeric bounds,
# so a value out of bounds passes the launchpad; were the bounds on the resource, the resource
# would fail to initialise with pydantic's dump and a stack trace. So the resource takes any number
# and says its bounds in its description, and the run's first step refuses a value out of them in
# one line (`check_launch`). What Dagster's config can express (the `schema_drift` Enum, a number's
# type) it refuses at launch, before a run exists.
AnalyticsApiResource = create_model(  # type: ignore[call-overload]
    "AnalyticsApiResource",
    __base__=_AnalyticsApi,
    __module__=__name__,
    **{
        name: (Optional[field.annotation],
               Field(None, description=f"{field.description}" + (f"; {bounds(name)}" if bounds(name) else "")
                     + " (default: the deployment's value)"))
        for name, field in LAUNCH_FIELDS.items()
    },
)
# The same fields with Settings' bounds: what `check_launch` validates launch values with.
_LaunchBounds = create_model(  # type: ignore[call-overload]
    "_LaunchBounds",
    **{name: (Annotated[(Optional[field.annotation], *field.metadata)] if field.metadata else Optional[field.annotation],
              None)
       for name, field in LAUNCH_FIELDS.items()},
)


def check_launch(values: dict, resource_key: str) -> None:
    """Launch values within the bounds of their settings, or SettingsError naming the first one
    out of them as the launchpad shows it (`analytics_api.max_retries`), and its bounds."""
    try:
        _LaunchBounds(**values)
    except ValidationError as error:
        raise SettingsError(explain(error, {name: f"The launch config's {resource_key}.{name}"
                                            for name in LAUNCH_FIELDS})) from None


def api_resource(instance: ApiInstance) -> AnalyticsApiResource:  # type: ignore[valid-type]
    """The resource `<name>_api` of one API, described for the launchpad (Dagster shows a
    resource's class docstring as its description)."""
    described = create_model(  # type: ignore[call-overload]
        f"{''.join(part.title() for part in instance.name.split('_'))}ApiResource",
        __base__=AnalyticsApiResource, __module__=__name__,
        __doc__=f"The {instance.name} API's run tunables (concurrency, request rate, retries, timeouts, ...): "
        "set one in a run's launch config to change it for that run only. Unset, the API's own value applies "
        f"(its file's `run_defaults`), then the deployment's ANALYTICS_* variable, then the default. The "
        "API's URLs and credentials are never set here: they come from the deployment's environment.")
    return described()


class WarehouseResource(ConfigurableResource):
    """Where the merged tables live: the deployment's ANALYTICS_DESTINATION (a DuckDB file at
    ANALYTICS_DUCKDB_PATH by default), with credentials found by dlt. Nothing here is open to a
    run's launch config."""

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Before this run's steps queue for the writer pool: the pool exists, slots held by dead
        runs are free, and working folders of finished runs are gone."""
        if context.instance is None:
            return
        self._prune_working_folders(context)
        settings = self.settings()
        destination = DESTINATIONS[settings.destination]
        limit, replaced = create_pool(context.instance, destination.pool, settings.writer_pool_limit,
                                      first_limit=1 if destination.single_writer else None)
        if replaced is not None:
            context.log.info(f"The `{destination.pool}` pool allowed {replaced} steps at once; it now allows {limit}, "
                             "as ANALYTICS_WRITER_POOL_LIMIT says (from the next steps that queue for it).")
        if destination.single_writer:  # one machine writes a DuckDB file, so a local pid check is sound
            if limit != 1:
                context.log.warning(f"The `{destination.pool}` pool allows {limit} steps at once; a DuckDB file "
                                    "takes one writer: set it to 1 (`dagster instance concurrency set`).")
            for run_id in release_slots_of_dead_runs(context.instance, destination.pool):
                context.log.warning(f"Released the `{destination.pool}` slot of run {run_id}, whose process had died.")

    def _prune_working_folders(self, context: InitResourceContext) -> None:
        """Each run's dlt folder outlives it (state, trace, the files it loaded): one per run would
        fill the disk of a daily schedule. A finished run's folder is never read again (a failed
        run's packages are refetched, not resumed), so it goes; running runs keep theirs, and so do
        runs this instance does not know (another DAGSTER_HOME) until they are a day old. Only
        folders this project created, and marked, are ever removed."""
        base = self.pipelines_base()
        if not base.is_dir():
            return
        current = context.run.run_id if context.run else None
        for folder in base.iterdir():
            if folder.name == current or not (folder / RUN_FOLDER_MARK).is_file():
                continue
            run = context.instance.get_run_by_id(folder.name)
            if run.is_finished if run else time.time() - folder.stat().st_mtime > 86_400:
                shutil.rmtree(folder, ignore_errors=True)

    def settings(self) -> Settings:
        return Settings.from_env(only=WAREHOUSE_SETTINGS)

    def pipelines_base(self) -> Path:
        return self.settings().duckdb_path.parent / "dlt_pipelines"

    def target(self) -> WarehouseTarget:
        settings = self.settings()
        return WarehouseTarget(DESTINATIONS[settings.destination], settings.duckdb_path)

    def pipeline(self, run_id: str, instance: Optional[ApiInstance] = None) -> dlt.Pipeline:
        """The pipeline of `instance` (default: the built-in API) with a working folder of its own:
        two runs of one pipeline name sharing a folder delete each other's files; two APIs in one
        run share the run's folder, each under its own pipeline name. Its state is restored from
        the destination each run."""
        folder = private_folder(self.pipelines_base() / run_id)
        (folder / RUN_FOLDER_MARK).touch(mode=0o600)
        names = {"dataset_name": instance.dataset, "pipeline_name": instance.pipeline_name} if instance else {}
        return make_pipeline(self.target(), pipelines_dir=folder, staging_suffix=run_id[:8], **names)

    @contextmanager
    def sql(self, run_id: str, say: Callable[[str], None] = logger.info, wait: Optional[float] = None,
            instance: Optional[ApiInstance] = None) -> Iterator[WarehouseSql]:
        """SQL on `instance`'s schema (default: the built-in API's) through dlt's client for the
        warehouse (see warehouse/sql.py); a DuckDB file is waited for up to `wait` seconds (default
        ANALYTICS_WAREHOUSE_LOCK_WAIT)."""
        with open_sql(self.pipeline(run_id, instance), wait or self.settings().warehouse_lock_wait, say) as sql:
            yield sql
