"""Everything of one API, assembled: what its component (`components/rest_api.py`) builds.

Each API's definitions name only what is its own (api/instance.py derives every name from the
API's `name`): its endpoints and tables, their checks, its model when it asks for one, its job,
schedule and sensors, and its resource `<name>_api` (the run tunables, with the API's own
defaults). What every API shares, the warehouse, dagster-dlt's resource and the executor, the code
location adds once (`definitions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetSelection, Definitions, with_source_code_references

from ..api.instance import ApiInstance
from ..warehouse.destinations import DESTINATIONS
from .assets import build_table_assets, daily_partitions, endpoint_specs
from .checks import build_checks, build_freshness_checks
from .jobs import DAILY_CRON, build_daily_schedule, build_job
from .models import build_summary, summary_key
from .resources import api_resource
from .sensors import build_automation_sensor, build_freshness_sensor, build_reconcile_sensor


@dataclass(frozen=True)
class Automation:
    """How an API keeps itself fresh: its schedule's cron (UTC) and whether it starts running, and
    whether it has the daily summary model (the built-in API's)."""

    cron: str = DAILY_CRON
    schedule_running: bool = True
    daily_summary: bool = False


def build_api_defs(instance: ApiInstance, automation: Automation = Automation()) -> Definitions:
    """Reads, at load, the deployment's destination and the API's first partition; nothing else."""
    settings = instance.load_settings()
    destination = DESTINATIONS[settings.destination]
    partitions_def = daily_partitions(settings)
    summary = build_summary(instance, destination) if automation.daily_summary else []
    freshness = build_freshness_checks(instance)
    job = build_job(instance, freshness)
    checks = [*(check for resource in instance.definition.config.selected
                for check in build_checks(instance, resource, destination)), *summary[1:]]
    return Definitions(
        assets=with_source_code_references([
            *endpoint_specs(instance, partitions_def),
            build_table_assets(instance, partitions_def, destination, settings.backfill_days_per_run),
            *summary[:1],
        ]),
        asset_checks=[*checks, *freshness],
        jobs=[job],
        schedules=[build_daily_schedule(instance, job, partitions_def, automation.cron, automation.schedule_running)],
        sensors=[
            build_reconcile_sensor(instance, partitions_def),
            build_freshness_sensor(instance, freshness, [*checks, *freshness]),
            *([build_automation_sensor(instance, AssetSelection.assets(summary_key(instance)))] if summary else []),
        ],
        resources={instance.resource_key: api_resource(instance)},
    )
