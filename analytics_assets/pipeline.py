"""A plain dlt pipeline into DuckDB: the layer Dagster drives, usable on its own."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Optional

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract import DltSource

from .errors import root_cause

DATASET_NAME = "analytics"
PIPELINE_NAME = "analytics_assets"
# Columnar loading: pages arrive as Arrow tables (see pages.py) and are written as parquet; dlt's
# default insert_values path measured ~2,000 rows/s and 2.9 GB for 100,000 records here.
LOADER_FILE_FORMAT = "parquet"
# DuckDB sizes its memory from the machine's RAM and runs a thread per core; capped, a large merge
# spills to disk instead of growing the run's footprint with the number of rows (measured: a
# 1,000,000-row load went from +185 MB to +120 MB, and no slower).
DUCKDB_CONFIG = {"memory_limit": "32MB", "threads": 1}


class _ArrowJsonHintNotice(logging.Filter):
    """dlt warns on every Arrow page that the `json` hint overrides the JSON text column; that
    override is the intent (see pages.py), so the per-page warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


_JSON_HINT_NOTICE = _ArrowJsonHintNotice()


def make_pipeline(
    duckdb_path: Path,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: Optional[Path] = None,
) -> dlt.Pipeline:
    duckdb_path = Path(duckdb_path)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    # Arrow pages carry no `_dlt_load_id`; keep it, scoped to this pipeline, so every row still
    # says which load wrote it.
    dlt.config[f"{pipeline_name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    logging.getLogger("dlt").addFilter(_JSON_HINT_NOTICE)  # idempotent: filters are a set
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(
            DuckDbCredentials(str(duckdb_path), global_config=DUCKDB_CONFIG)
        ),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
        progress=None,
    )


def run_options() -> dict[str, Any]:
    """Keyword arguments for `pipeline.run`, shared by the plain and the Dagster paths."""
    return {"loader_file_format": LOADER_FILE_FORMAT}


def forget_dropped_tables(pipeline: dlt.Pipeline, tables: Iterable[str]) -> None:
    """If someone dropped one of our tables by hand, make dlt create it again.

    dlt restores its schema from the destination's `_dlt_version` and, finding its version
    current, skips creating tables it believes exist: the merge then fails on the missing table.
    Forgetting the stored versions makes the next load compare against the real tables.
    """
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return
        existing = {
            row[0]
            for row in client.execute_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", pipeline.dataset_name
            )
        }
        if "_dlt_version" in existing and not set(tables) <= existing:
            client.execute_sql(f"DELETE FROM {client.make_qualified_table_name('_dlt_version')}")


def sync(pipeline: dlt.Pipeline, source: DltSource) -> LoadInfo:
    """Run one sync. Packages left by an earlier failed run are dropped first: their data is
    refetched by this run, and loading them could resurrect a half-finished attempt."""
    pipeline.abort_packages()
    forget_dropped_tables(pipeline, source.resources.keys())
    try:
        return pipeline.run(source, **run_options())
    except Exception as error:
        cause = root_cause(error)
        if cause is error:
            raise
        raise cause from error
