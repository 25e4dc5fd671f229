"""The code location: everything assembled in one place. Importing it reads no secret, opens no
connection and writes no file; runs resolve credentials and paths from their resources."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from .api_config import resource_names
from .assets import DESCRIPTION_SETTINGS, AnalyticsDltResource, build_table_assets, endpoint_specs
from .checks import build_checks
from .jobs import build_daily_schedule, build_job
from .models import build_summary_asset
from .partitions import daily_partitions
from .resources import AnalyticsApiResource, DuckDBDestination

partitions_def = daily_partitions()
analytics_job = build_job(partitions_def)

defs = Definitions(
    assets=[*endpoint_specs(), build_table_assets(partitions_def), build_summary_asset(partitions_def)],
    asset_checks=[check for name in resource_names(DESCRIPTION_SETTINGS) for check in build_checks(name)],
    jobs=[analytics_job],
    schedules=[build_daily_schedule(analytics_job)],
    resources={
        "dlt": AnalyticsDltResource(),
        "analytics_api": AnalyticsApiResource(),
        "warehouse": DuckDBDestination(),
    },
    # One process per run: a step per subprocess would cost seconds per step and buys nothing,
    # since every step that touches the DuckDB file runs alone in the writer pool anyway.
    executor=in_process_executor,
)
