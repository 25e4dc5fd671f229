"""The production instance (deploy/dagster.yaml) against a real PostgreSQL server on 127.0.0.1.

Deployed as the README's "Running in production" describes, on one machine: the code location served by
`dagster api grpc` (the only process holding the API credentials), a workspace pointing at it, the
daemon, and a run submitted with `dagster job launch`. The run must wait in the queue until the daemon
dequeues it, be launched by the default run launcher through the gRPC server, succeed, leave its events
in PostgreSQL, and land exactly the API's records for its day.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar
from urllib.parse import unquote, urlsplit

import pytest

from analytics_assets.warehouse.destinations import DESTINATIONS
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, fresh_database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = "2026-11-18"
LOCATION = "analytics_assets"
T = TypeVar("T")

pytestmark = pytest.mark.slow


def pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, from a postgresql:// URL."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": unquote(parts.username or ""),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Long-running subprocesses of one test, each in its own session with its output in a log file,
    so that stopping one also stops what it spawned (the gRPC server's run workers)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: dict[str, subprocess.Popen] = {}
        self.secrets: list[str] = []

    def start(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as log:
            process = subprocess.Popen([str(c) for c in command], env=env, cwd=cwd, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started[name] = process
        return process

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def logs(self) -> str:
        """The tail of every log, secrets masked: for assertion messages."""
        out = []
        for name in self.started:
            text = (self.folder / f"{name}.log").read_text(errors="replace")
            out.append(f"--- {name} (exit {self.started[name].poll()}) ---\n{text[-4000:]}")
        return self.redact("\n".join(out))

    def check_alive(self) -> None:
        for name, process in self.started.items():
            assert process.poll() is None, f"{name} exited early\n{self.logs()}"

    def stop_all(self) -> None:
        for process in reversed(list(self.started.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.started.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever is left of the session: run workers, a process that ignored SIGTERM
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


@pytest.fixture
def dagster_database(postgres_server: str) -> Iterator[str]:
    """URL of a fresh database for Dagster's own state, apart from the one the data may go to."""
    with fresh_database(postgres_server, prefix="dagster") as url:
        yield url


@pytest.fixture
def processes(tmp_path: Path, dagster_database: str) -> Iterator[Processes]:  # noqa: ARG001 - stopped before it is dropped
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def wait_for(condition: Callable[[], Optional[T]], what: str, processes: Processes, timeout: float = 180) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline or as
    soon as one of the test's servers has died."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        processes.check_alive()
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}\n{processes.logs()}"
        time.sleep(0.25)


def test_a_run_goes_through_the_queue_the_daemon_and_postgres_storage(
    dagster_api, warehouse, dagster_database, processes, tmp_path, monkeypatch
):
    """`warehouse`: the data goes to a DuckDB file, or to another PostgreSQL database than Dagster's
    (ANALYTICS_DESTINATION=postgres, DESTINATION__POSTGRES__CREDENTIALS), as conftest configures."""
    import psycopg2
    from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._grpc.client import DagsterGrpcClient
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    pg = pg_env(dagster_database)
    analytics = {k: v for k, v in os.environ.items()
                 if (k.startswith("ANALYTICS_") and not k.startswith("ANALYTICS_TEST_")) or k.startswith("DESTINATION__")}
    processes.secrets = [pg["DAGSTER_PG_PASSWORD"], analytics["ANALYTICS_CLIENT_SECRET"],
                         *(urlsplit(v).password or "" for k, v in analytics.items() if k.startswith("DESTINATION__"))]
    # What every Dagster process gets, and no more: the instance and its database. Only the code
    # server (and the run workers it starts) also gets the API settings and credentials.
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DAGSTER_HOME": str(home), **pg}
    if os.environ.get("PYTHONPATH"):  # a checkout imported instead of the installed package
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    for key, value in {"DAGSTER_HOME": str(home), **pg}.items():
        monkeypatch.setenv(key, value)  # this process opens the same instance to watch the run

    port = free_port()
    processes.start("code_server", [BIN / "dagster", "api", "grpc", "-m", "analytics_assets.definitions",
                                    "--location-name", LOCATION, "-h", "127.0.0.1", "-p", port],
                    {**base, **analytics}, cwd=tmp_path)
    client = DagsterGrpcClient(port=port, host="127.0.0.1")

    def serving() -> bool:
        try:
            client.ping("")
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    wait_for(serving, "the code location's gRPC server", processes)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(json.dumps({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port,
                                                                    "location_name": LOCATION}}]}))

    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
        assert instance.run_monitoring_enabled

        # Submitted before any daemon runs: the run must wait in the queue.
        run_id = str(uuid.uuid4())
        launched = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "analytics_job",
             "--tags", json.dumps({"dagster/partition": DAY}), "--run-id", run_id],
            env=base, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        )
        assert launched.returncode == 0, processes.redact(launched.stdout + launched.stderr)[-4000:]
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.QUEUED

        processes.start("daemon", [BIN / "dagster-daemon", "run", "-w", workspace], base, cwd=tmp_path)

        def finished():
            run = instance.get_run_by_id(run_id)
            return run if run.is_finished else None

        run = wait_for(finished, f"run {run_id} to finish", processes)
        assert run.status == DagsterRunStatus.SUCCESS, processes.logs()
        assert run.tags["dagster/partition"] == DAY

        # Its events, read back through the instance from PostgreSQL.
        events = [r.dagster_event.event_type for r in instance.all_logs(run_id) if r.dagster_event]
        order = [DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START,
                 DagsterEventType.RUN_SUCCESS]
        assert [e for e in events if e in order] == order
        materialized = [r.dagster_event.step_materialization_data.materialization
                        for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)]
        expected = dagster_api.records_in_window(*day_bounds(DAY))
        table = next(m for m in materialized if m.asset_key == AssetKey(["analytics", "resource_name"]))
        assert table.partition == DAY
        assert table.metadata["records_fetched"].value == len(expected)
        checks = [r.dagster_event.event_specific_data
                  for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
        assert {c.check_name: c.passed for c in checks} == {
            "id_unique": True, "required_columns_not_null": True, "window_complete": True,
            "record_count_matches_table": True,
        }, "freshness is judged by the analytics_freshness sensor, not as a step of the job"

        # The writer pool got dagster.yaml's default limit, and its slot was given back.
        pool = instance.event_log_storage.get_concurrency_info(DESTINATIONS[analytics.get("ANALYTICS_DESTINATION", "duckdb")].pool)
        assert (pool.slot_count, pool.active_slot_count) == (1, 0)
        # The daemon ran its queue and monitoring loops against the same storage.
        beats = instance.get_daemon_heartbeats()
        assert {"QUEUED_RUN_COORDINATOR", "MONITORING"} <= set(beats), sorted(beats)

    # Not a file in DAGSTER_HOME: the rows of the tables Dagster created in PostgreSQL.
    with psycopg2.connect(dagster_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute("SELECT dagster_event_type FROM event_logs WHERE run_id = %s", (run_id,))
        stored = {row[0] for row in cursor.fetchall()}
    connection.close()
    assert {e.value for e in (*order, DagsterEventType.ASSET_MATERIALIZATION)} <= stored
    assert not list(home.glob("**/*.db")), "no SQLite storage next to PostgreSQL"

    assert_table_matches(warehouse, expected)  # a DuckDB file, or read back from PostgreSQL with psycopg2
