"""The reconcile sensor, evaluated against a real instance and the demo API, with real runs of the
days it asks for."""

from datetime import datetime, timedelta, timezone

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from analytics_assets.definitions import build_defs
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, set_api_env

ENDPOINT = AssetKey(["analytics_api", "resource_name"])
TODAY = datetime.now(timezone.utc).date()
DAYS = [(TODAY - timedelta(days=n)).isoformat() for n in range(5, 0, -1)]  # the five most recent partitions


@pytest.fixture
def recent_api(make_api, tmp_path, monkeypatch):
    """A demo API whose five days are the five most recent daily partitions."""
    api = make_api(records=500, days=5, end_date=TODAY)
    set_api_env(monkeypatch, api, tmp_path / "warehouse.duckdb")
    return api


def evaluate(instance: DagsterInstance):
    defs = build_defs()
    sensor = defs.get_repository_def().get_sensor_def("analytics_reconcile")
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        return sensor(context)


def requested(result) -> list[tuple[str, str]]:
    """Each run request as the (first, last) day it syncs."""
    return [(r.tags.get("dagster/asset_partition_range_start", r.partition_key),
             r.tags.get("dagster/asset_partition_range_end", r.partition_key)) for r in result.run_requests]


def run_requested(instance: DagsterInstance, request) -> None:
    """As the daemon would launch it: the job, with the request's partition or range tags."""
    from analytics_assets.builders.jobs import JOB_NAME

    job = build_defs().resolve_job_def(JOB_NAME)
    result = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
    assert result.success


def add_late_record(api, day: str, hour: int) -> None:
    template = api.records_in_window(*day_bounds(DAYS[0]))[0]
    late = {**template, "id": 900_000 + len(api.records_in_window(*day_bounds(DAYS[0], DAYS[-1]))),
            "name": f"late-{day}-{hour}", "updated_at": f"{day}T{hour:02d}:00:00Z"}
    api.insert_record(late)


def test_reconcile_requests_exactly_the_days_with_late_records(recent_api, tmp_path):
    from analytics_assets_tests.conftest import run_job

    instance = DagsterInstance.ephemeral()
    assert run_job(first=DAYS[0], last=DAYS[-1], instance=instance).success

    nothing = evaluate(instance)
    assert nothing.run_requests == [] and "nothing to sync" in nothing.skip_reason.skip_message
    observed = {event.partition: event.metadata["api_total"].value for event in nothing.asset_events}
    assert {day: observed[day] for day in DAYS} == {
        day: len(recent_api.records_in_window(*day_bounds(day))) for day in DAYS}
    assert all(event.asset_key == ENDPOINT for event in nothing.asset_events)

    # Late records on the first two days (one stretch); a record of the third day updated upstream
    # into the fifth: the normal case, so the fifth day is behind and the third is not a difference.
    add_late_record(recent_api, DAYS[0], 6)
    add_late_record(recent_api, DAYS[1], 7)
    moved = recent_api.records_in_window(*day_bounds(DAYS[2]))[0]["id"]
    recent_api.update_record(moved, updated_at=f"{DAYS[4]}T09:00:00Z")

    late = evaluate(instance)
    assert requested(late) == [(DAYS[0], DAYS[1]), (DAYS[4], DAYS[4])]
    assert evaluate(instance).run_requests[0].run_key == late.run_requests[0].run_key, "one key per state"

    for request in late.run_requests:
        run_requested(instance, request)
    assert_table_matches(tmp_path / "warehouse.duckdb", recent_api.records_in_window(*day_bounds(DAYS[0], DAYS[-1])))
    settled = evaluate(instance)
    assert settled.run_requests == [] and "nothing to sync" in settled.skip_reason.skip_message


def test_a_day_ahead_of_the_api_is_not_synced_again(recent_api):
    """A record moved upstream to a day outside the compared days (today, not a partition yet): its
    old day holds one row more than the API counts, which syncing that day cannot change."""
    from analytics_assets_tests.conftest import run_job

    instance = DagsterInstance.ephemeral()
    assert run_job(first=DAYS[0], last=DAYS[-1], instance=instance).success
    moved = recent_api.records_in_window(*day_bounds(DAYS[2]))[0]["id"]
    recent_api.update_record(moved, updated_at=f"{TODAY.isoformat()}T00:30:00Z")
    result = evaluate(instance)
    assert result.run_requests == []
    assert "1 day(s) hold more rows than the API counts now" in result.skip_reason.skip_message


def test_an_api_without_totals_gets_a_skip_reason(recent_api, tmp_path, monkeypatch):
    import json

    from analytics_assets.api.definition import BUILT_IN_CONFIG

    config = json.loads(json.dumps(BUILT_IN_CONFIG))
    config["resources"][0]["endpoint"]["paginator"]["total_path"] = "meta.count"  # the demo has no such key
    path = tmp_path / "api.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("ANALYTICS_API_CONFIG", str(path))
    result = evaluate(DagsterInstance.ephemeral())
    assert result.run_requests == [] and result.asset_events == []
    assert "carry no record total at `meta.count`" in result.skip_reason.skip_message
    assert "total_path" in result.skip_reason.skip_message


def test_reconcile_days_sets_how_far_back_it_looks(recent_api, monkeypatch):
    monkeypatch.setenv("ANALYTICS_RECONCILE_DAYS", "2")
    result = evaluate(DagsterInstance.ephemeral())
    assert requested(result) == [(DAYS[3], DAYS[4])], "the two most recent days, never synced"
    assert sorted({event.partition for event in result.asset_events}) == DAYS[3:]
    assert recent_api.request_count(path="/v1/resource") == 2, "one request a day"


def test_a_stretch_is_launched_at_most_once_a_day_and_a_failed_launch_is_reported(recent_api, tmp_path):
    """A hostile API's totals change at every tick: the stretch keeps its key for the day, so it is
    launched once; that run failed (the API went down), and the next tick says so instead of
    launching it again."""
    from analytics_assets.builders.sensors import failed_launches
    from analytics_assets_tests.conftest import run_job

    instance = DagsterInstance.ephemeral()
    assert run_job(first=DAYS[0], last=DAYS[-1], instance=instance).success
    add_late_record(recent_api, DAYS[2], 6)
    first = evaluate(instance)
    add_late_record(recent_api, DAYS[2], 7)  # the figures change between ticks
    second = evaluate(instance)
    assert requested(first) == requested(second) == [(DAYS[2], DAYS[2])]
    assert first.run_requests[0].run_key == second.run_requests[0].run_key

    request = second.run_requests[0]
    recent_api.stop()
    from analytics_assets.builders.jobs import JOB_NAME

    failed = build_defs().resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance, partition_key=request.partition_key, raise_on_error=False,
        tags={**request.tags, "dagster/run_key": request.run_key})
    assert not failed.success
    [said] = failed_launches(instance, second)
    assert failed.run_id in said and f"{DAYS[2]}..{DAYS[2]}" in said and "not launched again before tomorrow" in said


def test_a_missing_warehouse_file_counts_as_empty_tables_and_is_not_created(recent_api, tmp_path):
    """Nothing loaded yet: every recent day is behind, the file is said missing, and the sensor does
    not create it (the run it launches does)."""
    database = tmp_path / "warehouse.duckdb"
    result = evaluate(DagsterInstance.ephemeral())
    assert requested(result) == [(DAYS[0], DAYS[-1])]
    assert not database.exists()


def test_a_warehouse_held_past_the_wait_is_busy_and_a_broken_file_is_not(recent_api, tmp_path, monkeypatch):
    """Busy names a lock held by someone else, and only that: a file DuckDB cannot read is said to be
    one that cannot be opened."""
    import threading

    import analytics_assets.builders.sensors as sensors
    from analytics_assets.warehouse.locks import exclusive
    from analytics_assets_tests.conftest import run_job

    instance = DagsterInstance.ephemeral()
    assert run_job(first=DAYS[0], last=DAYS[-1], instance=instance).success
    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setattr(sensors, "SENSOR_LOCK_WAIT", 0.5)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(database, 5, print):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        busy = evaluate(instance)
    finally:
        release.set()
        holder.join()
    assert busy.skip_reason.skip_message.startswith("The warehouse is busy") and str(database) in busy.skip_reason.skip_message
    assert not busy.run_requests

    database.unlink()
    database.write_bytes(b"not a DuckDB file" * 100)
    broken = evaluate(instance)
    assert broken.skip_reason.skip_message.startswith("The warehouse cannot be opened") and "busy" not in broken.skip_reason.skip_message
