"""Merging on `id` into DuckDB: idempotent, updates replace, failures leave the table as it was."""

from analytics_assets_tests.conftest import assert_table_matches, table_checksum, table_rows


def test_same_sync_twice_leaves_the_same_rows(demo_api, syncer):
    syncer.run(demo_api)
    first = table_rows(syncer.db)
    syncer.run(demo_api)
    assert table_rows(syncer.db) == first
    assert_table_matches(syncer.db, demo_api.all_records())


def test_updated_record_is_replaced_not_duplicated(demo_api, syncer):
    syncer.run(demo_api)
    demo_api.update_record(7, name="renamed", metric_value=None, properties={"v": 2})
    syncer.run(demo_api)
    rows = table_rows(syncer.db)
    assert [r["id"] for r in rows].count(7) == 1
    assert_table_matches(syncer.db, demo_api.all_records())


def test_failed_run_leaves_table_unchanged_and_next_run_converges(demo_api, syncer):
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    demo_api.update_record(1, name="changed-upstream")
    demo_api.faults.queue("status", status=503, times=4, after=2)
    try:
        syncer.run(demo_api)
    except Exception:
        pass
    else:
        raise AssertionError("the run should have failed")
    assert table_checksum(syncer.db) == before
    syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())


def test_loads_are_columnar(demo_api, syncer):
    """parquet, not dlt's insert_values default (about 3x slower and 10x the memory here)."""
    syncer.run(demo_api)
    jobs = [p.name for p in syncer.pipelines.rglob("completed_jobs/resource_name.*")]
    assert any(name.endswith(".parquet") for name in jobs)
    assert not any("insert_values" in name for name in jobs)


def test_a_run_overtaken_by_a_later_fetch_fetches_again_before_it_loads(demo_api, tmp_path):
    """Run A fetches, the API changes a record, run B fetches and loads; then A loads. A's copy of
    the record is older than B's: A fetches again, holding the warehouse, and the table ends with the
    API's current record, not A's stale one."""
    from analytics_assets.api.client import ApiClient
    from analytics_assets.api.source import build_source
    from analytics_assets.api.stats import SyncStats
    from analytics_assets.warehouse.pipeline import fetch, loading, make_pipeline
    from analytics_assets_tests.conftest import built_in_definition, settings_for, sync

    db = tmp_path / "warehouse.duckdb"
    settings = settings_for(demo_api)
    sync(make_pipeline(db, pipelines_dir=tmp_path / "first"), built_in_definition(), settings)
    run_a = make_pipeline(db, pipelines_dir=tmp_path / "a")
    said = []
    with ApiClient(built_in_definition(), settings, SyncStats()) as client:
        fetch(run_a, build_source(client, None))
        demo_api.update_record(5, name="newer")
        sync(make_pipeline(db, pipelines_dir=tmp_path / "b"), built_in_definition(), settings)
        with loading(run_a, ["resource_name"], say=said.append,
                     refetch=lambda: fetch(run_a, build_source(client, None))):
            run_a.load()
    assert any("fetching again" in line for line in said)
    assert_table_matches(db, demo_api.all_records())
    assert [row["name"] for row in table_rows(db) if row["id"] == 5] == ["newer"]
