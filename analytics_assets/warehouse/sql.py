"""The one SQL path every reader and writer of the warehouse takes, whichever destination holds it.

Reads of the tables dlt loads go through dlt's dataset interface (`pipeline.dataset()`): SQL written
once, in PostgreSQL's dialect, that dlt qualifies with the dataset and transpiles for the destination
(`query(..., query_dialect=...)`). This project's own model tables, which dlt does not know, are
written and read through dlt's SQL client, their statements transpiled by sqlglot (dlt's
dependency). Names are quoted (`ident`) and values written as typed literals (`literal`) in that
dialect, so the destination's own quoting and types apply: a column named `order` or `created at`
works, and no value is pasted into SQL as text.
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
from sqlglot import exp

from ..api.names import SOURCE_NAME
from ..errors import WarehouseFileError, WarehouseUnreachable, diagnosed
from ..settings import Settings
from ..window import Window
from .destinations import owner_only, private_files
from .locks import exclusive

logger = logging.getLogger(__name__)
DEFAULT_LOCK_WAIT: float = Settings.model_fields["warehouse_lock_wait"].default

SQL_DIALECT = "postgres"  # the dialect this project's SQL is written in


def ident(name: str) -> str:
    """A column or table name, quoted in this project's dialect: sqlglot turns the quotes into the
    destination's own, so a column named `order` or `created at` works."""
    return '"' + name.replace('"', '""') + '"'
# pg_advisory_lock key held by whichever run creates schemas or tables on a shared warehouse.
CREATING_TABLES_LOCK = 7_305_118_201


def literal(value: Any) -> str:
    """A value as a typed SQL literal (a timestamp, a number, text) in this project's dialect."""
    return exp.convert(value).sql(SQL_DIALECT)


class WarehouseSql:
    """The warehouse of one pipeline, its connection open for as long as it is used: the tables dlt
    loaded are read through dlt's dataset, named as the table has them (unqualified: dlt qualifies
    them); this project's own tables are read and written through the dataset's SQL client."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.client: SqlClientBase = dataset.sql_client
        self.destination = self.client.capabilities.sqlglot_dialect

    # --- the tables dlt loads: dlt's dataset interface ------------------------------------------

    def read(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.dataset.query(sql, query_dialect=SQL_DIALECT).fetchall()]

    def read_with_columns(self, sql: str) -> tuple[list[str], list[tuple]]:
        relation = self.dataset.query(sql, query_dialect=SQL_DIALECT)
        return list(relation.columns), [tuple(row) for row in relation.fetchall()]

    def has_table(self, name: str) -> bool:
        try:
            self.read(f"SELECT 1 AS present FROM {ident(name)} WHERE 1 = 0")
            return True
        except (DatabaseUndefinedRelation, KeyError, ValueError):
            return False

    def rows_per_day(self, name: str, cursor: str, window: Window) -> dict[str, int]:
        """Rows of table `name` per UTC day of `cursor` inside `window`: what each daily partition holds."""
        column = ident(cursor)
        return {
            day.isoformat(): count
            for day, count in self.read(
                f"SELECT CAST({column} AT TIME ZONE 'UTC' AS DATE) AS day, count(*) AS n FROM {ident(name)} "
                f"WHERE {column} >= {literal(window.start)} AND {column} < {literal(window.end)} GROUP BY 1")
        }

    def distinct_in_load(self, name: str, key: tuple[str, ...], load_id: str) -> int:
        """Distinct values of `key` (its columns) among the rows one dlt load wrote. Grouped, not
        count(DISTINCT): DuckDB allocates a count(DISTINCT)'s table whole, which under the 32 MB cap
        fails at about a million ids, where a grouped aggregate spills to disk. The HAVING keeps
        the optimizer from turning the grouping back into a count(DISTINCT)."""
        columns = ", ".join(map(ident, key))
        return self.read(f"SELECT count(*) AS n FROM (SELECT {columns} FROM {ident(name)} WHERE "
                         f"{ident('_dlt_load_id')} = {literal(load_id)} GROUP BY {columns} HAVING count(*) >= 1) "
                         "AS distinct_values")[0][0]

    def child_rows_of_load(self, child: str, root: str, load_id: str) -> int:
        """Rows of a child table (dlt's nested data) that belong to the root rows one load wrote."""
        return self.read(f"SELECT count(*) AS n FROM {ident(child)} AS c JOIN {ident(root)} AS r ON "
                         f"c._dlt_root_id = r._dlt_id WHERE r._dlt_load_id = {literal(load_id)}")[0][0]

    def later_loads(self, load_id: str) -> int:
        """Loads into the dataset after `load_id` (dlt's load ids grow with time)."""
        return self.read(f"SELECT count(*) AS n FROM _dlt_loads WHERE load_id > {literal(load_id)}")[0][0]

    # --- this project's own tables: the SQL client ----------------------------------------------

    def table(self, name: str) -> str:
        """A table of the dataset, qualified and quoted, for the SQL client."""
        return f"{ident(self.client.dataset_name)}.{ident(name)}"

    def _native(self, sql: str) -> str:
        if self.destination == SQL_DIALECT:
            return sql
        return sqlglot.transpile(sql, read=SQL_DIALECT, write=self.destination)[0]

    def execute(self, sql: str) -> None:
        self.client.execute_sql(self._native(sql))

    def rows(self, sql: str) -> list[tuple]:
        with self.client.execute_query(self._native(sql)) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def creating_tables(self) -> Iterator[None]:
        """A transaction that creates tables. On PostgreSQL, `CREATE ... IF NOT EXISTS` is not atomic:
        two runs creating the same table at once collide on the catalog, so the second waits."""
        with self.client.begin_transaction():
            if self.destination == "postgres":
                self.execute(f"SELECT pg_advisory_xact_lock({CREATING_TABLES_LOCK})")
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
    database = duckdb_file(pipeline) if duckdb else None
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


def duckdb_file(pipeline: dlt.Pipeline) -> Path:
    """The DuckDB file a pipeline of this project loads, as `make_pipeline` gave it (resolving dlt's
    destination configuration again costs more than a connection)."""
    credentials = pipeline.destination.config_params.get("credentials")
    database = getattr(credentials, "database", None) or pipeline.destination_client().config.credentials.database
    return Path(database)


def _driver_error(error: BaseException) -> BaseException:
    """dlt wraps the driver's own error: that one says what happened."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


@contextlib.contextmanager
def open_sql(pipeline: dlt.Pipeline, wait: float = DEFAULT_LOCK_WAIT,
             say: Callable[[str], None] = logger.info) -> Iterator[WarehouseSql]:
    """The warehouse's SQL, under the lock `connect` takes: a connection opened (waited for, its
    failures named) first, then dlt's dataset on a connection of its own (one DuckDB instance in
    this process: the second connection shares the first's hold on the file). The dataset reads
    the schema the warehouse stores, the one its tables have: a pipeline's own copy, after
    dagster-dlt reads it, holds the source's hints without the columns' types."""
    with diagnosed(), connect(pipeline, wait, say):
        with dlt.dataset(pipeline.destination, pipeline.dataset_name, schema=SOURCE_NAME) as dataset:
            yield WarehouseSql(dataset)
