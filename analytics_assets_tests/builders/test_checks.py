"""The asset checks pass on a correct table and fail, naming what is wrong, on a broken one:
on a DuckDB file and on PostgreSQL (the `warehouse` fixture)."""

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, Definitions, define_asset_job

from analytics_assets.definitions import build_defs
from analytics_assets_tests.conftest import query, run_job

TABLE = AssetKey(["analytics", "resource_name"])


def checks_of(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def run_checks_only(instance):
    """What a user does from the UI's checks tab: run the checks against the table as it is."""
    job = define_asset_job("checks_only", selection=AssetSelection.checks_for_assets(TABLE))
    merged = Definitions.merge(build_defs(), Definitions(jobs=[job]))
    return merged.resolve_job_def("checks_only").execute_in_process(instance=instance, raise_on_error=False)


def test_checks_pass_after_a_materialization(dagster_api, warehouse):
    evaluations = checks_of(run_job("2026-11-18"))
    assert {name: e.passed for name, e in evaluations.items()} == {
        "id_unique": True, "required_columns_not_null": True, "window_complete": True,
        "record_count_matches_table": True,
    }, "freshness is judged by its sensor from the data, not as a step of the sync"
    complete = evaluations["window_complete"].metadata
    assert complete["api_total"].value == complete["fetched_distinct_ids"].value == complete["rows_of_this_load"].value > 0


@pytest.fixture
def materialized(dagster_api, warehouse) -> DagsterInstance:
    """The instance of a successful run of 2026-11-18, whose table the tests below then damage."""
    instance = DagsterInstance.ephemeral()
    assert run_job("2026-11-18", instance=instance).success
    return instance


def test_duplicate_id_fails_id_unique(materialized, warehouse):
    victim = query(warehouse, "SELECT min(id) FROM analytics.resource_name")[1][0][0]
    query(warehouse, "INSERT INTO analytics.resource_name SELECT * FROM analytics.resource_name WHERE id = %s", victim)
    evaluation = checks_of(run_checks_only(materialized))["id_unique"]
    assert not evaluation.passed
    assert evaluation.metadata["duplicate_ids"].value == 1
    assert evaluation.metadata["first_duplicate_ids"].value == str(victim)
    assert evaluation.description == f"Failed: 1 key(s) appear on more than one row, e.g. {victim}."


def test_null_in_required_column_fails(materialized, warehouse):
    query(warehouse, "ALTER TABLE analytics.resource_name ALTER COLUMN name DROP NOT NULL")
    query(warehouse, "UPDATE analytics.resource_name SET name = NULL WHERE id = (SELECT min(id) FROM analytics.resource_name)")
    evaluation = checks_of(run_checks_only(materialized))["required_columns_not_null"]
    assert not evaluation.passed
    assert evaluation.metadata["nulls_in_name"].value == 1 and evaluation.metadata["null_rows"].value == 1
    assert evaluation.description == "Failed: nulls where the schema forbids them: 1 in `name`."


def test_row_lost_after_the_load_fails_window_complete(materialized, warehouse):
    lost = query(warehouse, "SELECT max(id) FROM analytics.resource_name")[1][0][0]
    query(warehouse, "DELETE FROM analytics.resource_name WHERE id = %s", lost)
    evaluation = checks_of(run_checks_only(materialized))["window_complete"]
    assert not evaluation.passed
    assert evaluation.metadata["ids_missing"].value == 1
    assert evaluation.description.startswith("Failed: 1 of the ") and "are not in the table" in evaluation.description


def test_window_that_never_settles_fails_the_run_before_anything_lands(dagster_api, warehouse):
    """A broken server that inserts records ahead of the pager on every page: the window cannot be
    proven complete, so the run fails and the table is never created."""
    from analytics_assets_tests.conftest import day_bounds

    template = dagster_api.records_in_window(*day_bounds("2026-11-18"))[0]
    new_ids = iter(range(-1, -100, -1))
    for page in range(1, 20):
        dagster_api.faults.on_page(page, lambda api: api.insert_record(dict(template, id=next(new_ids))))
    result = run_job("2026-11-18")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "kept changing while it was paged" in str(failure.step_failure_data.user_failure_data) + failure.step_failure_data.error.message
    tables = query(warehouse, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'")[1]
    assert ("resource_name",) not in tables


def latest_expected_day() -> str:
    """The day the freshness check expects by now: the one that ended before the latest noon UTC."""
    from datetime import datetime, time, timedelta, timezone

    now = datetime.now(timezone.utc)
    deadline = datetime.combine(now.date(), time(12), timezone.utc)
    if now < deadline:
        deadline -= timedelta(days=1)
    return (deadline.date() - timedelta(days=1)).isoformat()


def test_freshness_check_fails_for_a_missing_day_and_passes_after_the_sync(dagster_api, warehouse):
    """The latest day not synced: red. Synced (an empty day here: the demo's data ends earlier): green."""
    instance = DagsterInstance.ephemeral()
    assert run_job("2026-11-18", instance=instance).success
    stale = checks_of(run_checks_only(instance))["freshness_check"]
    day = latest_expected_day()
    assert not stale.passed and f"expected partition {day} to have arrived" in stale.description
    assert run_job(day, instance=instance).success
    fresh = checks_of(run_checks_only(instance))["freshness_check"]  # as the freshness sensor runs it
    assert fresh.passed, day
    assert "12:00 UTC" in fresh.description, "the rule is in the result"


def run_summary_check(instance):
    job = define_asset_job("summary_checks", selection=AssetSelection.checks_for_assets(
        AssetKey(["analytics", "resource_name_daily_summary"])))
    merged = Definitions.merge(build_defs(), Definitions(jobs=[job]))
    result = merged.resolve_job_def("summary_checks").execute_in_process(instance=instance, raise_on_error=False)
    return checks_of(result)["record_count_matches_table"]


SUMMARY = "analytics.resource_name_daily_summary"


@pytest.mark.parametrize("damage", [
    # a day's count off by one
    f"UPDATE {SUMMARY} SET record_count = record_count + 1 WHERE day = '2026-11-18' AND category = "
    f"(SELECT min(category) FROM {SUMMARY})",
    # a day missing from the model: the table holds rows of it
    f"DELETE FROM {SUMMARY} WHERE day = '2026-11-18'",
    # a day in the model that the table does not hold
    f"INSERT INTO {SUMMARY} (day, category, record_count) VALUES ('2026-11-18', 'only-in-the-model', 3)",
], ids=["count_differs", "day_missing_from_the_model", "day_missing_from_the_table"])
def test_summary_check_fails_when_the_model_differs_from_the_table(materialized, warehouse, damage):
    if "only-in-the-model" in damage:  # the table loses the day instead
        query(warehouse, "DELETE FROM analytics.resource_name")
        query(warehouse, f"DELETE FROM {SUMMARY}")
    query(warehouse, damage)
    evaluation = run_summary_check(materialized)
    assert not evaluation.passed and evaluation.metadata["days_differing"].value == 1
    assert evaluation.description.startswith("Failed: on 1 day(s)") and "2026-11-18" in evaluation.description
    assert "2026-11-18" in evaluation.metadata["differences"].value


def test_a_duplicate_served_in_place_of_a_record_fails_window_complete(make_api, tmp_path, monkeypatch):
    """The API serves as many records as its total says, but one of them twice and another not at
    all: every row fetched landed, and the check still names the one missing."""
    from datetime import date

    from analytics_assets_tests.conftest import set_api_env

    api = make_api(records=60, days=1, end_date=date(2026, 11, 20))
    set_api_env(monkeypatch, api, tmp_path / "warehouse.duckdb")
    api.faults.queue("duplicate_record")
    evaluation = checks_of(run_job("2026-11-19"))["window_complete"]
    metadata = evaluation.metadata
    assert not evaluation.passed
    assert metadata["api_total"].value == 60 and metadata["fetched_distinct_ids"].value == 59
    assert metadata["rows_of_this_load"].value == 59 and metadata["ids_missing"].value == 1


def test_a_failed_sync_leaves_the_tables_health_as_the_data_has_it(dagster_api, warehouse):
    """A healthy table, then a sync that fails (the API is down) and changes nothing. Freshness is
    no step of the sync; the checks the failed run planned and never ran (Dagster records them as
    "execution failed") are judged again by `analytics_freshness` on the table as it is, and pass;
    the sensor does not judge them again once its own run has."""
    from dagster import AssetCheckKey, DagsterEventType, build_sensor_context
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
    from dagster._core.storage.tags import SENSOR_NAME_TAG

    from analytics_assets.builders.sensors import RECHECK_TAG

    instance = DagsterInstance.ephemeral()
    assert run_job("2026-11-18", instance=instance).success
    before = query(warehouse, "SELECT count(*) FROM analytics.resource_name")[1]
    dagster_api.stop()
    failed = run_job("2026-11-18", instance=instance)
    assert not failed.success
    assert query(warehouse, "SELECT count(*) FROM analytics.resource_name")[1] == before
    planned = {entry.dagster_event.event_specific_data.check_name for entry in instance.all_logs(
        failed.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)}
    assert {"id_unique", "window_complete", "required_columns_not_null"} <= planned
    assert "freshness_check" not in planned
    assert not failed.get_asset_check_evaluations(), "the failed sync's checks were skipped, none judged"

    left = {AssetCheckKey(TABLE, name) for name in ("id_unique", "window_complete", "required_columns_not_null")} | {
        AssetCheckKey(AssetKey(["analytics", "resource_name_daily_summary"]), "record_count_matches_table")}
    repository = build_defs().get_repository_def()
    sensor = repository.get_sensor_def("analytics_freshness")
    (request,) = sensor.evaluate_tick(build_sensor_context(instance=instance, repository_def=repository, sensor_name="analytics_freshness")).run_requests
    assert left <= set(request.asset_check_keys)
    assert request.tags[RECHECK_TAG] == failed.run_id

    job = define_asset_job("sensor_run", selection=AssetSelection.checks(*request.asset_check_keys))
    merged = Definitions.merge(build_defs(), Definitions(jobs=[job]))
    merged.resolve_job_def("sensor_run").execute_in_process(
        instance=instance, tags={**request.tags, SENSOR_NAME_TAG: "analytics_freshness"}, raise_on_error=False)
    latest = instance.event_log_storage.get_asset_check_summary_records(list(left))
    for key, summary in latest.items():
        record = summary.last_check_execution_record
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED, key
        assert record.evaluation.passed, key

    again = sensor.evaluate_tick(build_sensor_context(instance=instance, repository_def=repository, sensor_name="analytics_freshness")).run_requests
    assert not left & {key for request in again for key in request.asset_check_keys}, "judged once"


def test_a_failed_first_sync_leaves_nothing_to_judge_again(dagster_api):
    """A table never materialized has nothing a check could judge: a failed first sync's checks
    are not run again by the sensor (they would fail on a table that does not exist)."""
    from dagster import build_sensor_context

    instance = DagsterInstance.ephemeral()
    dagster_api.stop()
    assert not run_job("2026-11-18", instance=instance).success
    repository = build_defs().get_repository_def()
    sensor = repository.get_sensor_def("analytics_freshness")
    requests = sensor.evaluate_tick(build_sensor_context(
        instance=instance, repository_def=repository, sensor_name="analytics_freshness")).run_requests
    assert {key.name for request in requests for key in request.asset_check_keys} <= {"freshness_check"}


def test_a_failed_materialization_with_every_check_leaves_freshness_to_its_sensor(dagster_api):
    """The UI's Materialize runs every check of the asset, freshness included: when that run fails,
    the sensor judges freshness again from the data (Dagster's own sensor would wait for the next
    deadline or the next materialization, showing it "execution failed" till then)."""
    from dagster import AssetCheckKey, build_sensor_context

    from analytics_assets.builders.sensors import RECHECK_TAG

    instance = DagsterInstance.ephemeral()
    assert run_job("2026-11-18", instance=instance).success
    run_checks_only(instance)  # freshness judged once, as its sensor does
    dagster_api.stop()
    ui = define_asset_job("materialize_from_the_ui", selection=AssetSelection.assets(TABLE))
    merged = Definitions.merge(build_defs(), Definitions(jobs=[ui]))
    failed = merged.resolve_job_def("materialize_from_the_ui").execute_in_process(
        instance=instance, partition_key="2026-11-18", raise_on_error=False)
    assert not failed.success
    repository = build_defs().get_repository_def()
    sensor = repository.get_sensor_def("analytics_freshness")
    (request,) = sensor.evaluate_tick(build_sensor_context(
        instance=instance, repository_def=repository, sensor_name="analytics_freshness")).run_requests
    assert AssetCheckKey(TABLE, "freshness_check") in request.asset_check_keys
    assert request.tags[RECHECK_TAG] == failed.run_id
