"""Checks that prove a merged table right after every materialization, in SQL on the table itself
(whichever warehouse holds it): unique ids, no nulls where the schema forbids them, and a complete
window.

Completeness is proven with what dlt records: every row dlt loads carries its load's
`_dlt_load_id`, and the run records, once (its observation of the table, `assets.sync_events`),
the load id, the API's `total` for its window and how many distinct records the sync fetched. The rows carrying a load id are records that load
fetched, so when there are as many as it fetched, every fetched record landed; and a read of the
window ends only with exactly `total` records, so it fetched at least `total` (more when a record
left the window while it was read, and was kept as read).

A check that fails says why in its result's description. The checks are steps of their own,
skipped when the sync before them fails; the `<name>_freshness` sensor judges again those a failed
run left unjudged (sensors.build_freshness_sensor).
"""

from typing import Iterator, Optional, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetChecksDefinition,
    AssetKey,
    DagsterEventType,
    EventLogEntry,
    MetadataValue,
    asset_check,
    build_time_partition_freshness_checks,
    multi_asset_check,
)

from ..api.config import Resource
from ..api.instance import ApiInstance
from ..api.names import column, table
from ..warehouse.destinations import Destination
from ..warehouse.sql import ident
from .assets import RUN_FIGURES_MARK, run_figures, table_key
from .resources import WarehouseResource


def build_checks(instance: ApiInstance, resource: Resource, destination: Destination) -> list[AssetChecksDefinition]:
    key, name = table_key(instance, resource.name), table(resource.name)
    key_columns = tuple(column(field) for field in resource.key)
    required = [column(field) for field in resource.required]
    shown_key = ", ".join(key_columns)

    @asset_check(asset=key, name="id_unique", blocking=True, pool=destination.pool,
                 description=f"No two rows share a key (`{shown_key}`, the merge key).")
    def id_unique(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        columns = ", ".join(map(ident, key_columns))
        with warehouse.sql(context.run.run_id, context.log.info, instance=instance) as sql:
            duplicated = f"SELECT {columns} FROM {ident(name)} GROUP BY {columns} HAVING count(*) > 1"
            count = sql.read(f"SELECT count(*) AS n FROM ({duplicated}) AS d")[0][0]
            first = sql.read(f"{duplicated} ORDER BY {columns} LIMIT 20") if count else []
        shown = ", ".join(str(row[0] if len(row) == 1 else row) for row in first)
        return AssetCheckResult(passed=not count, description=(
            f"Failed: {count} key(s) appear on more than one row, e.g. {shown}." if count else
            f"Every key (`{shown_key}`) is on one row."), metadata={
            "duplicate_ids": MetadataValue.int(count),
            "first_duplicate_ids": MetadataValue.text(shown or "none"),
        })

    @asset_check(asset=key, name="required_columns_not_null", blocking=True, pool=destination.pool,
                 description=f"Columns declared NOT NULL hold no nulls: {', '.join(required)}.")
    def required_columns_not_null(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        counts = ", ".join(f"count(*) FILTER (WHERE {ident(column_name)} IS NULL) AS {ident('nulls_' + column_name)}"
                           for column_name in required)
        with warehouse.sql(context.run.run_id, context.log.info, instance=instance) as sql:
            nulls = sql.read(f"SELECT {counts} FROM {ident(name)}")[0]
        holding = ", ".join(f"{count} in `{column_name}`" for column_name, count in zip(required, nulls) if count)
        return AssetCheckResult(passed=not any(nulls), description=(
            f"Failed: nulls where the schema forbids them: {holding}." if holding else
            "No nulls in the columns declared NOT NULL."), metadata={
            "null_rows": MetadataValue.int(sum(nulls)),
            **{f"nulls_in_{column_name}": MetadataValue.int(count) for column_name, count in zip(required, nulls)},
        })

    @asset_check(asset=key, name="window_complete", blocking=True, pool=destination.pool,
                 description="Every record the materialization kept is in the table (its rows carrying that load's "
                 "`_dlt_load_id` are as many as the distinct records it kept), and it was served at least the "
                 "API's `total` for its window. Counted again now, or, once a later load has merged rows of its own "
                 "over this one's, as counted right after this load.")
    def window_complete(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        event = materialization_to_check(context, key)
        if event is None or event.asset_materialization is None:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                    description="Not judged: the table has no materialization yet.",
                                    metadata={"reason": "no materialization has been recorded yet"})
        # The run's figures, recorded once per run (assets.sync_events); a materialization of an
        # earlier version of this project carries them itself.
        metadata = {**event.asset_materialization.metadata, **run_figures(context.instance, key, event.run_id)}
        if RUN_FIGURES_MARK not in metadata:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                    description=f"Not judged: run {event.run_id} recorded no load figures for the table.",
                                    metadata={"reason": "the materialization's run recorded no load figures"})
        load_id, api_total = metadata["dlt_load_id"].value, metadata["run_api_total"].value
        fetched = metadata["run_records_fetched_distinct"].value
        kept = metadata["run_records_kept_distinct"].value
        with warehouse.sql(context.run.run_id, context.log.info, instance=instance) as sql:
            superseded = sql.later_loads(load_id) > 0
            landed = metadata["run_rows_landed_distinct"].value if superseded else \
                sql.distinct_in_load(name, key_columns, load_id)
        problems = ([f"{kept - landed} of the {kept} distinct records load {load_id} kept are not in the table "
                     f"(it holds {landed} rows of that load)"] if landed < kept else []) + (
            [f"the table holds {landed} rows of load {load_id}, more than the {kept} distinct records it kept"]
            if landed > kept else []) + (
            [f"the API counted {api_total} records in the window but the sync was served {fetched} distinct ones"]
            if fetched < api_total else [])
        return AssetCheckResult(
            passed=not problems,
            description=("Failed: " + "; and ".join(problems) + "." if problems else
                         f"All {kept} records load {load_id} kept are in the table, and the API's total of {api_total} "
                         "was fetched."),
            metadata={
                "run": MetadataValue.dagster_run(event.run_id),
                "window_start": metadata["run_window_start"],
                "window_end": metadata["run_window_end"],
                "dlt_load_id": load_id,
                "api_total": MetadataValue.int(api_total),
                "fetched_distinct_ids": MetadataValue.int(fetched),
                "kept_distinct_ids": MetadataValue.int(kept),
                "rows_of_this_load": MetadataValue.int(landed),
                "counted": MetadataValue.text("right after the load (a later load merged over it)" if superseded
                                              else "now"),
                "ids_missing": MetadataValue.int(max(0, kept - landed, api_total - fetched)),
            },
        )

    return [id_unique, window_complete] + ([required_columns_not_null] if required else [])


def materialization_to_check(context: AssetCheckExecutionContext, key: AssetKey) -> Optional[EventLogEntry]:
    """This run's materialization of `key`; the latest one when the check runs on its own. Another
    run's materialization, later than this run's, is not this run's to judge."""
    own = context.instance.all_logs(context.run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    own = [entry for entry in own if entry.asset_materialization and entry.asset_materialization.asset_key == key]
    return own[-1] if own else context.instance.get_latest_materialization_event(key)


# By noon UTC the day that ended twelve hours ago must be there: the latest partition is at most a
# day and a half old (the schedule syncs it at 00:15; the rest is margin for retries and reruns).
FRESHNESS_DEADLINE_CRON = "0 12 * * *"
FRESHNESS_RULE = ("Fresh while the table holds the latest day due: each day at 12:00 UTC (the deadline, cron "
                  f"`{FRESHNESS_DEADLINE_CRON}`), the day that ended at the midnight before must have been "
                  "materialized (the daily schedule syncs it at 00:15 UTC; the rest is margin for retries). "
                  "Between deadlines it stays as judged; a day earlier than the latest due one does not count.")


def freshness_check_name(instance: ApiInstance) -> str:
    """The step people see in runs and the freshness sensor's log: `<name>_tables_freshness`."""
    return f"{instance.name}_tables_freshness"


def build_freshness_checks(instance: ApiInstance) -> Sequence[AssetChecksDefinition]:
    """Dagster's time-partition `freshness_check` on every table (it fails while the latest due
    daily partition is missing, so a day the schedule did not sync shows red), under a name people
    read and with its rule in its description and in each result's.

    It is judged from the data, by the `<name>_freshness` sensor, never as a step of the API's job
    (`jobs.build_job` leaves it out): a sync that fails does not take it down with it."""
    keys = [table_key(instance, resource.name) for resource in instance.definition.config.selected]
    built = build_time_partition_freshness_checks(assets=keys, deadline_cron=FRESHNESS_DEADLINE_CRON, timezone="UTC")[0]
    judge = built.node_def.compute_fn.decorated_fn  # type: ignore[union-attr]
    sensor = instance.freshness_sensor

    @multi_asset_check(
        name=freshness_check_name(instance), can_subset=True,
        specs=[AssetCheckSpec(spec.name, asset=spec.asset_key, metadata=spec.metadata,
                              description=f"{FRESHNESS_RULE} Judged by the `{sensor}` sensor from the table's "
                              "materializations, not by the syncs themselves.")
               for spec in built.check_specs],
        description=f"Whether the {instance.name} API's tables hold their latest due day. {FRESHNESS_RULE}")
    def freshness(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        for result in judge(context):
            yield AssetCheckResult(passed=result.passed, asset_key=result.asset_key, check_name=result.check_name,
                                   metadata=result.metadata, severity=result.severity,
                                   description=f"{result.description} Rule: {FRESHNESS_RULE}")

    return [freshness]
