"""A hostile API, and a hostile launcher, against the command a schedule runs: `dagster asset
materialize` in a process of its own, as in production.

Whatever the API sends, the run ends within its deadline and under 1 GiB of memory, the table is
exactly as it was, the run is marked failed, and its writer-pool slot is free for the next run.
Whatever a launcher puts in run config, the API's URLs, credentials and the warehouse's paths are
the deployment's: the run is refused before anything is sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets_tests.conftest import table_checksum
from analytics_assets_tests.reliability.conftest import (
    RESOURCE_PATH,
    Harness,
    Processes,
    assert_matches_server,
    cli_env,
    make_dagster_home,
    wait_for,
)

PARTITION = "2026-11-17"
POOL = "duckdb_writer"
MEMORY_BOUND = 2**30
DEADLINE = 5.0  # ANALYTICS_REQUEST_DEADLINE for the dripping body (120 s by default)
# The second review's attacks on one exchange: a 3 s deadline, no retries (a retry would only
# repeat the attack).
ONE_TRY = {"ANALYTICS_REQUEST_DEADLINE": "3", "ANALYTICS_MAX_RETRIES": "0"}
TEARDOWN = 10.0  # what a failed `dagster asset materialize` takes to end after its step failed (measured: ~1 s)


def settled_instance(home: Path) -> tuple[list, set]:
    """The runs the instance holds and the runs holding a slot of the writer pool."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(), instance.event_log_storage.get_concurrency_info(POOL).active_run_ids


HOSTILE = {
    # The fault, on the first request of a page (the first: a later page's first record is the
    # overlap record, read already), the environment, and the words of the failure. Unguarded, the
    # security review measured 3.7 GB, 14 GB, the whole machine and no end, in this order.
    "nested_1000_deep": ({"kind": "nested", "depth": 1000, "after": 0}, {},
                         ["'nested'", "nested more than 255 levels deep"]),
    # Deeper than orjson (1,024 levels) and Python's decoder (its recursion limit) read: the body is
    # cut where no column could hold it anyway, and fails as the 1,000-deep one does.
    "nested_5000_deep": ({"kind": "deep_nesting", "depth": 5000, "after": 0}, {},
                         ["'nested'", "nested more than 255 levels deep"]),
    # 60 MiB of `{},`: under the byte cap, 20 million values that decode to gigabytes (unguarded: a
    # 16 MiB page peaked at 2.1 GB); counted on the bytes and refused before decoding.
    "empty_objects_60_mib": ({"kind": "empty_objects", "size": 60 * 2**20, "after": 1}, {},
                             ["GET /v1/resource", "more than 500,000 values", "ANALYTICS_MAX_PAGE_VALUES"]),
    "5000_new_keys": ({"kind": "many_keys", "keys": 5000, "after": 1}, {}, ["ANALYTICS_MAX_NEW_COLUMNS=100"]),
    "endless_body": ({"kind": "endless_body", "after": 1}, {},
                     ["more than 67,108,864 bytes", "ANALYTICS_MAX_RESPONSE_BYTES"]),
    "dripping_body": ({"kind": "drip", "interval": 0.05, "after": 1}, {"ANALYTICS_REQUEST_DEADLINE": str(DEADLINE)},
                      ["took more than 5 s", "ANALYTICS_REQUEST_DEADLINE"]),
    # Each read returns at once, or within the 2 s read timeout: only a deadline on the whole
    # exchange ends them (unguarded: the headers take minutes, the others never end, or the run
    # reads half a gigabyte of trailer and succeeds).
    "dripped_headers": ({"kind": "drip_headers", "interval": 0.5, "after": 1}, ONE_TRY,
                        ["GET /v1/resource", "took more than 3 s", "ANALYTICS_REQUEST_DEADLINE"]),
    "endless_continue": ({"kind": "endless_continue", "after": 1}, ONE_TRY,
                         ["GET /v1/resource", "more than 5 interim (1xx) answers", "ANALYTICS_API_BASE_URL"]),
    "huge_chunked_trailer": ({"kind": "chunked_trailer", "after": 1}, ONE_TRY,  # 512 MiB after a valid page
                             ["GET /v1/resource", "chunked trailer of more than 65,536 bytes", "ANALYTICS_API_BASE_URL"]),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_api_ends_the_run_cleanly_within_bounds(harness_for, processes: Processes, tmp_path: Path,
                                                        case: str) -> None:
    fault, env, words = HOSTILE[case]
    harness: Harness = harness_for(records=3000)  # 600 records, seven pages, on the day
    before = harness.prime(PARTITION)
    home = make_dagster_home(tmp_path / "dagster_home")
    fault = dict(fault)
    harness.api.faults.queue(fault.pop("kind"), **fault)

    cli = processes.materialize(cli_env(home, **env), partition=PARTITION, measured=True)
    wait_for(lambda: harness.api.request_count(path=RESOURCE_PATH) > fault["after"], "the hostile page's request",
             process=cli, timeout=180)
    served = time.monotonic()
    code = cli.wait(timeout=300)
    ended = time.monotonic() - served

    output = cli.output()
    assert code != 0, f"the run succeeded:\n{output[-3000:]}"
    missing = [word for word in words if word not in output]
    assert not missing, f"the failure does not name the cause ({missing}):\n{output[-3000:]}"
    print(f"{case}: ended {ended:.1f} s after the hostile request, peak {cli.peak_rss_bytes() / 2**20:,.0f} MiB")
    if "ANALYTICS_REQUEST_DEADLINE" in env:  # the deadline, plus the process's teardown
        limit = float(env["ANALYTICS_REQUEST_DEADLINE"]) + TEARDOWN
        assert ended < limit, f"the run took {ended:.0f} s after the hostile page was requested"
    assert cli.peak_rss_bytes() < MEMORY_BOUND, f"peak memory {cli.peak_rss_bytes() / 2**20:,.0f} MiB"
    assert table_checksum(harness.db) == before, "a failed run changed the table"
    runs, holding = settled_instance(home)
    assert [run.status.value for run in runs] == ["FAILURE"]
    assert holding == set(), f"the failed run still holds the {POOL!r} slot"
    secrets = {"the client secret": harness.api.config.client_secret}
    secrets.update({f"access token #{i}": token for i, token in enumerate(harness.api.issued_tokens)})
    assert_never_shown(secrets, output, home, harness.db.parent)


def assert_never_shown(secrets: dict[str, str], output: str, *folders: Path) -> int:
    """None of `secrets` (name -> text) in the run's output, nor in any file under `folders` (Dagster's
    storage, the DuckDB file and dlt's working folders: SQLite dumped, gzip and parquet decoded, the
    DuckDB file's values and dlt state read). Returns how many files were searched."""
    from analytics_assets_tests.reliability.test_secrets import assert_absent, files_under, readable_forms

    forms = {name: value.encode() for name, value in secrets.items()}
    assert_absent(forms, "the run's output", iter([output.encode()]))
    searched = 0
    for folder in folders:
        for path in files_under(folder):
            searched += assert_absent(forms, f"{path}", readable_forms(path))
    return searched


TOKEN_ANSWERS = {
    # What the token endpoint answers, and the words of the failure: refused when it arrives, so it
    # is neither sent (a header would carry the CR LF into the request: a split request, or
    # http.client's error quoting it) nor shown.
    "token_ending_in_crlf": ({}, ["The token endpoint", "/oauth/token", "an HTTP header cannot carry",
                                  "ANALYTICS_TOKEN_URL"]),
    "token_of_20_kib": ({"size": 20_000}, ["The token endpoint", "/oauth/token", "more than 16,384 bytes",
                                           "ANALYTICS_MAX_TOKEN_BYTES"]),
}


@pytest.mark.parametrize("case", list(TOKEN_ANSWERS))
def test_a_token_no_header_can_carry_fails_the_run_unsent_and_unshown(harness_for, processes: Processes,
                                                                      tmp_path: Path, case: str) -> None:
    options, words = TOKEN_ANSWERS[case]
    harness: Harness = harness_for(records=3000)
    before = harness.prime(PARTITION)
    home = make_dagster_home(tmp_path / "dagster_home")
    harness.api.faults.queue("token_value", **options)

    started = time.monotonic()
    cli = processes.materialize(cli_env(home, **ONE_TRY), partition=PARTITION, measured=True)
    code = cli.wait(timeout=300)
    took = time.monotonic() - started
    output = cli.output()
    assert code != 0, f"the run succeeded:\n{output[-3000:]}"
    missing = [word for word in words if word not in output]
    assert not missing, f"the failure does not name the cause ({missing}):\n{output[-3000:]}"
    assert harness.api.request_count(path=RESOURCE_PATH) == 0, "the token was sent"
    token = harness.api.issued_tokens[-1]
    print(f"{case}: the run took {took:.1f} s, peak {cli.peak_rss_bytes() / 2**20:,.0f} MiB")
    assert cli.peak_rss_bytes() < MEMORY_BOUND
    searched = assert_never_shown({"the token": token, "the token's first 24 characters": token.strip()[:24]},
                                  output, home, harness.db.parent)
    assert searched > 10, "the search should see Dagster's storage and the DuckDB file"
    assert table_checksum(harness.db) == before, "a failed run changed the table"
    runs, holding = settled_instance(home)
    assert [run.status.value for run in runs] == ["FAILURE"] and holding == set()


def test_a_400_echoing_the_token_fails_the_run_without_showing_it(harness_for, processes: Processes,
                                                                 tmp_path: Path) -> None:
    """The API's 400 echoes the Authorization header (a 300-character token: it runs past the 200
    characters of body an error shows). The run fails quoting the answer with the token masked, and
    the token is nowhere: output, Dagster's storage, dlt's trace and folders, the DuckDB file."""
    harness: Harness = harness_for(records=3000)
    before = harness.prime(PARTITION)
    home = make_dagster_home(tmp_path / "dagster_home")
    harness.api.faults.queue("token_value", size=300)
    harness.api.faults.queue("echo_authorization", after=1)

    cli = processes.materialize(cli_env(home), partition=PARTITION, measured=True)
    code = cli.wait(timeout=300)
    output = cli.output()
    assert code != 0, f"the run succeeded:\n{output[-3000:]}"
    words = ["GET /v1/resource", "HTTP 400", "unusable Authorization header: Bearer ***"]
    missing = [word for word in words if word not in output]
    assert not missing, f"the failure does not name the cause ({missing}):\n{output[-3000:]}"
    token = harness.api.issued_tokens[-1]
    assert len(token) == 300
    searched = assert_never_shown({"the token": token, "the token's first 24 characters": token[:24],
                                   "the token's first 150 characters": token[:150]}, output, home, harness.db.parent)
    traces = list(harness.db.parent.rglob("trace.pickle"))
    assert traces and searched > 10, "the search should see dlt's trace of the failed run"
    assert cli.peak_rss_bytes() < MEMORY_BOUND
    assert table_checksum(harness.db) == before, "a failed run changed the table"
    runs, holding = settled_instance(home)
    assert [run.status.value for run in runs] == ["FAILURE"] and holding == set()


@pytest.mark.parametrize("value", ["NaN", "1e308", "-5"])
def test_an_expires_in_that_is_no_lifetime_is_said_and_the_run_lands(harness_for, processes: Processes,
                                                                     tmp_path: Path, value: str) -> None:
    """Not a lifetime: taken for a missing one, said in the run's log naming the token endpoint; one
    token for the whole run (unguarded: NaN and 1e308 failed the run with Python's own words, -5
    fetched a token for every request)."""
    harness: Harness = harness_for(records=3000)
    harness.api.faults.queue("expires_in_value", value=value)
    home = make_dagster_home(tmp_path / "dagster_home")
    cli = processes.materialize(cli_env(home), partition=PARTITION, measured=True)
    code = cli.wait(timeout=300)
    output = cli.output()
    assert code == 0, output[-3000:]
    said = f"The token endpoint {harness.api.token_url} answered expires_in="
    assert said in output and "default_token_expiration" in output, output[-3000:]
    assert harness.api.tokens_issued == 1 and harness.api.request_count(path=RESOURCE_PATH) >= 7
    assert_matches_server(harness.db, harness.expected(PARTITION))
    assert cli.peak_rss_bytes() < MEMORY_BOUND


def test_a_proxy_in_the_environment_receives_nothing_of_a_loopback_api(harness_for, processes: Processes,
                                                                      tmp_path: Path) -> None:
    """HTTP_PROXY, HTTPS_PROXY and ALL_PROXY name a recording proxy: the run against the demo API
    (plain http on 127.0.0.1: the secret and the token in clear) lands without sending it a byte."""
    from analytics_assets_tests.api.test_proxies import RecordingProxy

    harness: Harness = harness_for(records=3000)
    home = make_dagster_home(tmp_path / "dagster_home")
    proxy = RecordingProxy()
    try:
        env = cli_env(home, **proxy.environment())
        for name in ("NO_PROXY", "no_proxy"):
            env.pop(name, None)
        cli = processes.materialize(env, partition=PARTITION)
        assert cli.wait(timeout=300) == 0, cli.output()[-3000:]
    finally:
        proxy.close()
    assert proxy.received == [], f"the proxy received {[data[:80] for data in proxy.received]}"
    assert_matches_server(harness.db, harness.expected(PARTITION))


def test_an_alias_bomb_in_the_api_config_is_refused_fast_and_small(harness_for, processes: Processes,
                                                                  tmp_path: Path) -> None:
    """A 394-byte YAML alias bomb as ANALYTICS_API_CONFIG: the definitions do not load, naming the file
    and the line, within seconds and the memory of an idle process; nothing is sent, no run is made,
    the table is as it was (unguarded: past 2 GB and 20 s before a message)."""
    from analytics_assets_tests.api.test_config import ALIAS_BOMB

    harness: Harness = harness_for(records=3000)
    before = harness.prime(PARTITION)
    home = make_dagster_home(tmp_path / "dagster_home")
    bomb = tmp_path / "api.yaml"
    bomb.write_text(ALIAS_BOMB)

    started = time.monotonic()
    cli = processes.materialize(cli_env(home, ANALYTICS_API_CONFIG=str(bomb)), partition=PARTITION, measured=True)
    code = cli.wait(timeout=300)
    took = time.monotonic() - started
    output = cli.output()
    assert code != 0, output[-3000:]
    assert f"ANALYTICS_API_CONFIG={bomb}: line 3: YAML anchors and aliases" in output, output[-3000:]
    print(f"alias bomb: refused in {took:.1f} s, peak {cli.peak_rss_bytes() / 2**20:,.0f} MiB")
    assert took < 30, f"loading took {took:.0f} s"
    assert cli.peak_rss_bytes() < 512 * 2**20, f"peak memory {cli.peak_rss_bytes() / 2**20:,.0f} MiB"
    assert harness.api.request_count() == 0
    assert table_checksum(harness.db) == before
    runs, holding = settled_instance(home)
    assert runs == [] and holding == set()


LAUNCH_CONFIG = {
    # Each would redirect the secret, the rows or a clean-up, if a run's config could set it.
    "api_base_url": ("analytics_api", "base_url", "{evil}"),
    "token_url": ("analytics_api", "token_url", "{evil}/oauth/token"),
    "client_secret": ("analytics_api", "client_secret", "typed-in-the-launchpad"),
    "api_config": ("analytics_api", "api_config", "/tmp/evil.yaml"),
    "duckdb_path": ("warehouse", "duckdb_path", "/tmp/elsewhere.duckdb"),
    "pipelines_dir": ("warehouse", "pipelines_dir", "/tmp"),
    "destination": ("warehouse", "destination", "postgres"),
}


@pytest.mark.parametrize("case", list(LAUNCH_CONFIG))
def test_launch_config_cannot_choose_urls_credentials_or_paths(harness: Harness, processes: Processes,
                                                               tmp_path: Path, case: str) -> None:
    resource, field, value = LAUNCH_CONFIG[case]
    before = harness.prime(PARTITION)
    home = make_dagster_home(tmp_path / "dagster_home")
    evil = DemoApi(DemoApiConfig(records=1)).start()
    try:
        config: dict[str, Any] = {"resources": {resource: {"config": {field: value.format(evil=evil.base_url)}}}}
        cli = processes.materialize(cli_env(home), partition=PARTITION, options=("--config-json", json.dumps(config)))
        code = cli.wait(timeout=300)
        assert evil.requests == [], "the run sent requests where its launch config pointed"
    finally:
        evil.stop()
    output = cli.output()
    assert code != 0, f"the run accepted {field!r} from its launch config:\n{output[-3000:]}"
    assert f'unexpected config entry "{field}"' in output, output[-3000:]
    assert harness.api.request_count() == 0, "nothing may be sent, credentials least of all"
    assert table_checksum(harness.db) == before
    runs, holding = settled_instance(home)
    assert runs == [] and holding == set(), "a refused launch leaves no run and no claimed slot"
