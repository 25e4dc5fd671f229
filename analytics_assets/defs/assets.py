"""The API's resources as Dagster assets: one merged warehouse table per configured resource, each
downstream of an external asset standing for its API endpoint."""


import tempfile
from array import array
from typing import Any, Iterator, Mapping, Sequence

import dlt
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from . import audit
from .api_config import api_config
from .errors import root_cause
from .partitions import window_of
from .pipeline import DATASET_NAME, PIPELINE_NAME, run_options, shared_warehouse_guard
from .pool import writer_pool
from .resources import AnalyticsApiResource, WarehouseResource
from .schema import declared_columns
from .settings import ApiSettings
from .source import SOURCE_NAME, rest_api_source
from .stats import SyncStats
from .warehouse import describe

DESTINATION_TITLES = {"duckdb": "DuckDB", "postgres": "PostgreSQL", "motherduck": "MotherDuck",
                      "snowflake": "Snowflake", "bigquery": "BigQuery"}
API_GROUP = "analytics_api"
TABLE_GROUP = "analytics"
OWNERS = ["team:analytics-engineering"]
PREVIEW_ROWS = 5

# Describes the API for the asset specs only; it is never fetched from and holds no credential.
DESCRIPTION_SETTINGS = ApiSettings(
    base_url="https://analytics-api.invalid",
    token_url="https://analytics-api.invalid/oauth/token",
    client_id="description-only",
    client_secret="description-only",
)


def table_key(resource: str) -> AssetKey:
    return AssetKey([TABLE_GROUP, resource])


def endpoint_key(resource: str) -> AssetKey:
    return AssetKey([API_GROUP, resource])


def column_schema(resource: str, drift: Sequence[str] = ()) -> TableSchema:
    """The declared columns with their descriptions, then any undeclared ones the API added."""
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=c.data_type,
                description=c.description,
                constraints=TableColumnConstraints(nullable=c.nullable, unique=c.name == "id"),
            )
            for c in declared_columns(resource)
        ]
        + [TableColumn(name=name, type="inferred", description="Undeclared: schema drift.") for name in drift]
    )


class AnalyticsDltTranslator(DagsterDltTranslator):
    """Keys `analytics/<resource>` downstream of `analytics_api/<resource>`, with the declared
    columns as metadata so the UI shows the schema before the first run, and the destination the
    table really lives in as its kind and storage."""

    def __init__(self, destination: str = "duckdb") -> None:
        super().__init__()
        self.destination = destination

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        resource = data.resource.name
        metadata: dict[str, Any] = {
            **spec.metadata,
            "dagster/table_name": f"{DATASET_NAME}.{resource}",
            "dagster/storage_kind": self.destination,
        }
        if declared_columns(resource):
            metadata["dagster/column_schema"] = column_schema(resource)
        return spec.replace_attributes(
            key=table_key(resource),
            deps=[endpoint_key(resource)],
            group_name=TABLE_GROUP,
            description=(
                f"Every record of the analytics API's `{resource}` endpoint, merged on `id` into "
                f"{DESTINATION_TITLES[self.destination]} table `{DATASET_NAME}.{resource}`. Each daily partition fetches the records "
                "whose `updated_at` falls on that UTC day."
            ),
            kinds={"dlt", self.destination},
            owners=OWNERS,
            tags={"layer": "raw", "source": "analytics_api"},
            metadata=metadata,
        )


class AnalyticsDltResource(DagsterDltResource):
    """dagster-dlt's resource, reporting the real table name and surviving a load of zero rows."""

    def extract_resource_metadata(self, context, resource, load_info, dlt_pipeline) -> Mapping[str, Any]:  # noqa: ANN001
        if dlt_pipeline.last_trace.last_normalize_info is None:
            metadata: dict[str, Any] = {"dataset_name": dlt_pipeline.dataset_name}
        else:
            metadata = dict(super().extract_resource_metadata(context, resource, load_info, dlt_pipeline))
        # Per-partition counts are added by the asset; the run total here would repeat on every day.
        # The job list names local working files: noise in the UI.
        metadata.pop("rows_loaded", None)
        metadata.pop("jobs", None)
        metadata["dagster/table_name"] = f"{dlt_pipeline.dataset_name}.{resource.table_name}"
        return metadata


def endpoint_specs() -> list[AssetSpec]:
    return [
        AssetSpec(
            key=endpoint_key(resource["name"]),
            group_name=API_GROUP,
            description=f"GET {resource['endpoint']['path']} of the analytics API (OAuth2 client credentials, "
            "offset pagination). External: observed, not materialized, by this project.",
            kinds={"api"},
            owners=OWNERS,
            metadata={"path": resource["endpoint"]["path"]},
        )
        for resource in api_config(DESCRIPTION_SETTINGS)["resources"]
    ]


def build_table_assets(partitions_def: PartitionsDefinition, destination: str = "duckdb") -> AssetsDefinition:
    description_source = rest_api_source(api_config(DESCRIPTION_SETTINGS), settings=DESCRIPTION_SETTINGS)
    # Names the pipeline for the specs only; runs use WarehouseResource.pipeline. dlt writes a
    # working folder as soon as a pipeline object exists: a scratch one, gone when the specs are built.
    with tempfile.TemporaryDirectory(prefix="analytics-assets-specs-") as scratch:
        description_pipeline = dlt.pipeline(
            pipeline_name=PIPELINE_NAME, destination=destination, dataset_name=DATASET_NAME, pipelines_dir=scratch
        )
    translator = AnalyticsDltTranslator(destination)

    @dlt_assets(
        dlt_source=description_source,
        dlt_pipeline=description_pipeline,
        name="analytics_tables",
        dagster_dlt_translator=translator,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        pool=writer_pool(destination),
    )
    def analytics_tables(
        context: AssetExecutionContext,
        dlt: AnalyticsDltResource,
        analytics_api: AnalyticsApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult]:
        yield from sync_tables(context, dlt, analytics_api, warehouse, translator)

    return analytics_tables


def sync_tables(
    context: AssetExecutionContext,
    dlt_resource: DagsterDltResource,
    analytics_api: AnalyticsApiResource,
    warehouse: WarehouseResource,
    translator: AnalyticsDltTranslator,
) -> Iterator[MaterializeResult]:
    """Fetch the run's window and merge it; a fresh source and pipeline per run (dagster-dlt
    cannot reuse a source across materializations)."""
    window = window_of(context)
    settings = analytics_api.settings()
    stats = SyncStats(progress=context.log.info)
    try:
        source = rest_api_source(api_config(settings), SOURCE_NAME, settings=settings, window=window, stats=stats)
        pipeline = warehouse.pipeline(context.run.run_id)
        context.log.info(
            f"Syncing records updated in [{window.start:%Y-%m-%d %H:%M}, {window.end:%Y-%m-%d %H:%M}) UTC "
            f"from {settings.base_url} into {describe(pipeline)}"
        )
        with shared_warehouse_guard(pipeline, source.resources.keys()):
            results = list(
                dlt_resource.run(
                    context=context,
                    dlt_source=source,
                    dlt_pipeline=pipeline,
                    dagster_dlt_translator=translator,
                    **run_options(pipeline),
                )
            )
    except Exception as error:
        cause = root_cause(error)
        raise Failure(description=str(cause)) from error
    context.log.info("sync finished: " + stats.summary())

    with warehouse.sql(context.run.run_id) as sql:
        for result in results:
            resource = result.asset_key.path[-1]
            yield _with_sync_metadata(context, sql, warehouse, result, resource, stats, window)


def _with_sync_metadata(context, sql, warehouse, result, resource, stats, window) -> MaterializeResult:  # noqa: ANN001
    table = warehouse.table(resource)
    has_table = sql.has_table(table)
    fetched = audit.record_fetch(
        sql, context.run.run_id, resource, window, stats.api_totals.get(resource),
        stats.fetched_ids.get(resource, array("q")),
    )
    rows_by_day = {
        day.isoformat(): count
        for day, count in sql.rows(
            f"SELECT CAST(updated_at AT TIME ZONE 'UTC' AS DATE), count(*) FROM {table} "
            "WHERE updated_at >= %s AND updated_at < %s GROUP BY 1",
            window.start, window.end,
        )
    } if has_table else {}
    fetched_by_day = stats.fetched_by_day.get(resource, {})
    for partition_key in context.partition_keys:
        context.add_asset_metadata(
            {
                "rows_loaded": MetadataValue.int(fetched_by_day.get(partition_key, 0)),
                "dagster/partition_row_count": MetadataValue.int(rows_by_day.get(partition_key, 0)),
            },
            asset_key=result.asset_key,
            partition_key=partition_key,
        )
    drift = sorted(stats.drift_columns.get(resource, ()))
    metadata = {
        **(result.metadata or {}),
        **stats.as_metadata(),
        "rows_loaded_in_run": MetadataValue.int(fetched),
        "api_total_for_window": MetadataValue.int(stats.api_totals.get(resource, fetched)),
        "window_start": MetadataValue.text(window.start.isoformat()),
        "window_end": MetadataValue.text(window.end.isoformat()),
        "schema_drift": MetadataValue.text(", ".join(drift) if drift else "none"),
    }
    if declared_columns(resource):
        metadata["dagster/column_schema"] = column_schema(resource, drift)
    if has_table:
        metadata["preview"] = MetadataValue.md(_preview(sql, table, window))
    return MaterializeResult(asset_key=result.asset_key, metadata=metadata)


def _preview(sql, table: str, window) -> str:  # noqa: ANN001
    names, rows = sql.columns_and_rows(
        f"SELECT * FROM {table} WHERE updated_at >= %s AND updated_at < %s ORDER BY id LIMIT {PREVIEW_ROWS}",
        window.start, window.end,
    )
    shown = [i for i, name in enumerate(names) if not name.startswith("_dlt_")]
    names = [names[i] for i in shown]
    rows = [[row[i] for i in shown] for row in rows]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:60]
