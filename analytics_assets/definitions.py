"""The code location: everything assembled in one place.

Importing this module reads nothing, opens no connection and writes no file. Dagster loads the
definitions (`defs`, a lazy `@definitions` function) when it loads the code location; that reads the
deployment's settings once: the destination (it names the tables' kind and picks the writer pool),
the first partition, and the API definition (one table, asset and set of checks per resource).
Runs resolve credentials and paths at run time, from the same environment.
"""

from __future__ import annotations

import warnings
from typing import Optional

from dagster import (
    AssetSelection,
    BetaWarning,
    Definitions,
    SupersessionWarning,
    definitions,
    in_process_executor,
    with_source_code_references,
)

from .api.definition import load_definition
from .builders.assets import AnalyticsDltResource, build_table_assets, daily_partitions, endpoint_specs
from .builders.checks import build_checks, build_freshness_checks
from .builders.jobs import JOB_NAME, build_daily_schedule, build_job
from .builders.models import SUMMARY_KEY, build_summary
from .builders.sensors import build_automation_sensor, build_freshness_sensor, build_reconcile_sensor
from .builders.resources import AnalyticsApiResource, WarehouseResource
from .settings import Settings
from .warehouse.destinations import DESTINATIONS

DEFINITION_SETTINGS = ("api_config", "destination", "partitions_start")  # what loading the code location reads


def build_defs(settings: Optional[Settings] = None) -> Definitions:
    with warnings.catch_warnings():
        # Chosen on purpose, not to be repeated at every load: Dagster's freshness checks are
        # "superseded" by FreshnessPolicy, which shows no check (a red check is what we want), and
        # code references are "beta".
        warnings.simplefilter("ignore", SupersessionWarning)
        warnings.simplefilter("ignore", BetaWarning)
        return _build_defs(settings or Settings.from_env(only=DEFINITION_SETTINGS))


def _build_defs(settings: Settings) -> Definitions:
    definition = load_definition(settings)
    destination = DESTINATIONS[settings.destination]
    partitions_def = daily_partitions(settings)
    summary = build_summary(definition, destination)
    freshness = build_freshness_checks(definition)
    job = build_job()
    return Definitions(
        assets=with_source_code_references([
            *endpoint_specs(definition, partitions_def),
            build_table_assets(definition, partitions_def, destination),
            *summary[:1],
        ]),
        asset_checks=[*(check for resource in definition.config.selected for check in build_checks(resource, destination)),
                      *summary[1:], *freshness],
        jobs=[job],
        schedules=[build_daily_schedule(job)],
        sensors=[
            build_reconcile_sensor(definition, partitions_def, JOB_NAME),
            build_freshness_sensor(freshness),
            *([build_automation_sensor(AssetSelection.assets(SUMMARY_KEY))] if summary else []),
        ],
        resources={"dlt": AnalyticsDltResource(), "analytics_api": AnalyticsApiResource(), "warehouse": WarehouseResource()},
        # One process per run: a step per subprocess would cost seconds per step and buys nothing,
        # since the steps of a run touch the warehouse one after another anyway.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    return build_defs()
