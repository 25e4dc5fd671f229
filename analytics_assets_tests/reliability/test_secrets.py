"""Secret hygiene: the client secret and every access token the server issued never land in output,
Dagster's storage, materialization metadata, the DuckDB file or dlt's working folders; a failing
run's error does not quote the secret either."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import pickle
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, quote_plus

import duckdb
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from analytics_assets.api.definition import BUILT_IN_CONFIG
from analytics_assets.builders.assets import run_figures
from analytics_assets_tests.conftest import set_api_env
from analytics_assets_tests.reliability.conftest import (
    END_DATE,
    TABLE_ASSET,
    Processes,
    cli_env,
    full_error_text,
    make_dagster_home,
)


def leak_forms(client_id: str, secret: str, tokens: list[str]) -> dict[str, bytes]:
    """Every spelling under which the credentials could be written down."""
    forms = {
        "secret": secret,
        "secret (url-encoded)": quote_plus(secret),
        "secret (percent-encoded)": quote(secret, safe=""),
        "secret (base64)": base64.b64encode(secret.encode()).decode(),
        "basic auth header": base64.b64encode(f"{client_id}:{secret}".encode()).decode(),
        "basic auth header (form-encoded)": base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode(),
    }
    for i, token in enumerate(tokens):
        forms[f"access token #{i + 1}"] = token
    return {name: value.encode() for name, value in forms.items()}


def readable_forms(path: Path) -> Iterator[bytes]:
    """A file's bytes and, for formats that compress or split text, its decoded content."""
    data = path.read_bytes()
    yield data
    if data[:2] == b"\x1f\x8b":
        yield gzip.decompress(data)
    if data.startswith(b"SQLite format 3"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                yield repr(connection.execute(f'SELECT * FROM "{table}"').fetchall()).encode()
    if path.suffix == ".parquet":
        yield repr(pq.read_table(path).to_pylist()).encode()
    if path.suffix == ".pickle":
        yield repr(pickle.loads(data)).encode()
    if path.suffix == ".duckdb":
        yield duckdb_dump(path)


def duckdb_dump(path: Path) -> bytes:
    """Every value of every table as text (DuckDB compresses strings on disk), the dlt state decoded."""
    from dlt.common.versioned_state import decompress_state

    parts = []
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        for schema, table in tables:
            parts.append(repr(connection.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
        for schema, table in tables:
            if table == "_dlt_pipeline_state":
                for (state,) in connection.execute(f'SELECT state FROM "{schema}"."{table}"').fetchall():
                    parts.append(repr(decompress_state(state)))
    return "\n".join(parts).encode()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_absent(forms: dict[str, bytes], where: str, blobs: Iterator[bytes]) -> int:
    scanned = 0
    for blob in blobs:
        scanned += 1
        for name, value in forms.items():
            assert value not in blob, f"the {name} appears in {where}"
    return scanned


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
def test_secret_and_tokens_never_stored_or_printed(make_api, processes: Processes, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, auth_method: str) -> None:
    """With the secret in the token request's form, or in its HTTP Basic header (form-encoded first,
    so a secret with `+`, `/` and a space has a spelling of its own there)."""
    secret = f"S3cr3t+/ {uuid.uuid4()}"
    api = make_api(records=500, days=5, end_date=END_DATE, client_secret=secret,
                   token_auth_method="any" if auth_method == "client_secret_post" else auth_method)
    db = tmp_path / "warehouse" / "warehouse.duckdb"
    set_api_env(monkeypatch, api, db)
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["auth"]["token_endpoint_auth_method"] = auth_method
    (tmp_path / "api.json").write_text(json.dumps(config))
    monkeypatch.setenv("ANALYTICS_API_CONFIG", str(tmp_path / "api.json"))
    api.faults.on_page(2, lambda a: a.revoke_tokens())  # a second token, fetched after a 401
    home = make_dagster_home(tmp_path / "dagster_home")

    cli = processes.materialize(cli_env(home), partition_range="2026-11-16...2026-11-17", name="secret-run")
    assert cli.wait(timeout=300) == 0, cli.output()[-3000:]
    tokens = api.issued_tokens
    assert len(tokens) >= 2, "the run should have used an access token, and a replacement after the 401"
    forms = leak_forms(api.config.client_id, secret, tokens)

    # 1. what the process printed
    output = cli.log.read_bytes()
    assert b"RUN_SUCCESS" in output  # the scan sees the real output
    assert_absent(forms, "the subprocess output", iter([output]))

    # 2. every file of DAGSTER_HOME: event log and run storage (SQLite, dumped), compute logs
    home_files = files_under(home)
    assert any(f.suffix == ".db" for f in home_files) and any("compute_logs" in str(f) for f in home_files)
    for path in home_files:
        assert_absent(forms, f"DAGSTER_HOME file {path.relative_to(home)}", readable_forms(path))
    assert any(api.base_url.encode() in blob for f in home_files for blob in readable_forms(f)), \
        "the scan should find the API URL the run logged"

    # 3. materialization metadata
    with DagsterInstance.from_config(str(home)) as instance:
        latest = instance.get_latest_materialization_event(AssetKey(list(TABLE_ASSET)))
        assert latest is not None
        every = instance.fetch_materializations(AssetKey(list(TABLE_ASSET)), limit=100).records
        texts = [repr(latest), repr(latest.asset_materialization.metadata)]
        texts += [repr(record.asset_materialization.metadata) for record in every]
        texts += [repr(run_figures(instance, AssetKey(list(TABLE_ASSET)), latest.run_id))]  # the run's own figures
    assert "records_fetched" in texts[1]
    assert_absent(forms, "materialization metadata", (text.encode() for text in texts))

    # 4. the DuckDB file: raw bytes, every table's values, the dlt state decoded
    duckdb_files = files_under(db.parent)
    assert db in duckdb_files
    assert b"item-00" in duckdb_dump(db)  # the scan sees the loaded rows
    for path in [p for p in duckdb_files if "dlt_pipelines" not in p.parts]:
        assert_absent(forms, f"{path.name}", readable_forms(path))

    # 5. dlt's working folders: state, schemas, trace.pickle, load packages (gz, parquet)
    pipeline_files = files_under(db.parent / "dlt_pipelines")
    names = {p.name for p in pipeline_files}
    assert {"state.json", "trace.pickle"} <= names, sorted(names)
    for path in pipeline_files:
        assert_absent(forms, f"dlt working file {path.relative_to(db.parent)}", readable_forms(path))


def test_failing_run_error_does_not_quote_the_secret(dagster_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture) -> None:
    from analytics_assets_tests.conftest import run_job

    wrong = f"W-{uuid.uuid4()}"
    monkeypatch.setenv("ANALYTICS_CLIENT_SECRET", wrong)
    result = run_job("2026-11-16")
    assert not result.success
    text = full_error_text(result)
    assert "rejected the client credentials" in text
    forms = leak_forms(dagster_api.config.client_id, wrong, [])
    assert_absent(forms, "the failed run's events and errors", iter([text.encode()]))
    captured = capfd.readouterr()
    assert_absent(forms, "the run's console output", iter([(captured.out + captured.err).encode()]))
    for path in files_under(tmp_path / "dlt_pipelines") if (tmp_path / "dlt_pipelines").exists() else []:
        assert_absent(forms, f"dlt working file {path.name}", readable_forms(path))


def postgres_dump(url: str) -> bytes:
    """Every value of every table of the database as text, the dlt state decoded."""
    import psycopg2
    from dlt.common.versioned_state import decompress_state

    parts = []
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_schema, table_name FROM information_schema.tables "
                       "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
        for schema, table in cursor.fetchall():
            cursor.execute(f'SELECT * FROM "{schema}"."{table}"')
            rows = cursor.fetchall()
            parts.append(repr(rows))
            if table == "_dlt_pipeline_state":
                names = [d[0] for d in cursor.description]
                parts += [repr(decompress_state(row[names.index("state")])) for row in rows]
    connection.close()
    return "\n".join(parts).encode()


def test_warehouse_password_never_stored_or_printed(make_api, processes: Processes, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    from urllib.parse import urlsplit

    api = make_api(records=500, days=5, end_date=END_DATE)
    set_api_env(monkeypatch, api, tmp_path / "warehouse" / "warehouse.duckdb")
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    password = urlsplit(postgres_url).password
    forms = {"the warehouse password": password.encode(), "the credentials URL": postgres_url.encode()}
    home = make_dagster_home(tmp_path / "dagster_home")

    cli = processes.materialize(cli_env(home), partition="2026-11-17", name="postgres-secret-run")
    assert cli.wait(timeout=300) == 0, cli.output()[-3000:]
    output = cli.log.read_bytes()
    assert b"RUN_SUCCESS" in output and b"postgres 127.0.0.1" in output  # names the warehouse, not its password
    assert_absent(forms, "the subprocess output", iter([output]))
    for path in files_under(home):
        assert_absent(forms, f"DAGSTER_HOME file {path.relative_to(home)}", readable_forms(path))
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey(list(TABLE_ASSET)), limit=100).records
        texts = [repr(record.asset_materialization.metadata) for record in records]
    assert texts and "records_fetched" in texts[0]
    assert_absent(forms, "materialization metadata", (text.encode() for text in texts))
    dump = postgres_dump(postgres_url)
    assert b"item-00" in dump  # the scan sees the loaded rows
    assert_absent(forms, "the PostgreSQL database", iter([dump]))
    pipeline_files = files_under(tmp_path / "warehouse" / "dlt_pipelines")
    assert any(p.name == "state.json" for p in pipeline_files)
    for path in pipeline_files:
        assert_absent(forms, f"dlt working file {path.name}", readable_forms(path))


def test_wrong_warehouse_password_fails_naming_the_fix_without_quoting_it(
    dagster_api, monkeypatch: pytest.MonkeyPatch, postgres_url: str, capfd: pytest.CaptureFixture
) -> None:
    from analytics_assets_tests.conftest import run_job

    wrong = f"W-{uuid.uuid4().hex}"
    scheme, rest = postgres_url.split("://", 1)
    user, host = rest.split(":", 1)[0], rest.split("@", 1)[1]
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", f"{scheme}://{user}:{wrong}@{host}")
    result = run_job("2026-11-16")
    assert not result.success
    text = full_error_text(result)
    assert "password authentication failed" in text and "DESTINATION__POSTGRES__CREDENTIALS" in text
    assert_absent({"the wrong password": wrong.encode()}, "the failed run's events and errors", iter([text.encode()]))
    captured = capfd.readouterr()
    assert_absent({"the wrong password": wrong.encode()}, "the run's console output",
                  iter([(captured.out + captured.err).encode()]))
