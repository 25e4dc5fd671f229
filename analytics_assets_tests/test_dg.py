"""The `dg` CLI on this project, as Dagster's docs now have people type it from the project root:
`dg check defs`, `dg list defs`, `dg launch` and `dg dev`, configured by pyproject.toml's [tool.dg].

Each command runs as a user runs it: a subprocess in the project root, the project's virtualenv
active (VIRTUAL_ENV), a DAGSTER_HOME and DuckDB file of the test's own, and no ANALYTICS_* variable
but those a test sets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from analytics_assets_tests.conftest import assert_table_matches, day_bounds, query
from analytics_assets_tests.test_cli import DEV_WARNINGS, LOADED, free_port, serving_ui

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")
DAY = "2026-11-20"


def dg_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A user's shell in the project's activated virtualenv: PATH, HOME (so no dg or Dagster user
    config of the developer's applies), a fresh DAGSTER_HOME holding the project's dagster.yaml, a
    DuckDB file of the test's own, and `settings` (ANALYTICS_* variables) and nothing else."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VIRTUAL_ENV": sys.prefix,
            "DAGSTER_HOME": str(home), "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"), **settings}


def dg(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(DG), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_dg_check_defs_loads_the_code_location_with_no_settings(tmp_path):
    env = dg_env(tmp_path)
    assert not [name for name in env if name.startswith("ANALYTICS_") and name != "ANALYTICS_DUCKDB_PATH"]
    completed = dg("check", "defs", env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "All definitions loaded successfully." in completed.stdout, output[-3000:]


def test_dg_list_defs_lists_the_assets_job_and_schedule(tmp_path):
    completed = dg("list", "defs", "--json", env=dg_env(tmp_path))
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    listed = json.loads(completed.stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert {"analytics/resource_name", "analytics_api/resource_name",
            "analytics/resource_name_daily_summary"} <= set(assets)
    assert assets["analytics/resource_name"]["dependency_keys"] == ["analytics_api/resource_name"]
    assert assets["analytics/resource_name_daily_summary"]["dependency_keys"] == ["analytics/resource_name"]
    assert not assets["analytics_api/resource_name"]["is_executable"]  # the endpoint: an external asset
    assert "analytics_job" in {job["name"] for job in listed["jobs"]}
    assert "analytics_daily" in {schedule["name"] for schedule in listed["schedules"]}


@pytest.mark.slow
def test_dg_launch_materializes_one_partition_from_the_api(make_api, tmp_path):
    api = make_api(records=600, days=4, end_date=date(2026, 11, 21))
    served = api.records_in_window(*day_bounds(DAY))
    assert served, "the demo API holds records for the day"
    env = dg_env(tmp_path, ANALYTICS_API_BASE_URL=api.base_url, ANALYTICS_CLIENT_ID=api.config.client_id,
                 ANALYTICS_CLIENT_SECRET=api.config.client_secret)
    completed = dg("launch", "--assets", "analytics/resource_name", "--partition", DAY, env=env)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    assert_table_matches(tmp_path / "warehouse.duckdb", served)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == DAY


def test_dg_launch_without_settings_fails_naming_the_variable(tmp_path):
    completed = dg("launch", "--assets", "analytics/resource_name", "--partition", DAY, env=dg_env(tmp_path))
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "ANALYTICS_API_BASE_URL is not set" in output, output[-3000:]
    warehouse = tmp_path / "warehouse.duckdb"
    if warehouse.exists():  # nothing was loaded
        assert query(warehouse, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'")[1] == []


@pytest.mark.slow
def test_dg_dev_serves_the_project(tmp_path):
    """`dg dev` from the project root: [tool.dg] names the code location `analytics_assets` and loads
    analytics_assets.definitions with the active interpreter; it is not the superseded command."""
    port = free_port()
    env = dg_env(tmp_path)
    log = tmp_path / "dg_dev.log"
    with serving_ui([str(DG), "dev", "-h", "127.0.0.1", "-p", str(port)], ROOT, env, log, port) as ui:
        assert ui["locations"] == LOADED, log.read_text()[-3000:]
        assert env["DAGSTER_HOME"] in ui["info"], ui["info"]
    assert DEV_WARNINGS["superseded by dg dev"] not in log.read_text(errors="replace")


@pytest.mark.slow
def test_dg_launch_lands_a_public_apis_parent_and_child_from_its_config_file(tmp_path):
    """Slack shaped, as a user configures it: the config file and the credentials in the shell, then
    `dg launch` of the child table; its messages of the day land exactly, channel by channel."""
    from analytics_assets_tests.standins.compare import assert_rows_equal, table_rows
    from analytics_assets_tests.standins.slack import SlackMessages

    day = "2026-11-17"
    with SlackMessages() as standin:
        config = tmp_path / "slack.json"
        config.write_text(json.dumps(standin.config()))
        env = dg_env(tmp_path, ANALYTICS_API_CONFIG=str(config), ANALYTICS_CLIENT_ID=standin.client_id,
                     ANALYTICS_CLIENT_SECRET=standin.client_secret, ANALYTICS_PARTITIONS_START="2026-11-01")
        completed = dg("launch", "--assets", "analytics/messages", "--partition", day, env=env)
        assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
        rows = [{k: v for k, v in row.items() if k != "_cursor_at"}
                for row in table_rows(tmp_path / "warehouse.duckdb", "messages", "analytics")]
        assert_rows_equal(rows, standin.expected_rows("messages", *day_bounds(day)), standin.row_key("messages"))
