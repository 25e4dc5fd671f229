"""What people type: the demo command, `analytics-assets dev` (the Dagster UI through `dg dev`), and
`dagster asset materialize` with only ANALYTICS_* set, two at once on one DuckDB file."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest
from dagster import DagsterInstance

from analytics_assets_tests.conftest import assert_table_matches, day_bounds

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What Dagster's dev command prints that `analytics-assets dev` must not: the SupersessionWarning of
# `@superseded` on `dagster dev`'s click command (dg dev calls the implementation underneath it), and
# the warning dagster/_cli/dev.py logs when the working folder holds a dagster.yaml but DAGSTER_HOME
# is another folder.
DEV_WARNINGS = {
    "superseded by dg dev": "Use 'dg dev' instead.",
    "misplaced dagster.yaml": "Found a dagster instance configuration value",
}
UI_QUERY = json.dumps({"query": "{ instance { info } workspaceOrError { ... on Workspace { locationEntries { "
                                "name locationOrLoadError { __typename } } } } }"}).encode()


def command_env(home: Path) -> dict[str, str]:
    """A newcomer's environment: PATH and HOME (and the checkout a test run imports, if any)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def test_demo_command_runs_end_to_end(tmp_path):
    env = command_env(tmp_path)
    completed = subprocess.run(
        [str(BIN / "analytics-assets"), "demo", "--days", "2", "--records", "1400"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "SUCCESS" in output
    days = re.findall(r"(\d{4}-\d{2}-\d{2}): (\d+) rows \(the API holds (\d+)\)", output)
    assert len(days) == 2 and all(rows == held and int(rows) > 0 for _, rows, held in days)
    checks = dict(re.findall(r"check (\w+): (\w+)", output))
    # freshness is no step of the sync: the `analytics_freshness` sensor judges it from the data
    assert checks == {name: "passed" for name in ("id_unique", "required_columns_not_null", "window_complete",
                                                  "record_count_matches_table")}, output
    assert (tmp_path / "data" / "demo.duckdb").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "dagster_home").stat().st_mode & 0o777 == 0o700
    with DagsterInstance.from_config(str(tmp_path / "data" / "dagster_home")) as instance:
        assert len(instance.get_runs()) == 1, "the run is kept for the UI"
    # The closing hints run as printed, from where the demo ran.
    look = re.search(r"^Look at the rows: (.+)$", output, re.M).group(1)
    shown = subprocess.run(look, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "resource_name" not in shown.stderr, shown.stderr
    assert re.search(r"│\s*id\s*│", shown.stdout) and shown.stdout.count("\n") >= 5, shown.stdout
    browse = re.search(r"^Browse it: (\S+) dev, then open", output, re.M).group(1)
    assert (tmp_path / browse).exists() or shutil.which(browse, path=env["PATH"]), browse


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


def test_two_cli_materializations_at_once_both_land_loading_in_turn(dagster_api, tmp_path):
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_ui(command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path, port: int,
               timeout: float = 180.0) -> Iterator[dict]:
    """Start a command that serves the Dagster UI on `port`, in a process group of its own; once the UI
    answers with its code location loaded (or failed), yield what its GraphQL API says (the instance's
    description and the locations); stop the whole group afterwards."""
    with open(log, "wb") as out:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + timeout, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=UI_QUERY,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    data = json.load(response)["data"]
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(entry["locationOrLoadError"] for entry in entries):
                    answer = {"info": data["instance"]["info"] or "", "locations": entries}
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(0.5)  # the next poll of the UI, until it answers or the deadline passes
        assert answer is not None, f"no UI on port {port} (exit code {process.poll()}):\n{log.read_text()[-3000:]}"
        yield answer
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass
        try:  # children that outlived the leader (webserver, daemon, code server) share its group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


LOADED = [{"name": "analytics_assets", "locationOrLoadError": {"__typename": "RepositoryLocation"}}]


def assert_no_dev_warnings(log: Path) -> None:
    output = log.read_text(errors="replace")
    for what, text in DEV_WARNINGS.items():
        assert text not in output, f"`analytics-assets dev` printed the {what} warning:\n{output[-3000:]}"


def test_the_dev_warnings_looked_for_are_dagsters_own():
    """The texts the dev tests look for are those this Dagster prints, so that their absence means
    something after an upgrade too."""
    import inspect

    import dagster._cli.dev

    source = inspect.getsource(dagster._cli.dev)
    assert DEV_WARNINGS["misplaced dagster.yaml"] in source
    assert f"additional_warn_text=\"{DEV_WARNINGS['superseded by dg dev']}\"" in source


@pytest.mark.slow
def test_dev_command_serves_the_ui_wired_to_the_demo_api(tmp_path):
    """`analytics-assets dev` from any folder: `dg dev` on the demo's own instance data/dagster_home
    (0700, the project's dagster.yaml copied in), whatever DAGSTER_HOME and ANALYTICS_* say, and
    neither the superseded nor the misplaced-dagster.yaml warning."""
    port = free_port()
    production_home = tmp_path / "production_home"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DAGSTER_HOME": str(production_home),
           "ANALYTICS_DUCKDB_PATH": str(tmp_path / "production.duckdb")}
    log = tmp_path / "dev.log"
    with serving_ui([str(BIN / "analytics-assets"), "dev", "--port", str(port)], tmp_path, env, log, port) as ui:
        assert ui["locations"] == LOADED, log.read_text()[-3000:]
        home = tmp_path / "data" / "dagster_home"
        assert str(home) in ui["info"], ui["info"]
        demo_url = re.search(r"Demo API on (http://127\.0\.0\.1:\d+)", log.read_text()).group(1)
        with urllib.request.urlopen(demo_url + "/oauth/token", data=b"grant_type=client_credentials&"
                                    b"client_id=demo-client&client_secret=demo-secret", timeout=5) as response:
            assert response.status == 200
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "dagster.yaml").read_bytes() == (ROOT / "dagster.yaml").read_bytes()
    assert not production_home.exists()
    assert_no_dev_warnings(log)


@pytest.mark.slow
def test_dev_command_with_use_environment_from_the_project_root(tmp_path):
    """From the project root, whose dagster.yaml is the one Dagster would warn about, keeping the
    environment's DAGSTER_HOME and DuckDB file: still no warning, and the environment's instance serves."""
    port = free_port()
    home = tmp_path / "dagster_home"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
           "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}
    log = tmp_path / "dev.log"
    command = [str(BIN / "analytics-assets"), "dev", "--use-environment", "--port", str(port)]
    with serving_ui(command, ROOT, env, log, port) as ui:
        assert ui["locations"] == LOADED, log.read_text()[-3000:]
        assert str(home) in ui["info"], ui["info"]
    assert (home / "dagster.yaml").read_bytes() == (ROOT / "dagster.yaml").read_bytes()
    assert_no_dev_warnings(log)


def test_dev_keeps_relative_paths_relative_to_where_it_was_run(tmp_path, monkeypatch):
    """`dev` runs Dagster inside DAGSTER_HOME: the environment's relative paths (and the DuckDB
    default) still mean the folder the command was run from, and dlt still reads that folder's .dlt/."""
    from analytics_assets.cli import _anchor_relative_paths

    monkeypatch.delenv("ANALYTICS_DUCKDB_PATH", raising=False)
    monkeypatch.setenv("ANALYTICS_API_CONFIG", "conf/api.yaml")
    monkeypatch.delenv("DLT_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    _anchor_relative_paths()
    assert os.environ["ANALYTICS_DUCKDB_PATH"] == str(tmp_path.resolve() / "data" / "warehouse.duckdb")
    assert os.environ["ANALYTICS_API_CONFIG"] == str(tmp_path.resolve() / "conf" / "api.yaml")
    assert os.environ["DLT_PROJECT_DIR"] == str(tmp_path.resolve())
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", "/elsewhere/warehouse.duckdb")
    monkeypatch.setenv("DLT_PROJECT_DIR", "/elsewhere")
    _anchor_relative_paths()
    assert os.environ["ANALYTICS_DUCKDB_PATH"] == "/elsewhere/warehouse.duckdb"
    assert os.environ["DLT_PROJECT_DIR"] == "/elsewhere"


def test_dev_on_a_taken_port_fails_at_once_naming_the_port_and_the_option(tmp_path):
    """Dagster's webserver would print that it serves, then `address already in use`, and go on
    without a UI while its daemon launches runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run([str(BIN / "analytics-assets"), "dev", "--port", str(port)], cwd=tmp_path,
                                   env=command_env(tmp_path),
                                   capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"Port {port} on 127.0.0.1 is taken" in completed.stderr and "--port" in completed.stderr
    assert "Demo API on" not in completed.stdout, "nothing is started"


def test_the_demo_partitions_start_on_the_demo_apis_first_day(monkeypatch):
    """No partition of the demo (or of `dev`) is missing for a day the demo API never held."""
    from analytics_assets.builders.jobs import JOB_NAME
    from analytics_assets.cli import _point_at
    from analytics_assets.definitions import build_defs
    from analytics_assets.demo_api import DemoApi, DemoApiConfig
    from analytics_assets.settings import variable

    for name in ("partitions_start", "api_base_url", "client_id", "client_secret"):
        monkeypatch.setenv(variable(name), "")  # restored after the test: _point_at writes os.environ
    with DemoApi(DemoApiConfig(records=70, days=7)) as api:
        _point_at(api)
        keys = build_defs().resolve_job_def(JOB_NAME).partitions_def.get_partition_keys()
        held = sorted({record["updated_at"][:10] for record in api.all_records()})
    assert keys == held, "one partition per day the API holds, each ended"
