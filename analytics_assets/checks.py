"""Checks that prove the merged table right after every materialization, in SQL on the table
itself: unique ids, no nulls where the schema forbids them, and a complete window."""


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
from .pool import WRITER_POOL
from .resources import DuckDBDestination
from .schema import declared_columns


def build_checks(resource: str) -> list[AssetChecksDefinition]:
    key = table_key(resource)
    required = [c.name for c in declared_columns(resource) if not c.nullable]

    @asset_check(asset=key, name="id_unique", blocking=True, pool=WRITER_POOL,
                 description="No two rows share an `id` (the merge key).")
    def id_unique(warehouse: DuckDBDestination) -> AssetCheckResult:
        with warehouse.connect(read_only=True) as connection:
            duplicates = connection.execute(
                f"SELECT id, count(*) FROM {warehouse.table(resource)} GROUP BY id HAVING count(*) > 1 "
                "ORDER BY id LIMIT 20"
            ).fetchall() if warehouse.has_table(connection, resource) else []
        return AssetCheckResult(
            passed=not duplicates,
            metadata={"duplicate_ids": MetadataValue.json([row[0] for row in duplicates])},
        )

    @asset_check(asset=key, name="required_columns_not_null", blocking=True, pool=WRITER_POOL,
                 description=f"Columns declared NOT NULL hold no nulls: {', '.join(required)}.")
    def required_columns_not_null(warehouse: DuckDBDestination) -> AssetCheckResult:
        counts = ", ".join(f"count(*) FILTER (WHERE {name} IS NULL)" for name in required)
        with warehouse.connect(read_only=True) as connection:
            if warehouse.has_table(connection, resource):
                nulls = connection.execute(f"SELECT {counts} FROM {warehouse.table(resource)}").fetchone()
            else:  # nothing loaded yet (an empty first window): no rows, no nulls
                nulls = (0,) * len(required)
        by_column = dict(zip(required, nulls))
        return AssetCheckResult(passed=not any(nulls), metadata={"null_counts": MetadataValue.json(by_column)})

    @asset_check(asset=key, name="window_complete", blocking=True, pool=WRITER_POOL,
                 description="The materialization fetched as many distinct records as the API's `total` "
                 "for its window, and every fetched id is in the table afterwards.")
    def window_complete(context: AssetCheckExecutionContext, warehouse: DuckDBDestination) -> AssetCheckResult:
        with warehouse.connect(read_only=True) as connection:
            fetch = audit.latest_fetch(connection, resource, context.run.run_id) or audit.latest_fetch(
                connection, resource, None
            )
            if fetch is None:
                return AssetCheckResult(
                    passed=False,
                    severity=AssetCheckSeverity.WARN,
                    metadata={"reason": "no materialization has been audited yet"},
                )
            run_id, start, end, api_total, fetched = fetch
            table = warehouse.table(resource) if warehouse.has_table(connection, resource) else None
            missing = audit.missing_ids(connection, run_id, resource, table)
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
