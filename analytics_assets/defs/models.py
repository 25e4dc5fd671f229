"""Models computed in the warehouse from the merged table, partitioned like it."""


import warnings

from dagster import (
    BetaWarning,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
    asset,
)

from .assets import OWNERS, TABLE_GROUP, table_key
from .assets import DESTINATION_TITLES
from .partitions import window_of
from .pipeline import DATASET_NAME
from .pool import writer_pool
from .resources import WarehouseResource

SUMMARY_TABLE = f"{DATASET_NAME}.resource_name_daily_summary"
SUMMARY_COLUMNS = [
    TableColumn("day", "date", description="UTC day of `updated_at` (the partition)."),
    TableColumn("category", "text", description="Record category; null kept as its own group."),
    TableColumn("record_count", "bigint", description="Records updated that day."),
    TableColumn("metric_value_sum", "double", description="Sum of metric_value."),
    TableColumn("metric_value_avg", "double", description="Average of metric_value (nulls ignored)."),
    TableColumn("event_count_sum", "bigint", description="Sum of event_count."),
]


def build_summary_asset(partitions_def: PartitionsDefinition, destination: str = "duckdb") -> AssetsDefinition:
    with warnings.catch_warnings():
        # `backfill_policy` on @asset is marked beta; it is what makes a range one run.
        warnings.simplefilter("ignore", BetaWarning)
        return _summary_asset(partitions_def, destination)


def _summary_asset(partitions_def: PartitionsDefinition, destination: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([TABLE_GROUP, "resource_name_daily_summary"]),
        deps=[table_key("resource_name")],
        group_name=TABLE_GROUP,
        description="Daily summary per category of the merged table: record count, sum and average "
        f"of `metric_value`, sum of `event_count`, in {DESTINATION_TITLES[destination]}. Rebuilt for the "
        "partition's days in one transaction.",
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        pool=writer_pool(destination),
        kinds={destination, "sql"},
        owners=OWNERS,
        tags={"layer": "model"},
        metadata={
            "dagster/table_name": SUMMARY_TABLE,
            "dagster/storage_kind": destination,
            "dagster/column_schema": TableSchema(columns=SUMMARY_COLUMNS),
        },
    )
    def resource_name_daily_summary(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        window = window_of(context)
        days = (window.start.date(), window.end.date())
        with warehouse.sql(context.run.run_id) as sql:
            source_exists = sql.has_table(warehouse.table("resource_name"))  # not after an empty first window
            with sql.transaction(creates_tables=True):
                sql.execute(
                    f"""CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (
                        day DATE, category TEXT, record_count BIGINT, metric_value_sum DOUBLE PRECISION,
                        metric_value_avg DOUBLE PRECISION, event_count_sum BIGINT)"""
                )
                sql.execute(f"DELETE FROM {SUMMARY_TABLE} WHERE day >= %s AND day < %s", *days)
                if source_exists:
                    sql.execute(
                        f"""INSERT INTO {SUMMARY_TABLE}
                        SELECT CAST(updated_at AT TIME ZONE 'UTC' AS DATE), category, count(*),
                               sum(metric_value), avg(metric_value), sum(event_count)
                        FROM {warehouse.table("resource_name")}
                        WHERE updated_at >= %s AND updated_at < %s
                        GROUP BY 1, 2 ORDER BY 1, 2""",
                        window.start, window.end,
                    )
            rows_by_day = {
                day.isoformat(): count
                for day, count in sql.rows(
                    f"SELECT day, count(*) FROM {SUMMARY_TABLE} WHERE day >= %s AND day < %s GROUP BY 1", *days
                )
            }
        for partition_key in context.partition_keys:  # each day its own count, also in a range run
            context.add_asset_metadata(
                {"dagster/partition_row_count": MetadataValue.int(rows_by_day.get(partition_key, 0))},
                partition_key=partition_key,
            )
        return MaterializeResult(metadata={"categories": MetadataValue.int(sum(rows_by_day.values()))})

    return resource_name_daily_summary
