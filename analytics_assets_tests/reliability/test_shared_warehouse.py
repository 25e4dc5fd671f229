"""PostgreSQL has no single writer: with the writer pool's limit raised by configuration, two
`dagster asset materialize` processes sync two partitions at the same moment, and every row lands
exactly once, on a fresh database (both runs find the tables missing) and on an existing one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from analytics_assets.warehouse.pool import create_pool
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, query, set_api_env
from analytics_assets_tests.reliability.conftest import END_DATE, Processes, cli_env, make_dagster_home


def launch_pair(processes: Processes, env: dict, days: tuple[str, str]) -> None:
    launched = [processes.materialize(env, partition=day, name=f"day-{day}") for day in days]
    for cli in launched:
        assert cli.wait(timeout=300) == 0, cli.output()[-4000:]


@pytest.mark.slow
def test_two_partitions_in_concurrent_runs_land_every_row_once(
    make_api, monkeypatch: pytest.MonkeyPatch, postgres_url: str, processes: Processes, tmp_path: Path
) -> None:
    api = make_api(records=4000, days=5, end_date=END_DATE)
    set_api_env(monkeypatch, api, tmp_path / "unused.duckdb")
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    monkeypatch.setenv("ANALYTICS_WRITER_POOL_LIMIT", "2")
    # Longer than the barrier below: a held request must not time out and come back as a retry.
    monkeypatch.setenv("ANALYTICS_HTTP_TIMEOUT", "120")
    home = make_dagster_home(tmp_path / "dagster_home")
    with DagsterInstance.from_config(str(home)) as instance:  # before the processes race to set it
        create_pool(instance, "warehouse_writer", 2)
    env = cli_env(home)

    # A fresh database: both runs find the tables missing and must not trip over each other.
    launch_pair(processes, env, ("2026-11-15", "2026-11-16"))

    # Tables exist: the two runs must be paging the API at the same moment. The first page request
    # of either run is held until a page request of the other arrives (a run asks for no second
    # page before its first answers, nor retries it before its 120 s timeout), so the barrier only
    # opens if both runs hold a writer slot at once.
    both_paging = threading.Barrier(2, timeout=60)
    api.faults.on_page(1, lambda _: both_paging.wait())
    api.faults.on_page(2, lambda _: both_paging.wait())
    launch_pair(processes, env, ("2026-11-17", "2026-11-18"))
    assert not both_paging.broken, "the second run did not page while the first was waiting"

    assert_table_matches(postgres_url, api.records_in_window(*day_bounds("2026-11-15", "2026-11-18")))
    with DagsterInstance.from_config(str(home)) as instance:
        finished = list(instance.get_runs())
    assert len(finished) == 4 and all(run.status == DagsterRunStatus.SUCCESS for run in finished)
    # each run merged through a staging schema of its own, dropped after its load
    schemas = {row[0] for row in query(postgres_url, "SELECT schema_name FROM information_schema.schemata")[1]}
    assert "analytics" in schemas
    assert not [name for name in schemas if name.startswith("analytics_staging")], sorted(schemas)
