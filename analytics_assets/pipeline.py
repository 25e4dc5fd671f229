"""A plain dlt pipeline into DuckDB: the layer Dagster drives, usable on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.extract import DltSource

from .errors import root_cause

DATASET_NAME = "analytics"
PIPELINE_NAME = "analytics_assets"
# Columnar loading: dlt's default insert_values path measured ~2,000 rows/s and 2.9 GB for
# 100,000 records here; parquet ~6,000 rows/s with flat memory.
LOADER_FILE_FORMAT = "parquet"


def make_pipeline(
    duckdb_path: Path,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: Optional[Path] = None,
) -> dlt.Pipeline:
    duckdb_path = Path(duckdb_path)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(str(duckdb_path)),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
        progress=None,
    )


def run_options() -> dict[str, Any]:
    """Keyword arguments for `pipeline.run`, shared by the plain and the Dagster paths."""
    return {"loader_file_format": LOADER_FILE_FORMAT}


def sync(pipeline: dlt.Pipeline, source: DltSource) -> LoadInfo:
    """Run one sync. Packages left by an earlier failed run are dropped first: their data is
    refetched by this run, and loading them could resurrect a half-finished attempt."""
    pipeline.abort_packages()
    try:
        return pipeline.run(source, **run_options())
    except Exception as error:
        cause = root_cause(error)
        if cause is error:
            raise
        raise cause from error
