"""Real APIs differ from the demo's in small, common ways; each difference is a line of the API config
(ANALYTICS_API_CONFIG), and each shape either lands exactly the server's rows, through a Dagster
materialization, or fails naming the setting that fixes it, with nothing written."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import pytest

from analytics_assets.api.definition import BUILT_IN_CONFIG
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, query, run_job

DAY = "2026-11-17"


def api_config(**changes: Any) -> dict:
    """The built-in definition with `changes`: `auth` keys, `endpoint` keys (the window's merged into
    the built-in's, a paginator replacing it) or resource keys."""
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["auth"].update(changes.pop("auth", {}))
    resource = config["resources"][0]
    for key, value in changes.pop("endpoint", {}).items():
        resource["endpoint"][key] = {**resource["endpoint"][key], **value} if key == "incremental" else value
    resource.update(changes)
    return config


def without_columns(config: dict) -> dict:
    """No declared columns: dlt infers the table's schema from the records."""
    del config["resources"][0]["columns"]
    return config


@pytest.fixture
def shaped(make_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A demo API of a given shape, and the environment pointing the code location at it with an
    API config file."""

    def start(config: dict, **switches: Any) -> Any:
        from datetime import date

        api = make_api(records=500, days=5, end_date=date(2026, 11, 20), **switches)
        path = tmp_path / "api.json"
        path.write_text(json.dumps(config))
        for name, value in {"ANALYTICS_API_CONFIG": str(path), "ANALYTICS_API_BASE_URL": api.base_url,
                            "ANALYTICS_CLIENT_ID": api.config.client_id,
                            "ANALYTICS_CLIENT_SECRET": api.config.client_secret,
                            "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
                            "ANALYTICS_BACKOFF_FACTOR": "0.05", "ANALYTICS_HTTP_TIMEOUT": "2"}.items():
            monkeypatch.setenv(name, value)
        return api

    return start


LANDING = {
    "token_client_secret_basic": (api_config(auth={"token_endpoint_auth_method": "client_secret_basic"}),
                                  {"token_auth_method": "client_secret_basic"}),
    "token_scope": (api_config(auth={"scope": ["analytics.read", "events.read"]}),
                    {"required_scope": "analytics.read events.read"}),
    "token_audience": (api_config(auth={"access_token_request_data": {"audience": "https://api.example.com"}}),
                       {"required_token_fields": {"audience": "https://api.example.com"}}),
    "expires_in_as_text": (api_config(), {"expires_in_format": "string", "token_type": "Bearer"}),
    "expires_in_missing": (api_config(), {"expires_in_format": "missing", "token_type": "BEARER"}),
    "window_renamed_epoch_seconds": (
        api_config(endpoint={"incremental": {"start_param": "start_time", "end_param": "end_time",
                                             "value_format": "epoch_seconds"}}),
        {"window_params": ("start_time", "end_time"), "window_format": "epoch_seconds"}),
    "window_epoch_millis": (api_config(endpoint={"incremental": {"value_format": "epoch_millis"}}),
                            {"window_format": "epoch_millis"}),
    "window_as_dates": (api_config(endpoint={"incremental": {"value_format": "date"}}), {"window_format": "date"}),
    "timestamps_with_offsets": (api_config(), {"timestamp_format": "offset"}),
    "timestamps_without_zone": (api_config(), {"timestamp_format": "naive"}),
    "timestamps_as_epoch_seconds": (api_config(), {"timestamp_format": "epoch_seconds"}),
    # Epoch milliseconds, told from seconds by their size (as seconds they would lie 50,000 years away).
    "timestamps_as_epoch_millis": (api_config(), {"timestamp_format": "epoch_millis"}),
    "numbers_as_text": (api_config(), {"numbers_as_strings": True}),
    "cursor_paging": (api_config(endpoint={"paginator": {"type": "cursor", "cursor_path": "next_cursor",
                                                         "cursor_param": "cursor"}}), {"pagination": "cursor"}),
    "json_link_paging": (api_config(endpoint={"paginator": {"type": "json_link", "next_url_path": "next"}}),
                         {"pagination": "json_link"}),
    "header_link_paging": (api_config(endpoint={"paginator": {"type": "header_link"}}), {"pagination": "header_link"}),
    "page_number_paging": (api_config(endpoint={"paginator": {"type": "page_number", "base_page": 1,
                                                              "total_path": "total_pages"}}),
                           {"pagination": "page_number", "page_cap": 30}),
    "empty_pages_as_204": (api_config(endpoint={"paginator": {"type": "cursor", "cursor_path": "next_cursor"}}),
                           {"pagination": "cursor", "empty_page": "204"}),
}


@pytest.mark.parametrize("shape", LANDING)
def test_shape_lands_exactly_the_servers_rows(shaped, shape: str) -> None:
    config, switches = LANDING[shape]
    api = shaped(config, **switches)
    result = run_job(DAY)
    assert result.success, _failure(result)
    assert_table_matches(Path(_db()), api.records_in_window(*day_bounds(DAY)))


@pytest.mark.parametrize("empty_page", ["204", "empty_200"])
def test_a_quiet_day_answered_with_an_empty_body_lands_no_rows(shaped, empty_page: str) -> None:
    shaped(api_config(), empty_page=empty_page)
    result = run_job("2026-11-10")  # before the demo's data
    assert result.success, _failure(result)
    assert query(Path(_db()), "SELECT count(*) FROM analytics.resource_name")[1] == [(0,)]


def test_a_record_at_the_windows_end_is_left_to_the_day_it_belongs_to(shaped) -> None:
    """An API whose end is inclusive sends the record stamped exactly at the window's end: it belongs
    to the next day's partition, so this run leaves it out (and says so), and the next day lands it."""
    from dagster import AssetKey, DagsterInstance

    api = shaped(api_config(), window_end_inclusive=True)
    start, end = day_bounds(DAY)
    boundary = api.records_in_window(start, end)[0]
    api.update_record(boundary["id"], updated_at=end)  # exactly at the window's end
    instance = DagsterInstance.ephemeral()
    assert run_job(DAY, instance=instance).success
    assert_table_matches(Path(_db()), api.records_in_window(start, end))
    from analytics_assets.builders.assets import run_figures

    latest = instance.get_latest_materialization_event(AssetKey(["analytics", "resource_name"]))
    run = run_figures(instance, AssetKey(["analytics", "resource_name"]), latest.run_id)
    assert run["run_records_past_window_end"].value == 1
    next_day = (start + timedelta(days=1)).date().isoformat()
    assert run_job(next_day, instance=instance).success
    assert_table_matches(Path(_db()), api.records_in_window(start, end + timedelta(days=1)))


FAILING = {
    # The API filters by names it was not sent: every record of every day comes back.
    "window_ignored": (api_config(), {"ignore_window": True},
                       ["outside the window", "updated_since=2026-11-17T00:00:00Z", "incremental", "start_param"]),
    # An API that honours the window's end but misreads its start: every record before the end.
    "window_start_ignored": (api_config(), {"ignore_window_start": True},
                             ["outside the window", "updated_since=2026-11-17T00:00:00Z", "start_param"]),
    # The same with no declared columns (dlt infers the table): the records are checked one by one.
    "window_ignored_columns_inferred": (without_columns(api_config()), {"ignore_window": True},
                                       ["outside the window", "updated_since=2026-11-17T00:00:00Z", "start_param"]),
    # A page-number API that caps pages but numbers them as if uncapped skips records between pages.
    "page_numbers_skipping": (api_config(endpoint={"paginator": {"type": "page_number", "base_page": 1,
                                                                 "total_path": "total_pages"},
                                                   "params": {"page_size": 100}}),
                              {"pagination": "page_number", "page_cap": 30, "page_cap_skips": True},
                              ["30 records of resource_name were served for a total of 100", "skipped", "params"]),
    "token_scope_refused": (api_config(auth={"scope": "wrong"}), {"required_scope": "analytics.read"},
                            ["rejected the client credentials", "invalid_scope", "scope must include analytics.read"]),
    "token_basic_required": (api_config(), {"token_auth_method": "client_secret_basic"},
                             ["rejected the client credentials", "client authentication must use HTTP Basic",
                              "token_endpoint_auth_method"]),
}


@pytest.mark.parametrize("shape", FAILING)
def test_shape_fails_naming_the_fix_and_writes_nothing(shaped, shape: str) -> None:
    config, switches, words = FAILING[shape]
    api = shaped(config, **switches)
    result = run_job(DAY)
    assert not result.success
    message = _failure(result)
    for word in words:
        assert word in message, message
    assert api.config.client_secret not in message
    tables = query(Path(_db()), "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'")[1] \
        if Path(_db()).exists() else []
    assert ("resource_name",) not in tables


def _db() -> str:
    import os

    return os.environ["ANALYTICS_DUCKDB_PATH"]


def _failure(result: Any) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            return (data.user_failure_data.description if data.user_failure_data else "") + data.error.message
    return ""


def test_each_days_figures_count_records_by_their_utc_day_without_declared_columns(shaped):
    """Timestamps sent with UTC offsets (+05:30, -08:00...) put many records on another local date
    than their UTC day: each partition's `records_fetched` counts the records of its UTC day."""
    from dagster import AssetKey, DagsterInstance

    api = shaped(without_columns(api_config()), timestamp_format="offset")
    instance = DagsterInstance.ephemeral()
    first, last = "2026-11-16", "2026-11-18"
    assert run_job(first=first, last=last, instance=instance).success
    fetched = {}
    for record in instance.fetch_materializations(AssetKey(["analytics", "resource_name"]), limit=10).records:
        materialization = record.asset_materialization
        if "records_fetched" in materialization.metadata:
            fetched[materialization.partition] = materialization.metadata["records_fetched"].value
    expected = {day: len(api.records_in_window(*day_bounds(day))) for day in ("2026-11-16", "2026-11-17", "2026-11-18")}
    assert fetched == expected


def test_a_jsonpath_data_selector_takes_the_records_it_finds(shaped) -> None:
    """A JSONPath with a wildcard (`$.data[*]`): each match is a record, as in dlt."""
    api = shaped(api_config(endpoint={"data_selector": "$.data[*]"}))
    result = run_job(DAY)
    assert result.success, _failure(result)
    assert_table_matches(Path(_db()), api.records_in_window(*day_bounds(DAY)))


@pytest.mark.parametrize("declared", ["bigint", None])
def test_an_epoch_milliseconds_cursor_lands_as_sent_and_counts_by_its_instant(shaped, declared) -> None:
    """`updated_at` in epoch milliseconds, declared `bigint` or not declared: the column keeps the
    number the API sends, the window and each day's figures read it as an instant (`_cursor_at`)."""
    config = api_config()
    columns = config["resources"][0]["columns"]
    if declared:
        for name in ("created_at", "updated_at"):
            columns[name]["data_type"] = declared
    else:
        config = without_columns(config)
    api = shaped(config, timestamp_format="epoch_millis")
    result = run_job(DAY)
    assert result.success, _failure(result)
    served = {r["id"]: r["updated_at"] for r in api.records_in_window(*day_bounds(DAY))}
    names, rows = query(Path(_db()), "SELECT id, updated_at, _cursor_at FROM analytics.resource_name ORDER BY id")
    assert [row[0] for row in rows] == sorted(served)
    for record_id, millis, moment in rows:
        assert isinstance(millis, int)
        expected = datetime.fromisoformat(served[record_id].replace("Z", "+00:00"))
        assert millis == int(expected.timestamp() * 1000) and moment == expected
