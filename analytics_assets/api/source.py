"""The API definition handed to dlt's `rest_api_source` as its own config dict, with this project's
guarantees at dlt's seams.

The dict is derived from the checked config, key for key in dlt's vocabulary (parents, `resolve`
parameters, `include_from_parent`, `selected`, `max_table_nesting`, POST bodies pass as they are);
only what dlt cannot be told in its own words is replaced: the session (authentication, pacing and
bounds on every attempt: `http.py`), the paginator (guarded paging: `paging.py`, a value object),
the window (the partitions supply it: the endpoint's `incremental` names its parameters, or its
`{incremental.start_value}`/`{incremental.end_value}` placeholders, which are written here), and the
declared columns as dlt column hints. Our checks ride on a pipe step (`records.PageStep`). The
result is an ordinary dlt source that runs in a plain dlt pipeline.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from dlt.common import jsonpath
from dlt.extract import DltSource
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.rest_api import rest_api_source as dlt_rest_api_source

from ..errors import SettingsError
from ..settings import Settings
from ..window import Window
from .client import ApiClient
from .config import PLACEHOLDER, Resource
from .definition import BUILT_IN_CONFIG, parse_definition
from .names import SOURCE_NAME, key_getter
from .paging import paginator_for
from .records import PageStep, column_hints
from .stats import SyncStats

# Keys of the checked config that dlt is not handed as they are: the window's (`incremental`, whose
# values the partitions supply), the declared columns (dlt column hints, below), the auth (the
# session authenticates every attempt) and what is replaced by an object at dlt's own seam.
OURS_IN_CLIENT = {"auth"}
OURS_IN_RESOURCE = {"endpoint", "columns"}
OURS_IN_ENDPOINT = {"incremental"}


def endpoint_config(client: ApiClient, resource: Resource, window: Optional[Window] = None,
                    paginator: Optional[BasePaginator] = None) -> dict[str, Any]:
    """The resource's endpoint in dlt's form, asking for `window` (every record when None), paged by
    `paginator` (by default the resource's own, sending pages ahead for the sync)."""
    endpoint = resource.endpoint
    config = endpoint.model_dump(by_alias=True, exclude=OURS_IN_ENDPOINT, exclude_none=True)
    config["path"] = resource.path
    asked = window if endpoint.incremental is not None and not _feeds_windowed_children(client, resource) else None
    if asked is not None:
        config["params"] = {**config["params"], **endpoint.incremental.params(asked.start, asked.end)}
        values = {"start_value": endpoint.incremental.written(asked.start),
                  "end_value": endpoint.incremental.written(asked.end)}
        config = _with_placeholders(config, values)
    elif endpoint.placeholders():
        raise SettingsError(f"{client.definition.read_from}: resources `{resource.name}` takes the window in "
                            "`{incremental.*}` placeholders: it is read for a window only (a daily partition).")
    config["paginator"] = paginator or paginator_for(resource, key_getter(resource.key), sync=client.id)
    config["data_selector"] = jsonpath.compile_path(endpoint.data_selector)  # dlt would parse it per page
    return config


def _feeds_windowed_children(client: ApiClient, resource: Resource) -> bool:
    """A parent of a child that asks for the window itself: the child's records of the window may
    hang under any parent, so every parent is read. (A child that only checks its records against
    the window leaves asking for it to its parent.)"""
    return any(resource.name in child.parents and child.sends_window for child in client.definition.resources)


def _with_placeholders(value: Any, values: Mapping[str, Any]) -> Any:
    """`value` with `{incremental.start_value}`/`{incremental.end_value}` written out; every other
    brace (dlt's `{resources...}`, and `{{`/`}}` escapes) left for dlt."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:  # a value that is only the placeholder keeps the value's type (a number stays a number)
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), value)
    if isinstance(value, Mapping):
        return {key: _with_placeholders(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_placeholders(item, values) for item in value]
    return value


def rest_api_config(client: ApiClient, window: Optional[Window] = None) -> dict[str, Any]:
    """The definition as dlt's `rest_api_source` takes it, for one sync of `window`."""
    resources = []
    for resource in client.definition.resources:
        entry = resource.model_dump(by_alias=True, exclude=OURS_IN_RESOURCE)
        entry["endpoint"] = endpoint_config(client, resource, window)
        hints = column_hints(resource)
        if hints:
            entry["columns"] = hints
        if resource.parents and client.lookahead is not None:
            entry["parallelized"] = True  # each parent's children requested at once, within the throttle
        resources.append(entry)
    client_config = {**client.definition.config.client.model_dump(exclude=OURS_IN_CLIENT),
                     "base_url": client.base_url, "session": client.session}
    return {"client": client_config, "resources": resources}


def build_source(client: ApiClient, window: Optional[Window] = None, name: str = SOURCE_NAME,
                 **source_kwargs: Any) -> DltSource:
    """A fresh dlt source for one sync of `window` (every record when None): dlt sources keep
    state, and dagster-dlt cannot run one twice."""
    source = dlt_rest_api_source(rest_api_config(client, window), name=name, **source_kwargs)
    settings = client.settings
    for resource in client.definition.resources:
        source.resources[resource.name].add_step(
            PageStep(resource, client.stats, window, settings.schema_drift == "freeze", settings.max_new_columns))
    return source


def rest_api_source(config: Mapping[str, Any], name: str = SOURCE_NAME, **source_kwargs: Any) -> DltSource:
    """Drop-in for dlt's `rest_api_source` that takes the seed's config as written (credentials
    inside it, `"type": "oauth2"`, `token_url`), with the seed's policy: retries on 429/5xx, pages
    in turn (`analytics_assets.warehouse.pipeline.sync` also fetches pages concurrently). The seed
    declares its schema in prose; a resource the built-in definition knows, given without
    `columns`, gets the built-in declared columns."""
    built_in = {resource["name"]: resource for resource in BUILT_IN_CONFIG["resources"]}
    config = {**config, "resources": [
        {**resource, "columns": built_in[resource["name"]]["columns"]}
        if isinstance(resource, dict) and "columns" not in resource and resource.get("name") in built_in else resource
        for resource in config["resources"]
    ]}
    definition, credentials = parse_definition(config, "the config passed to rest_api_source")
    client = ApiClient(definition, Settings(max_concurrency=1), SyncStats(), credentials)
    return build_source(client, None, name, **source_kwargs)
