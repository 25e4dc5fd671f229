"""The API definition handed to dlt's `rest_api_source`, with this project's guarantees attached at
dlt's own seams.

dlt validates dict configs against its own names and rejects the seed's `"type": "oauth2"` and
`token_url`, and its offset paging skips records under a page cap. Rather than rewrite the source,
each seed form is replaced by the object dlt accepts at the same place (the auth object, a
paginator object, the session), our checks ride on dlt's hooks (`response_actions`, a pipe step,
column hints), and the window's parameters are set from the endpoint's `incremental`. The result is
an ordinary dlt source that runs in a plain dlt pipeline.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from dlt.common import jsonpath
from dlt.extract import DltSource
from dlt.sources.rest_api import rest_api_source as dlt_rest_api_source

from ..settings import Settings
from .definition import BUILT_IN_CONFIG, Endpoint, Window, parse_definition
from .http import ApiClient
from .paging import GUARDED, SafeOffsetPaginator, page_check
from .records import PageStep, SyncStats, column_hints

SOURCE_NAME = "analytics"


def build_source(client: ApiClient, window: Optional[Window] = None, name: str = SOURCE_NAME,
                 **source_kwargs: Any) -> DltSource:
    """A fresh dlt source for one sync of `window` (every record when None): dlt sources keep
    state, and dagster-dlt cannot run one twice."""
    definition, stats = client.definition, client.stats
    config = definition.rest_api_config(client.base_url)
    config["client"].update(auth=client.auth, session=client.session)
    for resource, endpoint in zip(config["resources"], definition.endpoints):
        _attach(resource, endpoint, client, window)
    source = dlt_rest_api_source(config, name=name, **source_kwargs)
    settings = client.settings
    for endpoint in definition.endpoints:
        source.resources[endpoint.name].add_step(
            PageStep(endpoint, stats, window, settings.schema_drift == "freeze", settings.max_new_columns))
    return source


def _attach(resource: dict, endpoint: Endpoint, client: ApiClient, window: Optional[Window]) -> None:
    """What dlt takes as objects at its seams: the paginator, the page check, the window's
    parameters (dlt's `incremental` would keep state; the partitions supply the window), hints."""
    options = resource["endpoint"]
    paging = endpoint.endpoint.paginator
    if paging.type == "offset":
        options["paginator"] = SafeOffsetPaginator(endpoint.name, paging, client.stats, client.lookahead)
    else:
        kwargs = paging.model_dump(exclude={"type", "max_pages", "records_total_path"})
        options["paginator"] = GUARDED[paging.type](endpoint.name, endpoint.primary_key, client.stats, paging.max_pages,
                                                    paging.records_total_path, **kwargs)
    if window is not None:
        options["params"] = {**options["params"], **endpoint.incremental.params(window.start, window.end)}
    selector = endpoint.endpoint.data_selector
    options["response_actions"] = [page_check(selector)]
    options["data_selector"] = jsonpath.compile_path(selector)  # dlt would parse it per page
    if endpoint.columns:
        resource["columns"] = column_hints(endpoint)


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
