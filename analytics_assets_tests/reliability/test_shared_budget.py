"""One rate limit budget per API across runs, proven with `dagster asset materialize` processes
over different partition ranges, launched at once against the demo API's limiter.

The runs load a PostgreSQL warehouse whose writer pool admits all of them: on DuckDB the writer
pool (one step at a time) and the file's lock make runs take turns, so they never call the API
together; a sensor tick and a run still can, and share the budget the same way."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
from dagster import DagsterInstance

from analytics_assets.warehouse.pool import create_pool
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, fresh_database, set_api_env
from analytics_assets_tests.reliability.conftest import (
    END_DATE,
    TALLY,
    Processes,
    assert_matches_server,
    cli_env,
    make_dagster_home,
)
from analytics_assets_tests.reliability.test_load_and_concurrency import partition_metadata

DAYS = 8  # 2026-11-12 .. 2026-11-19
PER_DAY = 3000  # 30 pages a day: each run's fetch takes 6 s alone at the limit, so the runs' fetches overlap
RANGES = ["2026-11-12...2026-11-13", "2026-11-14...2026-11-15", "2026-11-16...2026-11-17", "2026-11-18...2026-11-19"]
WHOLE = "2026-11-12...2026-11-19"
LIMITER = {"records": PER_DAY * DAYS, "days": DAYS, "end_date": END_DATE, "rate_limit": 10}  # 10 requests/s
# Against the silent limiter four runs sharing the budget drew 70, 74 and 111 x 429 where one run drew
# 50-52: not yet "no more than one run" (issue 21's target). Pacing alone, four runs drew more and one
# of them failed, its retries spent on 429s: the runs' all succeeding is what this test holds first.
SILENT_FACTOR = 3


def launch(processes: Processes, tmp_path: Path, name: str, database: str, ranges: list[str], api) -> tuple[Path, list]:
    """`ranges` materialized at once, each by a `dagster asset materialize` process of one
    deployment (one DAGSTER_HOME) into `database`, the writer pool admitting them all.

    A run of the first day creates the tables first, and the API's counts start after it: on a new
    database the first runs take turns on the table-creation lock, fetch included (issue 21, item
    3), and would never call the API together."""
    home = make_dagster_home(tmp_path / f"home-{name}")
    with DagsterInstance.from_config(str(home)) as instance:
        create_pool(instance, "warehouse_writer", len(ranges))
    env = cli_env(home, ANALYTICS_DESTINATION="postgres", DESTINATION__POSTGRES__CREDENTIALS=database,
                  ANALYTICS_PARTITIONS_START="2026-11-01")
    first_day = ranges[0][:10]
    tables = processes.materialize(env, partition_range=f"{first_day}...{first_day}", name=f"{name}-tables")
    assert tables.wait(timeout=300) == 0, tables.output()[-4000:]
    api.reset_stats()
    runs = [processes.materialize(env, partition_range=days, name=f"{name}-{days[:10]}") for days in ranges]
    for cli in runs:
        assert cli.wait(timeout=300) == 0, cli.output()[-4000:]
    return home, runs


def fetches_overlapped(api) -> bool:
    """Whether every run was fetching at one moment, read from the API's own log of the page
    requests it answered: each run asks for its own days, and some answer came after every run's
    first and before every run's last (else the runs took turns and the test would prove nothing)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, request in enumerate(api.requests):
        since = request.query.get("updated_since", "")
        run = next((days for days in RANGES if days[:10] <= since[:10] <= days[-10:]), None)
        if run is None or request.query.get("limit") == "1":  # not a page (a token, a day's total)
            continue
        first.setdefault(run, index)
        last[run] = index
    return len(first) == len(RANGES) and max(first.values()) < min(last.values())


@pytest.fixture
def database(postgres_server: str) -> Iterator[Any]:
    """`database()`: a fresh PostgreSQL database's URL, dropped at the end of the test."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_database(postgres_server))


@pytest.mark.slow
def test_parallel_runs_under_an_announced_limit_are_never_refused(make_api, processes, database, tmp_path,
                                                                  monkeypatch) -> None:
    """Four runs at once against 10 requests a second announced in X-RateLimit-* headers: the
    runs pace as one client, so none of their 250-odd requests is refused (each pacing alone, they
    drew 62 x 429 here), and every row lands."""
    api = make_api(**LIMITER, rate_limit_headers="x")
    set_api_env(monkeypatch, api, tmp_path / "unused.duckdb")
    url = database()
    home, runs = launch(processes, tmp_path, "announced", url, RANGES, api)

    assert fetches_overlapped(api), "the runs took turns: nothing was shared"
    assert api.rate_limited == 0
    for cli in runs:
        assert "share one rate limit budget" in cli.output()
    records = api.all_records()
    assert len(records) == PER_DAY * DAYS
    assert_table_matches(url, records)
    TALLY.rows += len(records)


@pytest.mark.slow
def test_parallel_runs_against_a_silent_limiter_fail_none_and_are_refused_at_most_three_times_as_often(
        make_api, processes, database, tmp_path, monkeypatch) -> None:
    """A limiter that says only 429 + Retry-After: first one run over the eight days, then four runs
    over two days each, at once, each on an API and a database of its own. Paused together and
    resuming as one client, none of the four runs fails, no run loses its days' API totals (asked
    after the load, each run's totals compete with the others' pages), and the four draw at most
    SILENT_FACTOR times the one run's 429s."""
    one = make_api(**LIMITER)
    set_api_env(monkeypatch, one, tmp_path / "unused.duckdb")
    launch(processes, tmp_path, "one-run", database(), [WHOLE], one)
    alone = one.rate_limited

    api = make_api(**LIMITER)
    set_api_env(monkeypatch, api, tmp_path / "unused.duckdb")
    url = database()
    started = time.monotonic()
    home, _ = launch(processes, tmp_path, "four-runs", url, RANGES, api)
    assert fetches_overlapped(api), "the runs took turns: nothing was shared"

    assert 0 < api.rate_limited <= SILENT_FACTOR * alone, \
        f"four runs drew {api.rate_limited} x 429, one run {alone} (in {time.monotonic() - started:.0f} s)"
    records = api.all_records()
    assert_table_matches(url, records)
    TALLY.rows += len(records)
    per_day = Counter(record["updated_at"][:10] for record in records)
    metadata = partition_metadata(home)
    assert sorted(metadata) == sorted(per_day)
    for day, count in per_day.items():
        assert "api_total" in metadata[day], f"the run of {day} lost its day's API total"
        assert metadata[day]["api_total"].value == count, day


def test_a_run_that_cannot_write_the_budget_folder_says_so_and_succeeds(dagster_api, processes, tmp_path) -> None:
    """ANALYTICS_RATE_BUDGET_DIR beneath a file (no user, root included, can create a folder
    there): the run warns, naming the folder and the fallback, and loads every row."""
    (tmp_path / "a-file").write_text("")
    home = make_dagster_home(tmp_path / "dagster_home")
    env = cli_env(home, ANALYTICS_RATE_BUDGET_DIR=str(tmp_path / "a-file" / "budgets"))
    cli = processes.materialize(env, partition_range="2026-11-16...2026-11-17", name="unwritable")
    assert cli.wait(timeout=300) == 0, cli.output()[-4000:]
    output = cli.output()
    assert "cannot be used" in output and "cannot be written" in output and "budget of its own" in output
    assert str(tmp_path / "a-file" / "budgets") in output
    db = tmp_path / "warehouse.duckdb"
    assert_matches_server(db, dagster_api.records_in_window(*day_bounds("2026-11-16", "2026-11-17")))
