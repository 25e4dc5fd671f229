"""Checks that prove the merged table right after every materialization, in SQL on the table
itself (whichever warehouse holds it): unique ids, no nulls where the schema forbids them, and a
complete window."""


from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    MetadataValue,
    asset_check,
)

from . import audit
from .assets import table_key
from .pool import writer_pool
from .resources import WarehouseResource
from .schema import declared_columns


def build_checks(resource: str, destination: str = "duckdb") -> list[AssetChecksDefinition]:
    key = table_key(resource)
    required = [c.name for c in declared_columns(resource) if not c.nullable]
    pool = writer_pool(destination)

    @asset_check(asset=key, name="id_unique", blocking=True, pool=pool,
                 description="No two rows share an `id` (the merge key).")
    def id_unique(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        table = warehouse.table(resource)
        with warehouse.sql(context.run.run_id) as sql:
            duplicates = sql.rows(
                f"SELECT id, count(*) FROM {table} GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 20"
            ) if sql.has_table(table) else []
        return AssetCheckResult(
            passed=not duplicates,
            metadata={"duplicate_ids": MetadataValue.json([row[0] for row in duplicates])},
        )

    @asset_check(asset=key, name="required_columns_not_null", blocking=True, pool=pool,
                 description=f"Columns declared NOT NULL hold no nulls: {', '.join(required)}.")
    def required_columns_not_null(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        counts = ", ".join(f"count(*) FILTER (WHERE {name} IS NULL)" for name in required)
        table = warehouse.table(resource)
        with warehouse.sql(context.run.run_id) as sql:
            if sql.has_table(table):
                nulls = sql.rows(f"SELECT {counts} FROM {table}")[0]
            else:  # nothing loaded yet (an empty first window): no rows, no nulls
                nulls = (0,) * len(required)
        by_column = dict(zip(required, nulls))
        return AssetCheckResult(passed=not any(nulls), metadata={"null_counts": MetadataValue.json(by_column)})

    @asset_check(asset=key, name="window_complete", blocking=True, pool=pool,
                 description="The materialization fetched as many distinct records as the API's `total` "
                 "for its window, and every fetched id is in the table afterwards.")
    def window_complete(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.sql(context.run.run_id) as sql:
            fetch = audit.latest_fetch(sql, resource, context.run.run_id) or audit.latest_fetch(sql, resource, None)
            if fetch is None:
                return AssetCheckResult(
                    passed=False,
                    severity=AssetCheckSeverity.WARN,
                    metadata={"reason": "no materialization has been audited yet"},
                )
            run_id, start, end, api_total, fetched = fetch
            table = warehouse.table(resource)
            missing = audit.missing_ids(sql, run_id, resource, table if sql.has_table(table) else None)
        complete = (api_total is None or api_total == fetched) and not missing
        return AssetCheckResult(
            passed=complete,
            metadata={
                "run_id": run_id,
                "window": f"[{start.isoformat()}, {end.isoformat()})",
                "api_total": MetadataValue.int(api_total if api_total is not None else -1),
                "fetched_distinct_ids": MetadataValue.int(fetched),
                "fetched_ids_missing_from_table": MetadataValue.json(missing),
            },
        )

    return [id_unique, window_complete] + ([required_columns_not_null] if required else [])
