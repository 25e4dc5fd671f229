"""Materializing through Dagster: partitions, ranges, metadata, failures, the summary model.

Tests taking the `warehouse` fixture run twice: on a DuckDB file and on a PostgreSQL database."""

import logging
from collections import defaultdict

from analytics_assets_tests.conftest import (
    assert_table_matches,
    day_bounds,
    query,
    run_figures_of,
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
    assert metadata["records_fetched"].value == len(expected)
    assert metadata["api_total"].value == len(expected)
    assert metadata["dagster/partition_row_count"].value == len(expected)
    assert metadata["dagster/table_name"].value == "analytics.resource_name"
    assert metadata["window_start"].value == day_bounds("2026-11-17")[0].timestamp()
    assert metadata["window_end"].value == day_bounds("2026-11-17")[1].timestamp()
    assert metadata["run"].value == result.run_id
    run = run_figures_of(result)
    assert run["run_pages_fetched"].value == dagster_api.request_count(path="/v1/resource", status=200)
    assert run["run_api_total"].value == len(expected)
    assert run["schema_drift"].value == "none"
    preview = metadata["preview"].value
    assert [c.name for c in preview.schema.columns][:2] == ["id", "name"] and len(preview.records) == 5


DAY_FIGURES = ["dagster/partition_row_count", "records_fetched", "api_total", "window_start", "window_end", "preview"]


def test_range_is_one_run_and_each_day_reports_its_own_figures(dagster_api, warehouse):
    """Each day's partition describes that day only, its own figures first; the run's figures are
    recorded once, on the run's observation of the table, and on no day."""
    first_day = dagster_api.records_in_window(*day_bounds("2026-11-15"))
    for record in first_day[:30]:
        dagster_api.delete_record(record["id"])  # days of different sizes
    result = run_job(first="2026-11-15", last="2026-11-17")
    assert result.success
    served = dagster_api.records_in_window(*day_bounds("2026-11-15", "2026-11-17"))
    assert_table_matches(warehouse, served)
    by_day = materializations(result)
    assert sorted(by_day) == ["2026-11-15", "2026-11-16", "2026-11-17"]
    for day, metadata in by_day.items():
        held = len(dagster_api.records_in_window(*day_bounds(day)))
        assert list(metadata)[:len(DAY_FIGURES)] == DAY_FIGURES, day
        assert metadata["records_fetched"].value == held, day
        assert metadata["api_total"].value == held, day
        assert metadata["dagster/partition_row_count"].value == held, day
        assert (metadata["window_start"].value, metadata["window_end"].value) == tuple(
            moment.timestamp() for moment in day_bounds(day))
        assert {str(record.data["updated_at"])[:10] for record in metadata["preview"].value.records} == {day}
        assert set(metadata) == {*DAY_FIGURES, "dagster/table_name", "dagster/column_schema", "run"}, day
    assert by_day["2026-11-15"]["records_fetched"].value != by_day["2026-11-16"]["records_fetched"].value
    run = run_figures_of(result)
    assert run["run_records_fetched"].value == run["run_api_total"].value == len(served)
    assert run["run_window_start"].value == day_bounds("2026-11-15")[0].timestamp()
    assert run["run_window_end"].value == day_bounds("2026-11-17")[1].timestamp()
    observations = result.asset_observations_for_node("analytics_tables")
    assert [o.partition for o in observations if tuple(o.asset_key.path) == TABLE_KEY] == [None], "once per run"
    endpoint = {o.partition: o.metadata for o in observations if tuple(o.asset_key.path) == ("analytics_api", "resource_name")}
    assert {day: (m["api_total"].value, m["table_rows"].value) for day, m in endpoint.items()} == {
        day: (m["api_total"].value,) * 2 for day, m in by_day.items()}, "the API's days are observed by the sync"
    queries = [q for (_, p, q, _) in dagster_api.requests if p == "/v1/resource"]
    pages = {(q["updated_since"], q["updated_until"]) for q in queries if q["limit"] == "100"}
    assert pages == {("2026-11-15T00:00:00Z", "2026-11-18T00:00:00Z")}, "the range is paged as one window"
    totals = sorted((q["updated_since"], q["updated_until"]) for q in queries if q["limit"] == "1")
    assert totals == [(f"2026-11-{d}T00:00:00Z", f"2026-11-{d + 1}T00:00:00Z") for d in (15, 16, 17)], \
        "each day's total is asked once"


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


def test_retries_are_said_in_the_runs_log(dagster_api, tmp_path):
    """Two 503s, then the page: the run succeeds, and its log (what the UI shows) holds a warning
    for each retry, naming the status, the host, the attempt and the wait."""
    from dagster import DagsterInstance

    dagster_api.faults.queue("status", status=503, times=2)
    with DagsterInstance.ephemeral() as instance:
        result = run_job("2026-11-16", instance=instance)
        assert result.success
        lines = [(entry.level, entry.user_message) for entry in instance.all_logs(result.run_id)
                 if "retrying in" in (entry.user_message or "")]
    host = dagster_api.base_url.split("://")[1]
    assert len(lines) == 2 and all(level == logging.WARNING and f" at {host}: HTTP 503 Service Unavailable; attempt "
                                   f"{n} of 4 failed, retrying in " in message
                                   for n, (level, message) in enumerate(lines, 1)), lines


def test_a_day_the_api_holds_nothing_for_says_so_in_the_log_and_on_the_day(dagster_api, warehouse):
    """Nothing there is not something wrong: a day before the API's data lands no rows, and the run's
    log and the day's metadata say that the API holds no records for it; a day with records does not."""
    from dagster import DagsterInstance

    quiet, busy = "2026-11-10", "2026-11-16"
    assert not dagster_api.records_in_window(*day_bounds(quiet)) and dagster_api.records_in_window(*day_bounds(busy))
    with DagsterInstance.ephemeral() as instance:
        result = run_job(first=quiet, last=busy, instance=instance)
        assert result.success
        said = [entry.user_message for entry in instance.all_logs(result.run_id) if "holds no" in entry.user_message]
    by_day = materializations(result)
    assert by_day[quiet]["dagster/partition_row_count"].value == 0
    assert "holds no `resource_name` records for 2026-11-10" in by_day[quiet]["api_holds"].value
    assert "api_holds" not in by_day[busy]
    assert said == [by_day[quiet]["api_holds"].value] + [
        by_day[day]["api_holds"].value for day in ("2026-11-11", "2026-11-12", "2026-11-13", "2026-11-14")]


def test_a_stopped_api_fails_the_run_naming_its_host_as_unreachable(dagster_api):
    """The run's failure says where and why in one description, and advises the address and the
    server, not more retries; its log said each retry before."""
    from dagster import DagsterInstance

    host = dagster_api.base_url.split("://")[1]
    dagster_api.stop()
    with DagsterInstance.ephemeral() as instance:
        result = run_job("2026-11-16", instance=instance)
        retries = [entry.user_message for entry in instance.all_logs(result.run_id)
                   if "retrying in" in (entry.user_message or "")]
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data
    description = failure.user_failure_data.description
    assert f"at {host}: ConnectionError ([Errno 111] Connection refused). The server at {host} was unreachable" \
        in description, description
    assert "ANALYTICS_MAX_RETRIES" not in description and '"))' not in description
    assert len(retries) == 3 and all(f"at {host}: ConnectionError" in line for line in retries), retries


def aggregated(records) -> dict:
    """The summary's rows, computed here from records: (day, category) -> (count, sum, avg, events)."""
    groups = defaultdict(list)
    for record in records:
        groups[(str(record["updated_at"])[:10], record["category"])].append(record)
    result = {}
    for key, members in groups.items():
        values = [float(r["metric_value"]) for r in members if r["metric_value"] is not None]
        result[key] = (len(members), sum(values) if values else None, sum(values) / len(values) if values else None,
                       sum(int(r["event_count"]) for r in members if r["event_count"] is not None))
    return result


def summary_rows(warehouse) -> dict:
    rows = query(warehouse, "SELECT day, category, record_count, metric_value_sum, metric_value_avg, event_count_sum "
                            "FROM analytics.resource_name_daily_summary")[1]
    return {(day.isoformat(), category): (count, total, average, events)
            for day, category, count, total, average, events in rows}


def assert_summary_equals(warehouse, records) -> None:
    actual, expected = summary_rows(warehouse), aggregated(records)
    assert sorted(actual, key=str) == sorted(expected, key=str)
    for key, (count, total, average, events) in expected.items():
        got = actual[key]
        assert (got[0], got[3]) == (count, events), key
        for want, have in ((total, got[1]), (average, got[2])):
            assert (want is None and have is None) or abs(want - have) < 1e-6, key


def test_summary_equals_the_servers_records_aggregated(dagster_api, warehouse):
    assert run_job(first="2026-11-15", last="2026-11-16").success
    assert_summary_equals(warehouse, dagster_api.records_in_window(*day_bounds("2026-11-15", "2026-11-16")))


def test_summary_stays_equal_to_the_table_after_records_move_between_days(dagster_api, warehouse):
    """Records updated upstream move from 2026-11-15 to 2026-11-17: syncing 2026-11-17 alone moves
    them in the table, and the summary follows for both days."""
    assert run_job(first="2026-11-15", last="2026-11-17").success
    moved = dagster_api.records_in_window(*day_bounds("2026-11-15"))[:20]
    for record in moved:
        dagster_api.update_record(record["id"], updated_at="2026-11-17T12:00:00Z")
    result = run_job("2026-11-17")
    assert result.success
    served = dagster_api.records_in_window(*day_bounds("2026-11-15", "2026-11-17"))
    assert_table_matches(warehouse, served)
    assert_summary_equals(warehouse, served)
    assert_summary_equals(warehouse, table_rows(warehouse))
    summary = next(m for m in result.asset_materializations_for_node("resource_name_daily_summary"))
    assert summary.metadata["records_summarized"].value == len(served)
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "record_count_matches_table"]
    assert check.passed and check.metadata["days_differing"].value == 0


def test_schema_drift_is_reported_in_metadata(dagster_api):
    victim = dagster_api.records_in_window(*day_bounds("2026-11-17"))[0]["id"]
    dagster_api.update_record(victim, campaign="spring")
    result = run_job("2026-11-17")
    metadata = materializations(result)["2026-11-17"]
    assert run_figures_of(result)["schema_drift"].value == "campaign"
    columns = {c.name: c for c in metadata["dagster/column_schema"].schema.columns}
    assert "campaign" in columns and columns["metric_value"].description
    assert "jobs" not in metadata


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
    assert sorted((p.name, mode(p)) for p in (tmp_path / "new").glob("warehouse.duckdb*")) == [
        ("warehouse.duckdb", 0o600), ("warehouse.duckdb.lock", 0o600)]
    assert mode(tmp_path / "new" / "dlt_pipelines" / result.run_id) == 0o700
