"""The code location: the defs folder, loaded as Dagster loads it, and what the project adds once.

Importing this module reads nothing, opens no connection and writes no file. Dagster loads the
definitions (`defs`, a lazy `@definitions` function) when it loads the code location:
`load_from_defs_folder` builds every API of `analytics_assets/defs/` (a `RestApiComponent` each,
`analytics/` being the built-in one) and anything else scaffolded there, and the project adds
what all APIs share, once: the warehouse, dagster-dlt's resource and the executor. Loading reads
the deployment's destination and each API's first partition and definition (ANALYTICS_API_CONFIG
for the built-in one); runs resolve URLs, credentials and paths at run time.

One bad component fails the whole code location (Dagster 1.13), with a message naming its
`defs.yaml`, the line and the key.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from dagster import (
    BetaWarning,
    Definitions,
    SupersessionWarning,
    definitions,
    in_process_executor,
    load_from_defs_folder,
)

from .builders.assets import AnalyticsDltResource
from .builders.resources import WarehouseResource
from .settings import Settings

LOCATION_SETTINGS = ("destination", "partitions_start", "backfill_days_per_run")  # read when the code location loads, besides each API's file
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # holds pyproject.toml ([tool.dg.project] defs_module)


def shared_defs() -> Definitions:
    """What every API shares, added once: resource keys are global, so an API's own are `<name>_api`."""
    return Definitions(
        resources={"dlt": AnalyticsDltResource(), "warehouse": WarehouseResource()},
        # One process per run: a step per subprocess would cost seconds per step and buys nothing,
        # since the steps of a run touch the warehouse one after another anyway.
        executor=in_process_executor,
    )


def build_defs(project_root: Path = PROJECT_ROOT) -> Definitions:
    """The code location of the project at `project_root` (this one by default; a test's copy)."""
    with warnings.catch_warnings():
        # Chosen on purpose, not to be repeated at every load: Dagster's freshness checks are
        # "superseded" by FreshnessPolicy, which shows no check (a red check is what we want), and
        # code references are "beta".
        warnings.simplefilter("ignore", SupersessionWarning)
        warnings.simplefilter("ignore", BetaWarning)
        # The deployment's own settings fail here, once, naming the variable (rather than inside the
        # first API that reads them).
        Settings.from_env(only=LOCATION_SETTINGS)
        return Definitions.merge(shared_defs(), load_from_defs_folder(path_within_project=project_root))


@definitions
def defs() -> Definitions:
    return build_defs()
