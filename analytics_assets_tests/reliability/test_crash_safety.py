"""Crash safety: `dagster asset materialize` SIGKILLed while fetching and while loading, the merged
table dropped or the DuckDB file deleted between runs, and the file held open by another process.

A killed run must leave the table exactly as it was, and the next run must converge to exactly the
server's data.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from analytics_assets_tests.conftest import table_checksum
from analytics_assets_tests.reliability.conftest import (
    RESOURCE_PATH,
    Harness,
    Processes,
    assert_matches_server,
    cli_env,
    make_dagster_home,
    process_state,
    wait_for,
)

PARTITION = "2026-11-17"  # 600 records of a 3,000-record API: seven pages
POOL = "duckdb_writer"


def run_folders(db: Path) -> set[Path]:
    """dlt's per-run working folders (`<duckdb dir>/dlt_pipelines/<run_id>/<pipeline>`)."""
    return {path for path in (db.parent / "dlt_pipelines").glob("*/*") if path.is_dir()}


def packages(folder: Path, stage: str) -> list[Path]:
    return sorted((folder / "load" / stage).glob("*")) if folder else []


def merge_started(folder: Path) -> bool:
    """dlt writes the merge as a `.sql` job once the staging copy is done: from then on, the
    transaction that changes the table may be under way."""
    return any(folder.glob("load/*/*/*/*.sql")) or bool(packages(folder, "loaded"))


def killed_run_folder(db: Path, before: set[Path]) -> Path:
    (folder,) = run_folders(db) - before
    return folder


KILL_POINTS = {
    # While fetching: the 4th page request to arrive hangs (HTTP timeout 30 s), so the process is
    # surely mid-fetch, with pages in memory and no load package yet.
    "fetching": None,
    # Everything fetched and normalized into a load package; the loader has not run yet.
    "normalized": lambda folder: packages(folder, "normalized"),
    # The loader started the job copying the parquet file into the staging table.
    "loading": lambda folder: any(folder.glob("load/normalized/*/started_jobs/resource_name.*.parquet")),
}


def stop_at(cli, db: Path, known: set[Path], reached) -> tuple[bool, Path]:
    """SIGSTOP the run's process group the moment `reached(run folder)` holds, then look at the
    frozen state: True if the merge had not started (the kill lands inside the load, before any
    commit). The group is SIGKILLed either way."""
    folder = wait_for(lambda: next(iter(run_folders(db) - known), None), "the run's dlt working folder",
                      process=cli, timeout=180)
    wait_for(lambda: reached(folder), "the kill point", process=cli, timeout=180, interval=0.001)
    cli.signal(signal.SIGSTOP)
    wait_for(lambda: process_state(cli.process.pid) in ("T", ""), "the process to stop", timeout=10)
    inside = not merge_started(folder)
    cli.kill()
    return inside, folder


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_leaves_the_table_and_the_next_run_converges(
    harness_for, processes: Processes, tmp_path: Path, point: str
) -> None:
    harness = harness_for(records=3000)
    api, db = harness.api, harness.db
    before = harness.prime(PARTITION)

    for attempt in range(3):
        # A DAGSTER_HOME per attempt: a killed run keeps its writer-pool slot in its instance
        # (see test_a_killed_run_does_not_block_the_next_one).
        env = cli_env(make_dagster_home(tmp_path / f"dagster_home_{attempt}"), ANALYTICS_HTTP_TIMEOUT="30")
        known = run_folders(db)
        if point == "fetching":
            api.faults.queue("hang", after=3)
            cli = processes.materialize(env, partition=PARTITION, name=f"killed-{point}")
            wait_for(lambda: api.request_count(path=RESOURCE_PATH) >= 4, "the hung 4th page request",
                     process=cli, timeout=180)
            cli.kill()
            api.faults.release()
            inside, folder = True, killed_run_folder(db, known)
        else:
            cli = processes.materialize(env, partition=PARTITION, name=f"killed-{point}")
            inside, folder = stop_at(cli, db, known, KILL_POINTS[point])
        assert cli.process.returncode == -signal.SIGKILL
        if inside:
            break
        # Stopped too late (the merge had started): the table is all old or all new, never a mix;
        # take the new state as the baseline and try again.
        if table_checksum(db) != before:
            assert_matches_server(db, harness.expected(PARTITION), count=False)
        before = harness.prime(PARTITION)
    else:
        pytest.fail(f"could not stop the run at {point!r} before its merge in 3 attempts")

    assert table_checksum(db) == before, f"a run killed while {point} changed the table"
    assert packages(folder, "loaded") == [], "the killed run completed a load package"

    # The next run (a fresh working folder, the killed run's leftovers ignored) converges.
    harness.succeeded(harness.run(PARTITION), PARTITION)


def test_a_killed_run_does_not_block_the_next_one(harness_for, processes: Processes, tmp_path: Path) -> None:
    from dagster import DagsterInstance

    harness = harness_for(records=3000)
    home = make_dagster_home(tmp_path / "dagster_home")
    env = cli_env(home, ANALYTICS_HTTP_TIMEOUT="30")
    harness.api.faults.queue("hang", after=1)
    killed = processes.materialize(env, partition=PARTITION, name="killed")
    wait_for(lambda: harness.api.request_count(path=RESOURCE_PATH) >= 2, "the hung 2nd page request",
             process=killed, timeout=180)
    killed.kill()
    harness.api.faults.release()

    def claimed_by_dead_runs() -> set:
        with DagsterInstance.from_config(str(home)) as instance:
            runs = {run.run_id for run in instance.get_runs()}
            return instance.event_log_storage.get_concurrency_info(POOL).active_run_ids & runs

    dead = claimed_by_dead_runs()
    following = processes.materialize(env, partition=PARTITION, name="following")

    def settled() -> str:
        if following.returncode_now() is not None:
            return "finished"
        if "blocked by limit for pool" in following.output() and claimed_by_dead_runs() & dead:
            return "blocked by the killed run's slot"
        return ""

    state = wait_for(settled, "the next run to finish or to block", timeout=240, interval=0.2)
    if state != "finished":
        following.kill()
    assert state == "finished", (
        f"the next run waits forever: pool {POOL!r} slot still claimed by killed run(s) {sorted(dead)}"
    )
    assert following.wait() == 0, following.output()[-3000:]
    harness.succeeded(harness.run(PARTITION), PARTITION)


def test_table_dropped_by_hand_is_rebuilt(harness: Harness) -> None:
    harness.prime(PARTITION, change_upstream=False)
    with duckdb.connect(str(harness.db)) as connection:
        connection.execute("DROP TABLE analytics.resource_name")
    harness.succeeded(harness.run(PARTITION), PARTITION)


def test_deleted_duckdb_file_is_rebuilt(harness: Harness) -> None:
    harness.prime(PARTITION)
    for path in harness.db.parent.glob(harness.db.name + "*"):  # the file and any WAL
        path.unlink()
    harness.succeeded(harness.run(PARTITION), PARTITION)


HOLDER = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def test_duckdb_file_held_by_another_process_past_the_wait(harness: Harness, processes: Processes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A program keeps the file open longer than ANALYTICS_WAREHOUSE_LOCK_WAIT: the run waits that
    long, then fails naming the holder and the setting, the table untouched. (A shorter hold is
    waited out: warehouse/test_locks.py.)"""
    before = harness.prime(PARTITION)
    holder = processes.start([sys.executable, "-c", HOLDER, str(harness.db)], cli_env(harness.db.parent),
                             "holder", stdin=subprocess.PIPE)
    wait_for(lambda: "ready" in holder.output(), "the holder to open the DuckDB file", process=holder, timeout=60)

    monkeypatch.setenv("ANALYTICS_WAREHOUSE_LOCK_WAIT", "1")
    result = harness.run(PARTITION)
    assert not result.success
    holder.process.stdin.close()  # lets the holder exit, releasing the file
    assert holder.wait(60) == 0
    message = harness.failed(result, ["held open by another process", "Close that connection", "run again",
                                      "ANALYTICS_WAREHOUSE_LOCK_WAIT"], before)
    assert str(holder.process.pid) in message, "the message should say which process holds the lock"

    harness.succeeded(harness.run(PARTITION), PARTITION)
