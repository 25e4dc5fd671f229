"""Several APIs in one code location, each a `RestApiComponent` of the defs folder.

A project of the test's own (a package with a defs folder and a pyproject naming it) holds the
built-in API's `defs.yaml`, as the repository has it, and a second API, `acme`, shaped like the
walkthrough's API (another window format, token auth, scopes and two endpoints), each served by a
demo API of its own on 127.0.0.1. The code location is built as Dagster builds it
(`load_from_defs_folder`, merged with the shared resources)."""

from __future__ import annotations

import copy
import itertools
import textwrap
from datetime import date
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from dagster import AssetKey, AssetSelection, DagsterInstance, Definitions, define_asset_job

from analytics_assets.api.definition import BUILT_IN_CONFIG
from analytics_assets.demo_api.server import PROFILES
from analytics_assets.definitions import PROJECT_ROOT, build_defs
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, query, set_api_env

BUILT_IN_YAML = PROJECT_ROOT / "analytics_assets" / "defs" / "analytics" / "defs.yaml"
DAY, LAST_DAY = "2026-11-17", "2026-11-18"
ACME_CLIENT = {"client_id": "acme-client", "client_secret": "acme-secret"}
_packages = itertools.count()


def acme_attributes(**extra: Any) -> dict:
    """The second API: the README's example config (the walkthrough's API), its URLs and
    credentials from ACME_* variables."""
    from analytics_assets_tests.api.test_config import readme_example

    return {"name": "acme", "client_id": "{{ env.ACME_CLIENT_ID }}", "client_secret": "{{ env.ACME_CLIENT_SECRET }}",
            "base_url": "{{ env.ACME_API_BASE_URL }}", "token_url": "{{ env.ACME_TOKEN_URL }}",
            "partitions_start": "2026-11-01", **readme_example(), **extra}


def component_yaml(attributes: dict) -> str:
    return yaml.safe_dump({"type": "analytics_assets.RestApiComponent", "attributes": attributes}, sort_keys=False)


def api_project(tmp_path: Path, apis: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dg project of the test's own: `<package>/defs/<folder>/defs.yaml` for each of `apis`, the
    package importable (a fresh name each time: Python caches modules by name)."""
    package = f"apis_{next(_packages)}_{tmp_path.name[-12:].replace('-', '_').lower()}"
    root = tmp_path / "project"
    defs = root / package / "defs"
    defs.mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{package}"
        version = "0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "{package}"
        defs_module = "{package}.defs"
        """))
    for folder, text in apis.items():
        (defs / folder).mkdir()
        (defs / folder / "defs.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(root))
    return root


def two_apis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **acme: Any) -> Definitions:
    root = api_project(tmp_path, {"analytics": BUILT_IN_YAML.read_text(), "acme": component_yaml(acme_attributes(**acme))},
                       monkeypatch)
    return build_defs(root)


@pytest.fixture
def acme_api(make_api, monkeypatch):
    """The second API's demo server (the walkthrough's shape, its own credentials, a rate limit it
    announces), and the ACME_* variables pointing at it."""
    api = make_api(records=400, days=5, end_date=date(2026, 11, 20), rate_limit=40, rate_limit_headers="ietf",
                   **ACME_CLIENT, **PROFILES["walkthrough"])
    for name, value in {"ACME_API_BASE_URL": api.base_url, "ACME_TOKEN_URL": api.token_url,
                        "ACME_CLIENT_ID": api.config.client_id, "ACME_CLIENT_SECRET": api.config.client_secret}.items():
        monkeypatch.setenv(name, value)
    return api


def run(defs: Definitions, job_name: str, partition: Optional[str] = None, first: Optional[str] = None,
        last: Optional[str] = None, instance: Optional[DagsterInstance] = None):
    tags = {} if partition else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance or DagsterInstance.ephemeral(), partition_key=partition, tags=tags, raise_on_error=False)


def assert_both_match(warehouse, analytics_api, acme_api, first: str, last: str) -> None:
    assert_table_matches(warehouse, analytics_api.records_in_window(*day_bounds(first, last)))
    expected = acme_api.records_in_window(*day_bounds(first, last))
    assert expected, "the second API holds records for the days"
    assert_table_matches(warehouse, expected, table="acme.events")
    assert_table_matches(warehouse, expected, table="acme.accounts")


def test_the_built_in_defs_yaml_is_the_seed_config():
    """The built-in API's file and api/definition.py's BUILT_IN_CONFIG (the seed's) are one config."""
    attributes = yaml.safe_load(BUILT_IN_YAML.read_text())["attributes"]
    assert {key: attributes[key] for key in ("client", "resource_defaults", "resources")} == BUILT_IN_CONFIG
    assert attributes["name"] == "analytics" and attributes["daily_summary"] is True
    assert attributes["config_file"] == "{{ env.ANALYTICS_API_CONFIG }}"


def test_each_api_has_its_own_names_and_the_built_in_keeps_its_own(tmp_path, monkeypatch):
    defs = two_apis(tmp_path, monkeypatch, schedule="30 2 * * *")
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == {"analytics/resource_name", "analytics_api/resource_name", "analytics/resource_name_daily_summary",
                    "acme/events", "acme/accounts", "acme_api/events", "acme_api/accounts"}
    graph = repository.asset_graph
    assert graph.get(AssetKey(["acme", "events"])).parent_keys == {AssetKey(["acme_api", "events"])}
    assert graph.get(AssetKey(["acme", "events"])).group_name == "acme"
    assert graph.get(AssetKey(["acme_api", "events"])).group_name == "acme_api"
    spec = defs.get_assets_def(AssetKey(["acme", "events"])).specs_by_key[AssetKey(["acme", "events"])]
    assert spec.metadata["dagster/table_name"] == "acme.events"
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert {("acme/events", "id_unique"), ("acme/events", "window_complete"), ("acme/accounts", "id_unique"),
            ("analytics/resource_name", "id_unique")} <= checks
    assert not any(asset.startswith("acme/resource_name") for asset, _ in checks), "only the built-in has a model"
    assert set(repository.job_names) >= {"analytics_job", "acme_job"}
    assert {s.name: s.cron_schedule for s in repository.schedule_defs} == {"analytics_daily": "15 0 * * *",
                                                                            "acme_daily": "30 2 * * *"}
    assert {s.name for s in repository.sensor_defs} == {
        "analytics_reconcile", "analytics_freshness", "analytics_automation", "acme_reconcile", "acme_freshness"}
    assert repository.get_sensor_def("acme_reconcile").job_name == "acme_job"
    assert set(defs.resources) == {"dlt", "warehouse", "analytics_api", "acme_api"}
    assert defs.resolve_job_def("acme_job").asset_layer.executable_asset_keys == {
        AssetKey(["acme", "events"]), AssetKey(["acme", "accounts"])}


def test_an_apis_run_tunables_and_days_are_its_own(tmp_path, monkeypatch):
    """What one API's file fixes (its rate ceiling, concurrency, reconcile days, first day) applies
    to it alone; the other keeps the deployment's values."""
    from analytics_assets.components import RestApiComponent

    monkeypatch.setenv("ANALYTICS_MAX_CONCURRENCY", "6")
    acme = RestApiComponent.from_attributes_dict(attributes=acme_attributes(
        run_defaults={"max_requests_per_second": 5, "max_concurrency": 2}, reconcile_days=3,
        partitions_start="2026-10-01")).instance()
    built_in = RestApiComponent.from_attributes_dict(attributes=yaml.safe_load(BUILT_IN_YAML.read_text())["attributes"])
    analytics = built_in.instance()
    assert (acme.settings().max_requests_per_second, acme.settings().max_concurrency) == (5, 2)
    assert acme.settings(max_concurrency=3).max_concurrency == 3, "a run's launch config still wins"
    assert (analytics.settings().max_requests_per_second, analytics.settings().max_concurrency) == (None, 6)
    assert (acme.settings().reconcile_days, analytics.settings().reconcile_days) == (3, 7)
    assert (acme.load_settings().partitions_start, analytics.load_settings().partitions_start) == \
        (date(2026, 10, 1), date(2026, 11, 1))


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
def test_two_apis_synced_in_one_run_land_exactly(warehouse_kind, make_api, acme_api, tmp_path, monkeypatch, request):
    """Both APIs' tables in one Dagster run, each compared row by row with its own server; the
    second API's announced rate limit is kept (no 429), and each server saw its own client only."""
    analytics_api = make_api(records=500, days=5, end_date=date(2026, 11, 20))
    set_api_env(monkeypatch, analytics_api, tmp_path / "warehouse.duckdb")
    warehouse: Any = tmp_path / "warehouse.duckdb"
    if warehouse_kind == "postgres":
        warehouse = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", warehouse)
    defs = two_apis(tmp_path, monkeypatch)
    both = define_asset_job("both_apis", selection=AssetSelection.groups("analytics", "acme"))
    defs = Definitions.merge(defs, Definitions(jobs=[both]))
    result = run(defs, "both_apis", first=DAY, last=LAST_DAY)
    assert result.success
    assert_both_match(warehouse, analytics_api, acme_api, DAY, LAST_DAY)
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} >= {
        "analytics/resource_name", "acme/events", "acme/accounts"}
    checks = [c for c in result.get_asset_check_evaluations() if "freshness" not in c.check_name]
    assert {c.asset_key.to_user_string() for c in checks} >= {"analytics/resource_name", "acme/events", "acme/accounts"}
    assert all(check.passed for check in checks)
    assert acme_api.rate_limited == 0
    assert analytics_api.tokens_issued >= 1 and acme_api.tokens_issued >= 1
    for schema, pipeline in (("analytics", "analytics_assets"), ("acme", "acme_assets")):
        assert query(warehouse, f"SELECT DISTINCT pipeline_name FROM {schema}._dlt_pipeline_state")[1] == [(pipeline,)], \
            "each API keeps dlt's state under a pipeline of its own"


def test_two_apis_synced_in_separate_runs_land_exactly(make_api, acme_api, tmp_path, monkeypatch):
    """Each API's own job, one after the other into one DuckDB file (its one writer): neither
    run touches the other's schema."""
    from analytics_assets_tests.conftest import table_checksum

    analytics_api = make_api(records=500, days=5, end_date=date(2026, 11, 20))
    set_api_env(monkeypatch, analytics_api, tmp_path / "warehouse.duckdb")
    defs = two_apis(tmp_path, monkeypatch)
    with DagsterInstance.ephemeral() as instance:
        assert run(defs, "analytics_job", partition=DAY, instance=instance).success
        before = table_checksum(tmp_path / "warehouse.duckdb")
        assert run(defs, "acme_job", partition=DAY, instance=instance).success
    assert table_checksum(tmp_path / "warehouse.duckdb") == before, "the second API's run left the first's table alone"
    assert_both_match(tmp_path / "warehouse.duckdb", analytics_api, acme_api, DAY, DAY)


def test_an_api_never_reads_the_built_in_apis_credentials(make_api, acme_api, tmp_path, monkeypatch):
    """With ACME_CLIENT_ID unset, the second API fails naming its own variable; the built-in API's
    ANALYTICS_CLIENT_ID and dlt's plain `client_id`, set, are not sent to it."""
    analytics_api = make_api(records=100, days=5, end_date=date(2026, 11, 20), **ACME_CLIENT)
    set_api_env(monkeypatch, analytics_api, tmp_path / "warehouse.duckdb")  # the same id and secret as acme's
    monkeypatch.setenv("CLIENT_ID", ACME_CLIENT["client_id"])  # dlt's plain secrets: the built-in API's fallback
    monkeypatch.setenv("CLIENT_SECRET", ACME_CLIENT["client_secret"])
    monkeypatch.delenv("ACME_CLIENT_ID")
    result = run(two_apis(tmp_path, monkeypatch), "acme_job", partition=DAY)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "set ACME_CLIENT_ID (or `acme.client_id` in .dlt/secrets.toml)" in str(failure.event_specific_data.error), \
        failure.event_specific_data.error
    assert acme_api.requests == [] and acme_api.tokens_issued == 0


def test_the_variable_overrides_the_built_in_apis_definition(tmp_path, monkeypatch):
    """ANALYTICS_API_CONFIG replaces the config written in the built-in API's defs.yaml, and no other API's."""
    from analytics_assets_tests.api.test_config import readme_example, write

    monkeypatch.setenv("ANALYTICS_API_CONFIG", str(write(tmp_path, readme_example())))
    keys = {key.to_user_string() for key in
            two_apis(tmp_path, monkeypatch).get_repository_def().asset_graph.get_all_asset_keys()}
    assert {"analytics/events", "analytics/accounts", "acme/events"} <= keys
    assert "analytics/resource_name" not in keys


# --- a broken file ------------------------------------------------------------------------------

def load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[str, Path]:
    root = api_project(tmp_path, {"analytics": BUILT_IN_YAML.read_text(), "acme": text}, monkeypatch)
    with pytest.raises(Exception) as raised:
        build_defs(root)
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(chain), next(root.glob("*/defs/acme/defs.yaml"))


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_config_mistake_names_the_file_the_line_and_the_key(tmp_path, monkeypatch):
    attributes = acme_attributes()
    attributes["resources"][1]["endpoint"]["paginator"] = {"type": "offset", "limit": 0}
    message, path = load_error(tmp_path, monkeypatch, component_yaml(attributes))
    assert f"{path}:{line_of(path, 'limit: 0')}: attributes.resources[1].endpoint.paginator.limit" in message
    assert "must be greater than 0; got '0'" in message


@pytest.mark.parametrize("key, where", [("client_secret", "client_secret:"), ("client_id", "client_id:")])
def test_a_credential_written_in_the_file_is_refused_without_echoing_it(tmp_path, monkeypatch, key, where):
    text = component_yaml(acme_attributes(**{key: "s3cr3t-literal-value"}))
    message, path = load_error(tmp_path, monkeypatch, text)
    assert f"{path}:{line_of(path, where)}: attributes.{key}: must be a variable's template" in message
    assert "s3cr3t" not in message


def test_a_credential_in_the_rest_api_config_is_refused_without_echoing_it(tmp_path, monkeypatch):
    attributes = acme_attributes()
    attributes["client"] = copy.deepcopy(attributes["client"])
    attributes["client"]["auth"]["client_secret"] = "s3cr3t-literal-value"
    message, path = load_error(tmp_path, monkeypatch, component_yaml(attributes))
    assert f"{path}:{line_of(path, 'client_secret: s3cr3t')}: attributes.client.auth.client_secret" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize("name, problem", [("acme_api", "must not end in `_api`"), ("Acme", "must be lowercase"),
                                           ("acme_staging", "must not hold `_staging`")])
def test_a_name_that_could_collide_is_refused(tmp_path, monkeypatch, name, problem):
    message, path = load_error(tmp_path, monkeypatch, component_yaml(acme_attributes(name=name)))
    assert f"{path}:{line_of(path, 'name: ' + name)}: attributes.name: {problem}" in message


def test_a_template_inside_the_rest_api_config_is_refused(tmp_path, monkeypatch):
    attributes = acme_attributes()
    attributes["client"] = {**attributes["client"], "headers": {"X-Api-Key": "{{ env.ACME_KEY }}"}}
    message, path = load_error(tmp_path, monkeypatch, component_yaml(attributes))
    assert f"{path}:{line_of(path, 'client:')}: attributes.client: templates are not rendered" in message


def test_two_apis_of_one_name_fail_the_load(tmp_path, monkeypatch):
    root = api_project(tmp_path, {"analytics": BUILT_IN_YAML.read_text(), "acme": component_yaml(acme_attributes()),
                                  "acme_again": component_yaml(acme_attributes())}, monkeypatch)
    with pytest.raises(Exception, match="acme"):
        build_defs(root)


def test_a_flag_that_is_not_true_or_false_is_refused(tmp_path, monkeypatch):
    """Dagster lets text through any attribute (it could be a template): "no" must not read as on."""
    message, path = load_error(tmp_path, monkeypatch, component_yaml(acme_attributes(schedule_running="no")))
    assert f"{path}:{line_of(path, 'schedule_running:')}: attributes.schedule_running: must be true or false" in message


def test_only_an_api_that_asks_has_the_daily_summary(tmp_path, monkeypatch):
    """The seed's config under another name has no model unless its file says `daily_summary: true`;
    then the model is its own (its schema, key, check and automation sensor)."""
    seed = {"name": "seedlike", "client_id": "{{ env.SEEDLIKE_CLIENT_ID }}",
            "client_secret": "{{ env.SEEDLIKE_CLIENT_SECRET }}", **copy.deepcopy(BUILT_IN_CONFIG)}
    root = api_project(tmp_path, {"analytics": BUILT_IN_YAML.read_text(), "seedlike": component_yaml(seed),
                                  "seedlike2": component_yaml({**seed, "name": "seedlike2", "daily_summary": True})},
                       monkeypatch)
    defs = build_defs(root)
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert "seedlike/resource_name_daily_summary" not in keys
    assert {"analytics/resource_name_daily_summary", "seedlike2/resource_name_daily_summary"} <= keys
    key = AssetKey(["seedlike2", "resource_name_daily_summary"])
    assert defs.get_assets_def(key).specs_by_key[key].metadata["dagster/table_name"] == \
        "seedlike2.resource_name_daily_summary"
    sensors = {s.name for s in repository.sensor_defs}
    assert {"analytics_automation", "seedlike2_automation"} <= sensors and "seedlike_automation" not in sensors


def test_an_api_without_url_variables_never_reads_the_built_in_apis(tmp_path, monkeypatch):
    """An API whose file names no `base_url`/`token_url` variable uses its config's URLs, even with
    ANALYTICS_API_BASE_URL and ANALYTICS_TOKEN_URL set for the built-in API."""
    from analytics_assets.components import RestApiComponent

    monkeypatch.setenv("ANALYTICS_API_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ANALYTICS_TOKEN_URL", "http://127.0.0.1:1/oauth/token")
    attributes = {key: value for key, value in acme_attributes().items() if key not in ("base_url", "token_url")}
    acme = RestApiComponent.from_attributes_dict(attributes=attributes).instance()
    settings = acme.settings()
    assert (settings.api_base_url, settings.token_url) == (None, None)
    assert acme.definition.urls(settings) == ("https://api.example.com", "https://api.example.com/oauth/token")


def test_an_apis_reconcile_sensor_asks_its_own_api_for_its_own_days(make_api, tmp_path, monkeypatch):
    """`acme_reconcile` counts the last `reconcile_days` of acme's file at acme's server, and
    records them on acme's endpoints; the built-in API's server hears nothing."""
    from dagster import build_sensor_context

    from analytics_assets.builders.sensors import recent_days

    analytics_api = make_api(records=100, days=3)
    set_api_env(monkeypatch, analytics_api, tmp_path / "warehouse.duckdb")
    acme_api = make_api(records=100, days=3, **ACME_CLIENT, **PROFILES["walkthrough"])
    for name, value in {"ACME_API_BASE_URL": acme_api.base_url, "ACME_TOKEN_URL": acme_api.token_url,
                        "ACME_CLIENT_ID": acme_api.config.client_id,
                        "ACME_CLIENT_SECRET": acme_api.config.client_secret}.items():
        monkeypatch.setenv(name, value)
    defs = two_apis(tmp_path, monkeypatch, reconcile_days=2)
    sensor = defs.get_repository_def().get_sensor_def("acme_reconcile")
    with DagsterInstance.ephemeral() as instance, \
            build_sensor_context(instance=instance, resources=defs.resources) as context:
        result = sensor(context)
    days = recent_days(defs.resolve_job_def("acme_job").partitions_def, 2)
    observed = sorted((e.asset_key.to_user_string(), e.partition) for e in result.asset_events)
    assert observed == sorted((f"acme_api/{name}", day) for name in ("accounts", "events") for day in days)
    assert analytics_api.requests == [] and acme_api.requests
