"""The code location: everything assembled in one place. Importing it reads no secret, opens no
connection and writes no file; runs resolve credentials and paths from their resources.

The destination ($ANALYTICS_DESTINATION, default duckdb) is read when the definitions are built:
it names the tables' kind in the UI and picks the writer pool.
"""

from __future__ import annotations

from typing import Optional

from dagster import Definitions, in_process_executor

from .api_config import resource_names
from .assets import DESCRIPTION_SETTINGS, AnalyticsDltResource, build_table_assets, endpoint_specs
from .checks import build_checks
from .jobs import build_daily_schedule, build_job
from .models import build_summary_asset
from .partitions import daily_partitions
from .resources import AnalyticsApiResource, WarehouseResource
from .settings import destination_from_env


partitions_def = daily_partitions()
analytics_job = build_job(partitions_def)


def build_defs(destination: Optional[str] = None) -> Definitions:
    destination = destination or destination_from_env()
    return Definitions(
        assets=[
            *endpoint_specs(),
            build_table_assets(partitions_def, destination),
            build_summary_asset(partitions_def, destination),
        ],
        asset_checks=[
            check for name in resource_names(DESCRIPTION_SETTINGS) for check in build_checks(name, destination)
        ],
        jobs=[analytics_job],
        schedules=[build_daily_schedule(analytics_job)],
        resources={
            "dlt": AnalyticsDltResource(),
            "analytics_api": AnalyticsApiResource(),
            "warehouse": WarehouseResource(destination=destination),
        },
        # One process per run: a step per subprocess would cost seconds per step and buys nothing,
        # since the steps of a run touch the warehouse one after another anyway.
        executor=in_process_executor,
    )


defs = build_defs()
