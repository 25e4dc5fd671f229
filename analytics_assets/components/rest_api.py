"""`RestApiComponent`: an API is a component, a folder of the defs folder holding its `defs.yaml`.

Its attributes are the rest_api config dict this project accepts (`client`, `resource_defaults`,
`resources`, checked by `api/config.py`, in dlt's vocabulary and kept as written: dlt's own
`{placeholders}` are not templates), and what is the API's own: its `name` (its schema, asset key
prefix, group, job, schedule, sensors and resource, see api/instance.py), where its URLs and
credentials come from (`{{ env.X }}`, read when a run starts), its first partition, schedule,
reconcile days and the run tunables' defaults.

Every mistake in the file fails the code location's load with the file, the line and the key path
(Dagster 1.13 fails the whole code location on one bad component).

(No `from __future__ import annotations` here: Dagster reads the fields' annotations at run time.)
"""

import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import dagster as dg
from pydantic import ValidationError

from ..api import config as api_config
from ..api.definition import ApiDefinition
from ..api.instance import RUN_TIME_SOURCES, ApiInstance, name_problem
from ..builders.api import Automation, build_api_defs
from ..builders.jobs import DAILY_CRON
from ..builders.resources import LAUNCH_FIELDS
from ..errors import SettingsError
from ..settings import Settings, explain
from .located import KeyPart, located
from .scaffold import RestApiScaffolder
from .templates import holds_template, variable_of

CONFIG_KEYS = ("client", "resource_defaults", "resources")
READ_FROM = "the component"  # the config checker's `read_from`, replaced by the file and line


def _as_written(context: dg.ResolutionContext, value: Any) -> Any:
    """The value as the file holds it: no template rendered."""
    return value


def _raw(model_field_type: Any, description: str) -> dg.Resolver:
    return dg.Resolver(_as_written, model_field_type=model_field_type, inject_before_resolve=False,
                       description=description)


def _boolean(context: dg.ResolutionContext, value: Any) -> bool:
    if not isinstance(value, bool):
        raise located(context, f"must be true or false; got {value!r}")
    return value


def _name(context: dg.ResolutionContext, value: Any) -> str:
    problem = name_problem(value)
    if problem:
        raise located(context, problem)
    return value


def _variable(secret: bool) -> Any:
    def resolve(context: dg.ResolutionContext, value: Any) -> Optional[str]:
        if value is None:
            return None
        variable = variable_of(value)
        if variable is None:
            if secret:
                raise located(context, "must be a variable's template, e.g. \"{{ env.ACME_CLIENT_ID }}\": a credential "
                              "never goes in the file (it is checked in, logged and shown); the value written "
                              "here is not repeated", secret=True)
            raise located(context, "must be a variable's template, e.g. \"{{ env.ACME_API_BASE_URL }}\", read when "
                          "a run starts (a fixed URL goes in `client.base_url` / `client.auth.token_url`)")
        return variable
    return resolve


def _setting(name: str, context: dg.ResolutionContext, value: Any, path: tuple[KeyPart, ...] = ()) -> Any:
    """`value` checked as the setting `name` is (same type and bounds), named by its key path."""
    try:
        return getattr(Settings(**{name: value}), name)
    except ValidationError as error:
        message = explain(error, {name: "the value"})
        raise located(context, message[len("the value "):].rstrip("."), path) from None


def _partitions_start(context: dg.ResolutionContext, value: Any) -> Optional[date]:
    return None if value is None else _setting("partitions_start", context, str(value))


def _reconcile_days(context: dg.ResolutionContext, value: Any) -> Optional[int]:
    return None if value is None else _setting("reconcile_days", context, value)


def _cron(context: dg.ResolutionContext, value: Any) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not isinstance(value, str) or not is_valid_cron_string(value):
        raise located(context, f"must be a cron string (UTC) like \"{DAILY_CRON}\"; got {value!r}")
    return value


def _run_defaults(context: dg.ResolutionContext, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise located(context, "must be a mapping of run tunables, e.g. {max_concurrency: 4}")
    for name, given in value.items():
        if name not in LAUNCH_FIELDS:
            raise located(context, f"`{name}` is not a run tunable; expected one of {', '.join(LAUNCH_FIELDS)}", (name,))
    return {name: _setting(name, context, given, (name,)) for name, given in value.items()}


def _config_file(context: dg.ResolutionContext, value: Any) -> Optional[tuple[Path, str]]:
    """The file (and how to name it) whose rest_api config replaces the one written here: a path
    beside the file, or `{{ env.X }}` read when the code location loads (a path is no secret)."""
    if value is None:
        return None
    variable = variable_of(value)
    if variable is not None:
        given = os.environ.get(variable)
        return (Path(given), f"{variable}={given}") if given else None
    if not isinstance(value, str) or not value.strip():
        raise located(context, "must be a path (beside this file) or a variable's template, e.g. "
                      "\"{{ env.ANALYTICS_API_CONFIG }}\"")
    path = context.resolve_source_relative_path(value)
    return path, f"config_file={value}"


@dg.scaffold_with(RestApiScaffolder)
@dataclass
class RestApiComponent(dg.Component, dg.Resolvable):
    """An OAuth2 REST API synced into the warehouse with dlt: a dlt rest_api config, one table per resource.

    Each instance is its own: the schema `<name>`, assets `<name>/<resource>` downstream of
    `<name>_api/<resource>`, their checks, the job `<name>_job`, the schedule `<name>_daily`, the
    sensors `<name>_reconcile` and `<name>_freshness`, the resource `<name>_api` (its run tunables) and
    its own rate limiter. URLs and credentials are `{{ env.X }}` templates, read when a run starts.
    """

    name: Annotated[str, dg.Resolver(
        _name, model_field_type=str, inject_before_resolve=False,
        description="The API's name: its schema, the prefix of its asset keys (`<name>/<resource>`, "
        "`<name>_api/<resource>`), its group, and the first part of its job, schedule, sensor and resource names.")]
    client_id: Annotated[str, dg.Resolver(
        _variable(secret=True), model_field_type=str, inject_before_resolve=False,
        description="The variable holding the OAuth2 client id, as \"{{ env.ACME_CLIENT_ID }}\" (read when a run "
        "starts; when unset, dlt's secret `<name>.client_id`). A value written here is refused.")]
    client_secret: Annotated[str, dg.Resolver(
        _variable(secret=True), model_field_type=str, inject_before_resolve=False,
        description="The variable holding the OAuth2 client secret, as \"{{ env.ACME_CLIENT_SECRET }}\".")]
    resources: Annotated[Optional[list[Any]], _raw(
        Optional[list[Any]], "dlt rest_api `resources`: one table each (docs/api-config.md).")] = None
    client: Annotated[Optional[dict[str, Any]], _raw(
        Optional[dict[str, Any]], "dlt rest_api `client`: base_url, headers, auth (no credentials).")] = None
    resource_defaults: Annotated[Optional[dict[str, Any]], _raw(
        Optional[dict[str, Any]], "dlt rest_api `resource_defaults`, merged under each resource.")] = None
    config_file: Annotated[Optional[tuple[Path, str]], dg.Resolver(
        _config_file, model_field_type=Optional[str], inject_before_resolve=False,
        description="A YAML or JSON file whose client/resource_defaults/resources replace those written here: a "
        "path beside this file, or \"{{ env.X }}\" (read when the code location loads; unset: those written here).")
    ] = None
    base_url: Annotated[Optional[str], dg.Resolver(
        _variable(secret=False), model_field_type=Optional[str], inject_before_resolve=False,
        description="A variable that, when set at run time, wins over `client.base_url`: \"{{ env.ACME_API_BASE_URL }}\".")
    ] = None
    token_url: Annotated[Optional[str], dg.Resolver(
        _variable(secret=False), model_field_type=Optional[str], inject_before_resolve=False,
        description="A variable that, when set at run time, wins over `client.auth.token_url`.")] = None
    partitions_start: Annotated[Optional[date], dg.Resolver(
        _partitions_start, model_field_type=Optional[str], inject_before_resolve=False,
        description="The first daily partition, e.g. \"2026-11-01\" (default: ANALYTICS_PARTITIONS_START).")] = None
    schedule: Annotated[str, dg.Resolver(
        _cron, model_field_type=str, inject_before_resolve=False,
        description="When `<name>_daily` syncs the day that ended (cron, UTC).")] = DAILY_CRON
    schedule_running: Annotated[bool, dg.Resolver(
        _boolean, model_field_type=bool, inject_before_resolve=False,
        description="Whether the schedule runs from the moment the code location loads.")] = True
    reconcile_days: Annotated[Optional[int], dg.Resolver(
        _reconcile_days, model_field_type=Optional[int], inject_before_resolve=False,
        description="Days back `<name>_reconcile` compares with the API's totals (default: "
        "ANALYTICS_RECONCILE_DAYS).")] = None
    run_defaults: Annotated[dict[str, Any], dg.Resolver(
        _run_defaults, model_field_type=Optional[dict[str, Any]], inject_before_resolve=False,
        description="The run tunables' defaults for this API (max_concurrency, max_requests_per_second, ...); a "
        "run's launch config still wins.")] = field(default_factory=dict)
    daily_summary: Annotated[bool, dg.Resolver(
        _boolean, model_field_type=bool, inject_before_resolve=False,
        description="The daily summary model of `resource_name` (the built-in API's).")] = False

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        return dg.ComponentTypeSpec(
            owners=["team:analytics-engineering"], tags=["dlt", "rest_api", "oauth2"],
        )

    @classmethod
    def resolve_from_model(cls, context: dg.ResolutionContext, model: Any) -> "RestApiComponent":
        """The fields, then the rest_api config checked as a whole (once resolved, every error
        names the file, the line and the key path)."""
        component = super().resolve_from_model(context, model)
        component._definition = component._checked_definition(context)
        return component

    def _checked_definition(self, context: Optional[dg.ResolutionContext]) -> ApiDefinition:
        def fail(message: str, path: tuple[KeyPart, ...] = (), secret: bool = False) -> Exception:
            return located(context, message, path, secret) if context is not None else SettingsError(message)

        if self.config_file is not None:
            path, read_from = self.config_file
            try:
                return ApiDefinition(api_config.validate(api_config.read_file(path, read_from), read_from), read_from)
            except SettingsError as error:
                raise fail(str(error), ("config_file",)) from None
        raw = {key: getattr(self, key) for key in CONFIG_KEYS if getattr(self, key) is not None}
        if self.resources is None:
            raise fail("is required (the API's endpoints; or `config_file`, a file holding the config)",
                       ("resources",))
        auth = (self.client or {}).get("auth")
        for key in api_config.CREDENTIAL_KEYS:
            if isinstance(auth, dict) and key in auth:
                raise fail(f"credentials never go in the file (it is checked in, logged and shown); name a variable "
                           f"in the `{key}` attribute instead: {key}: \"{{{{ env.{self.name.upper()}_{key.upper()} }}}}\"",
                           ("client", "auth", key), secret=True)
        for key in CONFIG_KEYS:
            if holds_template(raw.get(key)):
                raise fail("templates are not rendered inside the rest_api config (it is kept as written, for dlt's "
                           "`{placeholders}`); a URL read from a variable goes in the `base_url`/`token_url` attribute",
                           (key,))
        try:
            return ApiDefinition(api_config.validate(raw, READ_FROM), READ_FROM)
        except SettingsError as error:
            message = str(error).removeprefix(f"{READ_FROM}: ")
            path = _leading_path(message)
            raise fail(message[len(_dotted(path)) + 1:].lstrip(": ").strip() if path else message, path) from None

    # --- what the component builds ---------------------------------------------------------------
    def instance(self) -> ApiInstance:
        definition = getattr(self, "_definition", None) or self._checked_definition(None)
        sources = dict(zip(RUN_TIME_SOURCES, (self.base_url, self.token_url, self.client_id, self.client_secret)))
        values = {"partitions_start": self.partitions_start, "reconcile_days": self.reconcile_days, **self.run_defaults}
        return ApiInstance(definition, self.name, sources,
                           {name: value for name, value in values.items() if value is not None})

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_api_defs(self.instance(), Automation(self.schedule, self.schedule_running, self.daily_summary))


def _leading_path(message: str) -> tuple[KeyPart, ...]:
    """The key path a config message starts with (`resources[0].endpoint.path is required`)."""
    match = re.match(r"^((?:client|resource_defaults|resources)(?:\[\d+\]|\.[A-Za-z0-9_]+)*)", message)
    if not match:
        return ()
    return tuple(int(part[1:-1]) if part.startswith("[") else part
                 for part in re.findall(r"\[\d+\]|[A-Za-z0-9_]+", match.group(1)))


def _dotted(path: tuple[KeyPart, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")

