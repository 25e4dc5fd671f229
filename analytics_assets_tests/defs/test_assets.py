"""Materializing through Dagster: partitions, ranges, metadata, failures, the summary model.

Tests taking the `warehouse` fixture run twice: on a DuckDB file and on a PostgreSQL database."""

from collections import defaultdict

from analytics_assets_tests.conftest import (
    assert_table_matches,
    day_bounds,
    query,
    run_job,
    table_checksum,
    table_rows,
)

TABLE_KEY = ("analytics", "resource_name")


def materializations(result, key=TABLE_KEY):
    return {
        m.partition: m.metadata
        for m in result.asset_materializations_for_node("analytics_tables")
        if tuple(m.asset_key.path) == key
    }


def test_one_partition_lands_exactly_that_day(dagster_api, warehouse):
    result = run_job("2026-11-17")
    assert result.success
    expected = dagster_api.records_in_window(*day_bounds("2026-11-17"))
    assert_table_matches(warehouse, expected)
    metadata = materializations(result)["2026-11-17"]
    assert metadata["rows_loaded"].value == len(expected)
    assert metadata["dagster/partition_row_count"].value == len(expected)
    assert metadata["dagster/table_name"].value == "analytics.resource_name"
    assert metadata["window_start"].value.startswith("2026-11-17T00:00:00")
    assert metadata["pages_fetched"].value == dagster_api.request_count(path="/v1/resource", status=200)
    assert metadata["api_total_for_window"].value == len(expected)
    assert metadata["schema_drift"].value == "none"
    preview = metadata["preview"].value
    assert [c.name for c in preview.schema.columns][:2] == ["id", "name"] and len(preview.records) == 5


def test_range_is_one_run_and_each_day_reports_its_own_rows(dagster_api, warehouse):
    first_day = dagster_api.records_in_window(*day_bounds("2026-11-15"))
    for record in first_day[:30]:
        dagster_api.delete_record(record["id"])  # days of different sizes
    result = run_job(first="2026-11-15", last="2026-11-17")
    assert result.success
    assert_table_matches(warehouse, dagster_api.records_in_window(*day_bounds("2026-11-15", "2026-11-17")))
    by_day = materializations(result)
    assert sorted(by_day) == ["2026-11-15", "2026-11-16", "2026-11-17"]
    for day, metadata in by_day.items():
        assert metadata["rows_loaded"].value == len(dagster_api.records_in_window(*day_bounds(day)))
    assert by_day["2026-11-15"]["rows_loaded"].value != by_day["2026-11-16"]["rows_loaded"].value
    queries = [q for (_, p, q, _) in dagster_api.requests if p == "/v1/resource"]
    assert {(q["updated_since"], q["updated_until"]) for q in queries} == {("2026-11-15T00:00:00Z", "2026-11-18T00:00:00Z")}


def test_rematerializing_a_partition_is_idempotent(dagster_api, warehouse):
    assert run_job("2026-11-16").success
    first = [dict(r) for r in table_rows(warehouse)]
    assert run_job("2026-11-16").success
    assert table_rows(warehouse) == first


def test_rerun_after_upstream_updates_converges_to_the_server(dagster_api, warehouse):
    assert run_job("2026-11-16").success
    day = dagster_api.records_in_window(*day_bounds("2026-11-16"))
    dagster_api.update_record(day[0]["id"], name="renamed upstream", metric_value=None)
    dagster_api.insert_record(dict(day[1], id=10_000_001, name="new upstream"))
    assert run_job("2026-11-16").success
    expected = dagster_api.records_in_window(*day_bounds("2026-11-16"))
    assert {r["name"] for r in expected} >= {"renamed upstream", "new upstream"}
    assert_table_matches(warehouse, expected)


def test_failed_run_names_the_cause_and_keeps_the_table(dagster_api, warehouse):
    assert run_job("2026-11-16").success
    before = table_checksum(warehouse)
    dagster_api.update_record(dagster_api.records_in_window(*day_bounds("2026-11-16"))[0]["id"], name="changed")
    dagster_api.faults.queue("status", status=503, times=4)
    result = run_job("2026-11-16")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "still failed after 4 attempts" in failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert table_checksum(warehouse) == before


def test_summary_equals_the_servers_records_aggregated(dagster_api, warehouse):
    assert run_job(first="2026-11-15", last="2026-11-16").success
    expected = defaultdict(lambda: [0, 0.0, [], 0])
    for record in dagster_api.records_in_window(*day_bounds("2026-11-15", "2026-11-16")):
        row = expected[(record["updated_at"][:10], record["category"])]
        row[0] += 1
        if record["metric_value"] is not None:
            row[1] += record["metric_value"]
            row[2].append(record["metric_value"])
        row[3] += record["event_count"] or 0
    actual = query(
        warehouse,
        "SELECT day, category, record_count, metric_value_sum, metric_value_avg, event_count_sum "
        "FROM analytics.resource_name_daily_summary",
    )[1]
    assert len(actual) == len(expected)
    for day, category, count, total, average, events in actual:
        want = expected[(day.isoformat(), category)]
        assert count == want[0] and events == want[3]
        assert abs(total - want[1]) < 1e-6
        assert abs(average - sum(want[2]) / len(want[2])) < 1e-6


def test_schema_drift_is_reported_in_metadata(dagster_api):
    victim = dagster_api.records_in_window(*day_bounds("2026-11-17"))[0]["id"]
    dagster_api.update_record(victim, campaign="spring")
    metadata = materializations(run_job("2026-11-17"))["2026-11-17"]
    assert metadata["schema_drift"].value == "campaign"
    columns = {c.name: c for c in metadata["dagster/column_schema"].schema.columns}
    assert "campaign" in columns and columns["metric_value"].description
    assert "jobs" not in metadata


def test_summary_reports_rows_per_day_in_a_range_run(dagster_api):
    result = run_job(first="2026-11-15", last="2026-11-16")
    summaries = {
        event.materialization.partition: event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if tuple(event.materialization.asset_key.path) == ("analytics", "resource_name_daily_summary")
    }
    assert sorted(summaries) == ["2026-11-15", "2026-11-16"]
    for day, metadata in summaries.items():
        categories = {r["category"] for r in dagster_api.records_in_window(*day_bounds(day))}
        assert metadata["dagster/partition_row_count"].value == len(categories)


def test_a_run_removes_the_working_folders_of_finished_runs(dagster_api, tmp_path):
    """dlt leaves each run's folder behind (state, trace, loaded files); a daily schedule must not
    accumulate them. Another instance's folder is kept while it may still be running."""
    from dagster import DagsterInstance

    folders = tmp_path / "dlt_pipelines"
    foreign = folders / "run-of-another-instance"
    foreign.mkdir(parents=True)
    instance = DagsterInstance.ephemeral()
    first = run_job("2026-11-16", instance=instance)
    assert first.success and (folders / first.run_id).is_dir()
    second = run_job("2026-11-17", instance=instance)
    assert second.success
    assert sorted(p.name for p in folders.iterdir()) == sorted([second.run_id, foreign.name])


def test_the_files_a_run_creates_are_readable_by_their_owner_only(dagster_api, tmp_path, monkeypatch):
    """The DuckDB file holds the API's data and dlt's folders its state and loaded files: 0600 files,
    0700 folders, whatever the umask."""
    import os
    import stat

    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(tmp_path / "new" / "warehouse.duckdb"))
    previous = os.umask(0o022)
    try:
        result = run_job("2026-11-16")
    finally:
        os.umask(previous)
    assert result.success

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(tmp_path / "new") == 0o700
    assert [(p.name, mode(p)) for p in (tmp_path / "new").glob("warehouse.duckdb*")] == [("warehouse.duckdb", 0o600)]
    assert mode(tmp_path / "new" / "dlt_pipelines" / result.run_id) == 0o700
