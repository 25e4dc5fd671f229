"""The project's SQL on the warehouse, at the sizes it must handle, under the memory cap the
project's DuckDB connections carry."""

from pathlib import Path

import duckdb

from analytics_assets.warehouse.pipeline import make_pipeline
from analytics_assets.warehouse.destinations import DUCKDB_CONFIG
from analytics_assets.warehouse.sql import open_sql

CAP = "SELECT current_setting('memory_limit')"


def test_distinct_ids_of_a_million_row_load_are_counted_under_the_memory_cap(tmp_path: Path) -> None:
    """window_complete counts the distinct ids a load wrote. Over a million ids a count(DISTINCT)
    ran out of DuckDB's 32 MB and failed the check of every run that size."""
    with open_sql(make_pipeline(tmp_path / "warehouse.duckdb", pipelines_dir=tmp_path / "pipelines")) as sql:
        sql.execute("CREATE SCHEMA analytics")
        table = sql.table("resource_name")
        # 1,200,000 rows: ids 0..999,999 of this load, 200,000 of them twice; 50,000 of another load.
        sql.execute(f"CREATE TABLE {table} AS SELECT range % 1000000 AS id, 'this' AS _dlt_load_id "
                    "FROM range(1200000) UNION ALL SELECT range AS id, 'other' FROM range(50000)")
        with duckdb.connect(config=DUCKDB_CONFIG) as capped:
            assert sql.rows(CAP)[0][0] == capped.execute(CAP).fetchone()[0]
        assert sql.distinct_in_load(table, ("id",), "this") == 1_000_000
        assert sql.distinct_in_load(table, ("id",), "other") == 50_000


def test_names_a_config_may_give_are_quoted_through_the_destinations_own_quoting(tmp_path: Path) -> None:
    """A key of two columns named like SQL words or with a space: counted by load, grouped, per day."""
    from datetime import datetime, timezone

    from analytics_assets.window import Window

    with open_sql(make_pipeline(tmp_path / "warehouse.duckdb", pipelines_dir=tmp_path / "pipelines")) as sql:
        sql.execute("CREATE SCHEMA analytics")
        table = sql.table("odd names")
        sql.execute(f'CREATE TABLE {table} ("order" BIGINT, "created at" TEXT, "_cursor_at" TIMESTAMPTZ, '
                    '_dlt_load_id TEXT)')
        sql.execute(f"INSERT INTO {table} VALUES (1, 'a', '2026-11-17 10:00:00+00', 'x'), "
                    "(1, 'b', '2026-11-17 11:00:00+00', 'x'), (1, 'b', '2026-11-18 01:00:00+00', 'x')")
        assert sql.distinct_in_load(table, ("order", "created at"), "x") == 2
        assert sql.rows_per_day(table, "_cursor_at", Window.of_days("2026-11-17", "2026-11-18")) == {
            "2026-11-17": 2, "2026-11-18": 1}
