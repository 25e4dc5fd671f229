"""The settings model: one definition per setting, errors that name the variable, the README in step."""

import re
from pathlib import Path

import pytest

from analytics_assets.builders.resources import AnalyticsApiResource
from analytics_assets.errors import SettingsError
from analytics_assets.settings import Settings, settings_table, variable

CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_readme_configuration_table_is_the_model():
    """Rendered from `Settings`: a setting added, renamed or re-described without the README fails here."""
    assert settings_table() in CONFIGURATION.read_text(), (
        "docs/configuration.md's table differs from the settings model; paste the output of "
        "`python -m analytics_assets.settings` into docs/configuration.md")


def test_every_variable_is_named_after_its_field():
    names = re.findall(r"`(ANALYTICS_[A-Z_]+)`", settings_table())
    assert names == [variable(name) for name in Settings.model_fields]


def test_launch_tunables_are_derived_with_their_bounds():
    launch = {name for name, field in Settings.model_fields.items() if (field.json_schema_extra or {}).get("launch")}
    assert set(AnalyticsApiResource.model_fields) == launch
    assert not launch & {"api_base_url", "token_url", "client_id", "client_secret", "allowed_token_hosts",
                         "duckdb_path", "destination"}, "where credentials and data go is the deployment's"
    assert AnalyticsApiResource(max_retries=5).settings().max_retries == 5
    # Dagster's config holds no bounds: the resource takes the value, its settings refuse it in one line.
    with pytest.raises(SettingsError, match=r"^The launch config's analytics_api.max_retries must be zero or more "
                                            r"and at most 10; got 50\.$"):
        AnalyticsApiResource(max_retries=50).settings()
    assert "zero or more and at most 10" in AnalyticsApiResource.model_fields["max_retries"].description


def test_launch_value_wins_over_the_environment_which_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("ANALYTICS_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("ANALYTICS_HTTP_TIMEOUT", "7")
    settings = AnalyticsApiResource(max_concurrency=2).settings()
    assert (settings.max_concurrency, settings.http_timeout, settings.max_retries) == (2, 7.0, 3)


def test_secrets_do_not_show_in_repr():
    settings = Settings(client_id="id-123", client_secret="s3cr3t-xyz")
    assert "s3cr3t-xyz" not in repr(settings) and "s3cr3t-xyz" not in str(settings)
    assert settings.secret("client_secret") == "s3cr3t-xyz"


def test_only_reads_the_named_variables():
    env = {"ANALYTICS_MAX_RETRIES": "-1", "ANALYTICS_DESTINATION": "postgres"}
    assert Settings.from_env(env, only=("destination",)).destination == "postgres"
    with pytest.raises(SettingsError, match="ANALYTICS_MAX_RETRIES must be zero or more and at most 10; got '-1'"):
        Settings.from_env(env)


@pytest.mark.parametrize("url", [
    "http://user:hunter2-secret@api.example.com",      # refused for plain http first
    "ftp://user:hunter2-secret@127.0.0.1",             # for its scheme first
    "http://user:hunter2-secret\\@127.0.0.1/",        # for its backslash first
    "https://user:hunter2-secret@api.example.com/ x",  # for its space first
])
def test_a_url_refused_for_another_reason_never_shows_its_credentials(url):
    from analytics_assets.api.urls import check_url

    with pytest.raises(SettingsError) as refused:
        check_url(url, "ANALYTICS_API_BASE_URL")
    assert "hunter2" not in str(refused.value) and "ANALYTICS_API_BASE_URL" in str(refused.value)


def test_file_paths_are_absolute_from_the_folder_they_are_read_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANALYTICS_DUCKDB_PATH", raising=False)
    monkeypatch.setenv("ANALYTICS_API_CONFIG", "conf/api.yaml")
    settings = Settings.from_env(only=("duckdb_path", "api_config"))
    assert settings.duckdb_path == tmp_path / "data" / "warehouse.duckdb"
    assert settings.api_config == tmp_path / "conf" / "api.yaml"
