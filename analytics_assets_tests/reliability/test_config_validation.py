"""Configuration validation: a wrong ANALYTICS_* value fails with a message naming the variable,
before any credential leaves the process; through a Dagster run, the run fails naming it and the
table is untouched."""

from __future__ import annotations

import pytest

from types import SimpleNamespace
from typing import Any

from analytics_assets.api.definition import built_in_definition
from analytics_assets.errors import SettingsError
from analytics_assets.settings import Settings
from analytics_assets_tests.reliability.conftest import Harness

BASE = "ANALYTICS_API_BASE_URL"
TOKEN = "ANALYTICS_TOKEN_URL"
ALLOWED = "ANALYTICS_ALLOWED_TOKEN_HOSTS"
API = "https://api.example.com"


def settings(**env: str):
    resolved = Settings.from_env({BASE: API, **env})
    base_url, token_url = built_in_definition().urls(resolved)
    return SimpleNamespace(base_url=base_url, token_url=token_url, settings=resolved)


def refused(variable: str, *words: str, **env: str) -> str:
    with pytest.raises(SettingsError) as error:
        settings(**env)
    message = str(error.value)
    assert variable in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.mark.parametrize(
    "url",
    ["api.example.com", "ftp://api.example.com", "https://", "https:///v1", "//api.example.com", "not a url",
     "file:///etc/passwd"],
)
def test_malformed_base_url_is_refused(url: str) -> None:
    refused(BASE, "http(s) URL", **{BASE: url})


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com", "http://10.0.0.5:8080", "http://127.0.0.1.nip.io", "http://localhost.example.com",
     "http://127.0.0.1@api.example.com/"],
)
def test_plain_http_to_a_non_loopback_host_is_refused(url: str) -> None:
    refused(BASE, "plain http", "clear text", **{BASE: url})


@pytest.mark.parametrize(
    "url", ["https://api.example.com", "https://api.example.com/base/", "http://127.0.0.1:8080", "http://localhost:8080",
            "http://[::1]:8080"],
)
def test_valid_base_urls_are_accepted(url: str) -> None:
    assert settings(**{BASE: url}).base_url == url


@pytest.mark.parametrize(
    "token_url",
    ["https://idp.example.com/oauth/token", "https://api.example.com.evil.example/oauth/token",
     "https://API.example.com.evil.example./oauth/token"],
)
def test_token_url_on_another_host_is_refused(token_url: str) -> None:
    refused(TOKEN, ALLOWED, "only sent to the API's own host", **{TOKEN: token_url})


@pytest.mark.parametrize("variable, url", [
    (TOKEN, "https://api.example.com@evil.example/oauth/token"),
    (TOKEN, "https://client-id:S3cr3t@api.example.com/oauth/token"),
    (BASE, "https://user:S3cr3t@api.example.com"),
])
def test_credentials_in_a_url_are_refused_without_quoting_them(variable: str, url: str) -> None:
    message = refused(variable, "credentials", "ANALYTICS_CLIENT_SECRET", **{variable: url})
    assert "S3cr3t" not in message and "api.example.com@" not in message


# --- URL forms that parsers read differently ------------------------------------------------------
# The settings check URLs with urllib3's parser, the one that connects; what two parsers could read
# as two hosts is refused outright, and hosts compare as DNS does (case and the root's dot ignored).


@pytest.mark.parametrize("variable, url", [
    (TOKEN, "http://evil\\@127.0.0.1:8080/oauth/token"),  # `evil` to urllib3, 127.0.0.1 to urllib.parse
    (BASE, "https://api.example.com\\@evil.example/"),
    (BASE, "https://api.example.com/v1\\x"),
    (BASE, "https://api.example.com/\x00"),
    (BASE, "https://api.exa\tmple.com"),
    (TOKEN, "https://api.example.com/oauth/token\r\nX-Injected: 1"),
    (BASE, "https://api.example.com/\x7f"),
    (BASE, "https://api.example.com /v1"),
])
def test_backslashes_and_control_characters_are_refused(variable: str, url: str) -> None:
    refused(variable, "without backslashes, spaces or control characters", **{variable: url})


@pytest.mark.parametrize("variable, url", [
    (TOKEN, "http://evil@127.0.0.1:8080/oauth/token"),
    (TOKEN, "https://@api.example.com/oauth/token"),  # empty userinfo
    (TOKEN, "https://api.example.com%2F@evil.example/oauth/token"),  # an encoded slash before the `@`
    (BASE, "https://a@b@api.example.com"),
])
def test_userinfo_in_any_form_is_refused(variable: str, url: str) -> None:
    refused(variable, "credentials", **{variable: url})


@pytest.mark.parametrize("variable, url", [
    (BASE, "https://api.example.com#@evil.example"),
    (BASE, "https://api.example.com?@evil.example"),
    (BASE, "https://api.example.com/v1?key=1"),  # the API's paths are appended to the base URL
    (TOKEN, "https://api.example.com/oauth/token#@evil.example"),
])
def test_a_query_or_fragment_where_it_would_be_misread_is_refused(variable: str, url: str) -> None:
    refused(variable, "without a", **{variable: url})


def test_a_token_url_may_carry_a_query() -> None:
    token_url = "https://api.example.com/oauth2/v2.0/token?p=b2c_1_signin"
    assert settings(**{TOKEN: token_url}).token_url == token_url


@pytest.mark.parametrize("token_url", [
    "HTTPS://API.EXAMPLE.COM/oauth/token", "https://Api.Example.Com/oauth/token",
    "https://api.example.com./oauth/token", "https://API.EXAMPLE.COM./oauth/token",
])
def test_uppercase_and_trailing_dot_are_the_same_host(token_url: str) -> None:
    assert settings(**{TOKEN: token_url}).token_url.lower().startswith("https://api.example.com")


@pytest.mark.parametrize("url", ["HTTP://API.EXAMPLE.COM", "http://Api.Example.Com./v1", "HTTP://10.0.0.5:8080"])
def test_plain_http_rule_holds_for_uppercase_and_trailing_dots(url: str) -> None:
    refused(BASE, "plain http", **{BASE: url})


@pytest.mark.parametrize("url", ["HTTP://LOCALHOST:8080", "http://localhost.:8080", "http://127.0.0.1.:8080"])
def test_loopback_in_uppercase_or_with_a_trailing_dot_is_still_loopback(url: str) -> None:
    assert settings(**{BASE: url}).base_url.lower() == url.lower()


@pytest.mark.parametrize("url", ["https://API.example.com.evil.example./oauth/token", "https://evil.example./oauth/token"])
def test_token_host_rule_holds_with_a_trailing_dot(url: str) -> None:
    refused(TOKEN, ALLOWED, **{TOKEN: url})


@pytest.mark.parametrize("allowed", ["idp.example.com", "login.example.com, idp.example.com"])
def test_token_host_listed_in_allowed_hosts_is_accepted(allowed: str) -> None:
    token_url = "https://idp.example.com/oauth/token"
    assert settings(**{TOKEN: token_url, ALLOWED: allowed}).token_url == token_url


def test_allowed_token_host_over_plain_http_is_still_refused() -> None:
    refused(TOKEN, "plain http", **{TOKEN: "http://idp.example.com/oauth/token", ALLOWED: "idp.example.com"})


def test_allowed_token_hosts_are_case_insensitive() -> None:
    token_url = "https://idp.example.com/oauth/token"
    assert settings(**{TOKEN: token_url, ALLOWED: "IDP.Example.com"}).token_url == token_url


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("ANALYTICS_MAX_RETRIES", "three", ["whole number"]),
        ("ANALYTICS_MAX_RETRIES", "1.5", ["whole number"]),
        ("ANALYTICS_MAX_RETRIES", "-1", ["zero or more"]),
        ("ANALYTICS_HTTP_TIMEOUT", "abc", ["number"]),
        ("ANALYTICS_HTTP_TIMEOUT", "30s", ["number"]),
        ("ANALYTICS_HTTP_TIMEOUT", "-5", ["positive"]),
        ("ANALYTICS_HTTP_TIMEOUT", "0", ["positive"]),
        ("ANALYTICS_BACKOFF_FACTOR", "-2", ["positive"]),
        ("ANALYTICS_MAX_RETRY_WAIT", "soon", ["number"]),
        ("ANALYTICS_TOKEN_REFRESH_MARGIN", "-60", ["zero or more"]),
    ],
)
def test_bad_numbers_are_refused_naming_the_variable(variable: str, value: str, words: list) -> None:
    message = refused(variable, *words, **{variable: value})
    assert repr(value) in message, "the message should quote the offending value"


def test_nan_timeout_is_refused() -> None:
    refused("ANALYTICS_HTTP_TIMEOUT", "number", **{"ANALYTICS_HTTP_TIMEOUT": "nan"})


def test_zero_retries_is_a_valid_policy() -> None:
    assert settings(ANALYTICS_MAX_RETRIES="0").settings.max_attempts == 1


# --- through a Dagster run -----------------------------------------------------------------------

RUN_CASES = [
    pytest.param({BASE: "http://api.example.com"}, [BASE, "plain http"], id="base_url_plain_http"),
    pytest.param({BASE: "api.example.com"}, [BASE, "http(s) URL"], id="base_url_without_scheme"),
    pytest.param({BASE: None}, [BASE, "is not set"], id="base_url_missing"),
    pytest.param({TOKEN: "https://idp.example.com/oauth/token"}, [TOKEN, ALLOWED], id="token_url_other_host"),
    pytest.param({"ANALYTICS_MAX_RETRIES": "-1"}, ["ANALYTICS_MAX_RETRIES", "zero or more"], id="max_retries_negative"),
    pytest.param({"ANALYTICS_HTTP_TIMEOUT": "abc"}, ["ANALYTICS_HTTP_TIMEOUT", "number"], id="timeout_not_a_number"),
    pytest.param(
        {"ANALYTICS_HTTP_TIMEOUT": "nan"}, ["ANALYTICS_HTTP_TIMEOUT"], id="timeout_nan",
    ),
]


@pytest.mark.parametrize("env, words", RUN_CASES)
def test_run_fails_naming_the_variable(harness: Harness, monkeypatch: pytest.MonkeyPatch, env: dict,
                                       words: list) -> None:
    before = harness.prime("2026-11-16")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    result = harness.run("2026-11-16")
    harness.failed(result, words, before)
    if "nan" not in env.values():
        assert harness.api.request_count() == 0, "nothing, credentials least of all, may be sent"


@pytest.mark.parametrize("token_url, words", [
    ("http://evil\\@{host}/oauth/token", ["backslashes"]),
    ("http://client:secret@{host}/oauth/token", ["credentials"]),
    ("http://evil.example%2F@{host}/oauth/token", ["credentials"]),
    ("HTTP://EVIL.EXAMPLE./oauth/token", ["plain http"]),
])
def test_url_tricks_fail_the_run_before_anything_is_sent(harness: Harness, monkeypatch: pytest.MonkeyPatch,
                                                         token_url: str, words: list) -> None:
    """Each form points at the demo API itself, so a request sent anyway would be counted."""
    before = harness.prime("2026-11-16")
    monkeypatch.setenv(TOKEN, token_url.format(host=harness.api.base_url.split("://")[1]))
    harness.failed(harness.run("2026-11-16"), [TOKEN, *words], before)
    assert harness.api.request_count() == 0, "nothing, credentials least of all, may be sent"


# --- a launch value out of bounds ----------------------------------------------------------------

@pytest.mark.parametrize("field, value, bound", [
    ("max_retries", -1, "zero or more and at most 10"),
    ("http_timeout", 0.0, "positive and at most 600"),
    ("max_concurrency", 65, "positive and at most 64"),
])
def test_launch_value_out_of_bounds_fails_the_first_step_in_one_line(harness: Harness, field: str, value: Any,
                                                                     bound: str) -> None:
    """Dagster's config types hold no numeric bounds, so the launchpad takes the value: the run's
    first step refuses it in one line naming the field and its bounds, before anything is sent;
    no pydantic dump, no failure to initialise a resource."""
    from analytics_assets_tests.conftest import run_job
    from analytics_assets_tests.reliability.conftest import full_error_text

    before = harness.prime("2026-11-16")
    requests = harness.api.request_count()
    result = run_job("2026-11-16", run_config={"resources": {"analytics_api": {"config": {field: value}}}})
    harness.failed(result, [f"analytics_api.{field}", bound, f"got {value!r}"], before)
    [failure] = [event.step_failure_data for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failure.user_failure_data.description == (
        f"The launch config's analytics_api.{field} must be {bound}; got {value!r}.")
    assert failure.error.cause is None and failure.error.context is None, "one line, nothing chained to it"
    everything = full_error_text(result)
    assert "ValidationError" not in everything and "pydantic" not in everything, everything[-3000:]
    assert not [event for event in result.all_events if event.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert harness.api.request_count() == requests, "nothing may be sent"


@pytest.mark.parametrize("config, words, run_exists", [
    # Dagster's config cannot hold the bound: the run exists and its first step fails in one line.
    ({"max_retries": -1}, ["The launch config's analytics_api.max_retries must be zero or more and at most 10; "
                           "got -1."], True),
    # It can hold a choice (an Enum): refused before a run exists.
    ({"schema_drift": "melt"}, ['schema_drift', 'melt'], False),
])
def test_launch_value_out_of_bounds_from_config_json(harness: Harness, processes: Any, tmp_path: Any,
                                                     config: dict, words: list, run_exists: bool) -> None:
    """`dagster asset materialize --config-json`, as a user would type it."""
    import json

    from dagster import DagsterInstance

    from analytics_assets_tests.conftest import make_dagster_home
    from analytics_assets_tests.reliability.conftest import cli_env

    home = make_dagster_home(tmp_path / "dagster_home")
    cli = processes.materialize(cli_env(home), partition="2026-11-16", options=(
        "--config-json", json.dumps({"resources": {"analytics_api": {"config": config}}})))
    code, output = cli.wait(timeout=300), cli.output()
    assert code != 0, output[-3000:]
    for word in words:
        assert word in output, output[-3000:]
    assert "ValidationError" not in output and "pydantic" not in output, output[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        assert bool(instance.get_runs()) == run_exists, output[-3000:]
    assert harness.api.request_count() == 0, "nothing may be sent"
