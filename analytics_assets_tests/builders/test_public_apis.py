"""APIs shaped like well-known public APIs (the stand-ins, built from their public documentation),
each configured by its rest_api config file alone, as a user would: a Dagster run of a day lands
exactly the rows the API holds for it, row by row, as plain dlt names and types them; a quiet day
lands none."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from analytics_assets.api.names import CURSOR_AT, table
from analytics_assets.builders.assets import run_figures
from analytics_assets_tests.conftest import FAST_RETRY, day_bounds, run_job
from analytics_assets_tests.standins.apis import ALL
from analytics_assets_tests.standins.compare import assert_rows_equal, table_rows
from analytics_assets_tests.standins.server import StandIn

BUSY, QUIET = "2026-11-17", "2026-11-18"


def configured(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment a user sets for the stand-in: its config file and credentials, a DuckDB file."""
    path = tmp_path / "api.json"
    path.write_text(json.dumps(standin.config()))
    db = tmp_path / "warehouse.duckdb"
    for name, value in {"ANALYTICS_API_CONFIG": str(path), "ANALYTICS_CLIENT_ID": standin.client_id,
                        "ANALYTICS_CLIENT_SECRET": standin.client_secret, "ANALYTICS_DUCKDB_PATH": str(db),
                        "ANALYTICS_PARTITIONS_START": "2026-11-01",
                        **{f"ANALYTICS_{k.upper()}": str(v) for k, v in FAST_RETRY.items()}}.items():
        monkeypatch.setenv(name, value)
    for name in ("ANALYTICS_API_BASE_URL", "ANALYTICS_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    return db


def loaded(db: Path, resource: str) -> list[dict[str, Any]]:
    """The table's rows without this project's bookkeeping column (dlt's are left out already)."""
    return [{k: v for k, v in row.items() if k != CURSOR_AT} for row in table_rows(db, table(resource), "analytics")]


def failure(result: Any) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            return (data.user_failure_data.description if data.user_failure_data else "") + data.error.message
    return ""


@pytest.mark.parametrize("cls", ALL, ids=[cls.name for cls in ALL])
def test_a_public_api_lands_exactly_the_days_rows(cls: type[StandIn], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with cls() as standin:
        db = configured(standin, tmp_path, monkeypatch)
        result = run_job(BUSY)
        assert result.success, failure(result)
        for resource in standin.resources:
            rows = loaded(db, resource)
            assert len(rows) >= 50, f"{resource}: the busy day should hold records"
            assert_rows_equal(rows, standin.expected_rows(resource, *day_bounds(BUSY)), standin.row_key(resource))
        result = run_job(QUIET)
        assert result.success, failure(result)
        for resource in standin.resources:
            assert_rows_equal(loaded(db, resource), standin.expected_rows(resource, *day_bounds(BUSY, QUIET)),
                              standin.row_key(resource))


def checksum(db: Path, resource: str) -> str:
    from analytics_assets_tests.conftest import query

    rows = query(db, f'SELECT * FROM analytics."{table(resource)}" ORDER BY ALL')[1]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def rewritten(standin: StandIn, change: Any) -> None:
    """The stand-in's config file, changed by `change(config, resource)` as a user's mistake would."""
    path = Path(__import__("os").environ["ANALYTICS_API_CONFIG"])
    config = standin.config()
    change(config, config["resources"][-1])
    path.write_text(json.dumps(config))


# Mistakes in a config that only the API's answers reveal: each fails the run naming the key to fix,
# after every page was fetched, and the table keeps what it held (a record was changed upstream, so
# a commit would show).
RUN_TIME_MISTAKES = {
    "cursor_path_not_sent": (lambda c, r: r["endpoint"]["incremental"].update(cursor_path="updatedAtt"),
                             ["'updatedAtt' is missing", "incremental.cursor_path"]),
    "data_selector_elsewhere": (lambda c, r: r["endpoint"].update(data_selector="contacts"),
                                ["no records at `contacts`", "list of records at `results`", "data_selector"]),
    "primary_key_not_sent": (lambda c, r: r.update(primary_key=["id", "contactId"]),
                             ["'contactId' is missing", "primary_key"]),
}


@pytest.mark.parametrize("mistake", RUN_TIME_MISTAKES)
def test_a_mistake_in_the_config_fails_the_run_and_leaves_the_table_as_it_was(mistake: str, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics_assets_tests.standins.hubspot import HubSpotContacts

    change, words = RUN_TIME_MISTAKES[mistake]
    with HubSpotContacts() as standin:
        db = configured(standin, tmp_path, monkeypatch)
        assert run_job(BUSY).success
        before = checksum(db, "contacts")
        key = standin.expected("contacts", *day_bounds(BUSY))[0]["id"]
        standin.update("contacts", key, {"properties.firstname": "changed-upstream"})
        rewritten(standin, change)
        result = run_job(BUSY)
        assert not result.success
        message = failure(result)
        for word in words:
            assert word in message, message
        assert standin.client_secret not in message
        assert checksum(db, "contacts") == before


def test_a_success_status_carrying_the_apis_error_fails_showing_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack answers 200 with `{"ok": false, "error": "missing_scope"}`: the API's own words, not a
    guess about the base URL."""
    from analytics_assets_tests.standins.slack import SlackMessages

    with SlackMessages(errors_as_200=True) as standin:
        db = configured(standin, tmp_path, monkeypatch)
        result = run_job(BUSY)
        message = failure(result)
        assert not result.success and "ok: false" in message and "error: missing_scope" in message, message
        assert "ANALYTICS_API_BASE_URL" not in message
        assert loaded(db, "messages") == []


def test_a_start_only_api_keeps_the_days_records_and_leaves_the_later_ones(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """GitHub's `since` has no end: the answer runs to today. The run keeps the day's records and
    counts the later ones it left to their own days."""
    from dagster import AssetKey, DagsterInstance

    from analytics_assets_tests.standins.github import GitHubIssues

    with GitHubIssues() as standin:
        db = configured(standin, tmp_path, monkeypatch)
        instance = DagsterInstance.ephemeral()
        assert run_job(BUSY, instance=instance).success
        start, end = day_bounds(BUSY)
        assert_rows_equal(loaded(db, "issues"), standin.expected_rows("issues", start, end), standin.row_key("issues"))
        later = len(standin.expected("issues", end, end.replace(year=2030)))
        event = instance.get_latest_materialization_event(AssetKey(["analytics", "issues"]))
        run = run_figures(instance, AssetKey(["analytics", "issues"]), event.run_id)
        assert later > 0 and run["run_records_past_window_end"].value == later


def test_nested_data_becomes_columns_and_child_tables_as_dlt_makes_them(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`max_table_nesting: 1`: GitHub's `user` flattened into `user__*` columns and `labels` into the
    child table `issues__labels`, exactly as plain dlt loads the same config; the run counts the
    child table's rows and the UI's column schema lists what dlt made."""
    from dagster import AssetKey, DagsterInstance

    from analytics_assets_tests.standins.compare import load_with_plain_dlt
    from analytics_assets_tests.standins.github import GitHubIssues

    with GitHubIssues() as standin:
        db = configured(standin, tmp_path, monkeypatch)
        config = standin.config()
        config["resources"][0]["max_table_nesting"] = 1
        Path(__import__("os").environ["ANALYTICS_API_CONFIG"]).write_text(json.dumps(config))
        instance = DagsterInstance.ephemeral()
        assert run_job(BUSY, instance=instance).success
        plain_config = standin.plain_dlt_config(*day_bounds(BUSY))
        load_with_plain_dlt(standin, "issues", *day_bounds(BUSY), tmp_path / "plain.duckdb", config=plain_config,
                            max_table_nesting=1)
    ours, plain = loaded(db, "issues"), table_rows(tmp_path / "plain.duckdb", "issues")
    assert any(name.startswith("user__") for name in ours[0]) and "labels" not in ours[0]
    assert_rows_equal(ours, plain, ("id",))

    def labels(path: Path, dataset: str) -> list:
        return sorted(repr(sorted(row.items())) for row in table_rows(path, "issues__labels", dataset))

    assert labels(db, "analytics") == labels(tmp_path / "plain.duckdb", "standin") != []
    event = instance.get_latest_materialization_event(AssetKey(["analytics", "issues"]))
    metadata = event.asset_materialization.metadata
    assert run_figures(instance, AssetKey(["analytics", "issues"]), event.run_id)["run_child_table_rows"].value == {"issues__labels": len(labels(db, "analytics"))}
    columns = {column.name for column in metadata["dagster/column_schema"].schema.columns}
    assert {"id", "title", "user__login"} <= columns


@pytest.mark.parametrize("concurrency", [2, 8])
def test_children_are_requested_at_once_within_the_concurrency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               concurrency: int) -> None:
    """Slack's messages are read per channel: the channels' requests go out together, never more in
    flight than ANALYTICS_MAX_CONCURRENCY, and land exactly the day's messages."""
    import threading
    import time

    from analytics_assets_tests.standins.slack import SlackMessages

    class Counting(SlackMessages):
        """The API answering history requests in 50 ms, counting how many it serves at once."""

        def __init__(self) -> None:
            super().__init__()
            self.now = self.most = 0
            self.counter = threading.Lock()

        def dispatch(self, request: Any) -> Any:
            if not request.path.endswith("conversations.history"):
                return super().dispatch(request)
            with self.counter:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.05)  # the API's latency
                return super().dispatch(request)
            finally:
                with self.counter:
                    self.now -= 1

    with Counting() as standin:
        db = configured(standin, tmp_path, monkeypatch)
        monkeypatch.setenv("ANALYTICS_MAX_CONCURRENCY", str(concurrency))
        result = run_job(BUSY)
        assert result.success, failure(result)
        assert_rows_equal(loaded(db, "messages"), standin.expected_rows("messages", *day_bounds(BUSY)),
                          standin.row_key("messages"))
        assert 1 < standin.most <= concurrency
