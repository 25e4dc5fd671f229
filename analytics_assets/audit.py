"""What each sync fetched, kept in the warehouse beside the data it proves complete.

The completeness check must not trust the asset's own word: the asset records the ids it fetched
and the `total` the API reported, and the check joins them against the merged table in SQL.
"""

from __future__ import annotations

from array import array
from datetime import datetime, timezone

import pyarrow as pa

from .source import Window
from .warehouse import WarehouseSql

AUDIT_SCHEMA = "analytics_audit"
WINDOWS = f"{AUDIT_SCHEMA}.windows"
FETCHED_IDS = f"{AUDIT_SCHEMA}.fetched_ids"


def record_fetch(
    sql: WarehouseSql,
    run_id: str,
    resource: str,
    window: Window,
    api_total: int | None,
    fetched_ids: array,
) -> int:
    """Records the run's window, the API's total and every fetched id; returns the distinct count."""
    import pyarrow.compute as pc  # about 0.15 s to import: only a sync needs it

    _create_tables(sql)
    # zero-copy: the array already holds int64s; pyarrow dedups without a Python object per id
    ids = pc.unique(pa.Array.from_buffers(pa.int64(), len(fetched_ids), [None, pa.py_buffer(fetched_ids)]))
    distinct = len(ids)
    with sql.transaction():
        sql.execute(f"DELETE FROM {FETCHED_IDS} WHERE run_id = %s AND resource = %s", run_id, resource)
        sql.execute(f"DELETE FROM {WINDOWS} WHERE run_id = %s AND resource = %s", run_id, resource)
        sql.insert_ids(FETCHED_IDS, run_id, resource, ids)
        sql.execute(
            f"INSERT INTO {WINDOWS} (run_id, resource, window_start, window_end, api_total, fetched, recorded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            run_id, resource, window.start, window.end, api_total, distinct, datetime.now(timezone.utc),
        )
    return distinct


def _create_tables(sql: WarehouseSql) -> None:
    if sql.has_table(FETCHED_IDS):  # created together with WINDOWS, in one transaction
        return
    with sql.transaction(creates_tables=True):
        sql.execute(f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
        sql.execute(
            f"""CREATE TABLE IF NOT EXISTS {WINDOWS} (
                run_id TEXT, resource TEXT, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
                api_total BIGINT, fetched BIGINT, recorded_at TIMESTAMPTZ)"""
        )
        sql.execute(f"CREATE TABLE IF NOT EXISTS {FETCHED_IDS} (run_id TEXT, resource TEXT, id BIGINT)")


def latest_fetch(sql: WarehouseSql, resource: str, run_id: str | None) -> tuple | None:
    """(run_id, window_start, window_end, api_total, fetched) of this run, or of the latest one."""
    if not sql.has_table(WINDOWS):
        return None
    where, params = ("run_id = %s AND resource = %s", [run_id, resource]) if run_id else ("resource = %s", [resource])
    rows = sql.rows(
        f"SELECT run_id, window_start, window_end, api_total, fetched FROM {WINDOWS} "
        f"WHERE {where} ORDER BY recorded_at DESC LIMIT 1",
        *params,
    )
    return rows[0] if rows else None


def missing_ids(sql: WarehouseSql, run_id: str, resource: str, table: str | None) -> list[int]:
    """Up to 20 ids the run fetched that the table lacks (all of them when there is no table)."""
    absent = f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = f.id)" if table else ""
    return [
        row[0]
        for row in sql.rows(
            f"SELECT f.id FROM {FETCHED_IDS} f WHERE f.run_id = %s AND f.resource = %s {absent} "
            "ORDER BY f.id LIMIT 20",
            run_id, resource,
        )
    ]
