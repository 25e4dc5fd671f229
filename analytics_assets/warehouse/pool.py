"""The writer pool: steps that write the warehouse queue for its slots.

On DuckDB it is `duckdb_writer`, which must have one slot: one step at a time touches the file. On a
shared warehouse it is `warehouse_writer`. ANALYTICS_WRITER_POOL_LIMIT, where the deployment sets it,
is the pool's limit everywhere: applied when the pool is created and to a pool that exists with
another limit (a daemon's instance creates it at its `default_limit` before any run), said in the
run's log. Unset, the instance keeps the limit it has (`dagster instance concurrency set` holds).

A pool slot is released when its run ends. A run whose process was killed outright (SIGKILL, an
out-of-memory kill) never ends by itself when nothing monitors it, as with `dagster asset
materialize`, so its slot would block every later run forever. Each run therefore looks, before its
steps queue for the pool, for slot holders whose process is gone, marks them failed and frees their
slots. DuckDB allows one writer machine anyway, so the process check is local; shared warehouses
rely on Dagster's run monitoring instead (deploy/dagster.yaml).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from dagster import DagsterEventType, DagsterInstance

from ..processes import alive


class PoolLimit(NamedTuple):
    limit: Optional[int]
    replaced: Optional[int] = None  # the limit the pool had before the setting was applied


def create_pool(instance: DagsterInstance, pool: str, limit: Optional[int] = None,
                first_limit: Optional[int] = None) -> PoolLimit:
    """The pool's slots, allocated before runs start: `limit` (the deployment's setting) whether the
    pool exists or not; else `first_limit` or the instance's default when it is created.

    Dagster allocates a pool's default slots lazily, on the first claim; on a fresh instance two
    runs claiming at the same moment each allocated one, and both wrote at once."""
    storage = instance.event_log_storage
    if pool not in {p.name for p in storage.get_pool_limits()}:
        if (limit or first_limit) is not None:
            storage.set_concurrency_slots(pool, limit or first_limit)
        elif instance.global_op_concurrency_default_limit is not None:
            # Once only: Dagster's initializer inserts and catches the duplicate key, which on a
            # PostgreSQL-backed instance aborts its own transaction.
            storage.initialize_concurrency_limit_to_default(pool)
        return PoolLimit(storage.get_concurrency_info(pool).slot_count)
    current = storage.get_concurrency_info(pool).slot_count
    if limit is not None and current != limit:
        storage.set_concurrency_slots(pool, limit)
        return PoolLimit(limit, replaced=current)
    return PoolLimit(current)


def release_slots_of_dead_runs(instance: DagsterInstance, pool: str) -> list[str]:
    released = []
    for run_id in instance.event_log_storage.get_concurrency_info(pool).active_run_ids:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            pid = _worker_pid(instance, run_id)
            if pid is None or alive(pid):
                continue
            instance.report_run_failed(run, f"Its process (pid {pid}) died; its `{pool}` slot was released.")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        released.append(run_id)
    return released


def _worker_pid(instance: DagsterInstance, run_id: str) -> Optional[int]:
    """The pid Dagster recorded when the run started executing its steps."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data else None
        if pid is not None:
            return int(pid.value)
    return None


