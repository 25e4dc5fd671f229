"""An API's job people launch and the schedule that keeps yesterday's partition fresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from dagster import (
    AssetChecksDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
    schedule,
)

from ..api.instance import ApiInstance

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

JOB_NAME = "analytics_job"  # the built-in API's; another API's is `<name>_job`
DAILY_CRON = "15 0 * * *"


def build_job(instance: ApiInstance, freshness_checks: Sequence[AssetChecksDefinition] = ()) -> "UnresolvedAssetJobDefinition":
    """The API's tables, their checks and its models, without the freshness checks: those are
    judged by the `<name>_freshness` sensor from the data, so a sync that fails leaves them as they
    were (a step of a failed run is recorded as failed, whatever it would have found)."""
    selection = AssetSelection.groups(instance.table_group)
    if freshness_checks:
        selection = selection - AssetSelection.checks(*freshness_checks)
    return define_asset_job(
        instance.job_name,
        selection=selection,
        description=f"Sync the {instance.name} API into the warehouse for the chosen days, check the tables and "
        "rebuild its daily models.",
    )


def build_daily_schedule(instance: ApiInstance, job: "UnresolvedAssetJobDefinition",
                         partitions_def: TimeWindowPartitionsDefinition, cron: str = DAILY_CRON,
                         running: bool = True) -> ScheduleDefinition:
    """Each day at 00:15 UTC (or the API's own `schedule`), materialize the day that just ended
    (late records have had a quarter of an hour to land; later ones are found by the
    `<name>_reconcile` sensor). Running from the moment the code location loads, unless the API's
    file says `schedule_running: false`."""
    status = DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED
    description = (build_daily_schedule.__doc__ or "").replace("<name>", instance.name)
    if cron == DAILY_CRON:  # the built-in API's schedule, as it always was
        return build_schedule_from_partitioned_job(
            job, name=instance.schedule_name, hour_of_day=0, minute_of_hour=15, description=description,
            default_status=status,
        )

    # Dagster derives a partitioned job's schedule from its partitions, at a minute and hour of the
    # day only: another cron asks for the last day that has ended when it ticks.
    @schedule(name=instance.schedule_name, cron_schedule=cron, job=job, execution_timezone="UTC",
              description=description, default_status=status)
    def daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        key = partitions_def.get_last_partition_key(current_time=context.scheduled_execution_time)
        return RunRequest(partition_key=key) if key else SkipReason("No daily partition has ended yet.")

    return daily
