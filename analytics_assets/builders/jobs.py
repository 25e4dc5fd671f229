"""The job people launch and the schedule that keeps yesterday's partition fresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from .assets import TABLE_GROUP

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

JOB_NAME = "analytics_job"


def build_job() -> "UnresolvedAssetJobDefinition":
    return define_asset_job(
        JOB_NAME,
        selection=AssetSelection.groups(TABLE_GROUP),
        description="Sync the analytics API into the warehouse and rebuild the daily models for the chosen days.",
    )


def build_daily_schedule(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    """Each day at 00:15 UTC, materialize the day that just ended (late records have had a
    quarter of an hour to land; later ones are found by the `analytics_reconcile` sensor). Running
    from the moment the code location loads."""
    return build_schedule_from_partitioned_job(
        job, name="analytics_daily", hour_of_day=0, minute_of_hour=15, description=build_daily_schedule.__doc__,
        default_status=DefaultScheduleStatus.RUNNING,
    )
