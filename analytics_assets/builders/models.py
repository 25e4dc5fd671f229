"""A model computed in the warehouse from the demo API's merged table: records per UTC day and
category, with sums and an average.

It must equal the table after every run, and a sync changes more days than its own: a record
updated upstream moves, in the table, from the day of its old `updated_at` to the day of its new
one. So the model is rebuilt whole, in one transaction, from the table (measured against rebuilding
only the days a sync touched: `benchmarks/summary_rebuild.py`, README "Dagster"). It is not
partitioned, since each build covers every day, and it follows the table by itself: an automation
condition materializes it whenever any partition of the table was materialized, from the UI, the
CLI, a schedule or a sensor. A check compares its per-day counts with the table's.

It exists when the API definition has the seed's `resource_name` endpoint with the columns it
summarises; an API of a user's own gets its tables, assets and checks, and no model.
"""

from typing import Optional

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset_check,
    multi_asset,
)

from ..api.definition import ApiDefinition
from ..api.names import CURSOR_AT
from ..warehouse.pipeline import DATASET_NAME
from ..warehouse.destinations import Destination
from ..warehouse.sql import WarehouseSql, ident
from .assets import OWNERS, TABLE_GROUP, table_key
from .resources import WarehouseResource

SUMMARIZED = "resource_name"
SUMMARY = f"{SUMMARIZED}_daily_summary"
SUMMARY_TABLE = f"{DATASET_NAME}.{SUMMARY}"
SUMMARY_KEY = AssetKey([TABLE_GROUP, SUMMARY])
NEEDED_COLUMNS = {"category", "metric_value", "event_count"}
SUMMARY_COLUMNS = [
    TableColumn("day", "date", description="UTC day of `updated_at` (as `_cursor_at` holds it)."),
    TableColumn("category", "text", description="Record category; null kept as its own group."),
    TableColumn("record_count", "bigint", description="Records whose `updated_at` falls on that day."),
    TableColumn("metric_value_sum", "double", description="Sum of metric_value."),
    TableColumn("metric_value_avg", "double", description="Average of metric_value (nulls ignored)."),
    TableColumn("event_count_sum", "bigint", description="Sum of event_count."),
]
# Eager, except that a daily-partitioned parent with days never synced does not hold the model back
# (`any_deps_missing` counts every partition of the parent for a model that is not partitioned).
FOLLOWS_THE_TABLE = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


def day_of(cursor: str) -> str:
    return f"CAST({ident(cursor)} AT TIME ZONE 'UTC' AS DATE)"


def create_summary_table() -> str:
    return f"""CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (
        day DATE, category TEXT, record_count BIGINT, metric_value_sum DOUBLE PRECISION,
        metric_value_avg DOUBLE PRECISION, event_count_sum BIGINT)"""


def summarize(table: str, cursor: str, where: str = "") -> str:
    """The model's rows from the merged table (`where`: of some days only, for the benchmark's
    alternative)."""
    return f"""INSERT INTO {SUMMARY_TABLE}
        SELECT {day_of(cursor)}, category, count(*), sum(metric_value), avg(metric_value), sum(event_count)
        FROM {table} {where}
        GROUP BY 1, 2"""


def rebuild_summary(sql: WarehouseSql, table: str, cursor: str) -> None:
    with sql.creating_tables():  # one transaction: readers see the old model or the new one
        sql.execute(create_summary_table())
        sql.execute(f"DELETE FROM {SUMMARY_TABLE}")
        sql.execute(summarize(table, cursor))


def days_differing(sql: WarehouseSql, table: str, cursor: str) -> list[tuple]:
    """(day, the model's record count, the table's rows) for every day where the two differ."""
    return sql.rows(
        f"""SELECT coalesce(s.day, t.day) AS day, s.n, t.n FROM
            (SELECT day, sum(record_count) AS n FROM {SUMMARY_TABLE} GROUP BY day) s
            FULL OUTER JOIN (SELECT {day_of(cursor)} AS day, count(*) AS n FROM {table} GROUP BY 1) t
            ON s.day = t.day
            WHERE s.n IS NULL OR t.n IS NULL OR s.n <> t.n
            ORDER BY 1"""
    )


def build_summary(definition: ApiDefinition, destination: Destination) -> list:
    """The model and its check, or nothing for an API without the columns it summarises."""
    if SUMMARIZED not in definition.names:
        return []
    resource = definition.resource(SUMMARIZED)
    if not NEEDED_COLUMNS <= set(resource.columns) or resource.cursor is None:
        return []
    cursor = CURSOR_AT  # the cursor's instant, whatever form the API sends it in

    spec = AssetSpec(
        key=SUMMARY_KEY,
        deps=[table_key(SUMMARIZED)],
        group_name=TABLE_GROUP,
        description="Daily summary per category of the merged table: record count, sum and average of "
        f"`metric_value`, sum of `event_count`, in {destination.title}. Rebuilt whole from the table in one "
        "transaction whenever the table changes, so that it always equals it.",
        kinds={destination.name, "sql"},
        owners=OWNERS,
        tags={"layer": "model"},
        automation_condition=FOLLOWS_THE_TABLE,
        metadata={
            "dagster/table_name": SUMMARY_TABLE,
            "dagster/storage_kind": destination.name,
            "dagster/column_schema": TableSchema(columns=SUMMARY_COLUMNS),
        },
    )

    @multi_asset(name=SUMMARY, specs=[spec], pool=destination.pool)
    def resource_name_daily_summary(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.sql(context.run.run_id, context.log.info) as sql:
            rebuild_summary(sql, sql.table(SUMMARIZED), cursor)
            days, rows, records = sql.rows(f"SELECT count(DISTINCT day), count(*), coalesce(sum(record_count), 0) "
                                           f"FROM {SUMMARY_TABLE}")[0]
        return MaterializeResult(asset_key=spec.key, metadata={
            "days": MetadataValue.int(days),
            "dagster/row_count": MetadataValue.int(rows),
            "records_summarized": MetadataValue.int(int(records)),  # PostgreSQL's sum is numeric
        })

    @asset_check(asset=SUMMARY_KEY, name="record_count_matches_table", pool=destination.pool,
                 description="For every day, the model's record_count adds up to the table's rows of that day.")
    def record_count_matches_table(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.sql(context.run.run_id, context.log.info) as sql:
            differing = days_differing(sql, sql.table(SUMMARIZED), cursor)
        return AssetCheckResult(passed=not differing, metadata={
            "days_differing": MetadataValue.int(len(differing)),
            "differences": MetadataValue.md("\n".join(
                f"- {day}: model {model or 0}, table {table or 0}" for day, model, table in differing[:20]) or "none"),
        })

    return [resource_name_daily_summary, record_count_matches_table]
