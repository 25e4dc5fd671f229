"""The code location: loads anywhere with nothing set, and shows lineage and schema before a run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

from analytics_assets.api.definition import built_in_definition
from analytics_assets.definitions import build_defs
from analytics_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TABLE = AssetKey(["analytics", "resource_name"])
ENDPOINT = AssetKey(["analytics_api", "resource_name"])
SUMMARY = AssetKey(["analytics", "resource_name_daily_summary"])


def bare_env(tmp_path: Path) -> dict:
    """No ANALYTICS_*, no dlt secrets, no DAGSTER_HOME: what a fresh code server sees. dlt's data
    folder (where pipelines keep working files) and the temp folder are inside tmp_path too, so
    a file written anywhere there shows."""
    for folder in ("home", "dlt", "tmp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "DLT_DATA_DIR": str(tmp_path / "dlt"),
            "TMPDIR": str(tmp_path / "tmp")}


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*"))


@pytest.mark.parametrize("destination", ["duckdb", "postgres", "motherduck", "snowflake", "bigquery"])
def test_import_needs_no_environment_and_writes_nothing(tmp_path, destination):
    """Also with a warehouse selected and no credentials for it: they are needed by runs only."""
    (tmp_path / "cwd").mkdir()
    env = {**bare_env(tmp_path), "ANALYTICS_DESTINATION": destination}
    before = files_under(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-c", "from analytics_assets.definitions import defs; defs().get_repository_def().asset_graph"],
        cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [["-m", "analytics_assets.definitions"], ["-w", str(ROOT / "workspace.yaml")], []],
    ids=["module", "workspace", "pyproject"],
)
def test_dagster_definitions_validate(tmp_path, args):
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", *args],
        cwd=ROOT, env=bare_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr


def test_lineage_runs_api_to_table_to_summary():
    graph = build_defs().get_repository_def().asset_graph
    assert graph.get(TABLE).parent_keys == {ENDPOINT}
    assert graph.get(SUMMARY).parent_keys == {TABLE}
    assert not graph.get(ENDPOINT).is_materializable


def test_table_asset_describes_itself_before_any_run():
    spec = build_defs().get_assets_def(TABLE).specs_by_key[TABLE]
    assert spec.group_name == "analytics"
    assert spec.kinds == {"dlt", "duckdb"}
    assert spec.owners and spec.description
    assert spec.metadata["dagster/table_name"] == "analytics.resource_name"
    columns = spec.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type, c.constraints.nullable) for c in columns] == [
        (c.name, c.data_type, c.nullable) for c in built_in_definition().resource("resource_name").declared
    ]
    assert all(c.description for c in columns)


@pytest.mark.parametrize("destination", ["postgres", "snowflake"])
def test_kinds_and_storage_name_the_configured_destination(destination, monkeypatch):
    monkeypatch.setenv("ANALYTICS_DESTINATION", destination)
    chosen = build_defs()
    for key in (TABLE, SUMMARY):
        spec = chosen.get_assets_def(key).specs_by_key[key]
        assert destination in spec.kinds and "duckdb" not in spec.kinds
        assert spec.metadata["dagster/storage_kind"] == destination
        assert {"postgres": "PostgreSQL", "snowflake": "Snowflake"}[destination] in spec.description
    assert chosen.get_assets_def(TABLE).op.pool is None, "the sync fetches without the writer pool"
    assert chosen.get_assets_def(SUMMARY).op.pool == "warehouse_writer"


def test_unknown_destination_is_refused_naming_the_variable(monkeypatch):
    from analytics_assets.errors import SettingsError

    monkeypatch.setenv("ANALYTICS_DESTINATION", "oracle")
    with pytest.raises(SettingsError, match="ANALYTICS_DESTINATION must be one of duckdb, postgres"):
        build_defs()


def test_tables_are_daily_partitioned_and_backfill_as_one_run():
    from dagster import BackfillPolicy, DailyPartitionsDefinition

    defs = build_defs()
    assets_def = defs.get_assets_def(TABLE)
    assert isinstance(assets_def.partitions_def, DailyPartitionsDefinition)
    assert assets_def.partitions_def.timezone == "UTC"
    assert assets_def.backfill_policy == BackfillPolicy.single_run()
    graph = defs.get_repository_def().asset_graph
    assert graph.get(ENDPOINT).partitions_def == assets_def.partitions_def, "observed day by day"


def test_a_deployment_can_split_backfills_into_runs_of_k_days(monkeypatch):
    """ANALYTICS_BACKFILL_DAYS_PER_RUN makes Dagster's backfill daemon split a range into runs of
    that many days; out of bounds, loading the definitions fails naming it."""
    from dagster import BackfillPolicy

    from analytics_assets.errors import SettingsError

    monkeypatch.setenv("ANALYTICS_BACKFILL_DAYS_PER_RUN", "30")
    assert build_defs().get_assets_def(TABLE).backfill_policy == BackfillPolicy.multi_run(30)
    monkeypatch.setenv("ANALYTICS_BACKFILL_DAYS_PER_RUN", "0")
    with pytest.raises(SettingsError, match="ANALYTICS_BACKFILL_DAYS_PER_RUN"):
        build_defs()


def test_summary_is_rebuilt_whole_when_the_table_changes():
    """Not partitioned (each build covers every day), with an eager condition that a table with
    days never synced does not hold back."""
    from dagster import AutomationCondition

    graph = build_defs().get_repository_def().asset_graph
    summary = graph.get(SUMMARY)
    assert summary.partitions_def is None
    condition = summary.automation_condition
    assert condition is not None and condition.get_label() == "eager"
    assert ~AutomationCondition.any_deps_missing() not in condition.operands
    assert ~AutomationCondition.any_deps_in_progress() in condition.operands


def test_automation_is_on_by_default():
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    defs = build_defs()
    repository = defs.get_repository_def()
    assert repository.get_schedule_def("analytics_daily").default_status == DefaultScheduleStatus.RUNNING
    for name in ("analytics_reconcile", "analytics_freshness", "analytics_automation"):
        assert repository.get_sensor_def(name).default_status == DefaultSensorStatus.RUNNING, name
    reconcile = repository.get_sensor_def("analytics_reconcile")
    assert reconcile.job_name == "analytics_job" and reconcile.minimum_interval_seconds == 3600
    automation = repository.get_sensor_def("analytics_automation")
    assert automation.asset_selection.resolve(repository.asset_graph) == {SUMMARY}


def test_the_table_has_a_freshness_check_and_the_summary_a_count_check():
    graph = build_defs().get_repository_def().asset_graph
    checks = {(key.asset_key, key.name) for key in graph.asset_check_keys}
    assert {(TABLE, "id_unique"), (TABLE, "window_complete"), (TABLE, "required_columns_not_null"),
            (SUMMARY, "record_count_matches_table")} <= checks
    assert any(asset == TABLE and "fresh" in name for asset, name in checks)


def test_asset_metadata_is_serializable_and_links_to_the_source():
    """Nothing shows as "(unserializable)" in the UI (dagster-dlt's `dagster_dlt/*` objects are
    not put on the specs), and each asset defined by code links to it."""
    from dagster._core.definitions.metadata import normalize_metadata
    from dagster._core.definitions.metadata.source_code import CodeReferencesMetadataSet

    graph = build_defs().get_repository_def().asset_graph
    for key in (TABLE, SUMMARY, ENDPOINT):
        metadata = graph.get(key).metadata
        assert not [name for name in metadata if name.startswith("dagster_dlt/")]
        normalize_metadata(metadata)  # raises on a value the UI would show as "(unserializable)"
    for key in (TABLE, SUMMARY):
        references = CodeReferencesMetadataSet.extract(graph.get(key).metadata).code_references.code_references
        assert references and all(Path(reference.file_path).is_file() for reference in references)


def test_partitions_start_is_configurable(tmp_path):
    env = {**bare_env(tmp_path), "ANALYTICS_PARTITIONS_START": "2026-10-01"}
    completed = subprocess.run(
        [sys.executable, "-c", "from analytics_assets.definitions import defs; "
         "print(defs().resolve_job_def('analytics_job').partitions_def.get_first_partition_key())"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.stdout.strip() == "2026-10-01", completed.stderr


def test_missing_secret_fails_the_run_naming_the_variable(dagster_api, monkeypatch):
    from analytics_assets_tests.conftest import run_job

    monkeypatch.delenv("ANALYTICS_CLIENT_SECRET")
    monkeypatch.delenv("CLIENT_SECRET", raising=False)
    result = run_job("2026-11-16")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "ANALYTICS_CLIENT_SECRET" in str(failure.step_failure_data.error.message)


def test_what_a_user_reads_is_described_and_named():
    """Every resource has a description in the launchpad (the API's own too), the freshness step
    has a readable name and its rule in its description, and the job is no step of freshness."""
    from dagster import AssetCheckKey

    defs = build_defs()
    repository = defs.get_repository_def()
    for name, resource in repository.get_top_level_resources().items():
        assert resource.description, name
    assert "analytics API's run tunables" in repository.get_top_level_resources()["analytics_api"].description
    freshness = next(definition for definition in defs.asset_checks
                     if AssetCheckKey(TABLE, "freshness_check") in definition.check_keys)
    assert freshness.node_def.name == "analytics_tables_freshness"
    spec = next(iter(freshness.check_specs))
    assert "12:00 UTC" in spec.description and "`0 12 * * *`" in spec.description
    job = defs.resolve_job_def("analytics_job")
    assert AssetCheckKey(TABLE, "freshness_check") not in job.asset_layer.asset_graph.asset_check_keys
    assert AssetCheckKey(TABLE, "id_unique") in job.asset_layer.asset_graph.asset_check_keys
    assert job.description and repository.get_sensor_def("analytics_freshness").description
