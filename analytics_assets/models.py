"""Models computed in DuckDB from the merged table, partitioned like it."""


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
from .pool import WRITER_POOL
from .partitions import window_of
from .pipeline import DATASET_NAME
from .resources import DuckDBDestination

SUMMARY_TABLE = f"{DATASET_NAME}.resource_name_daily_summary"
SUMMARY_COLUMNS = [
    TableColumn("day", "date", description="UTC day of `updated_at` (the partition)."),
    TableColumn("category", "text", description="Record category; null kept as its own group."),
    TableColumn("record_count", "bigint", description="Records updated that day."),
    TableColumn("metric_value_sum", "double", description="Sum of metric_value."),
    TableColumn("metric_value_avg", "double", description="Average of metric_value (nulls ignored)."),
    TableColumn("event_count_sum", "bigint", description="Sum of event_count."),
]


def build_summary_asset(partitions_def: PartitionsDefinition) -> AssetsDefinition:
    with warnings.catch_warnings():
        # `backfill_policy` on @asset is marked beta; it is what makes a range one run.
        warnings.simplefilter("ignore", BetaWarning)
        return _summary_asset(partitions_def)


def _summary_asset(partitions_def: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=AssetKey([TABLE_GROUP, "resource_name_daily_summary"]),
        deps=[table_key("resource_name")],
        group_name=TABLE_GROUP,
        description="Daily summary per category of the merged table: record count, sum and average "
        "of `metric_value`, sum of `event_count`. Rebuilt for the partition's days in one transaction.",
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        tags={"layer": "model"},
        metadata={
            "dagster/table_name": SUMMARY_TABLE,
            "dagster/storage_kind": "duckdb",
            "dagster/column_schema": TableSchema(columns=SUMMARY_COLUMNS),
        },
    )
    def resource_name_daily_summary(
        context: AssetExecutionContext, warehouse: DuckDBDestination
    ) -> MaterializeResult:
        window = window_of(context)
        with warehouse.connect() as connection:
            connection.execute("BEGIN")
            connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (
                    day DATE, category TEXT, record_count BIGINT, metric_value_sum DOUBLE,
                    metric_value_avg DOUBLE, event_count_sum BIGINT)"""
            )
            connection.execute(
                f"DELETE FROM {SUMMARY_TABLE} WHERE day >= ?::TIMESTAMPTZ AT TIME ZONE 'UTC' "
                "AND day < ?::TIMESTAMPTZ AT TIME ZONE 'UTC'",
                [window.start, window.end],
            )
            if warehouse.has_table(connection, "resource_name"):  # absent after an empty first window
                connection.execute(
                    f"""INSERT INTO {SUMMARY_TABLE}
                    SELECT CAST(updated_at AT TIME ZONE 'UTC' AS DATE), category, count(*),
                           sum(metric_value), avg(metric_value), sum(event_count)
                    FROM {DATASET_NAME}.resource_name
                    WHERE updated_at >= ? AND updated_at < ?
                    GROUP BY ALL ORDER BY ALL""",
                    [window.start, window.end],
                )
            connection.execute("COMMIT")
            rows_by_day = dict(
                connection.execute(
                    f"SELECT strftime(day, '%Y-%m-%d'), count(*) FROM {SUMMARY_TABLE} "
                    "WHERE day >= ?::TIMESTAMPTZ AT TIME ZONE 'UTC' AND day < ?::TIMESTAMPTZ AT TIME ZONE 'UTC' "
                    "GROUP BY 1",
                    [window.start, window.end],
                ).fetchall()
            )
        for partition_key in context.partition_keys:  # each day its own count, also in a range run
            context.add_asset_metadata(
                {"dagster/partition_row_count": MetadataValue.int(rows_by_day.get(partition_key, 0))},
                partition_key=partition_key,
            )
        return MaterializeResult(metadata={"categories": MetadataValue.int(sum(rows_by_day.values()))})

    return resource_name_daily_summary
