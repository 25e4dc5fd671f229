"""The code location: everything assembled in one place.

Importing this module reads nothing, opens no connection and writes no file. Dagster loads the
definitions (`defs`, a lazy `@definitions` function) when it loads the code location; that reads the
deployment's settings once: the destination (it names the tables' kind and picks the writer pool),
the first partition, and the API definition (one table, asset and set of checks per resource).
Runs resolve credentials and paths at run time, from the same environment.
"""

from __future__ import annotations

from typing import Optional

from dagster import Definitions, definitions, in_process_executor

from .api.definition import load_definition
from .defs.assets import AnalyticsDltResource, build_table_assets, daily_partitions, endpoint_specs
from .defs.checks import build_checks
from .defs.jobs import build_daily_schedule, build_job
from .defs.models import build_summary_asset
from .defs.resources import AnalyticsApiResource, WarehouseResource
from .settings import Settings
from .warehouse.sql import DESTINATIONS

DEFINITION_SETTINGS = ("api_config", "destination", "partitions_start")  # what loading the code location reads


def build_defs(settings: Optional[Settings] = None) -> Definitions:
    settings = settings or Settings.from_env(only=DEFINITION_SETTINGS)
    definition = load_definition(settings)
    destination = DESTINATIONS[settings.destination]
    partitions_def = daily_partitions(settings)
    summary = build_summary_asset(definition, partitions_def, destination)
    job = build_job()
    return Definitions(
        assets=[
            *endpoint_specs(definition),
            build_table_assets(definition, partitions_def, destination),
            *([summary] if summary else []),
        ],
        asset_checks=[check for endpoint in definition.endpoints for check in build_checks(endpoint, destination)],
        jobs=[job],
        schedules=[build_daily_schedule(job)],
        resources={"dlt": AnalyticsDltResource(), "analytics_api": AnalyticsApiResource(), "warehouse": WarehouseResource()},
        # One process per run: a step per subprocess would cost seconds per step and buys nothing,
        # since the steps of a run touch the warehouse one after another anyway.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    return build_defs()
