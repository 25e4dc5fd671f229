"""The seed's config dict works as written, windows filter, and more resources need no code."""

import copy
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from analytics_assets.api.definition import BUILT_IN_CONFIG, built_in_definition, parse_definition
from analytics_assets.errors import MalformedResponse, MissingCredentials
from analytics_assets.errors import SettingsError
from analytics_assets.settings import Settings
from analytics_assets.warehouse.pipeline import load, make_pipeline
from analytics_assets.window import Window

from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_rows

SEED = Path(__file__).resolve().parents[2] / "docs" / "seed_config.md"


def seed_code() -> str:
    return re.search(r"```python\n(.*?)```", SEED.read_text(), re.S).group(1)


def test_seed_config_verbatim_loads_every_record(demo_api, tmp_path, monkeypatch):
    """The seed's code block runs unchanged except for two things a user changes too: the
    import names our `rest_api_source`, and the base/token URLs point at the running API."""
    code = seed_code()
    assert '"type": "oauth2"' in code and '"token_url"' in code
    code = code.replace("from dlt.sources.rest_api import rest_api_source", "from analytics_assets.api.source import rest_api_source")
    code = code.replace("https://api.example.com", demo_api.base_url)
    monkeypatch.setenv("CLIENT_ID", demo_api.config.client_id)  # dlt.secrets["client_id"]
    monkeypatch.setenv("CLIENT_SECRET", demo_api.config.client_secret)
    namespace: dict = {}
    exec(compile(code, str(SEED), "exec"), namespace)
    load(make_pipeline(tmp_path / "w.duckdb", pipelines_dir=tmp_path / "p"), namespace["source"])
    assert_table_matches(tmp_path / "w.duckdb", demo_api.all_records())


def test_dlt_alone_rejects_the_seed_form(demo_api):
    """Why our entry point exists: dlt 1.31 refuses the seed's auth dict."""
    from dlt.sources.rest_api import rest_api_source as dlt_rest_api_source

    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"] = {"base_url": demo_api.base_url, "auth": {
        "type": "oauth2", "client_id": "id", "client_secret": "secret", "token_url": demo_api.token_url}}
    with pytest.raises(Exception, match="oauth2|token_url|auth"):
        dlt_rest_api_source(config)


def test_window_loads_exactly_the_days_records(demo_api, syncer):
    days = sorted({r["updated_at"][:10] for r in demo_api.all_records()})
    start = datetime.fromisoformat(days[1]).replace(tzinfo=timezone.utc)
    end = datetime.fromisoformat(days[3]).replace(tzinfo=timezone.utc)
    syncer.run(demo_api, Window(start, end))
    expected = demo_api.records_in_window(start, end)
    assert 0 < len(expected) < len(demo_api.all_records())
    assert_table_matches(syncer.db, expected)
    queries = [q for (_, path, q, _) in demo_api.requests if path == "/v1/resource"]
    assert all(q["updated_since"] == days[1] + "T00:00:00Z" and q["updated_until"] == days[3] + "T00:00:00Z" for q in queries)


def test_second_resource_is_one_more_config_entry(demo_api, syncer):
    config = copy.deepcopy(BUILT_IN_CONFIG)
    extra = copy.deepcopy(config["resources"][0])
    extra["name"] = "resource_copy"
    config["resources"].append(extra)
    syncer.run(demo_api, definition=parse_definition(config, "test")[0])
    assert len(table_rows(syncer.db, "analytics.resource_copy")) == len(demo_api.all_records())
    assert_table_matches(syncer.db, demo_api.all_records())
    assert demo_api.tokens_issued == 1, "all resources share one token"


def test_missing_secret_names_the_variable(demo_api, syncer, monkeypatch):
    monkeypatch.delenv("CLIENT_SECRET", raising=False)
    with pytest.raises(MissingCredentials, match="ANALYTICS_CLIENT_SECRET"):
        syncer.run(demo_api, settings=settings_for(demo_api, client_secret=None))
    assert demo_api.requests == []


def test_credentials_from_dlt_secrets_when_not_passed(demo_api, syncer, monkeypatch):
    monkeypatch.setenv("CLIENT_ID", demo_api.config.client_id)
    monkeypatch.setenv("CLIENT_SECRET", demo_api.config.client_secret)
    syncer.run(demo_api, settings=settings_for(demo_api, client_id=None, client_secret=None))
    assert_table_matches(syncer.db, demo_api.all_records())


@pytest.mark.parametrize("url", ["http://api.example.com", "ftp://127.0.0.1", "not a url"])
def test_insecure_or_malformed_base_url_refused(url):
    with pytest.raises(SettingsError, match="ANALYTICS_API_BASE_URL"):
        built_in_definition().urls(Settings(api_base_url=url))


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("invalid_json", "invalid JSON"),
        ("html", "HTML page"),
        ("missing_data", "no records at `data`, while the body holds a list of records at `items`"),
        ("data_not_list", "not a list"),
        ("total_not_number", "`total` is not a whole number"),
    ],
)
def test_malformed_body_fails_clearly_and_writes_nothing(demo_api, syncer, kind, problem):
    syncer.run(demo_api)
    before = table_rows(syncer.db)
    demo_api.update_record(1, name="changed-upstream")
    demo_api.faults.queue(kind, after=1)
    with pytest.raises(MalformedResponse, match=problem):
        syncer.run(demo_api)
    assert table_rows(syncer.db) == before
