"""`dg` on a fresh copy of the project, as a user adds an API: `dg list components` shows the
project's type, `dg scaffold defs` writes into the defs folder, and `dg check defs` / `dg list defs`
load what was written, the project's type and Dagster's own `dagster.asset` alike. The scaffolded
API, pointed at a demo API, lands its day exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from analytics_assets_tests.conftest import assert_table_matches, day_bounds
from analytics_assets_tests.test_dg import DG, ROOT, dg_env

COPIED = ("analytics_assets", "pyproject.toml", "dagster.yaml", "workspace.yaml")


def fresh_copy(tmp_path: Path) -> Path:
    """The project as a clone has it (no virtualenv, no data, no caches)."""
    copy = tmp_path / "clone"
    copy.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, copy / name)
    return copy


def dg_in(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """dg in the copy, the copy's package first on the path: the virtualenv has this checkout
    installed in editable mode, and dg imports its registry module before it loads the code
    location, so without it the checkout's files would be loaded (a clone installs itself)."""
    return subprocess.run([str(DG), *args], cwd=folder, env={**env, "PYTHONPATH": str(folder)}, capture_output=True,
                          text=True, timeout=300)


def test_dg_check_defs_passes_on_a_fresh_clone_and_lists_the_built_in_api(tmp_path):
    copy, env = fresh_copy(tmp_path), dg_env(tmp_path)
    checked = dg_in(copy, "check", "defs", env=env)
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
    listed = dg_in(copy, "list", "components", "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    types = {entry["key"]: entry for entry in json.loads(listed.stdout)["items"]}
    assert "analytics_assets.RestApiComponent" in types
    assert "OAuth2 REST API" in json.dumps(types["analytics_assets.RestApiComponent"])


def test_scaffolded_api_and_asset_are_loaded_and_the_api_lands_its_day(tmp_path, make_api):
    api = make_api(records=300, days=5, end_date=date(2026, 11, 20), client_id="demo-client", client_secret="demo-secret")
    copy, env = fresh_copy(tmp_path), dg_env(tmp_path)
    port = api.base_url.rsplit(":", 1)[1]
    for args in (["scaffold", "defs", "analytics_assets.RestApiComponent", "acme", "--json-params", f'{{"port": {port}}}'],
                 ["scaffold", "defs", "dagster.asset", "my_asset.py"]):
        done = dg_in(copy, *args, env=env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    written = (copy / "analytics_assets" / "defs" / "acme" / "defs.yaml").read_text()
    assert written.startswith("# The API `acme`") and "{{ env.ACME_CLIENT_ID }}" in written
    assert (copy / "analytics_assets" / "defs" / "my_asset.py").is_file()

    checked = dg_in(copy, "check", "defs", env=env)
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
    listed = dg_in(copy, "list", "defs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    assets = {asset["asset_key"] for asset in defs["assets"]}
    assert {"acme/resource_name", "acme_api/resource_name", "my_asset", "analytics/resource_name"} <= assets
    assert {"acme_job", "analytics_job"} <= {job["name"] for job in defs["jobs"]}
    assert {"acme_daily", "analytics_daily"} <= {schedule["name"] for schedule in defs["schedules"]}

    day = "2026-11-18"
    launched = dg_in(copy, "launch", "--assets", "acme/resource_name", "--partition", day,
                     env={**env, "ACME_CLIENT_ID": "demo-client", "ACME_CLIENT_SECRET": "demo-secret"})
    assert launched.returncode == 0, (launched.stdout + launched.stderr)[-3000:]
    assert_table_matches(tmp_path / "warehouse.duckdb", api.records_in_window(*day_bounds(day)),
                         table="acme.resource_name")
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()
        assert run.tags["dagster/partition"] == day


def test_a_broken_defs_yaml_fails_dg_check_naming_the_file_line_and_key(tmp_path):
    copy, env = fresh_copy(tmp_path), dg_env(tmp_path)
    built_in = copy / "analytics_assets" / "defs" / "analytics" / "defs.yaml"
    built_in.write_text(built_in.read_text().replace("          limit: 100", "          limit: -5"))
    line = next(n for n, text in enumerate(built_in.read_text().splitlines(), 1) if "limit: -5" in text)
    checked = dg_in(copy, "check", "defs", env=env)
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert f"{built_in}:{line}: attributes.resources[0].endpoint.paginator.limit: must be greater than 0" in output, \
        output[-3000:]


@pytest.mark.parametrize("attribute, wrong", [("schedule_running", "[1, 2]"), ("resources", "5")])
def test_dg_check_yaml_catches_a_wrong_type_with_the_file_and_line(tmp_path, attribute, wrong):
    """Where dg's own schema check applies (a value of the wrong type), `dg check yaml` says it."""
    copy, env = fresh_copy(tmp_path), dg_env(tmp_path)
    built_in = copy / "analytics_assets" / "defs" / "analytics" / "defs.yaml"
    text = built_in.read_text()
    if attribute == "resources":
        text = text.replace("  resources:\n", f"  resources: {wrong}\n  unused_resources:\n")
    else:
        text = text.replace("  schedule_running: true", f"  {attribute}: {wrong}")
    built_in.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith(f"  {attribute}:"))
    checked = dg_in(copy, "check", "yaml", env=env)
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert f"defs.yaml:{line}" in output and attribute in output, output[-3000:]
