"""What people type: the demo command, and `dagster asset materialize` with only ANALYTICS_* set,
two at once on one DuckDB file."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance

from analytics_assets_tests.conftest import assert_table_matches, day_bounds

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_demo_command_runs_end_to_end(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    completed = subprocess.run(
        [str(BIN / "analytics-assets"), "demo", "--days", "2", "--records", "1400"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "SUCCESS" in output
    days = re.findall(r"(\d{4}-\d{2}-\d{2}): (\d+) rows \(the API holds (\d+)\)", output)
    assert len(days) == 2 and all(rows == held and int(rows) > 0 for _, rows, held in days)
    assert output.count("passed") == 3
    assert (tmp_path / "data" / "demo.duckdb").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "dagster_home").stat().st_mode & 0o777 == 0o700
    with DagsterInstance.from_config(str(tmp_path / "data" / "dagster_home")) as instance:
        assert len(instance.get_runs()) == 1, "the run is kept for the UI"


def test_the_demo_never_writes_where_the_environment_points(tmp_path):
    """A deployment's variables name its real warehouse and instance: the demo's rows go to its own
    scratch file, its run to its own instance."""
    import duckdb

    production = tmp_path / "production.duckdb"
    with duckdb.connect(str(production)) as connection:
        connection.execute("CREATE TABLE kept AS SELECT 1 AS id")
    before = production.read_bytes()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANALYTICS_DUCKDB_PATH": str(production),
           "ANALYTICS_DESTINATION": "postgres", "DAGSTER_HOME": str(tmp_path / "production_home"),
           "ANALYTICS_API_CONFIG": str(tmp_path / "missing.yaml")}
    completed = subprocess.run([str(BIN / "analytics-assets"), "demo", "--days", "1", "--records", "700"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert production.read_bytes() == before and not (tmp_path / "production_home").exists()
    assert (tmp_path / "data" / "demo.duckdb").exists()


def test_two_cli_materializations_at_once_queue_on_the_writer_pool(dagster_api, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["DAGSTER_HOME"] = str(home)
    from analytics_assets.warehouse.pool import create_pool

    with DagsterInstance.from_config(str(home)) as instance:  # created once, before runs race
        create_pool(instance, "duckdb_writer", 1)
    commands = [
        [str(BIN / "dagster"), "asset", "materialize", "-m", "analytics_assets.definitions",
         "--select", "analytics/resource_name", "--partition", day]
        for day in ("2026-11-16", "2026-11-17")
    ]
    processes = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in commands]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
        assert "Could not set lock" not in output
    assert_table_matches(tmp_path / "warehouse.duckdb", dagster_api.records_in_window(*day_bounds("2026-11-16", "2026-11-17")))


def test_dev_command_serves_the_ui_wired_to_the_demo_api(tmp_path):
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(BIN / "analytics-assets"), "dev", "--port", str(port)], cwd=tmp_path,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { name "
                                 "locationOrLoadError { __typename } } } } }"}).encode()
    try:
        deadline, entries = time.monotonic() + 180, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        assert entries == [{"name": "analytics_assets", "locationOrLoadError": {"__typename": "RepositoryLocation"}}], log.read_text()[-3000:]
        demo_url = re.search(r"Demo API on (http://127\.0\.0\.1:\d+)", log.read_text()).group(1)
        with urllib.request.urlopen(demo_url + "/oauth/token", data=b"grant_type=client_credentials&"
                                    b"client_id=demo-client&client_secret=demo-secret", timeout=5) as response:
            assert response.status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
