"""Every setting of the project, defined once: a field of `Settings` is an `ANALYTICS_*` variable.

A field's variable is `ANALYTICS_` + its name in capitals; its type, default, bounds and meaning
are the field's. `Settings.from_env()` reads them, and a bad value fails naming the variable and
quoting the value, before anything is sent anywhere. Fields marked `launch_field` are tunables a run
may override from Dagster's launchpad (the `analytics_api` resource is derived from them); the
others, where the API and the warehouse are, credentials and paths, belong to the deployment and
cannot be changed by whoever launches a run. The README's configuration table is rendered from this
model (`python -m analytics_assets.settings`), and a test keeps the two equal.
"""

from __future__ import annotations

import os
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from .errors import SettingsError

ENV_PREFIX = "ANALYTICS_"
# The warehouses a deployment may name; `warehouse/destinations.py` holds what differs between them.
DestinationName = Literal["duckdb", "postgres", "motherduck", "snowflake", "bigquery"]
DESTINATION_NAMES: tuple[str, ...] = get_args(DestinationName)


class SchemaDrift(str, Enum):
    """What an undeclared field does (an Enum: Dagster's launch config takes no Literal)."""

    evolve = "evolve"
    freeze = "freeze"


def launch_field(default: Any, **constraints: Any) -> Any:
    """A tunable that a run's launch config may override, within the same bounds."""
    return Field(default, json_schema_extra={"launch": True}, **constraints)


def variable(field: str) -> str:
    return ENV_PREFIX + field.upper()


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # The variable a field was read from where it is not its ANALYTICS_* one: an API of the defs
    # folder names its own for its URLs and credentials (`{{ env.ACME_CLIENT_ID }}`), and messages
    # must name the variable the user set.
    _variables: dict[str, str] = PrivateAttr(default_factory=dict)
    # dlt's secret a credential falls back to (`client_id`; `acme.client_id` for the API `acme`).
    _secret_keys: dict[str, str] = PrivateAttr(default_factory=dict)

    api_config: Optional[Path] = Field(
        None, description="a YAML or JSON file holding the API's rest_api config dict (`client`, "
        "`resource_defaults`, `resources`; see Pointing it at your API); default: the built-in definition, the seed's")
    api_base_url: Optional[str] = Field(
        None, description="the API's base URL; `https://`, or `http://` only for 127.0.0.1/localhost "
        "(default: the API config's `client.base_url`; the demo commands set it)")
    token_url: Optional[str] = Field(
        None, description="OAuth2 token endpoint (default: the API config's `auth.token_url`, else "
        "`<base_url>/oauth/token`); must be on the API host unless listed in ANALYTICS_ALLOWED_TOKEN_HOSTS")
    client_id: Optional[SecretStr] = Field(None, description="OAuth2 client id (default: dlt secret `client_id`)")
    client_secret: Optional[SecretStr] = Field(
        None, description="OAuth2 client secret (default: dlt secret `client_secret`)")
    allowed_token_hosts: tuple[str, ...] = Field(
        (), description="comma-separated hosts allowed for the token URL besides the API host")
    rate_budget_dir: Optional[Path] = Field(
        None, description="the folder holding the rate limit budget that every run and sensor tick calling the same API "
        "(origin and client id) shares, a file per API: announced limits, `Retry-After` pauses and "
        "ANALYTICS_MAX_REQUESTS_PER_SECOND hold for all of them together; every process of the deployment must be able "
        "to write it (default: `rate_budgets` in the Dagster instance's folder, $DAGSTER_HOME; a run that cannot use it "
        "paces by itself and says so)")
    destination: DestinationName = Field(
        "duckdb", description="where the tables live: `duckdb`, `postgres`, `motherduck`, `snowflake` or "
        "`bigquery` (read when the definitions load: it names the tables' kind and picks the writer pool)")
    duckdb_path: Path = Field(
        Path("data/warehouse.duckdb"), validate_default=True, description="the DuckDB file, relative to the "
        "working folder of the process that reads it (not `analytics.duckdb`: DuckDB names the catalog after the "
        "file stem, and a catalog named like the schema makes `analytics.<table>` ambiguous)")
    warehouse_lock_wait: float = Field(
        600.0, gt=0, le=86_400, allow_inf_nan=False, description="seconds a run waits for a DuckDB file another "
        "run or process is using before it fails (every connection to the file takes it in turn)")
    writer_pool_limit: Optional[int] = Field(
        None, gt=0, description="steps writing the warehouse at once, set on the pool when it is first "
        "created (default: the instance's pool limit); DuckDB needs 1")
    partitions_start: date = Field(date(2026, 11, 1), description="first daily partition")
    backfill_days_per_run: Optional[int] = Field(
        None, gt=0, le=3660, description="days per run when Dagster's backfill daemon splits a range (read when "
        "the definitions load); default: the whole range in one run (see Backfilling a year)")
    reconcile_days: int = Field(7, ge=1, le=366, description="days back (the most recent daily partitions) the "
                                "`analytics_reconcile` sensor compares with the API's totals")
    max_response_bytes: int = Field(64 * 2**20, gt=0, le=2**30, description="the largest response body read "
                                    "(decompressed), counted while it arrives; a larger one fails the run")
    max_page_values: int = Field(500_000, ge=1000, le=50_000_000, description="the most values (records, their "
                                 "fields and nested values) one page may hold, counted on its bytes before it is "
                                 "decoded; a page of more fails the run (what a page costs in memory follows from it)")
    request_deadline: float = Field(120.0, gt=0, le=3600, allow_inf_nan=False, description="seconds a request "
                                    "may take from connecting to its last byte (interim answers and trailer "
                                    "included), whatever the server's pace: a timer then shuts the connection down")
    max_token_bytes: int = Field(16 * 1024, ge=1024, le=2**20, description="the longest access token taken from "
                                 "the token endpoint, in bytes (it travels with every request); a longer one, or one "
                                 "a header cannot carry, fails the run naming the endpoint")
    max_new_columns: int = Field(100, ge=0, le=10_000, description="undeclared fields a run takes as new "
                                 "columns (schema drift) before it fails instead")
    http_timeout: float = launch_field(30.0, gt=0, le=600, allow_inf_nan=False,
                                       description="seconds to wait for a connection or for the next bytes of a response")
    max_retries: int = launch_field(3, ge=0, le=10, description="retries after the first attempt")
    backoff_factor: float = launch_field(2.0, gt=0, le=60, allow_inf_nan=False,
                                         description="exponential backoff: waits of 2, 4, 8 s")
    max_retry_wait: float = launch_field(60.0, gt=0, le=3600, allow_inf_nan=False,
                                         description="cap on one wait, backoff or `Retry-After`")
    token_refresh_margin: float = launch_field(
        60.0, ge=0, le=3600, allow_inf_nan=False,
        description="renew a token this many seconds before it expires (at most half its lifetime)")
    max_concurrency: int = launch_field(
        8, gt=0, le=64, description="requests to the API in flight at once, pages requested ahead included (after "
        "a 429, one at a time, growing back by one per round of successes); `1` pages strictly in turn")
    max_requests_per_second: Optional[float] = launch_field(
        None, gt=0, le=10_000, allow_inf_nan=False,
        description="a ceiling on requests to the API per second, retries included, whatever limit it announces "
        "(default: none; limits the API announces in `RateLimit-*`/`X-RateLimit-*` headers and a 429's `Retry-After` "
        "are honoured anyway)")
    schema_drift: SchemaDrift = launch_field(
        SchemaDrift.evolve, description="`evolve`: undeclared fields become columns and are reported; `freeze`: they fail the run")

    @field_validator("duckdb_path", "api_config")
    @classmethod
    def _absolute(cls, value: Optional[Path]) -> Optional[Path]:
        """Absolute from the moment it is read: dlt resolves a relative DuckDB path against the folder
        a pipeline was first created in (its state's `initial_cwd`), which a later process, run from
        elsewhere, does not share."""
        return Path(os.path.abspath(value.expanduser())) if value is not None else None

    @field_validator("allowed_token_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(host.strip().lower() for host in value.split(",") if host.strip())
        return tuple(host.lower() for host in value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, only: Optional[tuple[str, ...]] = None,
                 variables: Optional[Mapping[str, Optional[str]]] = None,
                 secret_keys: Optional[Mapping[str, str]] = None, **overrides: Any) -> "Settings":
        """The settings of this process: `overrides` (a run's launch config), then the environment,
        then the defaults. Raises SettingsError naming the variable of the first bad value. With
        `only`, the other variables are not read (the code location needs a few to load, and a bad
        run-time value must not keep it from loading: the runs fail naming it instead).
        `variables` reads a field from another variable than its ANALYTICS_* one (None: from none);
        `secret_keys` names the dlt secret a credential falls back to."""
        names = only or tuple(cls.model_fields)
        sources = {name: variable(name) for name in names} | dict(variables or {})
        values: dict[str, Any] = {name: env[source] for name in names
                                  if (source := sources.get(name)) and env.get(source)}
        values.update({name: value for name, value in overrides.items() if value is not None})
        try:
            settings = cls(**values)
        except ValidationError as error:
            raise SettingsError(explain(error, sources)) from None
        settings._variables.update({name: source for name, source in (variables or {}).items() if source})
        settings._secret_keys.update(secret_keys or {})
        return settings

    def source(self, name: str) -> str:
        """The variable the field `name` is read from, for messages."""
        return self._variables.get(name) or variable(name)

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def secret_key(self, name: str) -> str:
        """dlt's secret the credential `name` falls back to."""
        return self._secret_keys.get(name, name)

    def secret(self, name: str) -> Optional[str]:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


# How each kind of pydantic error reads, for a value given as text in a variable.
_PROBLEMS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "greater_than": "must be positive",
    "greater_than_equal": "must be zero or more",
    "less_than_equal": "must be at most {le}",
    "date_from_datetime_parsing": "must be a date like 2026-11-01",
    "date_parsing": "must be a date like 2026-11-01",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
}


_OUT_OF_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def bounds(field: str) -> Optional[str]:
    """What a field's bounds admit, as a reader says it (`zero or more and at most 10`), or None."""
    info = Settings.model_fields.get(field)
    if info is None:
        return None
    said = {kind: getattr(rule, kind) for rule in info.metadata for kind in ("ge", "gt", "le", "lt")
            if getattr(rule, kind, None) is not None}
    said = {kind: int(value) if float(value).is_integer() else value for kind, value in said.items()}
    lower = ("zero or more" if said["ge"] == 0 else f"at least {said['ge']}") if "ge" in said else \
        ("positive" if said["gt"] == 0 else f"more than {said['gt']}") if "gt" in said else None
    upper = f"at most {said['le']}" if "le" in said else f"less than {said['lt']}" if "lt" in said else None
    return " and ".join(part for part in (lower, upper) if part) or None


def explain(error: ValidationError, sources: Optional[Mapping[str, Optional[str]]] = None) -> str:
    detail = error.errors()[0]
    field = str(detail["loc"][0]) if detail["loc"] else ""
    name = ((sources or {}).get(field) or variable(field)) if field else ENV_PREFIX + "*"
    if detail["type"] == "value_error":
        problem = str(detail["ctx"]["error"])
    elif detail["type"] in _OUT_OF_BOUNDS and bounds(field):
        problem = f"must be {bounds(field)}"  # both bounds: the one crossed is not all a reader needs
    else:
        problem = _PROBLEMS.get(detail["type"], detail["msg"]).format(**detail.get("ctx", {}))
    problem = problem.replace("'", "").replace(" or ", ", ") if detail["type"] in ("literal_error", "enum") else problem
    return f"{name} {problem}; got {detail['input']!r}."


def settings_table() -> str:
    """The README's configuration table, rendered from the model."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = getattr(field.default, "value", field.default)
        shown = "—" if default in (None, ()) else f"`{default}`"
        launch = " Launch-time tunable." if (field.json_schema_extra or {}).get("launch") else ""
        rows.append(f"| `{variable(name)}` | {shown} | {field.description}.{launch} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
