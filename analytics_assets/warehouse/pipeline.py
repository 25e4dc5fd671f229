"""The dlt pipeline into the warehouse: the layer Dagster drives, usable on its own.

Three settings of dlt's are made here, explicitly, for this project's pipeline only: pages arrive as
Arrow tables, which dlt leaves without `_dlt_load_id` unless its parquet normalizer is told to add
it (every row must say which load wrote it: the completeness check counts them); dlt's warning
that a `json` column hint overrides the Arrow text column it arrives as is silenced while a load
runs (that override is the intent: JSON travels as text); and dlt's anonymous telemetry is off
unless the deployment turned it on (`quiet_telemetry`).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.pipeline import LoadInfo
from dlt.common.runtime.telemetry import stop_telemetry
from dlt.destinations.sql_client import SqlClientBase
from dlt.extract import DltSource

from ..api.definition import ApiDefinition
from ..window import Window
from ..api.client import ApiClient
from ..api.stats import SyncStats
from ..api.names import table
from ..api.source import SOURCE_NAME, build_source
from ..errors import diagnosed
from ..settings import Settings
from .destinations import DESTINATIONS, WarehouseTarget, private_files
from .sql import CREATING_TABLES_LOCK, DEFAULT_LOCK_WAIT, connect

DATASET_NAME = "analytics"
PIPELINE_NAME = "analytics_assets"

logger = logging.getLogger(__name__)


def quiet_telemetry() -> None:
    """dlt sends anonymous usage events (each pipeline step, the destination's fingerprint) to dltHub
    unless told not to. A deployment that says either way is obeyed: RUNTIME__DLTHUB_TELEMETRY, or
    `dlthub_telemetry` under `[runtime]` in a `.dlt/config.toml` (`dlt telemetry enable` writes it).
    Said nowhere, it is off: written as dlt's own config value (in memory, below the environment
    and the files), and dlt's runtime, which reads it when its configuration is first used,
    started again without the tracker."""
    if dlt.config.get("runtime.dlthub_telemetry") is not None:
        return  # the deployment's choice, or this function's, made already
    dlt.config["runtime.dlthub_telemetry"] = False
    stop_telemetry()
    Container()[PluggableRunContext].initialize_runtime()


def make_pipeline(target: WarehouseTarget | Path, pipelines_dir: Optional[Path] = None,
                  staging_suffix: Optional[str] = None) -> dlt.Pipeline:
    """A pipeline into `target` (a bare path means a DuckDB file)."""
    if not isinstance(target, WarehouseTarget):
        target = WarehouseTarget(DESTINATIONS["duckdb"], Path(target))
    quiet_telemetry()
    dlt.config[f"{PIPELINE_NAME}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    with private_files():  # dlt creates its working folder and state here
        return dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=target.dlt_destination(staging_suffix),
            dataset_name=DATASET_NAME,
            pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
            progress=None,
        )


def file_format(pipeline: dlt.Pipeline) -> str:
    return DESTINATIONS[pipeline.destination.destination_name].file_format


class _JsonHintNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


@contextmanager
def loading(pipeline: dlt.Pipeline, resources: Iterable[str], wait: float = DEFAULT_LOCK_WAIT,
            say: Callable[[str], None] = logger.info) -> Iterator[None]:
    """What a load needs around it, when other runs may write the same warehouse at once: a DuckDB
    file held by this run alone (`sql.connect`), a table dropped by hand created again, a run
    that creates tables doing so alone, and a run's own staging dataset dropped afterwards, whether
    its load succeeded or not. Figures read inside it (`sql.open_sql`) see the table before another
    run's load can change what this one wrote."""
    # The connection stays open for the whole load: a DuckDB file is then this process's alone, and
    # dlt's own connections share it.
    with connect(pipeline, wait, say) as client:
        missing = _missing_tables(client, pipeline, [table(name) for name in resources])
        creating = missing and pipeline.destination.destination_name == "postgres"
        notice = _JsonHintNotice()
        logging.getLogger("dlt").addFilter(notice)
        try:
            with _creating_tables(pipeline) if creating else nullcontext():
                yield
        finally:
            logging.getLogger("dlt").removeFilter(notice)
            _drop_staging(pipeline)


def _drop_staging(pipeline: dlt.Pipeline) -> None:
    if "staging_dataset_name_layout" in pipeline.destination.config_params:
        with connect(pipeline) as client, client.with_staging_dataset():
            if client.has_dataset():
                client.drop_dataset()


def _missing_tables(client: SqlClientBase, pipeline: dlt.Pipeline, tables: list[str]) -> bool:
    """Whether this run creates tables (`tables`: those it loads, as the warehouse names them). A table of ours dropped by hand is created again: dlt
    restores its schema from the destination's `_dlt_version` and, finding it current, would skip
    creating a table it believes exists, so this schema's stored versions are forgotten."""
    if not client.has_dataset():
        return True
    existing = {row[0] for row in client.execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", pipeline.dataset_name)}
    missing = sorted(set(tables) - existing)
    if missing and "_dlt_version" in existing:
        logger.warning(f"Tables {', '.join(missing)} are missing from {pipeline.dataset_name}: creating them again.")
        client.execute_sql(f"DELETE FROM {client.make_qualified_table_name('_dlt_version')} WHERE schema_name = %s",
                           SOURCE_NAME)
    return bool(missing)


@contextmanager
def _creating_tables(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Two first runs on PostgreSQL both find the dataset missing and both issue CREATE SCHEMA: one
    fails. The lock the summary model takes to create its table (sql.CREATING_TABLES_LOCK), held
    here for the whole load, makes the second wait. DuckDB needs none (one writer); other
    warehouses are not covered (see README)."""
    with connect(pipeline) as client:
        client.execute_sql("SELECT pg_advisory_lock(%s)", CREATING_TABLES_LOCK)
        try:
            yield
        finally:
            client.execute_sql("SELECT pg_advisory_unlock(%s)", CREATING_TABLES_LOCK)


def load(pipeline: dlt.Pipeline, source: DltSource, wait: float = DEFAULT_LOCK_WAIT) -> LoadInfo:
    """Run a prepared source. Packages left by an earlier failed run are dropped first: their data
    is refetched by this run, and loading them could resurrect a half-finished attempt."""
    with diagnosed(), private_files():
        pipeline.abort_packages()
        with loading(pipeline, source.selected_resources.keys(), wait):
            return pipeline.run(source, loader_file_format=file_format(pipeline))


def sync(pipeline: dlt.Pipeline, definition: ApiDefinition, settings: Settings,
         window: Optional[Window] = None, stats: Optional[SyncStats] = None) -> LoadInfo:
    """One sync of `window` (every record when None) without Dagster."""
    with diagnosed(), ApiClient(definition, settings, stats or SyncStats()) as client:
        return load(pipeline, build_source(client, window), settings.warehouse_lock_wait)
