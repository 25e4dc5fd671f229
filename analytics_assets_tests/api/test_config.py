"""The API config file: checked when the definitions load, naming the key's path, what was expected
and the file; the README's example and reference table are the real thing."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from analytics_assets.api.config import reference_table
from analytics_assets.api.definition import BUILT_IN_CONFIG, load_definition
from analytics_assets.definitions import build_defs
from analytics_assets.errors import SettingsError
from analytics_assets.settings import Settings
from analytics_assets_tests.conftest import assert_table_matches, day_bounds, run_job

README = Path(__file__).resolve().parents[2] / "README.md"
CONFIG_DOC = README.parent / "docs" / "api-config.md"


def readme_example() -> dict:
    text = README.read_text()
    return yaml.safe_load(re.search(r"<!-- example api.yaml -->\n```yaml\n(.*?)```", text, re.S).group(1))


class _NoAliases(yaml.SafeDumper):
    """A config written out as a user would write it: an object used twice is written twice, not
    as an anchor and an alias (which the reader refuses)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def write(tmp_path: Path, config: object, name: str = "api.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config) if name.endswith(".json") else yaml.dump(config, Dumper=_NoAliases))
    return path


def refused(tmp_path: Path, config: object, *words: str, name: str = "api.yaml") -> str:
    path = write(tmp_path, config, name)
    with pytest.raises(SettingsError) as error:
        load_definition(Settings(api_config=path))
    message = str(error.value)
    assert f"ANALYTICS_API_CONFIG={path}" in message
    for word in words:
        assert word in message, message
    return message


def test_the_config_reference_table_is_the_model():
    assert reference_table() in CONFIG_DOC.read_text(), (
        "docs/api-config.md's table of config keys differs from api/config.py; paste `reference_table()` into it")


def test_the_config_reference_lists_every_tested_public_api():
    """The list is the stand-ins' own (their module's docstring), one entry per stand-in."""
    from analytics_assets_tests.standins import apis

    listed = apis.__doc__[apis.__doc__.index("- **"):apis.__doc__.index("Where a real API")].strip()
    assert listed in CONFIG_DOC.read_text()
    assert listed.count("- **") == len(apis.ALL)


def test_the_built_in_definition_is_the_seed_with_its_schema(tmp_path):
    path = write(tmp_path, BUILT_IN_CONFIG, "api.json")
    assert load_definition(Settings(api_config=path)).config == load_definition(Settings()).config


@pytest.mark.parametrize("change, words", [
    (lambda c: c["resources"][0]["endpoint"]["incremental"].update(start_param=5),
     ["resources[0].endpoint.incremental.start_param must be text; got '5'"]),
    (lambda c: c["resources"][0]["endpoint"]["incremental"].update(start="x"),
     ["resources[0].endpoint.incremental.start is not a key", "start_param, end_param, cursor_path, value_format"]),
    (lambda c: c["resources"][0]["endpoint"]["incremental"].update(value_format="unix"),
     ["value_format must be one of iso8601, epoch_seconds, epoch_millis, date; got 'unix'"]),
    (lambda c: c["resources"][0]["endpoint"].update(paginator={"type": "offset", "limit": "ten"}),
     ["resources[0].endpoint.paginator.limit must be a whole number; got 'ten'"]),
    (lambda c: c["resources"][0]["endpoint"].update(paginator={"type": "offset", "lmit": 10}),
     ["paginator.lmit is not a key", "limit, offset, offset_param"]),
    (lambda c: c["resources"][0]["endpoint"].update(paginator={"type": "scroll"}),
     ["paginator must be one of offset, cursor, json_link, header_link, header_cursor, page_number, single_page; "
      "got 'scroll'"]),
    (lambda c: c["resources"][0]["columns"]["id"].update(data_type="integer"),
     ["resources[0].columns.id.data_type must be one of text, bigint"]),
    (lambda c: c["resources"].append({"name": "Other-Table"}), ["resources[1].name must be lowercase"]),
    (lambda c: c["resources"].append(dict(c["resources"][0])), ["'resource_name' is used twice"]),
    (lambda c: c["client"]["auth"].update(token_endpoint_auth_method="basic"),
     ["client.auth.token_endpoint_auth_method must be one of client_secret_post, client_secret_basic"]),
    (lambda c: c.update(resource_defaults={"bogus": 1}), ["resource_defaults.bogus is not a key"]),
    (lambda c: c.update(sources=[]), ["`sources` is not a key of the API config"]),
    # dlt keys whose meaning the partitions take over, or whose promises cannot be kept: each says why.
    (lambda c: c["resources"][0]["endpoint"]["incremental"].update(initial_value="2024-01-01"),
     ["resources[0].endpoint.incremental: `initial_value` is dlt's", "the daily partitions supply the window"]),
    (lambda c: c["resources"][0]["endpoint"].setdefault("params", {}).update(since={"type": "incremental", "cursor_path": "x"}),
     ["resources[0].endpoint.params: `since` is a dlt `incremental` parameter", "start_param: since"]),
    (lambda c: (c["resources"][0]["endpoint"].pop("incremental"),
                c["resources"][0]["endpoint"].setdefault("params", {}).update(q="x > {incremental.start_value}")),
     ["`{incremental.start_value}` needs the endpoint's `incremental`"]),
    (lambda c: c["resources"][0]["endpoint"].pop("paginator"), ["resources[0].endpoint.paginator is required"]),
    (lambda c: c["resources"][0]["endpoint"].pop("data_selector"), ["resources[0].endpoint.data_selector is required"]),
    (lambda c: c.update(resource_defaults={}) or c["resources"][0].pop("primary_key", None),
     ["resources[0]: `primary_key` names the fields", "not `selected: false`"]),
    (lambda c: c["resources"][0].update(primary_key={"a": 1}),
     ["resources[0].primary_key must be a field name or a list of field names; got"]),
    (lambda c: c["resources"][0]["endpoint"].setdefault("params", {}).update(channel={"type": "resolve", "field": "id"}),
     ["resources[0].endpoint.params.channel must be text, a number, true/false, or dlt's `{type: resolve"]),
    (lambda c: c["resources"][0]["endpoint"].update(path="/v1/{resources.accounts.id}/events"),
     ["`resource_name` is fetched for each record of `accounts`, which is not a resource of this config"]),
    (lambda c: c["resources"][0].update(include_from_parent=["id"]),
     ["`resource_name` has `include_from_parent` but no parent"]),
    (lambda c: c["resources"][0]["endpoint"].update(response_actions=[{"status_code": 404, "action": "ignore"}]),
     ["resources[0].endpoint.response_actions is not a key", "data_selector, paginator, incremental"]),
    (lambda c: c["resources"][0]["endpoint"].update(paginator={"type": "json_link", "has_more_path": "more"}),
     ["paginator.has_more_path is not a key", "next_url_path"]),
    (lambda c: c["resources"][0]["columns"]["updated_at"].update(data_type="text"),
     ["the window's cursor `updated_at` is declared `text`: declare it `timestamp`"]),
    (lambda c: c["resources"].append({**copy.deepcopy(c["resources"][0]), "name": "child",
                                      "endpoint": {**c["resources"][0]["endpoint"],
                                                   "path": "/v1/{resources.resource_name.id}"}}),
     ["`child` has a window of its own, so it is fetched for every `resource_name` record",
      "remove its `incremental`", "`selected: false`"]),
])
def test_a_wrong_key_names_its_path_what_was_expected_and_the_file(tmp_path, change, words):
    config = copy.deepcopy(BUILT_IN_CONFIG)
    change(config)
    refused(tmp_path, config, *words)


@pytest.mark.parametrize("key", ["client_secret", "client_id"])
def test_credentials_in_the_file_are_refused_without_being_quoted(tmp_path, key):
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["auth"][key] = "S3cr3t-in-the-file"
    message = refused(tmp_path, config, f"client.auth.{key}", f"ANALYTICS_{key.upper()}")
    assert "S3cr3t-in-the-file" not in message


def test_a_file_that_is_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "api.yaml"
    path.write_text("client: [unclosed\n")
    with pytest.raises(SettingsError, match=f"ANALYTICS_API_CONFIG={path}: not valid YAML"):
        load_definition(Settings(api_config=path))


def test_a_variable_that_is_set_wins_over_the_file(tmp_path):
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"].update(base_url="https://file.example.com")
    config["client"]["auth"]["token_url"] = "https://file.example.com/token"
    definition = load_definition(Settings(api_config=write(tmp_path, config)))
    assert definition.urls(Settings()) == ("https://file.example.com", "https://file.example.com/token")
    assert definition.urls(Settings(api_base_url="https://env.example.com", token_url="https://env.example.com/t")) \
        == ("https://env.example.com", "https://env.example.com/t")


def test_every_resource_of_the_file_is_a_table_asset_endpoint_and_checks(tmp_path):
    defs = build_defs(Settings(api_config=write(tmp_path, readme_example())))
    keys = {key.to_user_string() for key in defs.get_repository_def().asset_graph.get_all_asset_keys()}
    assert keys == {"analytics/events", "analytics/accounts", "analytics_api/events", "analytics_api/accounts"}
    checks = {(key.asset_key.to_user_string(), key.name) for key in defs.get_repository_def().asset_graph.asset_check_keys}
    assert {("analytics/events", "window_complete"), ("analytics/accounts", "id_unique")} <= checks


def test_the_readme_example_runs_against_the_demo_api(make_api, tmp_path, monkeypatch):
    """The example as written, with the URLs the variables give, against a demo API shaped like it."""
    api = make_api(records=500, days=5, end_date=date(2026, 11, 20), token_auth_method="client_secret_basic",
                   required_scope="analytics.read events.read",
                   required_token_fields={"audience": "https://api.example.com"},
                   window_params=("start_time", "end_time"), window_format="epoch_seconds",
                   resource_paths=("/v1/events", "/v1/accounts"))
    for name, value in {"ANALYTICS_API_CONFIG": str(write(tmp_path, readme_example())),
                        "ANALYTICS_API_BASE_URL": api.base_url, "ANALYTICS_TOKEN_URL": api.token_url,
                        "ANALYTICS_CLIENT_ID": api.config.client_id, "ANALYTICS_CLIENT_SECRET": api.config.client_secret,
                        "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}.items():
        monkeypatch.setenv(name, value)
    result = run_job("2026-11-17")
    assert result.success
    expected = api.records_in_window(*day_bounds("2026-11-17"))
    assert_table_matches(tmp_path / "warehouse.duckdb", expected, table="analytics.events")
    assert_table_matches(tmp_path / "warehouse.duckdb", expected, table="analytics.accounts")


# -- a config file is data ---------------------------------------------------------------------------

ALIAS_BOMB = """resource_defaults:
  endpoint:
    a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: [*h,*h]
resources: [resource_name]
"""  # 394 bytes standing for 86 million values: loading it took the definitions past 2 GB in 20 s


@pytest.mark.parametrize(("text", "line"), [
    (ALIAS_BOMB, 3),
    ("resources:\n  - name: a\n    endpoint: &e {path: a}\n", 3),  # an anchor alone
    ("x: 1\nresources:\n  - name: a\n    endpoint:\n      <<: *e\n", 5),  # an alias alone (a merge key)
])
def test_yaml_anchors_and_aliases_are_refused_where_they_are_met(tmp_path, text, line):
    import time

    path = tmp_path / "api.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(SettingsError) as error:
        load_definition(Settings(api_config=path))
    assert time.monotonic() - started < 1
    assert str(error.value) == (
        f"ANALYTICS_API_CONFIG={path}: line {line}: YAML anchors and aliases (`&name`, `*name`) are not read: an API "
        "config is plain data, and a few aliases can stand for billions of values. Write the values out.")


@pytest.mark.parametrize("name", ["api.yaml", "api.json"])
def test_a_config_file_larger_than_a_mebibyte_is_refused_unread(tmp_path, name):
    path = tmp_path / name
    config = {**BUILT_IN_CONFIG, "resources": [{**BUILT_IN_CONFIG["resources"][0], "name": f"r{i}"} for i in range(6000)]}
    path.write_text(json.dumps(config))
    assert path.stat().st_size > 2**20
    with pytest.raises(SettingsError, match=r"larger than 1,048,576 bytes.*names the config file"):
        load_definition(Settings(api_config=path))
    with pytest.raises(SettingsError, match="larger than 1,048,576 bytes"):
        load_definition(Settings(api_config=Path("/dev/zero")))  # endless: a bounded read ends it


@pytest.mark.parametrize(("name", "text"), [("api.json", "[" * 100_000), ("api.yaml", "[" * 100_000)])
def test_a_config_nested_too_deeply_is_refused_naming_the_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsError, match=f"ANALYTICS_API_CONFIG={path}: (nested too deeply|not valid)"):
        load_definition(Settings(api_config=path))
