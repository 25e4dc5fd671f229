"""Where the merged tables live, and the one SQL path every reader and writer of them takes.

Checks, models and the audit write their SQL once, in PostgreSQL's dialect, and run it through
dlt's SQL client for the configured destination; sqlglot (which dlt ships) rewrites it for the
others. Everything that still differs between destinations is in this module.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import dlt
import pyarrow as pa
import sqlglot
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from .errors import WarehouseUnreachable, root_cause

# DuckDB sizes its memory from the machine's RAM and runs a thread per core; capped, a large merge
# spills to disk instead of growing the run's footprint with the number of rows (measured: a
# 1,000,000-row load went from +185 MB to +120 MB, and no slower).
DUCKDB_CONFIG = {"memory_limit": "32MB", "threads": 1}
# Columnar loading where the destination takes it: pages arrive as Arrow tables (pages.py). dlt's
# default insert_values path measured ~2,000 rows/s and 2.9 GB for 100,000 records into DuckDB.
# PostgreSQL takes parquet only through an optional ADBC driver; CSV goes through COPY.
LOADER_FILE_FORMATS = {"duckdb": "parquet", "motherduck": "parquet", "snowflake": "parquet",
                       "bigquery": "parquet", "postgres": "csv"}
SQL_DIALECT = "postgres"  # the dialect this project's SQL is written in
_ID_BATCH = 10_000
_LOCK_KEY = 7_305_118_201  # pg_advisory_lock key shared by every run of this project


@dataclass(frozen=True)
class WarehouseTarget:
    """A destination and how to reach it. Only DuckDB has a single writer (one process per file)."""

    destination: str = "duckdb"
    duckdb_path: Path = Path("data/warehouse.duckdb")
    credentials: Optional[str] = field(default=None, repr=False)

    @property
    def single_writer(self) -> bool:
        return self.destination == "duckdb"

    def dlt_destination(self, staging_suffix: Optional[str] = None) -> Any:
        """The dlt destination; without explicit credentials dlt resolves its own (environment
        variables DESTINATION__<NAME>__CREDENTIALS, secrets.toml).

        `staging_suffix` gives a run on a shared warehouse a staging dataset of its own: dlt's merge
        truncates and refills `<dataset>_staging`, so two concurrent runs sharing it would lose each
        other's rows. DuckDB has one writer and keeps the shared one.
        """
        if self.destination == "duckdb":
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            return dlt.destinations.duckdb(DuckDbCredentials(str(self.duckdb_path), global_config=DUCKDB_CONFIG))
        options: dict[str, Any] = {}
        if self.credentials:
            options["credentials"] = self.credentials
        if staging_suffix:
            options["staging_dataset_name_layout"] = f"%s_staging_{staging_suffix}"
        return getattr(dlt.destinations, self.destination)(**options)


class WarehouseSql:
    """dlt's SQL client for the destination, taking this project's PostgreSQL-dialect SQL."""

    def __init__(self, client: SqlClientBase, destination: str) -> None:
        self.client = client
        self.destination = destination
        self._dialect = client.capabilities.sqlglot_dialect

    def _sql(self, sql: str) -> str:
        if self._dialect == SQL_DIALECT:
            return sql
        # sqlglot writes `?` placeholders for most dialects; dlt's clients all take `%s` (this
        # project's SQL has no `?` of its own).
        return sqlglot.transpile(sql, read=SQL_DIALECT, write=self._dialect)[0].replace("?", "%s")

    def execute(self, sql: str, *params: Any) -> None:
        self.client.execute_sql(self._sql(sql), *params)

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with self.client.execute_query(self._sql(sql), *params) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

    def columns_and_rows(self, sql: str, *params: Any) -> tuple[list[str], list[tuple]]:
        with self.client.execute_query(self._sql(sql), *params) as cursor:
            return [d[0] for d in cursor.description], [tuple(row) for row in cursor.fetchall()]

    def has_table(self, table: str) -> bool:
        """A first run over an empty window creates no table: readers must not fail on that."""
        try:
            self.rows(f"SELECT 1 FROM {table} WHERE 1 = 0")
            return True
        except DatabaseUndefinedRelation:
            return False

    @contextlib.contextmanager
    def transaction(self, creates_tables: bool = False) -> Iterator[None]:
        with self.client.begin_transaction():
            if creates_tables and self.destination == "postgres":
                # CREATE ... IF NOT EXISTS is not atomic in PostgreSQL: two runs creating the same
                # table at once collide on the catalog. The second waits for the first instead.
                self.execute("SELECT pg_advisory_xact_lock(%s)", _LOCK_KEY)
            yield

    def insert_ids(self, table: str, run_id: str, resource: str, ids: pa.Int64Array) -> None:
        """Bulk-insert (run_id, resource, id) rows: up to millions of them for a large window."""
        native = self.client.native_connection
        if self.destination in ("duckdb", "motherduck"):  # a DuckDB connection either way
            native.register("_fetched_ids", pa.table({"id": ids}))
            try:
                native.execute(f"INSERT INTO {table} SELECT ?, ?, id FROM _fetched_ids", [run_id, resource])
            finally:
                native.unregister("_fetched_ids")
            return
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start:start + _ID_BATCH].to_pylist()
            if self.destination == "postgres":  # COPY: one round trip per batch
                text = io.StringIO("".join(f"{run_id}\t{resource}\t{i}\n" for i in batch))
                with native.cursor() as cursor:
                    cursor.copy_expert(f"COPY {table} (run_id, resource, id) FROM STDIN", text)
            else:
                values = ", ".join(f"(%s, %s, {int(i)})" for i in batch)
                self.execute(f"INSERT INTO {table} (run_id, resource, id) VALUES {values}",
                             *([run_id, resource] * len(batch)))


def describe(pipeline: dlt.Pipeline) -> str:
    """Where a pipeline loads, for logs and metadata: host and database, never the credentials."""
    credentials = pipeline.destination_client().config.credentials
    name = pipeline.destination.destination_name
    if name == "duckdb":
        return f"DuckDB file {credentials.database}"
    where = [getattr(credentials, key, None) for key in ("host", "port", "database")]
    if where[0]:
        return f"{name} {where[0]}{f':{where[1]}' if where[1] else ''}/{where[2] or ''}"
    return name


@contextlib.contextmanager
def connect(pipeline: dlt.Pipeline) -> Iterator[SqlClientBase]:
    """dlt's SQL client with its connection open. A server that refuses the connection fails with
    a message naming the warehouse and where its credentials come from, never quoting them."""
    client = pipeline.sql_client()
    try:
        client.open_connection()
    except Exception as error:
        if pipeline.destination.destination_name == "duckdb":
            raise  # a lock: see errors.DatabaseLocked
        driver = root_cause(error)
        while driver.__cause__ is not None or driver.__context__ is not None:
            driver = driver.__cause__ or driver.__context__
        raise WarehouseUnreachable(pipeline.destination.destination_name, describe(pipeline), str(driver)) from None
    try:
        yield client
    finally:
        client.close_connection()


@contextlib.contextmanager
def open_sql(pipeline: dlt.Pipeline) -> Iterator[WarehouseSql]:
    """The warehouse's SQL client, its connection open; a DuckDB lock surfaces as DatabaseLocked."""
    try:
        with connect(pipeline) as client:
            yield WarehouseSql(client, pipeline.destination.destination_name)
    except Exception as error:
        cause = root_cause(error)
        if cause is error:
            raise
        raise cause from error


@contextlib.contextmanager
def schema_lock(pipeline: dlt.Pipeline, needed: bool = True) -> Iterator[None]:
    """Serialize creating schemas and tables across concurrent runs on a shared warehouse.

    Two first runs on PostgreSQL both find the dataset missing and both issue CREATE SCHEMA: one
    fails. A session advisory lock held for the run makes the second wait for the first. DuckDB
    needs none (one writer); other warehouses are not covered (see README).
    """
    if not needed or pipeline.destination.destination_name != "postgres":
        yield
        return
    with connect(pipeline) as client:
        client.execute_sql("SELECT pg_advisory_lock(%s)", _LOCK_KEY)
        try:
            yield
        finally:
            client.execute_sql("SELECT pg_advisory_unlock(%s)", _LOCK_KEY)


def drop_staging_dataset(pipeline: dlt.Pipeline) -> None:
    """Drop a run's own staging dataset once its merge is done (or failed)."""
    with connect(pipeline) as client:
        with client.with_staging_dataset():
            if client.has_dataset():
                client.drop_dataset()
