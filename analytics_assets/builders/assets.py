"""The API's resources as Dagster assets: one merged warehouse table per configured resource, each
downstream of an external asset standing for its API endpoint, in daily UTC partitions (each day a
window of the records' cursor values). Specs come from the API definition itself; a run builds a
fresh dlt source for its window and hands it to dagster-dlt."""

from datetime import timezone
from typing import Any, Iterator, Mapping, Optional, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableColumnConstraints,
    TableRecord,
    TableSchema,
    multi_asset,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator
from dlt.extract import DltSource
from dagster_dlt.translator import DltResourceTranslatorData

from ..api.client import ApiClient
from ..api.config import Resource
from ..api.instance import ApiInstance
from ..api.names import CURSOR_AT, column, table
from ..api.shared_budget import deployment_folder
from ..api.source import build_source
from ..api.stats import SyncStats
from ..api.totals import day_totals
from ..errors import SettingsError, root_cause
from ..settings import Settings
from ..warehouse.pipeline import fetch, loading
from ..warehouse.destinations import Destination, private_files
from ..warehouse.sql import WarehouseSql, ident, literal, location, open_sql
from ..window import Window
from .resources import AnalyticsApiResource, WarehouseResource

OWNERS = ["team:analytics-engineering"]
PREVIEW_ROWS = 5
ROWS_OF_DAY = "rows_of_day:"  # the table's rows of a day, read after the load, until they go on the day's partition
PREVIEW_OF_DAY = "preview_of_day:"  # the day's first rows, likewise


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """An API's days, from its first (its file's `partitions_start`, else ANALYTICS_PARTITIONS_START)."""
    return DailyPartitionsDefinition(start_date=settings.partitions_start.isoformat(), timezone="UTC")


def window_of(context: AssetExecutionContext | AssetCheckExecutionContext) -> Window:
    """The whole window of the run: one day, or every day of a single-run backfill."""
    start, end = context.partition_time_window
    return Window(start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def table_key(instance: ApiInstance, resource: str) -> AssetKey:
    """`<name>/<resource>`: a table of the API's schema."""
    return AssetKey([instance.table_group, resource])


def endpoint_key(instance: ApiInstance, resource: str) -> AssetKey:
    """`<name>_api/<resource>`: the API's endpoint the table is read from."""
    return AssetKey([instance.api_group, resource])


def column_schema(resource: Resource) -> TableSchema:
    """The declared columns with their descriptions, under the names the table gives them: what the
    UI shows before the first load tells dlt's own schema (`table_schema`)."""
    return TableSchema(columns=[
        TableColumn(name=column(c.name), type=c.data_type, description=c.description,
                    constraints=TableColumnConstraints(nullable=c.nullable, unique=resource.key == (c.name,)))
        for c in resource.declared])


def table_schema(resource: Resource, columns: Mapping[str, Any]) -> TableSchema:
    """The table's columns as dlt's schema has them after a load (the declared ones, those dlt
    inferred or flattened, and `_cursor_at`), with their descriptions."""
    declared = {column(c.name): c for c in resource.declared}
    key = {column(field) for field in resource.key}
    return TableSchema(columns=[
        TableColumn(name=name, type=hint.get("data_type", "unknown"),
                    description=declared[name].description if name in declared else hint.get("description") or (
                        "" if name in declared else "Inferred by dlt from what the API sends."),
                    constraints=TableColumnConstraints(nullable=hint.get("nullable", True),
                                                       unique=key == {name}))
        for name, hint in columns.items() if not name.startswith("_dlt_")])


def describe_window(resource: Resource) -> str:
    """How a daily partition reads the resource, for its asset's description."""
    if resource.parents:
        parents = ", ".join(f"`{parent}`" for parent in sorted(resource.parents))
        return (f"Read for each record of {parents}: " + (
            f"every one of them, for the records whose `{resource.cursor}` falls on the partition's UTC days."
            if resource.cursor else "those the partition reads."))
    if resource.cursor is None:
        return "Read whole by every run (the endpoint has no window)."
    return f"Each daily partition fetches the records whose `{resource.cursor}` falls on that UTC day."


class AnalyticsDltTranslator(DagsterDltTranslator):
    """Keys `<name>/<resource>` downstream of `<name>_api/<resource>` (`analytics/...` for the
    built-in API), with the declared columns as metadata so the UI shows the schema before the
    first run, and the destination the table really lives in as its kind and storage."""

    def __init__(self, instance: ApiInstance, destination: Destination) -> None:
        super().__init__()
        self.instance = instance
        self.definition = instance.definition
        self.destination = destination

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        return self.spec(self.definition.resource(data.resource.name))

    def spec(self, resource: Resource) -> AssetSpec:
        instance = self.instance
        metadata: dict[str, Any] = {
            "dagster/table_name": f"{instance.dataset}.{table(resource.name)}",
            "dagster/storage_kind": self.destination.name,
        }
        if resource.columns:
            metadata["dagster/column_schema"] = column_schema(resource)
        return AssetSpec(
            key=table_key(instance, resource.name),
            deps=[endpoint_key(instance, name) for name in (resource.name, *sorted(resource.parents))],
            group_name=instance.table_group,
            description=(
                f"Every record of the {instance.name} API's `{resource.name}` endpoint, merged on "
                f"`{', '.join(resource.key)}` into {self.destination.title} table "
                f"`{instance.dataset}.{table(resource.name)}`. {describe_window(resource)}"
            ),
            kinds={"dlt", self.destination.name},
            owners=OWNERS,
            tags={"layer": "raw", "source": instance.api_group},
            metadata=metadata,
        )


class AnalyticsDltResource(DagsterDltResource):
    """dagster-dlt's resource, reporting the real table name and surviving a load of zero rows."""

    def results(self, context: AssetExecutionContext, source: DltSource, pipeline: Any,
                translator: DagsterDltTranslator, load_info: Any) -> list[MaterializeResult]:
        """What `run` yields after its own `pipeline.run`, for a load done in two halves (fetched
        without the warehouse's writer, then loaded with it: `warehouse/pipeline.py`), which `run`
        cannot do."""
        return [MaterializeResult(
            asset_key=translator.get_asset_spec(DltResourceTranslatorData(resource=resource, pipeline=pipeline)).key,
            metadata=self.extract_resource_metadata(context, resource, load_info, pipeline))
            for resource in source.selected_resources.values()]

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
        metadata["dlt_load_id"] = load_info.loads_ids[-1] if load_info.loads_ids else ""
        return metadata


def endpoint_specs(instance: ApiInstance, partitions_def: PartitionsDefinition) -> list[AssetSpec]:
    return [
        AssetSpec(
            key=endpoint_key(instance, resource.name),
            group_name=instance.api_group,
            description=f"GET {resource.path} of the {instance.name} API (OAuth2 client credentials). "
            f"External: observed, not materialized, by this project: the `{instance.reconcile_sensor}` sensor "
            "records the API's record total of each recent day as an observation of that day's partition.",
            kinds={"api"},
            owners=OWNERS,
            partitions_def=partitions_def,
            metadata={"path": resource.path},
        )
        for resource in instance.definition.resources
    ]


def build_table_assets(instance: ApiInstance, partitions_def: PartitionsDefinition,
                       destination: Destination, days_per_run: Optional[int] = None) -> AssetsDefinition:
    """`days_per_run`: how Dagster's backfill daemon splits a range (ANALYTICS_BACKFILL_DAYS_PER_RUN);
    none, one run for the whole range, which a latency-bound API prefers (one source, one load)."""
    definition = instance.definition
    translator = AnalyticsDltTranslator(instance, destination)

    @multi_asset(
        name=instance.tables_op,
        specs=[translator.spec(resource) for resource in definition.config.selected],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(days_per_run) if days_per_run else BackfillPolicy.single_run(),
        # No writer pool: the step fetches most of its time, and its load takes the warehouse's writer
        # itself (`loading`: a DuckDB file's lock; on a shared warehouse, the load alone).
        can_subset=True,
        required_resource_keys={"dlt", "warehouse", instance.resource_key},
    )
    def tables(context: AssetExecutionContext) -> Iterator[AssetObservation | MaterializeResult]:
        """Fetch the run's window and merge it: a fresh source per run (dagster-dlt cannot run a
        source twice). The API's own resource (`<name>_api`) holds its run tunables."""
        dlt: AnalyticsDltResource = context.resources.dlt
        warehouse: WarehouseResource = context.resources.warehouse
        api: AnalyticsApiResource = getattr(context.resources, instance.resource_key)  # type: ignore[valid-type]
        window = window_of(context)
        try:
            settings = api.settings(instance)
        except SettingsError as error:  # one line naming the setting and its bounds, no trace
            raise Failure(description=str(error)) from None
        stats = SyncStats(progress=context.log.info, warning=context.log.warning)
        try:
            pipeline = warehouse.pipeline(context.run.run_id, instance)
            budget_folder = deployment_folder(context.instance.root_directory)  # the deployment's runs share it
            with ApiClient(definition, settings, stats, budget_folder=budget_folder) as client, private_files():
                wait = warehouse.settings().warehouse_lock_wait
                selected = [key.path[-1] for key in context.selected_asset_keys]
                source = build_source(client, window).with_resources(*selected)
                context.log.info(f"Syncing records of {window} from {client.base_url} into {location(pipeline)}")
                fetch(pipeline, source, wait, context.log.info)  # without the writer: other runs load meanwhile
                refetch = lambda: fetch(pipeline, build_source(client, window).with_resources(*selected),  # noqa: E731
                                        wait, context.log.info)
                with loading(pipeline, selected, wait, context.log.info, refetch):
                    load_info = pipeline.load()
                    load_info.raise_on_failed_jobs()
                    loaded = dlt.results(context, source, pipeline, translator, load_info)
                    # Read before another run's load can change what this one wrote.
                    with open_sql(pipeline, wait, context.log.info) as sql:
                        results = [with_table_figures(context, sql, pipeline, result,
                                                      definition.resource(result.asset_key.path[-1])) for result in loaded]
                context.log.info("sync finished: " + stats.summary())
                totals = {result.asset_key: days_api_totals(context, client, definition.resource(
                    result.asset_key.path[-1]), stats) for result in results}
        except Exception as error:
            raise Failure(description=str(root_cause(error))) from error
        for result in results:
            resource = definition.resource(result.asset_key.path[-1])
            yield from sync_events(context, instance, result, resource, stats, totals[result.asset_key])

    return tables


def days_api_totals(context: AssetExecutionContext, client: ApiClient, resource: Resource,
                    stats: SyncStats) -> dict[str, Optional[int]]:
    """The API's record total of each day of the run: the window's own for one day; asked day by
    day (one request each) in a range run. The rows are loaded by then: a failure to ask costs the
    figures, with a warning, not the run."""
    days, counts = context.partition_keys, stats.of(resource.name)
    if len(days) == 1:
        return {days[0]: counts.api_total}
    try:
        return day_totals(client, resource, days)
    except Exception as error:  # noqa: BLE001 - reported, and the figures left out
        context.log.warning(f"The API's total of each day could not be read ({root_cause(error)}); "
                            "the days' metadata leaves it out.")
        return {}


def with_table_figures(context: AssetExecutionContext, sql: WarehouseSql, pipeline: Any, result: MaterializeResult,
                       resource: Resource) -> MaterializeResult:
    """What the table holds right after this run's load: each day's rows and first rows, the
    records this load wrote (its rows carrying its `_dlt_load_id`, counted by key), the rows of its
    child tables, and its columns as dlt's schema has them."""
    window, name = window_of(context), table(resource.name)
    key = tuple(column(field) for field in resource.key)
    load_id = (result.metadata or {}).get("dlt_load_id", "")
    schema = pipeline.default_schema
    children = [child for child, hints in schema.tables.items() if hints.get("parent") and
                child.startswith(f"{name}{schema.naming.PATH_SEPARATOR}")]
    figures: dict[str, Any] = {
        "run_rows_landed_distinct": MetadataValue.int(sql.distinct_in_load(name, key, load_id)),
        "dagster/column_schema": table_schema(resource, schema.tables.get(name, {}).get("columns", {})),
    }
    if children:
        figures["run_child_table_rows"] = MetadataValue.json(
            {child: sql.child_rows_of_load(child, name, load_id) for child in children})
    if resource.cursor:
        rows_by_day = sql.rows_per_day(name, CURSOR_AT, window)
        for day in context.partition_keys:
            figures[f"{ROWS_OF_DAY}{day}"] = MetadataValue.int(rows_by_day.get(day, 0))
            figures[f"{PREVIEW_OF_DAY}{day}"] = _preview(sql, name, key, Window.of_days(day))
    else:
        figures["preview"] = _preview(sql, name, key, None)
    return MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **figures})


# What stays on each day's materialization besides the day's own figures: what describes the table
# (the UI's asset overview reads its columns and name from the latest materialization).
TABLE_ENTRIES = ("dagster/table_name", "dagster/column_schema")
RUN_FIGURES_MARK = "dlt_load_id"  # the entry that marks the run's observation of a table


def sync_events(context: AssetExecutionContext, instance: ApiInstance, result: MaterializeResult, resource: Resource,
                stats: SyncStats, api_totals: Mapping[str, Optional[int]]) -> Iterator[AssetObservation | MaterializeResult]:
    """A sync's events for one table: the run's own figures once, then each day's materialization.

    A range run materializes every day of its window, and what Dagster attaches to the run's
    result goes on each day's event alike: run totals there read, in the UI's plots over
    partitions, as if each day had had them (5,000 records fetched on each of three days). So a
    day's materialization holds only what describes that day, first in its list: the rows the
    table holds for it, the records fetched for it, the API's total for it, its window and its
    first rows, then the table's name and columns, and a link to the run. The run's totals (the
    `run_*` figures, the dlt load id and dlt's own entries, the schema drift it saw) go once on an
    observation of the table without a partition: the run's page lists it among its events, the
    asset's Events tab shows it beside the days it wrote, and the partition plots, which chart the
    days' materializations, leave it out. Run tags would hold only text and crowd the run's header.
    `run_figures` reads it back (the `window_complete` check does).

    The API's endpoint is observed too, for each day of the run (the API's total and the table's
    rows of that day), as the reconcile sensor does each hour: it is current after every sync."""
    window = window_of(context)
    counts = stats.of(resource.name)
    metadata = dict(result.metadata or {})
    day_entries = {f"{ROWS_OF_DAY}{day}" for day in context.partition_keys} | {
        f"{PREVIEW_OF_DAY}{day}" for day in context.partition_keys} | {"preview"}
    table_entries = {name: metadata[name] for name in TABLE_ENTRIES if name in metadata}
    drift = sorted(stats.drift_columns.get(resource.name, ()))
    yield AssetObservation(asset_key=result.asset_key, metadata={
        "run_window_start": MetadataValue.timestamp(window.start),
        "run_window_end": MetadataValue.timestamp(window.end),
        "run_days": MetadataValue.text(", ".join(context.partition_keys) if len(context.partition_keys) < 4 else
                                       f"{context.partition_keys[0]}..{context.partition_keys[-1]} "
                                       f"({len(context.partition_keys)} days)"),
        **{f"run_{name}": value for name, value in stats.as_metadata().items()},
        "run_records_fetched_distinct": MetadataValue.int(stats.distinct_ids(resource.name)),
        "run_records_kept_distinct": MetadataValue.int(stats.distinct_kept(resource.name)),
        "run_records_past_window_end": MetadataValue.int(counts.past_end),
        "run_api_total": MetadataValue.int(counts.api_total if counts.api_total is not None else counts.records),
        "schema_drift": MetadataValue.text(", ".join(drift) if drift else "none"),
        **{name: value for name, value in metadata.items() if name not in day_entries and name not in table_entries},
    })
    for partition_key in context.partition_keys:
        day = Window.of_days(partition_key)
        day_metadata: dict[str, Any] = {}
        if resource.cursor:  # a resource read whole has no day of its own
            day_metadata["dagster/partition_row_count"] = metadata[f"{ROWS_OF_DAY}{partition_key}"]
            day_metadata["records_fetched"] = MetadataValue.int(counts.by_day.get(partition_key, 0))
        if api_totals.get(partition_key) is not None:
            day_metadata["api_total"] = MetadataValue.int(api_totals[partition_key])
        if resource.cursor and not counts.by_day.get(partition_key) and not api_totals.get(partition_key):
            # A quiet day, or a day before the API's data: said, so that it does not read as a fault.
            said = f"The API holds no `{resource.name}` records for {partition_key}: nothing to load that day."
            context.log.info(said)
            day_metadata["api_holds"] = MetadataValue.text(said)
        day_metadata["window_start"] = MetadataValue.timestamp(day.start)
        day_metadata["window_end"] = MetadataValue.timestamp(day.end)
        day_metadata["preview"] = metadata.get(f"{PREVIEW_OF_DAY}{partition_key}", metadata.get("preview"))
        context.add_asset_metadata({**day_metadata, **table_entries, "run": MetadataValue.dagster_run(context.run.run_id)},
                                   asset_key=result.asset_key, partition_key=partition_key)
        if resource.cursor and api_totals.get(partition_key) is not None:
            yield AssetObservation(asset_key=endpoint_key(instance, resource.name),
                                   partition=partition_key, metadata={
                                       "api_total": MetadataValue.int(api_totals[partition_key]),
                                       "table_rows": metadata[f"{ROWS_OF_DAY}{partition_key}"]})
    yield MaterializeResult(asset_key=result.asset_key)


def run_figures(instance: DagsterInstance, key: AssetKey, run_id: str) -> Mapping[str, Any]:
    """The figures the run `run_id` recorded once for the table `key` (see `sync_events`): its
    observation of the table; empty when it recorded none."""
    for entry in reversed(instance.all_logs(run_id, of_type=DagsterEventType.ASSET_OBSERVATION)):
        observation = entry.asset_observation
        if observation and observation.asset_key == key and RUN_FIGURES_MARK in observation.metadata:
            return observation.metadata
    return {}


def _preview(sql: WarehouseSql, name: str, key: tuple[str, ...], window: Optional[Window]) -> Any:
    """The first rows of the window, as a table of text: the API's text is never rendered as
    Markdown (a remote image or a link would show in the UI)."""
    where = f"WHERE {ident(CURSOR_AT)} >= {literal(window.start)} AND {ident(CURSOR_AT)} < {literal(window.end)}" \
        if window else ""
    names, rows = sql.read_with_columns(
        f"SELECT * FROM {ident(name)} {where} ORDER BY {', '.join(map(ident, key))} LIMIT {PREVIEW_ROWS}")
    shown = [i for i, column_name in enumerate(names) if not column_name.startswith("_dlt_") and column_name != CURSOR_AT]
    return MetadataValue.table(
        records=[TableRecord({names[i]: None if row[i] is None else str(row[i])[:60] for i in shown}) for row in rows],
        schema=TableSchema(columns=[TableColumn(names[i], "text") for i in shown]),
    )
