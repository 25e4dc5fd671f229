"""One process at a time on a DuckDB file: a run waits for another run, or for a program holding the
file open, then proceeds; it fails naming the setting only when the wait runs out."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analytics_assets.errors import WarehouseFileError
from analytics_assets.warehouse.locks import exclusive
from analytics_assets.warehouse.pipeline import make_pipeline
from analytics_assets.warehouse.sql import open_sql

HOLD_OUR_LOCK = """
import sys
from pathlib import Path
from analytics_assets.warehouse.locks import exclusive
with exclusive(Path(sys.argv[1]), 5, print):
    print("held", flush=True)
    sys.stdin.readline()
"""
HOLD_THE_FILE = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
connection.close()
"""


def holder(script: str, database: Path) -> subprocess.Popen:
    """Another process holding the file until told (a line on its stdin)."""
    process = subprocess.Popen([sys.executable, "-c", script, str(database)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def release(process: subprocess.Popen) -> None:
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.wait(timeout=10) == 0


def waiting_in_thread(action) -> tuple[threading.Thread, threading.Event, list]:
    """Run `action(say)` in a thread; the event is set when it says it waits, the list gets its outcome."""
    said, outcome = threading.Event(), []

    def run() -> None:
        try:
            outcome.append(action(lambda message: (outcome.append(message), said.set())))
        except Exception as error:  # noqa: BLE001 - reported to the test
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, said, outcome


@pytest.mark.parametrize("script, words", [(HOLD_OUR_LOCK, "another run or process is using it"),
                                           (HOLD_THE_FILE, "another program holds it open")])
def test_a_connection_waits_for_the_file_then_proceeds(tmp_path: Path, script: str, words: str) -> None:
    database = tmp_path / "warehouse.duckdb"
    pipeline = make_pipeline(database, pipelines_dir=tmp_path / "pipelines")
    with open_sql(pipeline) as sql:
        sql.execute("CREATE TABLE t AS SELECT 42 AS answer")
    other = holder(script, database)

    def query(say):
        with open_sql(pipeline, 60, say) as sql:
            return sql.rows("SELECT answer FROM t")

    thread, said, outcome = waiting_in_thread(query)
    assert said.wait(30), "the connection should say that it waits"
    assert thread.is_alive(), "it must wait while the file is held"
    release(other)
    thread.join(30)
    assert outcome[0].startswith("Waiting for the DuckDB file") and words in outcome[0]
    assert outcome[1:] == [[(42,)]]


def test_a_wait_that_runs_out_fails_naming_the_setting(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    other = holder(HOLD_OUR_LOCK, database)
    try:
        with pytest.raises(WarehouseFileError, match="ANALYTICS_WAREHOUSE_LOCK_WAIT"):
            with exclusive(database, 0.3, lambda message: None):
                pass
    finally:
        release(other)


def test_the_lock_is_reentrant_within_a_thread_and_exclusive_between_threads(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    with exclusive(database, 1, print):
        with exclusive(database, 1, print):  # a load's own connections
            pass
        thread, said, outcome = waiting_in_thread(lambda say: exclusive(database, 0.2, say).__enter__())
        thread.join(10)
        assert isinstance(outcome[-1], WarehouseFileError)
    with exclusive(database, 1, print):  # released by its holder: free again
        pass


def test_a_run_waits_for_a_program_holding_the_file_then_lands_every_row(dagster_api, tmp_path: Path) -> None:
    """A notebook holds the DuckDB file open while a partition is materialized: the run says it waits,
    and lands the day's rows once the notebook lets go."""
    from dagster import DagsterInstance

    from analytics_assets_tests.conftest import assert_table_matches, day_bounds, run_job

    day = "2026-11-17"
    database = tmp_path / "warehouse.duckdb"
    assert run_job(day).success  # the table exists: the run below only merges
    other = holder(HOLD_THE_FILE, database)
    instance = DagsterInstance.ephemeral()

    def logged(text: str) -> bool:
        return any(text in (record.user_message or "") for run in instance.get_runs()
                   for record in instance.all_logs(run.run_id))

    thread, _, outcome = waiting_in_thread(lambda say: run_job(day, instance=instance))
    deadline = time.monotonic() + 60
    while not logged("Waiting for the DuckDB file") and time.monotonic() < deadline:
        assert thread.is_alive(), outcome
        time.sleep(0.05)  # polling the run's event log for the line it writes
    assert logged("another program holds it open"), "the run should say that it waits"
    release(other)
    thread.join(120)
    assert outcome[-1].success
    assert_table_matches(database, dagster_api.records_in_window(*day_bounds(day)))
