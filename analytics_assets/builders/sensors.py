"""What keeps the tables right without anyone clicking, besides the daily schedule.

`<name>_reconcile` (`analytics_reconcile` for the built-in API) finds late data. The schedule syncs each day once, just after it ends; a record
that reaches the API later with an `updated_at` on an already synced day is never fetched by it.
Each hour the sensor asks the API for the record total of each of the last ANALYTICS_RECONCILE_DAYS
days (one request a day, a page one record long), records them as observations of
`analytics_api/<resource>`, compares them with the table's rows per day, and launches a sync of the
days where the table holds fewer rows than the API counts: one run per stretch of consecutive days.

A day holding more rows than the API counts is not a difference to sync: a record updated upstream
moves to the day of its new `updated_at`, and stays in the table under its old day until that later
day is synced, which moves it (a record deleted upstream stays too: merges do not delete). Totals
cannot show a late change that keeps every day's count; the schedule's next sync of that day would.

`<name>_automation` makes the API's models follow its tables (their automation conditions), and
`<name>_freshness` judges its tables' freshness from the data, and judges again the checks a failed
run left unjudged (`build_freshness_sensor`). Each API has its own sensors.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from dagster import (
    AssetCheckKey,
    AssetChecksDefinition,
    AssetObservation,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TimeWindowPartitionsDefinition,
    build_sensor_for_freshness_checks,
    sensor,
)

from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import SENSOR_NAME_TAG

from ..api.instance import ApiInstance
from ..window import Window
from ..api.client import ApiClient
from ..api.shared_budget import deployment_folder
from ..api.stats import SyncStats
from ..api.names import CURSOR_AT, table
from ..api.totals import countable, day_totals, total_path
from ..errors import WarehouseBusy, WarehouseFileError
from .assets import endpoint_key
from .checks import FRESHNESS_RULE
from .resources import AnalyticsApiResource, WarehouseResource

RECONCILE_INTERVAL_SECONDS = 3600
SENSOR_LOCK_WAIT = 10.0  # a tick waits this long for a DuckDB file a run is loading, then skips
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
STRETCH_TAG = "analytics/reconcile_days"  # the stretch of days a reconcile run syncs


def recent_days(partitions_def: TimeWindowPartitionsDefinition, count: int) -> list[str]:
    """The `count` most recent daily partitions that exist (whole days that have ended)."""
    return partitions_def.get_partition_keys()[-count:]


def stretches(days: Sequence[str], differing: set) -> list[tuple[str, str]]:
    """The differing days as (first, last) runs of consecutive days of `days`."""
    ranges: list[list[str]] = []
    previous_differs = False
    for day in days:
        if day in differing:
            if previous_differs:
                ranges[-1][1] = day
            else:
                ranges.append([day, day])
        previous_differs = day in differing
    return [(first, last) for first, last in ranges]


def build_reconcile_sensor(instance: ApiInstance, partitions_def: TimeWindowPartitionsDefinition) -> SensorDefinition:
    definition = instance.definition

    @sensor(name=instance.reconcile_sensor, job_name=instance.job_name,
            minimum_interval_seconds=RECONCILE_INTERVAL_SECONDS, default_status=DefaultSensorStatus.RUNNING,
            description=__doc__.split("\n\n")[1].strip(), required_resource_keys={"warehouse", instance.resource_key})
    def reconcile(context: SensorEvaluationContext, **_resources: object) -> SensorResult:
        """Its resources are read from the context (`<name>_api` is no parameter name); invoked
        directly, Dagster also passes them by key, which `_resources` takes."""
        api: AnalyticsApiResource = getattr(context.resources, instance.resource_key)  # type: ignore[valid-type]
        warehouse: WarehouseResource = context.resources.warehouse
        settings = api.settings(instance)
        days = recent_days(partitions_def, settings.reconcile_days)
        if not days:
            return SensorResult(skip_reason="No daily partition has ended yet.")
        with ApiClient(definition, settings.model_copy(update={"max_concurrency": 1}),
                       SyncStats(warning=context.log.warning),
                       budget_folder=deployment_folder(context.instance.root_directory)) as client:
            totals = {resource.name: day_totals(client, resource, days) for resource in definition.config.selected}
        try:
            rows = table_rows(warehouse, instance, days, context.log.info)
        except WarehouseBusy as error:
            return SensorResult(skip_reason=f"The warehouse is busy ({error}); the next tick compares.")
        except WarehouseFileError as error:
            return SensorResult(skip_reason=f"The warehouse cannot be opened ({error}); the next tick compares.")
        result = compare(instance, days, totals, rows, today=datetime.now(timezone.utc).date().isoformat())
        for failed in failed_launches(context.instance, result):
            context.log.warning(failed)
        return result

    return reconcile


def table_rows(warehouse: WarehouseResource, instance: ApiInstance, days: Sequence[str],
               say: Callable[[str], None]) -> dict[str, dict]:
    """Each table's rows per day of `days`; none for a table not created yet, nor for any table when
    the DuckDB file is missing (said through `say`: a sensor never creates it)."""
    definition = instance.definition
    target = warehouse.target()
    if target.destination.single_writer and not target.duckdb_path.exists():
        say(f"The DuckDB file {target.duckdb_path} is missing: no run has loaded it yet (or ANALYTICS_DUCKDB_PATH "
            "names another file than the runs write); every table counts as empty.")
        return {resource.name: {} for resource in definition.config.selected}
    window = Window.of_days(days[0], days[-1])
    with warehouse.sql(instance.reconcile_sensor, wait=SENSOR_LOCK_WAIT, instance=instance) as sql:
        return {
            resource.name: sql.rows_per_day(table(resource.name), CURSOR_AT, window)
            if resource.cursor and sql.has_table(table(resource.name)) else {}
            for resource in definition.config.selected
        }


def compare(instance: ApiInstance, days: Sequence[str], totals: dict[str, dict[str, Optional[int]]],
            rows: dict[str, dict[str, int]], today: str) -> SensorResult:
    """Observations of the API's totals, and runs for the stretches of days a table is behind on.
    A resource whose pages carry no total on some day has nothing to compare (an empty first page
    counts as a total of 0, so only the days with records tell).

    A stretch is launched at most once a day (the run key is the stretch and `today`): totals that
    change every tick, a hostile API's or a busy one's, cannot launch a run every hour, and a run
    that failed is not launched again before tomorrow (`failed_launches` reports it)."""
    selected = instance.definition.config.selected
    counted = [resource for resource in selected if None not in totals[resource.name].values()]
    if not counted:
        paths = ", ".join(f"`{total_path(resource)}` ({resource.name})" for resource in selected if countable(resource))
        return SensorResult(skip_reason=(
            f"The API's pages carry no record total at {paths}, so late records cannot be counted: set the "
            "paginator's `total_path` (offset) or `records_total_path` (the others) in the API config to where "
            "the API says how many records a window holds. The daily schedule still syncs each day." if paths else
            "No resource can be counted by day (each has no window with an end, or is read for each record of a "
            "parent), so late records cannot be found by comparing totals. The daily schedule still syncs each day."))
    observations, differing, ahead = [], set(), set()
    for resource in counted:
        for day in days:
            total, held = totals[resource.name][day], rows[resource.name].get(day, 0)
            observations.append(AssetObservation(asset_key=endpoint_key(instance, resource.name), partition=day, metadata={
                "api_total": MetadataValue.int(total), "table_rows": MetadataValue.int(held)}))
            if held < total:
                differing.add(day)
            elif held > total:
                ahead.add(day)
    requests = []
    for first, last in stretches(days, differing):
        key = f"{instance.reconcile_sensor}:{first}..{last}:{today}"
        tags = {"analytics/reconcile": "late records", STRETCH_TAG: f"{first}..{last}"}
        if first == last:
            requests.append(RunRequest(run_key=key, partition_key=first, tags=tags))
        else:
            requests.append(RunRequest(run_key=key, tags={**tags, RANGE_START: first, RANGE_END: last}))
    if requests:
        return SensorResult(run_requests=requests, asset_events=observations)
    uncounted = [resource.name for resource in selected if resource not in counted]
    notes = "".join([
        f"; {len(ahead)} day(s) hold more rows than the API counts now (records updated upstream move to a later "
        "day when that day is synced; records deleted upstream stay)" if ahead else "",
        f"; not compared, their pages carry no total: {', '.join(uncounted)}" if uncounted else "",
    ])
    return SensorResult(asset_events=observations, skip_reason=(
        f"Every table holds at least the API's total on each of {days[0]}..{days[-1]}: nothing to sync{notes}."))


def failed_launches(instance: DagsterInstance, result: SensorResult) -> list[str]:
    """What to say of the runs this sensor launched earlier today for the stretches it asks for
    again: those that failed are not launched again before tomorrow."""
    said = []
    for request in result.run_requests or []:
        stretch = request.tags[STRETCH_TAG]
        for run in instance.get_runs(RunsFilter(tags={STRETCH_TAG: stretch}, statuses=[DagsterRunStatus.FAILURE]),
                                     limit=5):
            if run.tags.get("dagster/run_key") == request.run_key:
                said.append(f"The sync of {stretch} that this sensor launched today (run {run.run_id}) failed: it is "
                            "not launched again before tomorrow. Read that run's error, or launch the days by hand.")
    return said


def build_automation_sensor(instance: ApiInstance, models: AssetSelection) -> AutomationConditionSensorDefinition:
    """Dagster's sensor for automation conditions, on by default (Dagster's own starts stopped)."""
    return AutomationConditionSensorDefinition(instance.automation_sensor, target=models,
                                               default_status=DefaultSensorStatus.RUNNING,
                                               description="Materializes the models when the tables they read change.")


FRESHNESS_INTERVAL_SECONDS = 30
RECHECK_TAG = "analytics/checks_left_by_failed_runs"  # the failed runs whose checks a run judges again


def build_freshness_sensor(instance: ApiInstance, freshness_checks: Sequence[AssetChecksDefinition],
                           checks: Sequence[AssetChecksDefinition] = ()) -> SensorDefinition:
    """`<name>_freshness`: the health of the API's tables judged from their data, whatever the last
    run did. It runs Dagster's freshness-check sensor (which judges a freshness check when it can
    have turned overdue, or when the table changed after it failed), and judges again, on the
    tables as they are, every check of the API (`checks`) that a failed run planned and never
    ran: Dagster records such a check as "execution failed" (a skipped step of a failed run
    counts as failed), which would paint a table red that the failed sync never changed. Runs this
    sensor launched are not judged again, so a check that cannot run is not retried each tick."""
    dagster_sensor = build_sensor_for_freshness_checks(freshness_checks=freshness_checks, name=instance.freshness_sensor)
    keys = sorted({spec.key for definition in [*checks, *freshness_checks] for spec in definition.check_specs},
                  key=lambda key: key.to_user_string())

    @sensor(name=instance.freshness_sensor, minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
            asset_selection=AssetSelection.checks(*checks, *freshness_checks), default_status=DefaultSensorStatus.RUNNING,
            description=f"Judges the {instance.name} API's table freshness from the data ({FRESHNESS_RULE}), and "
            "judges again, on the tables as they are, the checks a failed run left unjudged: a sync that fails "
            "and changes nothing leaves the tables' health as the data has it.")
    def freshness(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        due = dagster_sensor(context)
        failed_runs = left_unjudged(context.instance, keys, context.sensor_name)
        wanted = set(due.asset_check_keys or []) if isinstance(due, RunRequest) else set()
        for run_id, left in failed_runs.items():
            context.log.info(f"Run {run_id} failed before judging {', '.join(k.to_user_string() for k in left)}: "
                             "judging them on the tables as they are.")
            wanted.update(left)
        if not wanted:
            return due if isinstance(due, SkipReason) else SkipReason("Nothing to judge.")
        tags = {RECHECK_TAG: ",".join(sorted(failed_runs))[:255]} if failed_runs else {}
        return RunRequest(asset_check_keys=sorted(wanted, key=lambda key: key.to_user_string()), tags=tags)

    return freshness


def left_unjudged(instance: DagsterInstance, keys: Sequence[AssetCheckKey], sensor_name: str) -> dict[str, list]:
    """The checks among `keys` whose latest execution is one a failed run planned and never
    recorded (its step skipped after an upstream failure, or never reached), by run; those of
    runs this sensor launched, and those of assets never materialized, left out."""
    left: dict[str, list] = {}
    for key, summary in instance.event_log_storage.get_asset_check_summary_records(list(keys)).items():
        latest = summary.last_check_execution_record
        if latest is None or latest.status != AssetCheckExecutionRecordStatus.PLANNED:
            continue
        run = instance.get_run_by_id(latest.run_id)
        if run is None or run.status != DagsterRunStatus.FAILURE or run.tags.get(SENSOR_NAME_TAG) == sensor_name:
            continue
        if instance.get_latest_materialization_event(key.asset_key) is None:
            continue  # nothing to judge yet: the asset has never been materialized
        left.setdefault(run.run_id, []).append(key)
    return left
