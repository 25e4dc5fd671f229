"""The project's SQL on the warehouse, at the sizes it must handle, under the memory cap the
project's DuckDB connections carry. Tables are loaded by dlt, as the project's are: reads go through
dlt's dataset, which knows only the tables its schema holds."""

from datetime import datetime, timezone
from pathlib import Path

import dlt
import duckdb
import pyarrow as pa

from analytics_assets.api.names import SOURCE_NAME
from analytics_assets.warehouse.destinations import DUCKDB_CONFIG
from analytics_assets.warehouse.pipeline import make_pipeline
from analytics_assets.warehouse.sql import open_sql
from analytics_assets.window import Window

CAP = "SELECT current_setting('memory_limit')"


def loaded(tmp_path: Path, name: str, *batches: pa.Table) -> tuple[dlt.Pipeline, list[str]]:
    """A pipeline of this project that appended each batch as a load of its own: their load ids."""
    pipeline = make_pipeline(tmp_path / "warehouse.duckdb", pipelines_dir=tmp_path / "pipelines")
    load_ids = []
    for batch in batches:
        resource = dlt.resource(batch, name=name, write_disposition="append")
        info = pipeline.run(dlt.source(lambda: resource, name=SOURCE_NAME)(), loader_file_format="parquet")
        load_ids.append(info.loads_ids[-1])
    return pipeline, load_ids


def test_distinct_ids_of_a_million_row_load_are_counted_under_the_memory_cap(tmp_path: Path) -> None:
    """window_complete counts the distinct ids a load wrote. Over a million ids a count(DISTINCT)
    ran out of DuckDB's 32 MB and failed the check of every run that size."""
    # 1,200,000 rows: ids 0..999,999 in this load, 200,000 of them twice; 50,000 in another load.
    this = pa.table({"id": pa.array([i % 1_000_000 for i in range(1_200_000)], pa.int64())})
    other = pa.table({"id": pa.array(range(50_000), pa.int64())})
    pipeline, (this_load, other_load) = loaded(tmp_path, "resource_name", this, other)
    with open_sql(pipeline) as sql:
        with duckdb.connect(config=DUCKDB_CONFIG) as capped:
            assert sql.read(CAP)[0][0] == capped.execute(CAP).fetchone()[0]
        assert sql.distinct_in_load("resource_name", ("id",), this_load) == 1_000_000
        assert sql.distinct_in_load("resource_name", ("id",), other_load) == 50_000


def test_names_a_config_may_give_are_quoted_through_the_destinations_own_quoting(tmp_path: Path) -> None:
    """A key of two columns both named like SQL words: counted by load, grouped, per day."""
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    rows = pa.table({"order": [1, 1, 1], "select": ["a", "b", "b"],
                     "_cursor_at": pa.array([at("2026-11-17T10:00"), at("2026-11-17T11:00"), at("2026-11-18T01:00")],
                                            pa.timestamp("us", tz="UTC"))})
    pipeline, (load_id,) = loaded(tmp_path, "odd names", rows)
    with open_sql(pipeline) as sql:
        table = pipeline.default_schema.naming.normalize_table_identifier("odd names")
        order, select = (pipeline.default_schema.naming.normalize_identifier(name) for name in ("order", "select"))
        assert sql.distinct_in_load(table, (order, select), load_id) == 2
        assert sql.rows_per_day(table, "_cursor_at", Window.of_days("2026-11-17", "2026-11-18")) == {
            "2026-11-17": 2, "2026-11-18": 1}
