"""The API definition handed to dlt's `rest_api_source` as its own config dict, with this project's
guarantees at dlt's seams.

The dict is derived from the checked config, key for key in dlt's vocabulary; only what dlt
cannot be told in its own words is replaced: the session (authentication, pacing and bounds on
every attempt: `http.py`), the paginator (guarded paging: `paging.py`, a value object), the window
(the partitions supply it: the endpoint's `incremental` names its query parameters), and the
declared columns as dlt column hints. Our checks ride on a pipe step (`records.PageStep`). The
result is an ordinary dlt source that runs in a plain dlt pipeline.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from dlt.common import jsonpath
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.extract import DltSource
from dlt.sources.rest_api import rest_api_source as dlt_rest_api_source

from ..settings import Settings
from ..window import Window
from .client import ApiClient
from .config import Resource
from .definition import BUILT_IN_CONFIG, parse_definition
from .paging import paginator_for
from .records import PageStep, column_hints
from .stats import SyncStats

SOURCE_NAME = "analytics"
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
    config = endpoint.model_dump(exclude=OURS_IN_ENDPOINT)
    config["path"] = resource.path
    if window is not None:
        config["params"] = {**config["params"], **endpoint.incremental.params(window.start, window.end)}
    config["paginator"] = paginator or paginator_for(resource, sync=client.id)
    config["data_selector"] = jsonpath.compile_path(endpoint.data_selector)  # dlt would parse it per page
    return config


def rest_api_config(client: ApiClient, window: Optional[Window] = None) -> dict[str, Any]:
    """The definition as dlt's `rest_api_source` takes it, for one sync of `window`."""
    resources = []
    for resource in client.definition.resources:
        entry = resource.model_dump(exclude=OURS_IN_RESOURCE)
        entry["endpoint"] = endpoint_config(client, resource, window)
        if resource.columns:
            entry["columns"] = column_hints(resource)
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
