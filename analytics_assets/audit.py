"""What each sync fetched, kept in the DuckDB file beside the data it proves complete.

The completeness check must not trust the asset's own word: the asset records the ids it fetched
and the `total` the API reported, and the check joins them against the merged table in SQL.
"""

from __future__ import annotations

from array import array

import duckdb
import pyarrow as pa

from .source import Window

AUDIT_SCHEMA = "analytics_audit"


def record_fetch(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    resource: str,
    window: Window,
    api_total: int | None,
    fetched_ids: array,
) -> int:
    """Records the run's window, the API's total and every fetched id; returns the distinct count."""
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
    connection.execute(
        f"""CREATE TABLE IF NOT EXISTS {AUDIT_SCHEMA}.windows (
            run_id TEXT, resource TEXT, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
            api_total BIGINT, fetched BIGINT, recorded_at TIMESTAMPTZ DEFAULT now())"""
    )
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {AUDIT_SCHEMA}.fetched_ids (run_id TEXT, resource TEXT, id BIGINT)"
    )
    buffer = pa.py_buffer(fetched_ids)  # zero-copy: the array already holds int64s
    ids = pa.table({"id": pa.Array.from_buffers(pa.int64(), len(fetched_ids), [None, buffer])})  # noqa: F841
    connection.execute("BEGIN")
    connection.execute(f"DELETE FROM {AUDIT_SCHEMA}.fetched_ids WHERE run_id = ? AND resource = ?", [run_id, resource])
    connection.execute(f"DELETE FROM {AUDIT_SCHEMA}.windows WHERE run_id = ? AND resource = ?", [run_id, resource])
    connection.execute(f"INSERT INTO {AUDIT_SCHEMA}.fetched_ids SELECT DISTINCT ?, ?, id FROM ids", [run_id, resource])
    connection.execute(
        f"INSERT INTO {AUDIT_SCHEMA}.windows (run_id, resource, window_start, window_end, api_total, fetched) "
        f"SELECT ?, ?, ?, ?, ?, count(*) FROM {AUDIT_SCHEMA}.fetched_ids WHERE run_id = ? AND resource = ?",
        [run_id, resource, window.start, window.end, api_total, run_id, resource],
    )
    distinct = connection.execute(
        f"SELECT fetched FROM {AUDIT_SCHEMA}.windows WHERE run_id = ? AND resource = ?", [run_id, resource]
    ).fetchone()[0]
    connection.execute("COMMIT")
    return distinct


def latest_fetch(connection: duckdb.DuckDBPyConnection, resource: str, run_id: str | None) -> tuple | None:
    """(run_id, window_start, window_end, api_total, fetched) of this run, or of the latest one."""
    if not _has_audit(connection):
        return None
    where, params = ("run_id = ? AND resource = ?", [run_id, resource]) if run_id else ("resource = ?", [resource])
    return connection.execute(
        f"SELECT run_id, window_start, window_end, api_total, fetched FROM {AUDIT_SCHEMA}.windows "
        f"WHERE {where} ORDER BY recorded_at DESC LIMIT 1",
        params,
    ).fetchone()


def missing_ids(
    connection: duckdb.DuckDBPyConnection, run_id: str, resource: str, table: str | None
) -> list[int]:
    """Up to 20 ids the run fetched that the table lacks (all of them when there is no table)."""
    anti_join = f"ANTI JOIN {table} t ON t.id = f.id" if table else ""
    return [
        row[0]
        for row in connection.execute(
            f"SELECT f.id FROM {AUDIT_SCHEMA}.fetched_ids f {anti_join} "
            "WHERE f.run_id = ? AND f.resource = ? ORDER BY f.id LIMIT 20",
            [run_id, resource],
        ).fetchall()
    ]


def _has_audit(connection: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'windows'",
            [AUDIT_SCHEMA],
        ).fetchone()[0]
    )
