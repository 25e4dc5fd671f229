"""What an API config may say: a dlt `rest_api` config dict in dlt's vocabulary, restricted to what
this project keeps its promises for, built in or read from a YAML or JSON file (ANALYTICS_API_CONFIG).

Every key the project reads is a field below, with its type and default. A key it does not know, a
value of the wrong type, or a credential in the file fails when the definitions load, naming the
key's path (`resources[1].endpoint.incremental.start_param`), what was expected, and the file.
"""

from __future__ import annotations

import json
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, NamedTuple, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import SettingsError

CREDENTIAL_KEYS = ("client_id", "client_secret")
MAX_PAGES = 100_000  # pages of one read of a window, by default, before it is taken for a loop
MAX_CONFIG_BYTES = 2**20  # an API config file's size: a few kilobytes in practice


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    data_type: Literal["text", "bigint", "double", "bool", "timestamp", "json"] = Field(
        description="the column's type: `text`, `bigint`, `double`, `bool`, `timestamp` (UTC) or `json`")
    nullable: bool = Field(True, description="whether it may be null or missing; `false` makes it NOT NULL and checked")
    description: str = Field("", description="what it means (shown in the Dagster UI)")


class Column(NamedTuple):
    name: str
    data_type: str
    nullable: bool
    description: str


class Incremental(_Model):
    """How an endpoint filters by the window: dlt's `incremental` keys (the partitions supply the
    values), and how the values are written."""

    start_param: str = Field("updated_since", description="the query parameter for the window's start")
    end_param: str = Field("updated_until", description="the query parameter for the window's end")
    cursor_path: str = Field("updated_at", description="the record field the window filters: every record's value "
                             "must lie in the window; each day's figures use its UTC day")
    value_format: Literal["iso8601", "epoch_seconds", "epoch_millis", "date"] = Field(
        "iso8601", description="how the window's values are written: `iso8601` (`2026-11-20T00:00:00Z`), "
        "`epoch_seconds`, `epoch_millis` or `date`")

    def params(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The query parameters asking for the records whose cursor lies in [start, end)."""
        return {self.start_param: self.written(start), self.end_param: self.written(end)}

    def written(self, moment: datetime) -> Any:
        moment = moment.astimezone(timezone.utc)
        if self.value_format == "epoch_seconds":
            return int(moment.timestamp())
        if self.value_format == "epoch_millis":
            return int(moment.timestamp() * 1000)
        if self.value_format == "date":
            return moment.date().isoformat()
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class OffsetPaging(_Model):
    """dlt's `offset` paginator's options, plus two bounds of ours."""

    type: Literal["offset"] = Field("offset", description="offset paging, by what was served (see Paging)")
    limit: int = Field(100, gt=0, description="records asked for a page")
    offset: int = Field(0, ge=0, description="the first offset")
    offset_param: str = Field("offset", description="the query parameter for the offset")
    limit_param: str = Field("limit", description="the query parameter for the limit")
    total_path: str = Field("total", description="where a page says how many records the window holds")
    has_more_path: str = Field("has_more", description="where a page says whether more follow, without a total")
    stop_after_empty_page: bool = Field(True, description="dlt's; an empty page always ends a read here")
    max_pages: int = Field(MAX_PAGES, gt=0, description="pages of one read before it is taken for an endless loop")
    max_passes: int = Field(3, gt=0, description="reads of a window whose data keeps changing before the run fails")


class _Guarded(_Model):
    """Two keys of ours for dlt's other paginators: where a page says how many records the window
    holds (a read must end with exactly that many, when it does), and a bound on pages."""

    records_total_path: str = Field("total", description="ours: where a page says how many records the window "
                                    "holds; a read must end with exactly that many")
    max_pages: int = Field(MAX_PAGES, gt=0, description="pages of one read before it is taken for an endless loop")


class CursorPaging(_Guarded):
    type: Literal["cursor"] = Field(description="a cursor for the next page in the body")
    cursor_path: str = Field("cursors.next", description="where the body holds the next cursor")
    cursor_param: str = Field("cursor", description="the query parameter that sends it")


class JsonLinkPaging(_Guarded):
    type: Literal["json_link"] = Field(description="the next page's URL in the body")
    next_url_path: str = Field("next", description="where the body holds it")


class HeaderLinkPaging(_Guarded):
    type: Literal["header_link"] = Field(description="the next page's URL in a `Link` header (RFC 8288)")
    links_next_key: str = Field("next", description="its `rel`")


class PageNumberPaging(_Guarded):
    type: Literal["page_number"] = Field(description="page numbers")
    base_page: int = Field(0, description="the first page's number")
    page_param: str = Field("page", description="the query parameter for it")
    total_path: Optional[str] = Field("total", description="where a page says how many pages there are (dlt's meaning)")
    maximum_page: Optional[int] = Field(None, gt=0, description="the last page to ask for")


Paging = Annotated[Union[OffsetPaging, CursorPaging, JsonLinkPaging, HeaderLinkPaging, PageNumberPaging],
                   Field(discriminator="type")]
Scalar = Union[str, int, float, bool]


class Endpoint(_Model):
    path: Optional[str] = Field(None, description="the endpoint's path under the base URL (default: the resource's name)")
    method: Literal["GET"] = Field("GET", description="GET only")
    params: dict[str, Scalar] = Field(default_factory=dict, description="fixed query parameters, e.g. a page size")
    headers: dict[str, str] = Field(default_factory=dict, description="fixed headers of the endpoint's requests")
    data_selector: str = Field("data", description="where a page holds its list of records (`$` for a top-level list)")
    paginator: Paging = Field(default_factory=OffsetPaging, description="how pages follow each other, by `type`")
    incremental: Incremental = Field(default_factory=Incremental, description="how the endpoint filters by the window")


class Resource(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the table `analytics.<name>` and the asset "
                      "`analytics/<name>`: lowercase letters, digits, underscores")
    endpoint: Endpoint = Field(default_factory=Endpoint, description="the endpoint (a path alone is its path)")
    primary_key: str = Field("id", description="the merge key")
    write_disposition: Literal["merge"] = Field("merge", description="merged on the primary key; nothing else")
    columns: dict[str, ColumnHint] = Field(default_factory=dict, description="the declared schema, as dlt column "
                                           "hints; without it dlt infers the columns")

    @property
    def path(self) -> str:
        return self.endpoint.path or self.name

    @property
    def incremental(self) -> Incremental:
        return self.endpoint.incremental

    @property
    def declared(self) -> tuple[Column, ...]:
        """The declared columns, in the config's order."""
        return tuple(Column(name, hint.data_type, hint.nullable, hint.description) for name, hint in self.columns.items())

    @property
    def required(self) -> list[str]:
        return [name for name, hint in self.columns.items() if not hint.nullable]


class ResourceDefaults(_Model):
    """What every resource starts from (dlt's `resource_defaults`)."""

    endpoint: Optional[dict[str, Any]] = None
    primary_key: Optional[str] = None
    write_disposition: Optional[Literal["merge"]] = None
    columns: Optional[dict[str, dict[str, Any]]] = None


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
    def _unique_names(self) -> "ApiConfig":
        names = [resource.name for resource in self.resources]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            raise ValueError(f"the resource name {duplicate!r} is used twice: each resource is one table")
        return self


def validate(config: Mapping[str, Any], origin: str) -> ApiConfig:
    """The config, checked; SettingsError naming the key's path and `origin` otherwise."""
    if not isinstance(config, Mapping):
        raise SettingsError(f"{origin}: the API config must be a mapping with `client` and `resources`.")
    auth = (config.get("client") or {}).get("auth") if isinstance(config.get("client"), Mapping) else None
    for key in CREDENTIAL_KEYS:
        if isinstance(auth, Mapping) and key in auth:
            raise SettingsError(
                f"{origin}: client.auth.{key}: credentials never go in the API config (it is checked in, "
                f"logged and shown); remove it and set ANALYTICS_{key.upper()} (or `{key}` in .dlt/secrets.toml).")
    unknown = sorted(set(config) - {"client", "resource_defaults", "resources"})
    if unknown:
        raise SettingsError(f"{origin}: `{unknown[0]}` is not a key of the API config; expected client, "
                            "resource_defaults, resources.")
    try:
        defaults = ResourceDefaults(**(config.get("resource_defaults") or {})).model_dump(exclude_none=True)
    except ValidationError as error:
        raise SettingsError(_explain(error, origin, ResourceDefaults, ("resource_defaults",))) from None
    resources = config.get("resources")
    merged = [_with_defaults(defaults, resource) for resource in resources] if isinstance(resources, list) else resources
    try:
        return ApiConfig(client=config.get("client") or {}, resources=merged)
    except ValidationError as error:
        raise SettingsError(_explain(error, origin, ApiConfig)) from None


def key_paths(model: Any = None, prefix: str = "") -> list[str]:
    """Every key the config may hold, as the README's reference table lists them."""
    paths: list[str] = []
    for name, field in (model or ApiConfig).model_fields.items():
        path = f"{prefix}{name}"
        members = [m for m in _flatten([field.annotation]) if isinstance(m, type) and issubclass(m, BaseModel)]
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
        shown = "—" if default in (None, {}, "") or field.is_required() else f"`{json.dumps(default)}`"
        rows.append(f"| `{path}` | {shown} | {field.description} |")
    return "\n".join(rows)


def _field_at(path: str) -> Any:
    model: Any = ApiConfig
    parts = path.replace("resources[]", "resources").replace("columns.<name>", "columns").split(".")
    for part in parts[:-1]:
        name, _, tag = part.partition("(")
        annotation = model.model_fields[name].annotation
        model = _model_in(annotation, tag.rstrip(")")) if tag else next(
            m for m in _flatten([annotation]) if isinstance(m, type) and issubclass(m, BaseModel)) \
            if name not in ("resources", "columns") else {"resources": Resource, "columns": ColumnHint}[name]
    return model.model_fields[parts[-1]]


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


def _with_defaults(defaults: Mapping[str, Any], resource: Any) -> Any:
    """A resource with `resource_defaults` under it, as dlt merges them: the endpoint's keys, its
    `params` key by key, and the columns hint by hint. A resource given as a string is dlt's
    shorthand for its name and path."""
    if isinstance(resource, str):
        resource = {"name": resource, "endpoint": {"path": resource}}
    if not isinstance(resource, Mapping):
        return resource
    endpoint = resource.get("endpoint") or {}
    endpoint = {"path": endpoint} if isinstance(endpoint, str) else endpoint
    default_endpoint = defaults.get("endpoint") or {}
    merged_endpoint = {**default_endpoint, **endpoint} if isinstance(endpoint, Mapping) else endpoint
    if isinstance(endpoint, Mapping) and isinstance(endpoint.get("params"), Mapping):
        merged_endpoint["params"] = {**(default_endpoint.get("params") or {}), **endpoint["params"]}
    columns = resource.get("columns") or {}
    if isinstance(columns, Mapping):
        default_columns = defaults.get("columns") or {}
        columns = {name: {**(default_columns.get(name) or {}), **(hint if isinstance(hint, Mapping) else {})}
                   if isinstance(hint, Mapping) else hint
                   for name, hint in {**default_columns, **columns}.items()}
    merged = {**{k: v for k, v in defaults.items() if k not in ("endpoint", "columns")}, **resource}
    return {**merged, "endpoint": merged_endpoint, "columns": columns}


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
    "list_type": "must be a list",
    "too_short": "must hold at least one entry",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "must be one of {expected_tags}",
    "union_tag_not_found": "needs a `type` ({expected})",
    "string_pattern_mismatch": "must be lowercase letters, digits and underscores, starting with a letter",
}
_QUOTED = {"string_type", "int_type", "int_parsing", "int_from_float", "bool_type", "bool_parsing",
           "greater_than", "greater_than_equal", "literal_error", "union_tag_invalid", "string_pattern_mismatch"}


def _explain(error: ValidationError, origin: str, model: type, prefix: tuple = ()) -> str:
    detail = error.errors()[0]
    loc = _without_tags(prefix + tuple(detail["loc"]))
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    kind = detail["type"]
    if kind == "extra_forbidden":
        keys = _keys_at(model, tuple(detail["loc"])[:-1])
        return f"{origin}: {path} is not a key this project reads there; expected one of {', '.join(keys)}."
    if kind == "value_error":
        return f"{origin}: {path + ': ' if path else ''}{detail['ctx']['error']}."
    ctx = {key: (", ".join(str(v).strip("'") for v in value.split(", ")) if isinstance(value, str) else value)
           for key, value in (detail.get("ctx") or {}).items()}
    problem = _PROBLEMS.get(kind, detail["msg"]).format(**ctx).replace("'", "").replace(" or ", ", ")
    value = ctx.get("tag") if kind == "union_tag_invalid" else detail["input"]
    got = f"; got {str(value)[:40]!r}" if kind in _QUOTED else ""
    return f"{origin}: {path} {problem}{got}."


def _without_tags(loc: tuple) -> tuple:
    """pydantic puts a discriminated union's tag in the path (`paginator.offset.limit`)."""
    return tuple(part for i, part in enumerate(loc) if not (i and loc[i - 1] == "paginator" and isinstance(part, str)))


def _keys_at(model: Any, loc: tuple) -> list[str]:
    """The keys the model reads at `loc`, walking its fields' types (a union by its `type` tag)."""
    current: Any = model
    for part in loc:
        current = _model_in(current, part)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any, part: Any) -> Any:
    for candidate in _flatten([annotation]):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if "type" in candidate.model_fields and part in typing.get_args(candidate.model_fields["type"].annotation):
                return candidate  # a union's member, by its tag
            if part in candidate.model_fields:
                return candidate.model_fields[part].annotation
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
