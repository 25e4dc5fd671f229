"""The writer pool's limit: the deployment's setting wherever the pool was created."""

from pathlib import Path

from analytics_assets_tests.conftest import make_dagster_home, run_job, set_api_env


def test_the_setting_replaces_the_limit_of_a_pool_that_exists_and_says_so(demo_api, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """A daemon's instance creates the pool at its `default_limit` (here: 1, as the project's
    dagster.yaml) before any run of the project: ANALYTICS_WRITER_POOL_LIMIT then applies all the same."""
    from dagster import DagsterInstance

    set_api_env(monkeypatch, demo_api, tmp_path / "warehouse.duckdb")
    monkeypatch.setenv("ANALYTICS_WRITER_POOL_LIMIT", "3")
    home = make_dagster_home(tmp_path / "dagster_home")
    days = sorted({record["updated_at"][:10] for record in demo_api.all_records()})
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").slot_count == 1
        result = run_job(days[0], instance=instance)
        assert result.success
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").slot_count == 3
        said = [record.user_message for record in instance.all_logs(result.run_id)
                if "now allows 3" in record.user_message]
        assert said and "allowed 1 steps at once" in said[0] and "ANALYTICS_WRITER_POOL_LIMIT" in said[0]

        monkeypatch.delenv("ANALYTICS_WRITER_POOL_LIMIT")
        instance.event_log_storage.set_concurrency_slots("duckdb_writer", 2)  # `dagster instance concurrency set`
        assert run_job(days[1], instance=instance).success
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").slot_count == 2, \
            "unset, the instance's own limit holds"
