"""A plain dlt pipeline into the warehouse: the layer Dagster drives, usable on its own."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.extract import DltSource

from .errors import root_cause
from .warehouse import LOADER_FILE_FORMATS, WarehouseTarget, connect, drop_staging_dataset, schema_lock

DATASET_NAME = "analytics"
PIPELINE_NAME = "analytics_assets"


class _ArrowJsonHintNotice(logging.Filter):
    """dlt warns on every Arrow page that the `json` hint overrides the JSON text column; that
    override is the intent (see pages.py), so the per-page warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


_JSON_HINT_NOTICE = _ArrowJsonHintNotice()


def make_pipeline(
    target: WarehouseTarget | Path,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: Optional[Path] = None,
    staging_suffix: Optional[str] = None,
) -> dlt.Pipeline:
    """A pipeline into `target` (a bare path means a DuckDB file). `staging_suffix` gives a run on
    a shared warehouse a staging dataset of its own (see WarehouseTarget.dlt_destination)."""
    if not isinstance(target, WarehouseTarget):
        target = WarehouseTarget(duckdb_path=Path(target))
    # Arrow pages carry no `_dlt_load_id`; keep it, scoped to this pipeline, so every row still
    # says which load wrote it.
    dlt.config[f"{pipeline_name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    logging.getLogger("dlt").addFilter(_JSON_HINT_NOTICE)  # idempotent: filters are a set
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target.dlt_destination(staging_suffix),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
        progress=None,
    )


def run_options(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """Keyword arguments for `pipeline.run`, shared by the plain and the Dagster paths."""
    return {"loader_file_format": LOADER_FILE_FORMATS[pipeline.destination.destination_name]}


def forget_dropped_tables(pipeline: dlt.Pipeline, tables: Iterable[str]) -> bool:
    """If someone dropped one of our tables by hand, make dlt create it again; returns whether
    any of `tables` is missing (this run will create it).

    dlt restores its schema from the destination's `_dlt_version` and, finding its version
    current, skips creating tables it believes exist: the merge then fails on the missing table.
    Forgetting the stored versions makes the next load compare against the real tables.
    """
    with connect(pipeline) as client:
        if not client.has_dataset():
            return True
        existing = {
            row[0]
            for row in client.execute_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", pipeline.dataset_name
            )
        }
        missing = not set(tables) <= existing
        if "_dlt_version" in existing and missing:
            client.execute_sql(f"DELETE FROM {client.make_qualified_table_name('_dlt_version')}")
    return missing


@contextmanager
def shared_warehouse_guard(pipeline: dlt.Pipeline, tables: Iterable[str]) -> Iterator[None]:
    """What a run needs around its load when other runs may write the same warehouse at once:
    a run that creates tables does so alone, and a run's own staging dataset is dropped
    afterwards, whether its load succeeded or not."""
    creating = forget_dropped_tables(pipeline, tables)
    with schema_lock(pipeline, needed=creating):
        try:
            yield
        finally:
            if "staging_dataset_name_layout" in pipeline.destination.config_params:
                drop_staging_dataset(pipeline)


def sync(pipeline: dlt.Pipeline, source: DltSource) -> LoadInfo:
    """Run one sync. Packages left by an earlier failed run are dropped first: their data is
    refetched by this run, and loading them could resurrect a half-finished attempt."""
    pipeline.abort_packages()
    try:
        with shared_warehouse_guard(pipeline, source.resources.keys()):
            return pipeline.run(source, **run_options(pipeline))
    except Exception as error:
        cause = root_cause(error)
        if cause is error:
            raise
        raise cause from error
