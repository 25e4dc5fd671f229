"""The job and the daily schedule."""

from datetime import datetime, timezone

from dagster import AssetKey, build_schedule_context

from analytics_assets.definitions import build_defs
from analytics_assets.builders.jobs import JOB_NAME


def test_job_covers_the_table_its_checks_and_the_summary():
    job = build_defs().resolve_job_def(JOB_NAME)
    keys = {key for node in job.asset_layer.asset_graph.asset_nodes for key in [node.key]}
    assert {AssetKey(["analytics", "resource_name"]), AssetKey(["analytics", "resource_name_daily_summary"])} <= keys
    assert job.partitions_def is not None


def test_schedule_materializes_yesterday_shortly_after_midnight_utc():
    schedule = build_defs().resolve_schedule_def("analytics_daily")
    assert schedule.cron_schedule == "15 0 * * *"
    assert schedule.execution_timezone == "UTC"
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 0, 15, tzinfo=timezone.utc))
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2026-11-19"]
    assert schedule.job_name == JOB_NAME


def test_the_readme_commands_stop_the_schedule_and_the_sensor(tmp_path):
    """Both start RUNNING (no state stored); the README's commands store them as stopped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import InstigatorStatus

    from analytics_assets_tests.conftest import ROOT as root, make_dagster_home

    home = make_dagster_home(tmp_path / "dagster_home")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = str(Path(sys.executable).parent / "dagster")
    for command in (["schedule", "stop", "analytics_daily"], ["sensor", "stop", "analytics_reconcile"]):
        completed = subprocess.run([dagster, *command, "-w", str(root / "workspace.yaml")], cwd=root, env=env,
                                   capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stdout + completed.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        states = {state.name: state.status for state in instance.all_instigator_state()}
    assert states == {"analytics_daily": InstigatorStatus.STOPPED, "analytics_reconcile": InstigatorStatus.STOPPED}
