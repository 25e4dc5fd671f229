"""Reliability harness: every scenario is a full Dagster materialization against the demo API, and
ends in exactly one of two outcomes.

(a) the run succeeds and `analytics.resource_name` equals the server's records for the window, row
    by row, without duplicates;
(b) the run fails, its STEP_FAILURE names the cause in words a user can act on, and the table is
    byte-for-byte what it was before (a partition is materialized first so there is a table to
    protect, and a record is changed upstream so that a wrongly committed run would show).

`Harness.succeeded` / `Harness.failed` assert those outcomes and count the rows compared; the
session ends with a one-line summary: "reliability: N scenarios run, P passed, R rows compared".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import duckdb
import pytest

from analytics_assets.demo_api import DemoApi
from analytics_assets_tests.conftest import (
    TABLE,
    assert_table_matches,
    day_bounds,
    make_dagster_home,
    run_figures_of,
    run_job,
    set_api_env,
    table_checksum,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESOURCE_PATH = "/v1/resource"
TOKEN_PATH = "/oauth/token"
TABLE_ASSET = ("analytics", "resource_name")
END_DATE = date(2026, 11, 20)  # the demo days end on 2026-11-19, like the shared `dagster_api`
NO_TABLE = "<no table>"


# --- the session tally --------------------------------------------------------------------------


@dataclass
class Tally:
    """What the scenarios of this folder proved: which ran and passed, of what kind, and how many
    rows were compared with the server after a scenario's own run (loads that only prime a table
    for a scenario are not counted)."""

    rows: int = 0
    ran: set = field(default_factory=set)
    passed: set = field(default_factory=set)
    kinds: dict = field(default_factory=dict)  # nodeid -> kind, see KINDS


TALLY = Tally()
# A scenario's kind, by the fixtures it uses: a materialization (through Dagster, in process or in
# a `dagster asset materialize` process) compares the table with the server, row by row, or with
# its checksum before the run; the others check settings without running anything.
KINDS = {"harness": "materialization", "harness_for": "materialization", "dagster_api": "materialization",
         "processes": "materialization"}


def _is_reliability(nodeid: str) -> bool:
    return "analytics_assets_tests/reliability/" in nodeid.replace("\\", "/")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _is_reliability(item.nodeid):
        uses = [KINDS[name] for name in getattr(item, "fixturenames", ()) if name in KINDS]
        kind = uses[0] if uses else "settings check without a run"
        if "test_secrets.py" in item.nodeid:
            kind = "secret-hygiene run (no rows compared)"
        TALLY.kinds[item.nodeid] = kind


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _is_reliability(report.nodeid) or (report.skipped and not hasattr(report, "wasxfail")):
        return  # skipped scenarios did not run (an xfail did: it is reported as skipped)
    if report.when == "call" or report.failed:
        TALLY.ran.add(report.nodeid)
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
        TALLY.passed.add(report.nodeid)
    elif report.failed:  # a failing setup or teardown fails the scenario too
        TALLY.passed.discard(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    by_kind = Counter(TALLY.kinds.get(nodeid, "settings check without a run") for nodeid in TALLY.ran)
    kinds = "; ".join(f"{kind}: {count}" for kind, count in sorted(by_kind.items()))
    terminalreporter.write_line(
        f"reliability: {len(TALLY.ran)} scenarios run ({kinds}), {len(TALLY.passed)} passed, "
        f"{TALLY.rows} rows of tables compared with the server after the scenarios' own runs"
    )


# --- outcome (a) or (b) -------------------------------------------------------------------------


def error_messages(error: Any) -> list[str]:
    """The messages of an error and of its causes, as Dagster shows them (without stack traces)."""
    messages, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        messages.append(error.message)
        error = error.cause or error.context
    return messages


def step_failures(result: Any) -> list[tuple[str, str]]:
    """(step key, what the user reads) for every STEP_FAILURE of the run, in order: the error, the
    errors it was caused by, and a `Failure`'s description."""
    failures = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data
        parts = error_messages(data.error)
        if data.user_failure_data is not None and data.user_failure_data.description:
            parts.append(data.user_failure_data.description)
        failures.append((event.step_key, "\n".join(parts)))
    return failures


def full_error_text(result: Any) -> str:
    """Everything a run's failures carry: messages, descriptions, causes and stack traces."""
    texts = []
    for event in result.all_events:
        texts.append(event.message or "")
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            if data.error is not None:
                texts.append(data.error.to_string())
            if data.user_failure_data is not None:
                texts.append(repr(data.user_failure_data))
    return "\n".join(texts)


def duplicate_ids(db: Path) -> list:
    with duckdb.connect(str(db), read_only=True) as connection:
        return [row[0] for row in connection.execute(
            f"SELECT id FROM {TABLE} GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 20").fetchall()]


def table_exists(db: Path) -> bool:
    if not db.exists():
        return False
    with duckdb.connect(str(db), read_only=True) as connection:
        return bool(connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics' "
            "AND table_name = 'resource_name'").fetchone()[0])


def checksum_or_absent(db: Path) -> str:
    return table_checksum(db) if table_exists(db) else NO_TABLE


def assert_matches_server(db: Path, expected: list[dict], count: bool = True) -> int:
    """Outcome (a)'s comparison: the table equals `expected` row by row, no duplicates. Counted in
    the tally unless it only checks a table a scenario starts from."""
    assert table_exists(db), "outcome (a) expected, but there is no table analytics.resource_name"
    assert duplicate_ids(db) == [], f"duplicated ids in the table: {duplicate_ids(db)}"
    assert_table_matches(db, expected)
    if count:
        TALLY.rows += len(expected)
    return len(expected)


def assert_succeeded(result: Any, db: Path, expected: list[dict], count: bool = True) -> int:
    """Outcome (a). Any other outcome fails with what actually happened."""
    failures = step_failures(result)
    assert result.success and not failures, (
        "expected outcome (a), a successful run; it failed instead:\n"
        + "\n".join(f"[{step}] {text[:1500]}" for step, text in failures)
    )
    return assert_matches_server(db, expected, count)


def assert_failed(result: Any, db: Path, words: tuple[str, ...] | list[str], before: str) -> str:
    """Outcome (b): the run failed naming the cause (all `words`, case-insensitive, in the first
    STEP_FAILURE the user sees), and the table is exactly as it was. Returns that message."""
    assert not result.success, "expected outcome (b), a failed run naming its cause; the run succeeded"
    failures = step_failures(result)
    assert failures, "the run failed without a STEP_FAILURE event"
    step, text = failures[0]
    missing = [word for word in words if word.lower() not in text.lower()]
    assert not missing, f"the failure of step {step!r} does not name the cause ({missing} missing):\n{text[:3000]}"
    after = checksum_or_absent(db)
    assert after == before, "a failed run changed the table (partial or unwanted commit)"
    return text


def assert_outcome(result: Any, db: Path, expected: list[dict], words: tuple[str, ...] | list[str], before: str,
                   expect: str = "either") -> str:
    """Exactly one of the two outcomes, never a third: returns "a" or "b".

    `expect` pins the outcome ("a" recovered, "b" clear failure) where the scenario defines it, or
    accepts either ("either") where both are right (e.g. a fault whose position among concurrent
    requests decides whether it can be recovered): whichever happened must then hold completely.
    """
    assert expect in ("a", "b", "either")
    if expect == "a" or (expect == "either" and result.success):
        assert_succeeded(result, db, expected)
        return "a"
    assert_failed(result, db, words, before)
    return "b"


class Harness:
    """One DuckDB file, one demo API, and the Dagster job run in process against them."""

    def __init__(self, api: DemoApi, db: Path) -> None:
        self.api = api
        self.db = db
        self.changes = 0

    def run(self, first: str, last: Optional[str] = None, instance: Any = None) -> Any:
        if last is None or last == first:
            return run_job(partition=first, instance=instance)
        return run_job(first=first, last=last, instance=instance)

    def expected(self, first: str, last: Optional[str] = None) -> list[dict]:
        return self.api.records_in_window(*day_bounds(first, last))

    def prime(self, first: str, last: Optional[str] = None, change_upstream: bool = True) -> str:
        """Materialize the window, check it landed, then change one of its records upstream so
        that any commit by the next run would show. Returns the table's checksum."""
        assert_succeeded(self.run(first, last), self.db, self.expected(first, last), count=False)
        if change_upstream:
            victim = self.expected(first, last)[-1]
            self.changes += 1
            self.api.update_record(victim["id"], name=f"changed-upstream-{victim['id']}-{self.changes}")
        self.api.reset_stats()
        return table_checksum(self.db)

    def succeeded(self, result: Any, first: str, last: Optional[str] = None,
                  expected: Optional[list[dict]] = None) -> int:
        return assert_succeeded(result, self.db, self.expected(first, last) if expected is None else expected)

    def failed(self, result: Any, words: tuple[str, ...] | list[str], before: str) -> str:
        return assert_failed(result, self.db, words, before)

    def outcome(self, result: Any, first: str, last: Optional[str], words: tuple[str, ...] | list[str],
                before: str, expect: str = "either") -> str:
        return assert_outcome(result, self.db, self.expected(first, last), words, before, expect)


def materializations(result: Any) -> dict[Optional[str], dict]:
    """Metadata of each materialization of the table asset in the run, by partition."""
    return {
        m.partition: m.metadata
        for m in result.asset_materializations_for_node("analytics_tables")
        if tuple(m.asset_key.path) == TABLE_ASSET
    }


def meta(result: Any, key: str, partition: Optional[str] = None) -> Any:
    """A figure of the run: a day's (on its materialization) or the run's own (`run_*`, recorded
    once on the run's observation of the table)."""
    by_partition = materializations(result)
    metadata = by_partition[partition] if partition else next(iter(by_partition.values()))
    return {**run_figures_of(result, TABLE_ASSET), **metadata}[key].value


@pytest.fixture
def harness(dagster_api: DemoApi, tmp_path: Path) -> Harness:
    """The shared `dagster_api` (500 records over 2026-11-15..19) and its DuckDB file."""
    return Harness(dagster_api, tmp_path / "warehouse.duckdb")


@pytest.fixture
def harness_for(make_api: Callable[..., DemoApi], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A harness on a demo API of its own configuration (page caps, more records...)."""

    def start(**config: Any) -> Harness:
        config = {"days": 5, "end_date": END_DATE, **config}
        api = make_api(**config)
        db = tmp_path / "warehouse.duckdb"
        set_api_env(monkeypatch, api, db)
        return Harness(api, db)

    return start


# --- bounded waiting and subprocesses -----------------------------------------------------------


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120.0, interval: float = 0.005,
             process: Optional["Cli"] = None) -> Any:
    """Poll `condition` until it is truthy; fail naming `what` on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.returncode_now() is not None:
            raise AssertionError(
                f"the process exited ({process.returncode_now()}) before {what}:\n{process.output()[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# Runs a command and prints the largest resident set of its processes (Linux: KiB), the run's
# worker included: Dagster waits for its step processes, so they count among the descendants.
PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print(f"peak RSS KiB: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", flush=True)
sys.exit(code)
"""


@dataclass
class Cli:
    """A `dagster asset materialize` (or any command) in its own process group, output to a file."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def peak_rss_bytes(self) -> int:
        """For a `measured` command that ended."""
        return int(self.output().rsplit("peak RSS KiB: ", 1)[1].split()[0]) * 1024

    def returncode_now(self) -> Optional[int]:
        return self.process.poll()

    def wait(self, timeout: float = 300.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"{self.log.name}: still running after {timeout:.0f} s:\n{self.output()[-4000:]}")

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)  # the group this test created (start_new_session)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait()


class Processes:
    """Starts subprocesses for one test and kills, by their own ids, any still running at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Cli] = []

    def start(self, command: list[str], env: dict, name: str, **kwargs: Any) -> Cli:
        log = self.tmp_path / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True, **kwargs)
        cli = Cli(process, log)
        self.started.append(cli)
        return cli

    def materialize(self, env: dict, partition: Optional[str] = None, partition_range: Optional[str] = None,
                    name: str = "materialize", options: tuple[str, ...] = (), measured: bool = False) -> Cli:
        """`measured`: the command runs under PEAK_RSS, which prints the peak memory of its processes."""
        command = [str(BIN / "dagster"), "asset", "materialize", "-m", "analytics_assets.definitions",
                   "--select", "analytics/resource_name", *options]
        command += ["--partition", partition] if partition else ["--partition-range", str(partition_range)]
        return self.start([sys.executable, "-c", PEAK_RSS, *command] if measured else command, env, name)

    def close(self) -> None:
        for cli in self.started:
            if cli.process.poll() is None:
                cli.kill()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.close()


def cli_env(home: Path, **overrides: str) -> dict:
    """The current ANALYTICS_* settings (set by the fixtures) plus DAGSTER_HOME, for a subprocess."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["DAGSTER_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process (R, S, T for stopped, Z...), '' once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""
