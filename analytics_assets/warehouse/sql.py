"""The warehouses the tables can live in, and the one SQL path every reader and writer of them takes.

Checks, models and metadata write their SQL once, in PostgreSQL's dialect, and run it through dlt's SQL client for the
destination; sqlglot (which dlt ships) rewrites it for the others.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import dlt
import sqlglot
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from ..errors import WarehouseFileError, WarehouseUnreachable, diagnosed
from ..settings import Settings
from ..window import Window
from .destinations import owner_only, private_files
from .locks import exclusive

logger = logging.getLogger(__name__)
DEFAULT_LOCK_WAIT: float = Settings.model_fields["warehouse_lock_wait"].default

SQL_DIALECT = "postgres"  # the dialect this project's SQL is written in
# pg_advisory_lock key held by whichever run creates schemas or tables on a shared warehouse.
CREATING_TABLES_LOCK = 7_305_118_201


class WarehouseSql:
    """dlt's SQL client for the destination, taking this project's PostgreSQL-dialect SQL."""

    def __init__(self, client: SqlClientBase) -> None:
        self.client = client
        self.destination = client.capabilities.sqlglot_dialect
        self.dataset = client.dataset_name

    def _sql(self, sql: str) -> str:
        if self.destination == SQL_DIALECT:
            return sql
        # sqlglot writes `?` placeholders for most dialects; dlt's clients all take `%s` (this
        # project's SQL has no `?` of its own).
        return sqlglot.transpile(sql, read=SQL_DIALECT, write=self.destination)[0].replace("?", "%s")

    def execute(self, sql: str, *params: Any) -> None:
        self.client.execute_sql(self._sql(sql), *params)

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with self.client.execute_query(self._sql(sql), *params) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

    def columns_and_rows(self, sql: str, *params: Any) -> tuple[list[str], list[tuple]]:
        with self.client.execute_query(self._sql(sql), *params) as cursor:
            return [d[0] for d in cursor.description], [tuple(row) for row in cursor.fetchall()]

    def table(self, name: str) -> str:
        return f"{self.dataset}.{name}"

    def has_table(self, table: str) -> bool:
        try:
            self.rows(f"SELECT 1 FROM {table} WHERE 1 = 0")
            return True
        except DatabaseUndefinedRelation:
            return False

    def rows_per_day(self, table: str, cursor: str, window: Window) -> dict[str, int]:
        """Rows of `table` per UTC day of `cursor` inside `window`: what each daily partition holds."""
        return {
            day.isoformat(): count
            for day, count in self.rows(
                f"SELECT CAST({cursor} AT TIME ZONE 'UTC' AS DATE), count(*) FROM {table} "
                f"WHERE {cursor} >= %s AND {cursor} < %s GROUP BY 1",
                window.start, window.end,
            )
        }

    def distinct_in_load(self, table: str, column: str, load_id: str) -> int:
        """Distinct values of `column` among the rows one dlt load wrote. Grouped, not
        count(DISTINCT): DuckDB allocates a count(DISTINCT)'s table whole, which under the 32 MB cap
        fails at about a million ids, where a grouped aggregate spills to disk. The HAVING keeps
        the optimizer from turning the grouping back into a count(DISTINCT)."""
        return self.rows(f"SELECT count(*) FROM (SELECT {column} FROM {table} WHERE _dlt_load_id = %s "
                         f"GROUP BY {column} HAVING count(*) >= 1) AS distinct_values", load_id)[0][0]

    def later_loads(self, load_id: str) -> int:
        """Loads into the dataset after `load_id` (dlt's load ids grow with time)."""
        return self.rows(f"SELECT count(*) FROM {self.table('_dlt_loads')} WHERE load_id > %s", load_id)[0][0]

    @contextlib.contextmanager
    def creating_tables(self) -> Iterator[None]:
        """A transaction that creates tables. On PostgreSQL, `CREATE ... IF NOT EXISTS` is not atomic:
        two runs creating the same table at once collide on the catalog, so the second waits."""
        with self.client.begin_transaction():
            if self.destination == "postgres":
                self.execute("SELECT pg_advisory_xact_lock(%s)", CREATING_TABLES_LOCK)
            yield


def location(pipeline: dlt.Pipeline) -> str:
    """Where a pipeline loads, for logs and metadata: host and database, never the credentials."""
    credentials = pipeline.destination_client().config.credentials
    name = pipeline.destination.destination_name
    if name == "duckdb":
        return f"DuckDB file {credentials.database}"
    host, port, database = (getattr(credentials, key, None) for key in ("host", "port", "database"))
    return f"{name} {host}{f':{port}' if port else ''}/{database or ''}" if host else name


@contextlib.contextmanager
def connect(pipeline: dlt.Pipeline, wait: float = DEFAULT_LOCK_WAIT,
            say: Callable[[str], None] = logger.info) -> Iterator[SqlClientBase]:
    """dlt's SQL client with its connection open. A DuckDB file is this thread's alone while it is
    open: the lock beside it is taken first (`locks.py`, re-entrant), and a file another program
    holds open (a notebook, the DuckDB shell) is waited for too; both up to `wait` seconds, said
    once through `say`. A file that cannot be opened, or a server that refuses the connection,
    fails naming the file or the server and where credentials come from, never quoting them."""
    duckdb = pipeline.destination.destination_name == "duckdb"
    database = Path(pipeline.destination_client().config.credentials.database) if duckdb else None
    # Whatever is created while the connection is open (the file, its WAL, DuckDB's spill folder,
    # dlt's load packages of a load run inside) is the owner's alone from its first byte.
    with private_files(), exclusive(database, wait, say) if database else contextlib.nullcontext():
        client = pipeline.sql_client()
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                client.open_connection()
                break
            except Exception as error:
                driver = _driver_error(error)
                if database and "Could not set lock" in str(driver) and time.monotonic() < deadline:
                    if not told:
                        say(f"Waiting for the DuckDB file {database}: another program holds it open "
                            f"(up to ANALYTICS_WAREHOUSE_LOCK_WAIT={wait:g} s).")
                        told = True
                    time.sleep(0.25)
                    continue
                if database:
                    raise WarehouseFileError(location(pipeline), str(driver)) from None
                raise WarehouseUnreachable(pipeline.destination.destination_name, location(pipeline),
                                           str(driver)) from None
        if database:
            owner_only(database)
        try:
            yield client
        finally:
            client.close_connection()


def _driver_error(error: BaseException) -> BaseException:
    """dlt wraps the driver's own error: that one says what happened."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


@contextlib.contextmanager
def open_sql(pipeline: dlt.Pipeline, wait: float = DEFAULT_LOCK_WAIT,
             say: Callable[[str], None] = logger.info) -> Iterator[WarehouseSql]:
    with diagnosed(), connect(pipeline, wait, say) as client:
        yield WarehouseSql(client)
