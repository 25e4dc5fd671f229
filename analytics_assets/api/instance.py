"""One API of the code location: its definition, the names everything of it is known by, and where
its run-time values come from.

A code location holds any number of APIs (components in the defs folder), each independent: its
own schema, asset keys, job, schedule, sensors, resource and dlt pipeline. Every name is derived
from the API's `name` here, once, so that two APIs share none: names are lowercase identifiers
that neither end in `_api` nor hold `_staging` (so `<a>` is never `<b>_api`, an asset key prefix of
another API, nor `<b>_staging...`, a staging dataset of dlt's), and every other name is `<name>`
plus a suffix of its own kind.

The built-in API is named `analytics`, and its names are the ones this project always had:
`analytics/resource_name`, `analytics_job`, `analytics_daily`, the resource `analytics_api`, the
pipeline `analytics_assets`. Its URLs and credentials come from ANALYTICS_API_BASE_URL and the
rest, as they always did; another API names its own variables (`{{ env.ACME_CLIENT_ID }}`), and
never reads those of the built-in one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..settings import Settings
from .definition import ApiDefinition

DEFAULT_NAME = "analytics"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Values an API takes from variables its file names, read when a run starts (never at load).
RUN_TIME_SOURCES = ("api_base_url", "token_url", "client_id", "client_secret")
# Settings an API's file may fix for itself; a deployment's ANALYTICS_* variable applies where it does not.
PER_API = ("partitions_start", "reconcile_days")


def name_problem(name: str) -> Optional[str]:
    """Why `name` cannot name an API, or None."""
    if not isinstance(name, str) or not NAME.match(name):
        return ("must be lowercase letters, digits and underscores, starting with a letter, at most 40 "
                f"characters (it is the schema and the asset key prefix); got {name!r}")
    if name.endswith("_api"):
        return f"must not end in `_api` (`<name>_api/...` are another API's endpoint assets); got {name!r}"
    if "_staging" in name:
        return f"must not hold `_staging` (dlt names its staging schemas `<name>_staging`); got {name!r}"
    return None


@dataclass(frozen=True)
class ApiInstance:
    """An API as the code location holds it. `variables` maps a run-time source (RUN_TIME_SOURCES)
    to the variable it is read from; `values` holds what the API's file fixes (PER_API, and the
    run tunables' defaults), above the deployment's ANALYTICS_* variables and below a run's launch
    config."""

    definition: ApiDefinition
    name: str = DEFAULT_NAME
    variables: Mapping[str, Optional[str]] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem:
            raise ValueError(f"name {problem}")

    @property
    def is_built_in(self) -> bool:
        return self.name == DEFAULT_NAME

    # --- names ---------------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        """The schema its tables live in."""
        return self.name

    @property
    def table_group(self) -> str:
        return self.name

    @property
    def api_group(self) -> str:
        """The group, and the key prefix, of its endpoints (external assets)."""
        return f"{self.name}_api"

    @property
    def resource_key(self) -> str:
        """Its Dagster resource: the run tunables a launch may set."""
        return f"{self.name}_api"

    @property
    def job_name(self) -> str:
        return f"{self.name}_job"

    @property
    def schedule_name(self) -> str:
        return f"{self.name}_daily"

    @property
    def reconcile_sensor(self) -> str:
        return f"{self.name}_reconcile"

    @property
    def freshness_sensor(self) -> str:
        return f"{self.name}_freshness"

    @property
    def automation_sensor(self) -> str:
        return f"{self.name}_automation"

    @property
    def tables_op(self) -> str:
        return f"{self.name}_tables"

    @property
    def pipeline_name(self) -> str:
        """dlt's pipeline: its working folder and the state dlt keeps in the schema."""
        return f"{self.name}_assets"

    # --- settings ------------------------------------------------------------------------------
    def settings(self, env: Optional[Mapping[str, str]] = None, **launch: Any) -> Settings:
        """The settings of a run of this API: `launch` (a run's launch config), then the API's own
        values, then the deployment's environment, then the defaults; its URLs and credentials from
        the variables it names, and dlt's secrets `<name>.client_id`/`<name>.client_secret`."""
        secret_keys = {} if self.is_built_in else {key: f"{self.name}.{key}" for key in ("client_id", "client_secret")}
        return Settings.from_env(os.environ if env is None else env, variables=self.variables,
                                 secret_keys=secret_keys,
                                 **{**self.values, **{name: value for name, value in launch.items() if value is not None}})

    def load_settings(self, env: Optional[Mapping[str, str]] = None) -> Settings:
        """What loading the code location reads for this API: the first partition (and the
        destination and the backfill policy, the deployment's)."""
        return Settings.from_env(os.environ if env is None else env,
                                 only=("destination", "partitions_start", "backfill_days_per_run"),
                                 **{name: value for name, value in self.values.items() if name == "partitions_start"})
