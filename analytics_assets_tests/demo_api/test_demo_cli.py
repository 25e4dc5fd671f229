"""The demo API's console command: a flag for every config field, named profiles, what it prints."""

from __future__ import annotations

import dataclasses
import shlex
from datetime import UTC, datetime

import pytest
import requests

from analytics_assets.demo_api import PROFILES, DemoApiConfig
from analytics_assets.demo_api.cli import _config as cli_config
from analytics_assets.demo_api.cli import _parser as cli_parser

from .conftest import cli_server
from .test_server import TIMEOUT

NEW_FLAGS = [
    "--profile", "--resource-path", "--required-scope", "--required-token-field", "--token-auth-method",
    "--window-params", "--window-format", "--expires-in-format", "--token-type", "--timestamp-format",
    "--numbers-as-strings", "--empty-page", "--pagination", "--has-more", "--no-total", "--compress",
    "--rate-limit", "--rate-limit-window", "--rate-limit-headers", "--rate-limit-reset", "--total-bias",
    "--page-cap-skips", "--ignore-window", "--window-end-inclusive", "--client-id", "--client-secret", "--port",
]


def config_of(*flags: str) -> DemoApiConfig:
    return cli_config(cli_parser().parse_args(list(flags)))


def test_every_config_field_has_a_flag_with_help() -> None:
    actions = [action for action in cli_parser()._actions if action.dest != "help"]
    assert {field.name for field in dataclasses.fields(DemoApiConfig)} <= {action.dest for action in actions}
    assert all(action.help and "\n" not in action.help for action in actions)


def test_help_lists_the_flags_and_the_profile_table() -> None:
    text = cli_parser().format_help()
    for flag in NEW_FLAGS:
        assert flag in text, flag
    epilog = text[text.index("profiles (--profile NAME"):]
    for line in [
        "  walkthrough:",
        "    --token-auth-method client_secret_basic",
        "    --required-scope 'analytics.read events.read'",
        "    --required-token-field audience=https://api.example.com",
        "    --window-params start_time end_time",
        "    --window-format epoch_seconds",
        "    --resource-path /v1/events --resource-path /v1/accounts",
    ]:
        assert line in epilog.splitlines(), line


def test_walkthrough_profile_gives_exactly_its_values() -> None:
    assert config_of("--profile", "walkthrough") == DemoApiConfig(
        port=8765,
        token_auth_method="client_secret_basic",
        required_scope="analytics.read events.read",
        required_token_fields={"audience": "https://api.example.com"},
        window_params=("start_time", "end_time"),
        window_format="epoch_seconds",
        resource_paths=("/v1/events", "/v1/accounts"),
    )
    assert PROFILES["walkthrough"]["required_token_fields"] == {"audience": "https://api.example.com"}  # not shared


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_help_table_of_a_profile_is_the_profile(name: str) -> None:
    epilog = cli_parser().epilog or ""
    lines = epilog.splitlines()
    start = lines.index(f"  {name}:") + 1
    flags = [flag for line in lines[start:] if line.startswith("    ") for flag in shlex.split(line)]
    assert config_of(*flags) == config_of("--profile", name) != config_of()


def test_explicit_flags_win_over_the_profile() -> None:
    config = config_of("--profile", "walkthrough", "--resource-path", "/v2/x", "--window-format", "iso8601",
                       "--required-token-field", "resource=urn:x")
    assert (config.resource_paths, config.window_format, config.required_token_fields) == (
        ("/v2/x",), "iso8601", {"resource": "urn:x"}
    )
    assert config.token_auth_method == "client_secret_basic" and config.window_params == ("start_time", "end_time")


def test_new_flags_map_onto_config_fields() -> None:
    flags = ["--resource-path", "/a", "--resource-path", "/b", "--required-scope", "read write"]
    flags += ["--required-token-field", "audience=https://x", "--required-token-field", "resource=r=1"]
    flags += ["--expires-in-format", "string", "--token-type", "Bearer", "--has-more", "--no-total", "--compress"]
    flags += ["--total-bias", "3", "--page-cap-skips", "--page-cap", "40", "--client-id", "me", "--port", "0"]
    flags += ["--token-lifetime", "60", "--latency-ms", "2.5", "--records", "10", "--days", "2", "--seed", "4"]
    assert config_of(*flags) == DemoApiConfig(
        port=0, records=10, days=2, seed=4, client_id="me", token_lifetime=60, latency_ms=2.5,
        resource_paths=("/a", "/b"), required_scope="read write",
        required_token_fields={"audience": "https://x", "resource": "r=1"}, expires_in_format="string",
        token_type="Bearer", has_more=True, include_total=False, compress=True, total_bias=3, page_cap_skips=True,
        page_cap=40,
    )


@pytest.mark.parametrize(
    "flags",
    [["--required-token-field", "audience"], ["--profile", "nonesuch"], ["--expires-in-format", "float"]],
)
def test_bad_flags_are_refused(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_parser().parse_args(flags)
    assert exit_info.value.code == 2 and capsys.readouterr().err


def test_cli_with_the_walkthrough_profile_prints_and_serves_it() -> None:
    end = "2026-11-08"
    with cli_server("--profile", "walkthrough", "--records", "20", "--end-date", end) as printed:
        assert printed["resource paths"] == "/v1/events /v1/accounts"
        assert printed["resource URL"] == printed["base URL"] + "/v1/events"
        assert (printed["profile"], printed["shape"]) == ("walkthrough", "differs from the default in")
        assert printed["token_auth_method"] == "client_secret_basic"
        assert printed["required_scope"] == "analytics.read events.read"
        assert printed["required_token_fields"] == "audience=https://api.example.com"
        assert (printed["window_params"], printed["window_format"]) == ("start_time end_time", "epoch_seconds")
        form = {"grant_type": "client_credentials", "scope": "analytics.read events.read",
                "audience": "https://api.example.com"}
        answer = requests.post(printed["token URL"], data=form, auth=("demo-client", "demo-secret"), timeout=TIMEOUT)
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        until = str(int(datetime(2026, 11, 8, tzinfo=UTC).timestamp()))
        params: dict[str, str | int] = {"end_time": until, "limit": 50}
        for path in ("/v1/events", "/v1/accounts"):
            page = requests.get(printed["base URL"] + path, params=params,
                                headers=headers, timeout=TIMEOUT)
            assert page.json()["total"] == 20
        assert requests.get(printed["base URL"] + "/v1/resource", headers=headers, timeout=TIMEOUT).status_code == 404
