"""What an API config may say: a dlt `rest_api` config dict, in dlt's own vocabulary, built in or read
from a YAML or JSON file (ANALYTICS_API_CONFIG).

Every key the project reads is a field below, with dlt's name, type and meaning; a few keys of this
project's own are marked "ours". A key it does not know, a value of the wrong type, a credential in
the file, or a dlt key whose meaning this project cannot keep its promises for, fails when the
definitions load, naming the key's path (`resources[1].endpoint.incremental.start_param`), what is
accepted, why, and the file.
"""

from __future__ import annotations

import json
import re
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, NamedTuple, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import SettingsError

CREDENTIAL_KEYS = ("client_id", "client_secret")
MAX_PAGES = 100_000  # pages of one read of a window, by default, before it is taken for a loop
PLACEHOLDER = re.compile(r"(?<!\{)\{incremental\.(start_value|end_value)\}(?!\})")
RESOLVED = re.compile(r"(?<!\{)\{resources\.([A-Za-z0-9_]+)\.([^{}]+)\}(?!\})")
# dlt keys of an `incremental` that would make dlt keep state or filter rows: the partitions supply
# the window here, and records outside it are this project's to judge (see README, Windows).
PARTITIONS_SUPPLY = ("initial_value", "end_value", "range_start", "range_end", "row_order", "lag",
                     "on_cursor_value_missing", "allow_external_schedulers", "convert", "transform")
MAX_CONFIG_BYTES = 2**20  # an API config file's size: a few kilobytes in practice


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def ours(default: Any, description: str, **constraints: Any) -> Any:
    """A key of this project's own, not dlt's (the reference table says so)."""
    return Field(default, description=f"ours: {description}", **constraints)


class AuthOptions(_Model):
    """OAuth2 client credentials: how the token endpoint wants to be asked. The id and secret come
    from ANALYTICS_CLIENT_ID/ANALYTICS_CLIENT_SECRET or dlt's secrets, never from the config."""

    type: Literal["oauth2", "oauth2_client_credentials"] = Field(
        "oauth2", description="OAuth2 client credentials (`oauth2_client_credentials` is dlt's name for it)")
    token_url: Optional[str] = Field(None, description="the token endpoint; ANALYTICS_TOKEN_URL wins; default "
                                     "`<base_url>/oauth/token`")
    access_token_url: Optional[str] = Field(None, description="dlt's name for `token_url`")
    scope: Optional[Union[str, list[str]]] = Field(None, description="scopes to ask for: text or a list, sent "
                                                   "space-separated")
    token_endpoint_auth_method: Literal["client_secret_post", "client_secret_basic"] = Field(
        "client_secret_post", description="how the client authenticates: in the form, or with HTTP Basic "
        "(RFC 6749 §2.3.1)")
    access_token_request_data: dict[str, Union[str, int, float, bool]] = Field(
        default_factory=dict, description="extra form fields of the token request, e.g. `audience`")
    default_token_expiration: int = Field(3600, gt=0, description="a token's lifetime in seconds when the answer "
                                          "has no `expires_in`")


class ColumnHint(_Model):
    """A dlt column hint."""

    data_type: Literal["text", "bigint", "double", "bool", "timestamp", "date", "json"] = Field(
        description="the column's type: `text`, `bigint`, `double`, `bool`, `timestamp` (UTC), `date` or `json`")
    nullable: bool = Field(True, description="whether it may be null or missing; `false` makes it NOT NULL and checked")
    description: str = Field("", description="what it means (shown in the Dagster UI)")


class Column(NamedTuple):
    name: str
    data_type: str
    nullable: bool
    description: str


VALUE_FORMATS = ("iso8601", "epoch_seconds", "epoch_millis", "date")


class Incremental(_Model):
    """How an endpoint filters by the window: dlt's `incremental` keys, the values of which the daily
    partitions supply; and how they are written."""

    start_param: Optional[str] = Field(None, description="the query parameter for the window's start")
    end_param: Optional[str] = Field(None, description="the query parameter for the window's end; none: the API "
                                     "filters by the start only, and records past the window's end are left to the "
                                     "partitions they belong to")
    cursor_path: Optional[str] = Field(None, description="the record field the window filters, as the API sends it "
                                       "(`updatedAt`, `attributes.updated-at`): no record may lie before the window; "
                                       "each day's figures use its UTC day")
    value_format: Literal["iso8601", "epoch_seconds", "epoch_millis", "date"] = ours(
        "iso8601", "how the window's values are written: `iso8601` (`2026-11-20T00:00:00Z`), `epoch_seconds`, "
        "`epoch_millis` or `date`")

    @model_validator(mode="before")
    @classmethod
    def _partitions_supply_the_window(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            given = [key for key in PARTITIONS_SUPPLY if key in data]
            if given:
                raise ValueError(
                    f"`{given[0]}` is dlt's, for a pipeline that keeps its own cursor; here the daily partitions "
                    "supply the window (ANALYTICS_PARTITIONS_START is the first day): remove it")
        return data

    def params(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The query parameters asking for the records whose cursor lies in [start, end)."""
        given = {self.start_param: start, self.end_param: end}
        return {name: self.written(moment) for name, moment in given.items() if name}

    def written(self, moment: datetime) -> Any:
        moment = moment.astimezone(timezone.utc)
        if self.value_format == "epoch_seconds":
            return int(moment.timestamp())
        if self.value_format == "epoch_millis":
            return int(moment.timestamp() * 1000)
        if self.value_format == "date":
            return moment.date().isoformat()
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Guarded(_Model):
    """Keys of ours for dlt's paginators: where a page says how many records the window holds (a
    read must end with exactly that many, when it does), and a bound on pages."""

    records_total_path: Optional[str] = ours("total", "where a page says how many records the window holds; a read "
                                             "must end with exactly that many")
    max_pages: int = ours(MAX_PAGES, "pages of one read before it is taken for an endless loop", gt=0)


class OffsetPaging(_Model):
    """dlt's `offset` paginator's keys, read by this project's own (see Paging)."""

    type: Literal["offset"] = Field(description="offset paging, by what was served (see Paging)")
    limit: int = Field(100, gt=0, description="records asked for a page")
    offset: int = Field(0, ge=0, description="the first offset")
    offset_param: str = Field("offset", description="the query parameter for the offset")
    limit_param: str = Field("limit", description="the query parameter for the limit")
    total_path: Optional[str] = Field("total", description="where a page says how many records the window holds")
    has_more_path: Optional[str] = Field(None, description="where a page says whether more follow (a boolean)")
    stop_after_empty_page: bool = Field(True, description="an empty page ends a read (always, for offset paging)")
    max_pages: int = ours(MAX_PAGES, "pages of one read before it is taken for an endless loop", gt=0)
    max_passes: int = ours(3, "reads of a window whose data keeps changing before the run fails", gt=0)


class CursorPaging(_Guarded):
    type: Literal["cursor"] = Field(description="a cursor for the next page in the body")
    cursor_path: str = Field("cursors.next", description="where the body holds the next cursor")
    cursor_param: Optional[str] = Field(None, description="the query parameter that sends it (default `cursor`)")
    cursor_body_path: Optional[str] = Field(None, description="where a POST body sends it instead")
    has_more_path: Optional[str] = Field(None, description="where a page says whether more follow (a boolean)")
    stop_after_empty_page: bool = Field(False, description="an empty page ends a read")


class JsonLinkPaging(_Guarded):
    type: Literal["json_link"] = Field(description="the next page's URL in the body")
    next_url_path: str = Field("next", description="where the body holds it")


class HeaderLinkPaging(_Guarded):
    type: Literal["header_link"] = Field(description="the next page's URL in a `Link` header (RFC 8288)")
    links_next_key: str = Field("next", description="its `rel`")


class HeaderCursorPaging(_Guarded):
    type: Literal["header_cursor"] = Field(description="a cursor for the next page in a response header")
    cursor_key: str = Field("next", description="the header")
    cursor_param: str = Field("cursor", description="the query parameter that sends it")


class PageNumberPaging(_Guarded):
    type: Literal["page_number"] = Field(description="page numbers")
    base_page: int = Field(0, description="the first page's number")
    page: Optional[int] = Field(None, description="the page to start at (default `base_page`)")
    page_param: Optional[str] = Field(None, description="the query parameter for it (default `page`)")
    page_body_path: Optional[str] = Field(None, description="where a POST body sends it instead")
    total_path: Optional[str] = Field("total", description="where a page says how many pages there are (dlt's meaning)")
    maximum_page: Optional[int] = Field(None, gt=0, description="the last page to ask for")
    has_more_path: Optional[str] = Field(None, description="where a page says whether more follow (a boolean)")
    stop_after_empty_page: bool = Field(True, description="an empty page ends a read")


class SinglePaging(_Guarded):
    type: Literal["single_page"] = Field(description="one page holds every record")


Paging = Annotated[Union[OffsetPaging, CursorPaging, JsonLinkPaging, HeaderLinkPaging, HeaderCursorPaging,
                         PageNumberPaging, SinglePaging], Field(discriminator="type")]
Scalar = Union[str, int, float, bool]


class ResolveParam(_Model):
    """dlt's `resolve` parameter: a field of each record of another resource (the parent)."""

    type: Literal["resolve"]
    resource: str
    field: str


class Endpoint(_Model):
    path: Optional[str] = Field(None, description="the endpoint's path under the base URL (default: the resource's "
                                "name); `{resources.<parent>.<field>}` takes a field of each parent record")
    method: Literal["GET", "POST"] = Field("GET", description="`GET`, or `POST` for APIs that take their query as a body")
    params: dict[str, Union[Scalar, ResolveParam]] = Field(
        default_factory=dict, description="query parameters: fixed values, `{incremental.start_value}`/"
        "`{incremental.end_value}` in a value, or dlt's `resolve` (a parent's field)")
    json_body: Optional[dict[str, Any]] = Field(None, alias="json", description="a JSON body (for `POST`), "
                                                "placeholders as in `params`")
    headers: dict[str, str] = Field(default_factory=dict, description="fixed headers of the endpoint's requests")
    data_selector: str = Field(description="where a page holds its records: a key, a dotted path, a JSONPath "
                               "(`list[*].customer`) or `$` for a top-level list")
    paginator: Paging = Field(description="how pages follow each other, by `type` (see Paging)")
    incremental: Optional[Incremental] = Field(None, description="how the endpoint filters by the window; none: "
                                               "every run reads it whole")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        """dlt's `incremental` parameter is this project's `incremental.start_param`: taken there."""
        if isinstance(value, Mapping):
            for name, param in value.items():
                if isinstance(param, Mapping) and param.get("type") == "incremental":
                    raise ValueError(
                        f"`{name}` is a dlt `incremental` parameter: write it as the endpoint's "
                        f"`incremental: {{start_param: {name}, cursor_path: {param.get('cursor_path') or '...'}}}` "
                        "(the partitions supply its value)")
        return value

    def placeholders(self) -> set[str]:
        """The window's values the path, parameters or body take as `{incremental.*}`."""
        texts = [self.path or "", *map(str, self.params.values()), json.dumps(self.json_body or {})]
        return {match for text in texts for match in PLACEHOLDER.findall(text)}

    def parents(self) -> set[str]:
        """The resources whose records this one is fetched for (dlt's `resolve`, `{resources.*}`)."""
        resolved = {param.resource for param in self.params.values() if isinstance(param, ResolveParam)}
        texts = [self.path or "", *map(str, self.params.values()), json.dumps(self.json_body or {})]
        return resolved | {name for text in texts for name, _ in RESOLVED.findall(text)}


class Resource(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the table `analytics.<name>` and the asset "
                      "`analytics/<name>`: lowercase letters, digits, underscores")
    endpoint: Endpoint = Field(description="the endpoint (a path alone is its path)")
    primary_key: Optional[Union[str, list[str]]] = Field(
        None, description="the merge key: a field, or a list of fields for a composite key, as the API names them "
        "(required for a resource with a table)")
    write_disposition: Literal["merge"] = Field("merge", description="merged on the primary key; nothing else")
    columns: dict[str, ColumnHint] = Field(default_factory=dict, description="the declared schema, as dlt column "
                                           "hints; without it dlt infers the columns")
    include_from_parent: list[str] = Field(default_factory=list, description="fields of the parent record copied "
                                           "into each record, as `_<parent>_<field>` (dlt's names)")
    selected: bool = Field(True, description="`false`: fetched only for its children, no table of its own")
    max_table_nesting: int = ours(0, "how deep nested objects and lists become columns and child tables (dlt's "
                                  "`max_table_nesting`); `0` keeps each as one JSON text column", ge=0, le=20)

    @property
    def path(self) -> str:
        return self.endpoint.path or self.name

    @property
    def incremental(self) -> Optional[Incremental]:
        return self.endpoint.incremental

    @property
    def cursor(self) -> Optional[str]:
        """The record field the window filters, as the API sends it; None: nothing to check."""
        return self.incremental.cursor_path if self.incremental else None

    @property
    def key(self) -> tuple[str, ...]:
        """The primary key's fields, as the API sends them."""
        if self.primary_key is None:
            return ()
        return (self.primary_key,) if isinstance(self.primary_key, str) else tuple(self.primary_key)

    @property
    def parents(self) -> set[str]:
        return self.endpoint.parents()

    @property
    def sends_window(self) -> bool:
        """Whether its requests carry the window (parameters or placeholders), not only its check."""
        incremental = self.incremental
        return incremental is not None and bool(incremental.start_param or incremental.end_param
                                                or self.endpoint.placeholders())

    @property
    def declared(self) -> tuple[Column, ...]:
        """The declared columns, in the config's order."""
        return tuple(Column(name, hint.data_type, hint.nullable, hint.description) for name, hint in self.columns.items())

    @property
    def required(self) -> list[str]:
        return [name for name, hint in self.columns.items() if not hint.nullable]

    @model_validator(mode="after")
    def _coherent(self) -> "Resource":
        incremental, placeholders = self.incremental, self.endpoint.placeholders()
        if placeholders and incremental is None:
            raise ValueError(f"`{{incremental.{sorted(placeholders)[0]}}}` needs the endpoint's `incremental` "
                             "(its `cursor_path` and `value_format`), as in dlt")
        if (self.selected and not self.key) or any(not part for part in self.key):
            raise ValueError("`primary_key` names the fields the table is merged on: required for a resource with "
                             "a table (not `selected: false`)")
        cursor_type = self.columns.get(self.cursor).data_type if self.cursor in self.columns else None
        if cursor_type not in (None, "timestamp", "date", "bigint", "double"):
            raise ValueError(f"the window's cursor `{self.cursor}` is declared `{cursor_type}`: declare it "
                             "`timestamp` (ISO text, dates and epoch numbers are read as instants), `date`, or "
                             "`bigint`/`double` for epoch seconds or milliseconds")
        return self


class ResourceDefaults(_Model):
    """What every resource starts from (dlt's `resource_defaults`): any resource key but `name`."""

    endpoint: Optional[dict[str, Any]] = None
    primary_key: Optional[Union[str, list[str]]] = None
    write_disposition: Optional[Literal["merge"]] = None
    columns: Optional[dict[str, dict[str, Any]]] = None
    include_from_parent: Optional[list[str]] = None
    selected: Optional[bool] = None
    max_table_nesting: Optional[int] = None


class ClientOptions(_Model):
    base_url: Optional[str] = Field(None, description="the API's base URL; ANALYTICS_API_BASE_URL wins")
    headers: dict[str, str] = Field(default_factory=dict, description="fixed headers of every request")
    auth: AuthOptions = Field(default_factory=AuthOptions, description="OAuth2 client credentials")


class ApiConfig(_Model):
    """A rest_api config dict of the seed's shape; `resource_defaults` already merged into each
    resource, as dlt merges them."""

    client: ClientOptions = Field(default_factory=ClientOptions)
    resources: list[Resource] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> "ApiConfig":
        names = [resource.name for resource in self.resources]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            raise ValueError(f"the resource name {duplicate!r} is used twice: each resource is one table")
        for resource in self.resources:
            unknown = sorted(resource.parents - set(names))
            if unknown:
                raise ValueError(f"resources: `{resource.name}` is fetched for each record of `{unknown[0]}`, which "
                                 "is not a resource of this config")
            if resource.include_from_parent and not resource.parents:
                raise ValueError(f"resources: `{resource.name}` has `include_from_parent` but no parent (a `resolve` "
                                 "parameter or a `{resources.<parent>.<field>}` placeholder)")
        for parent in self.resources:
            children = [child for child in self.resources if parent.name in child.parents]
            windowed = next((child for child in children if child.sends_window), None)
            if windowed is not None and parent.selected and parent.incremental is not None:
                raise ValueError(
                    f"resources: `{windowed.name}` has a window of its own, so it is fetched for every `{parent.name}` "
                    f"record (its records of a day may hang under any of them); `{parent.name}` cannot have a window "
                    "too: remove its `incremental` (it is then read whole by every run) or set `selected: false`")
        if not any(resource.selected for resource in self.resources):
            raise ValueError("resources: every resource is `selected: false`: nothing would be loaded")
        return self

    @property
    def selected(self) -> list[Resource]:
        return [resource for resource in self.resources if resource.selected]


def validate(config: Mapping[str, Any], read_from: str) -> ApiConfig:
    """The config, checked; SettingsError naming the key's path and `read_from` otherwise."""
    if not isinstance(config, Mapping):
        raise SettingsError(f"{read_from}: the API config must be a mapping with `client` and `resources`.")
    auth = (config.get("client") or {}).get("auth") if isinstance(config.get("client"), Mapping) else None
    for key in CREDENTIAL_KEYS:
        if isinstance(auth, Mapping) and key in auth:
            raise SettingsError(
                f"{read_from}: client.auth.{key}: credentials never go in the API config (it is checked in, "
                f"logged and shown); remove it and set ANALYTICS_{key.upper()} (or `{key}` in .dlt/secrets.toml).")
    unknown = sorted(set(config) - {"client", "resource_defaults", "resources"})
    if unknown:
        raise SettingsError(f"{read_from}: `{unknown[0]}` is not a key of the API config; expected client, "
                            "resource_defaults, resources.")
    raw_defaults = config.get("resource_defaults") or {}
    try:
        ResourceDefaults(**raw_defaults)
    except (ValidationError, TypeError) as error:
        raise SettingsError(_explain(error, read_from, ResourceDefaults, {"resource_defaults": raw_defaults},
                                     ("resource_defaults",))) from None
    resources = config.get("resources")
    merged = [with_defaults(raw_defaults, resource) for resource in resources] if isinstance(resources, list) \
        else resources
    try:
        return ApiConfig(client=config.get("client") or {}, resources=merged)
    except ValidationError as error:
        raise SettingsError(_explain(error, read_from, ApiConfig, {"client": config.get("client"),
                                                                   "resources": merged})) from None


def key_paths(model: Any = None, prefix: str = "") -> list[str]:
    """Every key the config may hold, as the README's reference table lists them."""
    paths: list[str] = []
    for name, field in (model or ApiConfig).model_fields.items():
        name = field.alias or name
        path = f"{prefix}{name}"
        members = [m for m in _flatten([field.annotation]) if isinstance(m, type) and issubclass(m, BaseModel)
                   and m is not ResolveParam]
        if name == "resources":
            members, path = [Resource], "resources[]"
        elif name == "columns":
            members, path = [ColumnHint], f"{prefix}columns.<name>"
        if not members:
            paths.append(path)
        for member in members:
            tag = typing.get_args(member.model_fields["type"].annotation) if "type" in member.model_fields \
                and name == "paginator" else ()
            paths.extend(key_paths(member, f"{path}{'(' + tag[0] + ')' if tag else ''}."))
    return list(dict.fromkeys(paths))


def reference_table() -> str:
    """The README's reference of the config's keys, rendered from the models."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for path in key_paths():
        field = _field_at(path)
        default = field.get_default(call_default_factory=True)
        shown = "—" if default in (None, {}, "", []) or field.is_required() else f"`{json.dumps(default)}`"
        rows.append(f"| `{path}` | {shown} | {field.description} |")
    return "\n".join(rows)


def _field_at(path: str) -> Any:
    model: Any = ApiConfig
    parts = path.replace("resources[]", "resources").replace("columns.<name>", "columns").split(".")
    for part in parts[:-1]:
        name, _, tag = part.partition("(")
        annotation = _fields(model)[name].annotation
        model = _model_in(annotation, tag.rstrip(")")) if tag else next(
            m for m in _flatten([annotation]) if isinstance(m, type) and issubclass(m, BaseModel)) \
            if name not in ("resources", "columns") else {"resources": Resource, "columns": ColumnHint}[name]
    return _fields(model)[parts[-1]]


def _fields(model: Any) -> dict[str, Any]:
    """A model's fields by the names a config uses (an alias where there is one)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


class _AliasRefused(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__(mark.line + 1)


class _PlainData(yaml.SafeLoader):
    """YAML read as plain data. An anchor (`&name`) or an alias (`*name`) is refused where it is
    met, before anything is built from it: a few hundred bytes of aliases naming aliases stand for
    billions of values (an alias bomb: 394 bytes took loading the definitions past 2 GB in 20 s),
    and a config needs none."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(event.start_mark)
        return super().compose_node(parent, index)


def read_file(path: Path) -> Any:
    """A YAML or JSON file's content (JSON is YAML too; .json files get JSON's own messages), read
    as data: at most MAX_CONFIG_BYTES, and no YAML anchors or aliases (`_PlainData`)."""
    origin = f"ANALYTICS_API_CONFIG={path}"
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)  # no more than that is read, whatever the file
    except OSError as error:
        raise SettingsError(f"{origin}: cannot be read ({error.strerror}).") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise SettingsError(f"{origin}: larger than {MAX_CONFIG_BYTES:,} bytes, which no API config needs (they "
                            "take a few kilobytes): check that the variable names the config file.")
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = data.decode("utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_PlainData)
    except _AliasRefused as refused:
        raise SettingsError(f"{origin}: line {refused.args[0]}: YAML anchors and aliases (`&name`, `*name`) are not "
                            "read: an API config is plain data, and a few aliases can stand for billions of values. "
                            "Write the values out.") from None
    except RecursionError:
        raise SettingsError(f"{origin}: nested too deeply to be an API config.") from None
    except (ValueError, yaml.YAMLError) as error:
        raise SettingsError(f"{origin}: not valid {kind}: {str(error).splitlines()[0]}") from None


def with_defaults(defaults: Mapping[str, Any], resource: Any) -> Any:
    """A resource with `resource_defaults` under it, as dlt merges them (`_merge_resource_endpoints`):
    the endpoint's keys, with `params` and `json` merged key by key, and the resource's keys; the
    columns hint by hint. A resource given as a string is dlt's shorthand for its name and path;
    an endpoint given as a string, for its path."""
    if isinstance(resource, str):
        resource = {"name": resource, "endpoint": {"path": resource}}
    if not isinstance(resource, Mapping):
        return resource
    endpoint = resource.get("endpoint") or {}
    endpoint = {"path": endpoint} if isinstance(endpoint, str) else endpoint
    default_endpoint = defaults.get("endpoint") or {}
    default_endpoint = {"path": default_endpoint} if isinstance(default_endpoint, str) else default_endpoint
    merged_endpoint = endpoint
    if isinstance(endpoint, Mapping) and isinstance(default_endpoint, Mapping):
        merged_endpoint = {**default_endpoint, **{k: v for k, v in endpoint.items() if k not in ("params", "json")}}
        for key in ("params", "json"):
            if isinstance(endpoint.get(key), Mapping):
                merged_endpoint[key] = {**(default_endpoint.get(key) or {}), **endpoint[key]}
    merged = {**{k: v for k, v in defaults.items() if k not in ("endpoint", "columns")}, **resource,
              "endpoint": merged_endpoint}
    columns = resource.get("columns")
    default_columns = defaults.get("columns")
    if isinstance(columns, Mapping) and isinstance(default_columns, Mapping):
        merged["columns"] = {name: {**(default_columns.get(name) or {}), **hint}
                             if isinstance(hint, Mapping) else hint
                             for name, hint in {**default_columns, **columns}.items()}
    elif default_columns is not None and columns is None:
        merged["columns"] = default_columns
    return merged


# How each kind of problem reads; the rest uses pydantic's own words.
_PROBLEMS = {
    "missing": "is required",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "too_short": "must hold at least one entry",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "must be one of {expected_tags}",
    "union_tag_not_found": "needs a `type` ({expected})",
    "string_pattern_mismatch": "must be lowercase letters, digits and underscores, starting with a letter",
}
_QUOTED = {"string_type", "int_type", "int_parsing", "int_from_float", "bool_type", "bool_parsing", "greater_than",
           "greater_than_equal", "less_than_equal", "literal_error", "union_tag_invalid", "string_pattern_mismatch"}
# What a value of a union may be, said once instead of once per alternative.
_UNIONS = {"primary_key": "must be a field name or a list of field names",
           "params": "must be text, a number, true/false, or dlt's `{type: resolve, resource: ..., field: ...}`",
           "scope": "must be text or a list of texts"}


def _explain(error: Exception, read_from: str, model: type, data: Mapping[str, Any], prefix: tuple = ()) -> str:
    if not isinstance(error, ValidationError):
        return f"{read_from}: {'.'.join(prefix)} must be a mapping."
    detail = error.errors()[0]
    loc = _in_the_config(tuple(detail["loc"]), data, detail["type"])
    path = _path(prefix + loc)
    kind = detail["type"]
    if kind == "extra_forbidden":
        keys = _keys_at(model, tuple(detail["loc"])[:-1])
        return f"{read_from}: {path} is not a key this project reads there; expected one of {', '.join(keys)}."
    if kind == "value_error":
        return f"{read_from}: {path + ': ' if path else ''}{detail['ctx']['error']}."
    union = next((_UNIONS[part] for part in reversed(loc) if isinstance(part, str) and part in _UNIONS), None)
    if union and len(loc) < len(detail["loc"]):
        return f"{read_from}: {path} {union}; got {str(detail['input'])[:40]!r}."
    ctx = {key: (", ".join(str(v).strip("'") for v in value.split(", ")) if isinstance(value, str) else value)
           for key, value in (detail.get("ctx") or {}).items()}
    problem = _PROBLEMS.get(kind, detail["msg"]).format(**ctx).replace("'", "").replace(" or ", ", ")
    value = ctx.get("tag") if kind == "union_tag_invalid" else detail["input"]
    got = f"; got {str(value)[:40]!r}" if kind in _QUOTED else ""
    return f"{read_from}: {path} {problem}{got}."


def _in_the_config(loc: tuple, data: Any, kind: str) -> tuple:
    """pydantic's path with the parts that are not keys of the config dropped: a union's member
    (`str`, `list[str]`, a model's name) or a discriminator's tag (`paginator.offset.limit`). A
    last part the config lacks is kept when it is the problem (a missing key)."""
    kept, current = [], data
    for i, part in enumerate(loc):
        present = (isinstance(current, Mapping) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and part < len(current))
        if present:
            kept.append(part)
            current = current[part]
        elif i == len(loc) - 1 and kind in ("missing", "extra_forbidden"):
            kept.append(part)
    return tuple(kept)


def _path(loc: tuple) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _keys_at(model: Any, loc: tuple) -> list[str]:
    """The keys the model reads at `loc`, walking its fields' types (a union by its `type` tag)."""
    current: Any = model
    for part in loc:
        current = _model_in(current, part)
    models = [m for m in _flatten([current]) if isinstance(m, type) and issubclass(m, BaseModel)]
    return list(_fields(models[0])) if len(models) == 1 else []


def _model_in(annotation: Any, part: Any) -> Any:
    for candidate in _flatten([annotation]):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if "type" in candidate.model_fields and part in typing.get_args(candidate.model_fields["type"].annotation):
                return candidate  # a union's member, by its tag
            if part in _fields(candidate):
                return _fields(candidate)[part].annotation
        elif typing.get_origin(candidate) in (list, dict):
            return typing.get_args(candidate)[-1]
    return None


def _flatten(annotations: list) -> list:
    """A type's alternatives: Optional, Union and Annotated unwrapped."""
    out = []
    for annotation in annotations:
        if typing.get_origin(annotation) in (Union, Annotated):
            out.extend(_flatten(list(typing.get_args(annotation))))
        else:
            out.append(annotation)
    return out
