"""The declared schema: types and NOT NULLs from the first run, violations named, drift reported."""

import duckdb
import pytest

from analytics_assets.errors import SchemaViolation
from analytics_assets.api.definition import built_in_definition
from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_checksum, table_rows

DUCKDB_TYPES = {"bigint": "BIGINT", "text": "VARCHAR", "double": "DOUBLE", "bool": "BOOLEAN",
                "json": "JSON", "timestamp": "TIMESTAMP WITH TIME ZONE"}


def test_table_has_declared_types_and_not_nulls_even_when_pages_lack_fields(make_api, syncer):
    api = make_api(records=50, days=1)
    api.replace_records([{k: v for k, v in r.items() if k in ("id", "name", "created_at", "updated_at")}
                         for r in api.all_records()])
    syncer.run(api)
    with duckdb.connect(str(syncer.db), read_only=True) as connection:
        described = {row[0]: (row[1], row[2]) for row in connection.execute("DESCRIBE analytics.resource_name").fetchall()}
    for column in built_in_definition().resource("resource_name").declared:
        assert described[column.name] == (DUCKDB_TYPES[column.data_type], "YES" if column.nullable else "NO")


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("name", None, "is null but is declared NOT NULL"),
        ("updated_at", None, "is null but is declared NOT NULL"),
        ("created_at", "yesterday", "is not a timestamp"),
        ("metric_value", "twelve", "is not a number"),
        ("event_count", 1.5, "is not an integer"),
        ("is_active", "maybe", "is not a boolean"),
        ("properties", "flat", "is not a JSON object"),
        ("name", "bad \ud800 text", "not valid Unicode"),
        ("event_count", 2**64, "is beyond the 64-bit integer range"),
    ],
)
def test_violation_names_field_and_record_and_commits_nothing(demo_api, syncer, field, value, problem):
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    victim = demo_api.all_records()[150]["id"]
    demo_api.update_record(2, name="changed-upstream")  # would land if anything were committed
    demo_api.update_record(victim, **{field: value})
    with pytest.raises(SchemaViolation) as failure:
        syncer.run(demo_api)
    assert failure.value.field == field and failure.value.record_id == victim
    assert problem in str(failure.value) and f"id={victim}" in str(failure.value)
    assert table_checksum(syncer.db) == before


def test_missing_required_field_is_named(demo_api, syncer):
    records = demo_api.all_records()
    del records[5]["created_at"]
    demo_api.replace_records(records)
    with pytest.raises(SchemaViolation, match=r"id=6 .*'created_at' is missing"):
        syncer.run(demo_api)


def test_new_field_becomes_a_column_and_is_reported(demo_api, syncer):
    demo_api.update_record(4, campaign="spring")
    stats = syncer.run(demo_api)
    assert stats.drift_columns == {"resource_name": {"campaign"}}
    rows = {r["id"]: r for r in table_rows(syncer.db)}
    assert rows[4]["campaign"] == "spring" and rows[5]["campaign"] is None
    assert_table_matches(syncer.db, demo_api.all_records())


def test_frozen_schema_refuses_new_fields(demo_api, syncer):
    demo_api.update_record(4, campaign="spring")
    with pytest.raises(SchemaViolation, match=r"id=4 .*'campaign' is not declared and the schema is frozen"):
        syncer.run(demo_api, settings=settings_for(demo_api, schema_drift="freeze"))


def test_huge_and_unusual_text_lands_exactly(demo_api, syncer):
    demo_api.update_record(1, name="x" * 1_000_000)
    demo_api.update_record(2, name="Zoë 🚀 ‮right-to-left‬ 中文 \u0000 nul", category="tab\tnew\nline")
    demo_api.update_record(3, properties={"nested": {"deep": [1, {"k": "ü"}]}, "empty": {}})
    syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())


def test_integers_beyond_64_bits_in_json_stay_exact(demo_api, syncer):
    # orjson, which decodes pages, would read these as floats; such pages go to Python's decoder.
    demo_api.update_record(3, properties={"big": 2**70 + 1, "low": -(2**63) - 1, "edge": 2**64 - 1})
    syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    row = next(r for r in table_rows(syncer.db) if r["id"] == 3)
    assert row["properties"]["big"] == 2**70 + 1 and isinstance(row["properties"]["big"], int)


def test_undeclared_field_on_a_later_page_is_null_before_it(demo_api, syncer):
    # Pages are converted one by one and batched: a field first seen on the third page still
    # becomes one column over the whole batch, typed from every value.
    ids = [r["id"] for r in demo_api.all_records()]
    demo_api.update_record(ids[250], campaign=7)
    demo_api.update_record(ids[260], campaign=8)
    stats = syncer.run(demo_api)
    assert stats.drift_columns == {"resource_name": {"campaign"}}
    rows = {r["id"]: r for r in table_rows(syncer.db)}
    assert rows[ids[250]]["campaign"] == 7 and rows[ids[260]]["campaign"] == 8
    assert all(rows[i]["campaign"] is None for i in ids if i not in (ids[250], ids[260]))
    assert_table_matches(syncer.db, demo_api.all_records())
