"""A model computed in the warehouse from the demo API's merged table: records per UTC day and
category, with sums and an average.

It must equal the table after every run, and a sync changes more days than its own: a record
updated upstream moves, in the table, from the day of its old `updated_at` to the day of its new
one. So the model is rebuilt whole, in one transaction, from the table (measured against rebuilding
only the days a sync touched: `benchmarks/summary_rebuild.py`, README "Dagster"). It is not
partitioned, since each build covers every day, and it follows the table by itself: an automation
condition materializes it whenever any partition of the table was materialized, from the UI, the
CLI, a schedule or a sensor. A check compares its per-day counts with the table's.

It exists for an API whose file asks for it (`daily_summary: true`, as the built-in API's does) and
whose definition has the seed's `resource_name` endpoint with the columns it summarises; an API of
a user's own gets its tables, assets and checks, and no model. It lives in the API's schema
(`analytics.resource_name_daily_summary` for the built-in API).
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

from ..api.instance import ApiInstance
from ..api.names import CURSOR_AT
from ..warehouse.pipeline import DATASET_NAME
from ..warehouse.destinations import Destination
from ..warehouse.sql import WarehouseSql, ident
from .assets import OWNERS, table_key
from .resources import WarehouseResource

SUMMARIZED = "resource_name"
SUMMARY = f"{SUMMARIZED}_daily_summary"
SUMMARY_TABLE = f"{DATASET_NAME}.{SUMMARY}"  # the built-in API's; another API's is `<name>.resource_name_daily_summary`
SUMMARY_KEY = AssetKey([DATASET_NAME, SUMMARY])  # the built-in API's
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


def summary_table(instance: ApiInstance) -> str:
    return f"{ident(instance.dataset)}.{SUMMARY}"


def summary_key(instance: ApiInstance) -> AssetKey:
    return AssetKey([instance.table_group, SUMMARY])


def create_summary_table(summary: str = SUMMARY_TABLE) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {summary} (
        day DATE, category TEXT, record_count BIGINT, metric_value_sum DOUBLE PRECISION,
        metric_value_avg DOUBLE PRECISION, event_count_sum BIGINT)"""


def summarize(table: str, cursor: str, where: str = "", summary: str = SUMMARY_TABLE) -> str:
    """The model's rows from the merged table (`where`: of some days only, for the benchmark's
    alternative)."""
    return f"""INSERT INTO {summary}
        SELECT {day_of(cursor)}, category, count(*), sum(metric_value), avg(metric_value), sum(event_count)
        FROM {table} {where}
        GROUP BY 1, 2"""


def rebuild_summary(sql: WarehouseSql, table: str, cursor: str, summary: str = SUMMARY_TABLE) -> None:
    with sql.creating_tables():  # one transaction: readers see the old model or the new one
        sql.execute(create_summary_table(summary))
        sql.execute(f"DELETE FROM {summary}")
        sql.execute(summarize(table, cursor, summary=summary))


def days_differing(sql: WarehouseSql, table: str, cursor: str, summary: str = SUMMARY_TABLE) -> list[tuple]:
    """(day, the model's record count, the table's rows) for every day where the two differ."""
    return sql.rows(
        f"""SELECT coalesce(s.day, t.day) AS day, s.n, t.n FROM
            (SELECT day, sum(record_count) AS n FROM {summary} GROUP BY day) s
            FULL OUTER JOIN (SELECT {day_of(cursor)} AS day, count(*) AS n FROM {table} GROUP BY 1) t
            ON s.day = t.day
            WHERE s.n IS NULL OR t.n IS NULL OR s.n <> t.n
            ORDER BY 1"""
    )


def build_summary(instance: ApiInstance, destination: Destination) -> list:
    """The model and its check, or nothing for an API without the columns it summarises."""
    definition = instance.definition
    if SUMMARIZED not in definition.names:
        return []
    resource = definition.resource(SUMMARIZED)
    if not NEEDED_COLUMNS <= set(resource.columns) or resource.cursor is None:
        return []
    cursor = CURSOR_AT  # the cursor's instant, whatever form the API sends it in
    key, table_name = summary_key(instance), f"{instance.dataset}.{SUMMARY}"
    summary = summary_table(instance)

    spec = AssetSpec(
        key=key,
        deps=[table_key(instance, SUMMARIZED)],
        group_name=instance.table_group,
        description="Daily summary per category of the merged table: record count, sum and average of "
        f"`metric_value`, sum of `event_count`, in {destination.title}. Rebuilt whole from the table in one "
        "transaction whenever the table changes, so that it always equals it.",
        kinds={destination.name, "sql"},
        owners=OWNERS,
        tags={"layer": "model"},
        automation_condition=FOLLOWS_THE_TABLE,
        metadata={
            "dagster/table_name": table_name,
            "dagster/storage_kind": destination.name,
            "dagster/column_schema": TableSchema(columns=SUMMARY_COLUMNS),
        },
    )

    # The built-in API's node keeps the name it always had; another API's is prefixed with its name.
    @multi_asset(name=SUMMARY if instance.is_built_in else f"{instance.name}_{SUMMARY}", specs=[spec],
                 pool=destination.pool)
    def resource_name_daily_summary(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.sql(context.run.run_id, context.log.info, instance=instance) as sql:
            rebuild_summary(sql, sql.table(SUMMARIZED), cursor, summary)
            days, rows, records = sql.rows(f"SELECT count(DISTINCT day), count(*), coalesce(sum(record_count), 0) "
                                           f"FROM {summary}")[0]
        return MaterializeResult(asset_key=spec.key, metadata={
            "days": MetadataValue.int(days),
            "dagster/row_count": MetadataValue.int(rows),
            "records_summarized": MetadataValue.int(int(records)),  # PostgreSQL's sum is numeric
        })

    @asset_check(asset=key, name="record_count_matches_table", pool=destination.pool,
                 description="For every day, the model's record_count adds up to the table's rows of that day.")
    def record_count_matches_table(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.sql(context.run.run_id, context.log.info, instance=instance) as sql:
            differing = days_differing(sql, sql.table(SUMMARIZED), cursor, summary)
        return AssetCheckResult(passed=not differing, description=(
            f"Failed: on {len(differing)} day(s) the model's record_count differs from the table's rows, e.g. "
            + ", ".join(f"{day} (model {model or 0}, table {table or 0})" for day, model, table in differing[:3]) + "."
            if differing else "Every day's record_count equals the table's rows of that day."), metadata={
            "days_differing": MetadataValue.int(len(differing)),
            "differences": MetadataValue.md("\n".join(
                f"- {day}: model {model or 0}, table {table or 0}" for day, model, table in differing[:20]) or "none"),
        })

    return [resource_name_daily_summary, record_count_matches_table]
