"""A model computed in the warehouse from the demo API's merged table, partitioned like it.

It exists when the API definition has the seed's `resource_name` endpoint with the columns it
summarises; an API of a user's own gets its tables, assets and checks, and no model.
"""

from typing import Optional

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
    multi_asset,
)

from ..api.definition import ApiDefinition
from ..warehouse.pipeline import DATASET_NAME
from ..warehouse.sql import Destination
from .assets import OWNERS, TABLE_GROUP, table_key, window_of
from .resources import WarehouseResource

SUMMARIZED = "resource_name"
SUMMARY = f"{SUMMARIZED}_daily_summary"
SUMMARY_TABLE = f"{DATASET_NAME}.{SUMMARY}"
NEEDED_COLUMNS = {"category", "metric_value", "event_count"}
SUMMARY_COLUMNS = [
    TableColumn("day", "date", description="UTC day of `updated_at` (the partition)."),
    TableColumn("category", "text", description="Record category; null kept as its own group."),
    TableColumn("record_count", "bigint", description="Records updated that day."),
    TableColumn("metric_value_sum", "double", description="Sum of metric_value."),
    TableColumn("metric_value_avg", "double", description="Average of metric_value (nulls ignored)."),
    TableColumn("event_count_sum", "bigint", description="Sum of event_count."),
]


def build_summary_asset(definition: ApiDefinition, partitions_def: PartitionsDefinition,
                        destination: Destination) -> Optional[AssetsDefinition]:
    if SUMMARIZED not in definition.names:
        return None
    endpoint = definition.endpoint(SUMMARIZED)
    if not NEEDED_COLUMNS <= set(endpoint.columns):
        return None
    cursor = endpoint.incremental.cursor_path

    spec = AssetSpec(
        key=AssetKey([TABLE_GROUP, SUMMARY]),
        deps=[table_key(SUMMARIZED)],
        group_name=TABLE_GROUP,
        description="Daily summary per category of the merged table: record count, sum and average of "
        f"`metric_value`, sum of `event_count`, in {destination.title}. Rebuilt for the partition's days in "
        "one transaction.",
        kinds={destination.name, "sql"},
        owners=OWNERS,
        tags={"layer": "model"},
        metadata={
            "dagster/table_name": SUMMARY_TABLE,
            "dagster/storage_kind": destination.name,
            "dagster/column_schema": TableSchema(columns=SUMMARY_COLUMNS),
        },
    )

    @multi_asset(name=SUMMARY, specs=[spec], partitions_def=partitions_def, backfill_policy=BackfillPolicy.single_run(),
                 pool=destination.pool)
    def resource_name_daily_summary(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        window = window_of(context)
        days = (window.start.date(), window.end.date())
        with warehouse.sql(context.run.run_id) as sql, sql.creating_tables():
            sql.execute(
                f"""CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (
                    day DATE, category TEXT, record_count BIGINT, metric_value_sum DOUBLE PRECISION,
                    metric_value_avg DOUBLE PRECISION, event_count_sum BIGINT)"""
            )
            sql.execute(f"DELETE FROM {SUMMARY_TABLE} WHERE day >= %s AND day < %s", *days)
            sql.execute(
                f"""INSERT INTO {SUMMARY_TABLE}
                SELECT CAST({cursor} AT TIME ZONE 'UTC' AS DATE), category, count(*),
                       sum(metric_value), avg(metric_value), sum(event_count)
                FROM {sql.table(SUMMARIZED)}
                WHERE {cursor} >= %s AND {cursor} < %s
                GROUP BY 1, 2 ORDER BY 1, 2""",
                window.start, window.end,
            )
            rows_by_day = {day.isoformat(): count for day, count in sql.rows(
                f"SELECT day, count(*) FROM {SUMMARY_TABLE} WHERE day >= %s AND day < %s GROUP BY 1", *days)}
        for partition_key in context.partition_keys:  # each day its own count, also in a range run
            context.add_asset_metadata(
                {"dagster/partition_row_count": MetadataValue.int(rows_by_day.get(partition_key, 0))},
                asset_key=spec.key,
                partition_key=partition_key,
            )
        return MaterializeResult(asset_key=spec.key, metadata={"categories": MetadataValue.int(sum(rows_by_day.values()))})

    return resource_name_daily_summary
