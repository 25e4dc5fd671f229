"""Shared test harness: the bundled demo API on 127.0.0.1, real DuckDB files, and row-by-row
comparison of what landed with what the server holds."""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import duckdb
import pytest

from analytics_assets.api.definition import ApiDefinition, built_in_definition
from analytics_assets.api.stats import SyncStats
from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets.settings import Settings, variable
from analytics_assets.warehouse.pipeline import make_pipeline, sync
from analytics_assets.window import Window

ROOT = Path(__file__).resolve().parents[1]
TABLE = "analytics.resource_name"
# The seed's policy, with waits shortened so the suite stays fast; attempts and statuses unchanged.
FAST_RETRY = {"backoff_factor": 0.05, "max_retry_wait": 3.0, "http_timeout": 2.0}


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def normalise_server(record: dict) -> dict:
    """A server record as DuckDB should hold it: timestamps at second precision in UTC."""
    out = dict(record)
    for key in ("created_at", "updated_at"):
        out[key] = _iso(datetime.fromisoformat(str(out[key]).replace("Z", "+00:00")))
    return out


Location = Union[Path, str]  # a DuckDB file, or a postgresql:// URL


def query(location: Location, sql: str, *params: Any) -> tuple[list[str], list[tuple]]:
    """Column names and rows of a query (`%s` placeholders) on either warehouse, read directly
    with its own driver, not through the code under test."""
    if isinstance(location, str):
        import psycopg2

        with psycopg2.connect(location) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            names = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if cursor.description else []
        connection.close()
        return names, rows
    with duckdb.connect(str(location)) as connection:
        cursor = connection.execute(sql.replace("%s", "?"), list(params))
        names = [d[0] for d in cursor.description] if cursor.description else []
        return names, cursor.fetchall() if cursor.description else []


def table_rows(location: Location, table: str = TABLE) -> list[dict]:
    """Every row of the merged table, without dlt's bookkeeping columns, ordered by id."""
    names, rows = query(location, f"SELECT * FROM {table} ORDER BY id")
    out = []
    for row in rows:
        record = {name: _iso(value) for name, value in zip(names, row) if not name.startswith("_dlt_")}
        if isinstance(record.get("properties"), str):
            record["properties"] = json.loads(record["properties"])
        out.append(record)
    return out


def table_checksum(location: Location, table: str = TABLE) -> str:
    """A fingerprint of the table's rows, load ids included: equal means untouched."""
    return hashlib.sha256(repr(query(location, f"SELECT * FROM {table} ORDER BY id")[1]).encode()).hexdigest()


def assert_table_matches(location: Location, expected: list[dict], table: str = TABLE) -> None:
    """Row-by-row equality with the server's records: nothing missing, extra or duplicated."""
    actual = table_rows(location, table)
    expected = sorted((normalise_server(r) for r in expected), key=lambda r: r["id"])
    assert [r["id"] for r in actual] == [r["id"] for r in expected]
    for got, want in zip(actual, expected):
        projected = {key: got.get(key) for key in want}
        assert projected == want, f"row id={want['id']} differs"


def settings_for(api: DemoApi, **overrides: Any) -> Settings:
    values = {
        "api_base_url": api.base_url,
        "token_url": api.token_url,
        "client_id": api.config.client_id,
        "client_secret": api.config.client_secret,
        **FAST_RETRY,
        "token_refresh_margin": 0.0,
        "max_concurrency": 1,  # faults land on a predictable request; test_lookahead covers concurrency
    }
    return Settings(**{**values, **overrides})


class Syncer:
    """Runs the plain dlt pipeline (no Dagster) against one DuckDB file, a fresh source each run."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "warehouse.duckdb"
        self.pipelines = tmp_path / "pipelines"
        self.last_stats: Optional[SyncStats] = None

    def run(self, api: Optional[DemoApi], window: Optional[Window] = None, settings: Optional[Settings] = None,
            definition: Optional[ApiDefinition] = None, warn: Any = None, say: Any = None) -> SyncStats:
        self.last_stats = SyncStats(warning=warn, progress=say)
        sync(make_pipeline(self.db, pipelines_dir=self.pipelines), definition or built_in_definition(),
             settings or settings_for(api), window, self.last_stats)
        return self.last_stats


@pytest.fixture
def syncer(tmp_path: Path) -> Syncer:
    return Syncer(tmp_path)


@pytest.fixture
def demo_api() -> Iterator[DemoApi]:
    with DemoApi(DemoApiConfig(records=350, days=5)) as api:
        yield api


@pytest.fixture
def make_api() -> Iterator[Any]:
    """Start demo APIs with any configuration; all are stopped at the end of the test."""
    started: list[DemoApi] = []

    def start(**config: Any) -> DemoApi:
        api = DemoApi(DemoApiConfig(**config))
        api.start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.faults.release()
        api.stop()


# --- Dagster ---------------------------------------------------------------------------------

@pytest.fixture
def dagster_api(make_api, tmp_path, monkeypatch) -> DemoApi:
    """A demo API holding five fixed days of records, and the ANALYTICS_* variables a user would
    set to point the code location at it, with a DuckDB file of the test's own."""
    from datetime import date

    api = make_api(records=500, days=5, end_date=date(2026, 11, 20))
    set_api_env(monkeypatch, api, tmp_path / "warehouse.duckdb")
    return api


def set_api_env(monkeypatch: pytest.MonkeyPatch, api: DemoApi, db: Path) -> None:
    """The ANALYTICS_* variables a user would set to point the code location at `api` and `db`."""
    monkeypatch.setenv("ANALYTICS_API_BASE_URL", api.base_url)
    monkeypatch.setenv("ANALYTICS_CLIENT_ID", api.config.client_id)
    monkeypatch.setenv("ANALYTICS_CLIENT_SECRET", api.config.client_secret)
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(db))
    for name in ("backoff_factor", "http_timeout"):
        monkeypatch.setenv(variable(name), str(FAST_RETRY[name]))
    monkeypatch.delenv("ANALYTICS_TOKEN_URL", raising=False)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, dagster_api, tmp_path, monkeypatch) -> Location:
    """The warehouse the Dagster tests run against: each test runs once on a DuckDB file and once
    on a fresh PostgreSQL database, configured as a user would (ANALYTICS_DESTINATION, and dlt's
    own credentials variable)."""
    if request.param == "duckdb":
        return tmp_path / "warehouse.duckdb"
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    return url


def day_bounds(day: str, last_day: Optional[str] = None) -> tuple[datetime, datetime]:
    window = Window.of_days(day, last_day)
    return window.start, window.end


def run_job(partition: Optional[str] = None, first: Optional[str] = None, last: Optional[str] = None, instance=None,
            run_config: Optional[dict] = None):
    """Run the project's job in process on an ephemeral instance, as a user's launch would (with
    `run_config`, as the launchpad's)."""
    from dagster import DagsterInstance

    from analytics_assets.definitions import build_defs
    from analytics_assets.builders.jobs import JOB_NAME

    defs = build_defs()  # for the destination this test configured
    tags = {} if partition else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return defs.resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        partition_key=partition,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )


def run_figures_of(result, key: tuple[str, ...] = ("analytics", "resource_name")) -> dict:
    """The figures a run recorded once for a table (its observation of it; the days' own are on
    their materializations)."""
    observations = [event.event_specific_data.asset_observation for event in result.get_asset_observation_events()]
    (metadata,) = [o.metadata for o in observations if tuple(o.asset_key.path) == key and "dlt_load_id" in o.metadata] \
        or [{}]
    return metadata


# --- PostgreSQL ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server on 127.0.0.1: the one `.ci/run` started
    ($ANALYTICS_TEST_POSTGRES_URL), else one started here with `.ci/postgres`.

    Without PostgreSQL on the machine the tests that need it skip, unless
    ANALYTICS_TEST_REQUIRE_POSTGRES=1 (set by CI), where a skip would hide a broken setup.
    """
    import os
    import subprocess
    import tempfile

    url = os.environ.get("ANALYTICS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))):
        if os.environ.get("ANALYTICS_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required here (ANALYTICS_TEST_REQUIRE_POSTGRES=1) but not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, or set ANALYTICS_TEST_POSTGRES_URL)")
    # Not under pytest's tmp folder: as root the server runs as `postgres`, which must reach it.
    folder = tempfile.mkdtemp(prefix="analytics-postgres-")
    os.chmod(folder, 0o755)
    script = str(REPO / ".ci" / "postgres")
    started = subprocess.run([script, "start", folder], capture_output=True, text=True)
    if started.returncode:
        pytest.fail(f"could not start PostgreSQL: {started.stderr.strip()}")
    yield started.stdout.strip().split("=", 1)[1]
    subprocess.run([script, "stop", folder], check=False)
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(server: str, prefix: str = "t") -> Iterator[str]:
    """URL of a new, empty database on the test server, dropped afterwards."""
    import uuid

    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test, dropped afterwards."""
    with fresh_database(postgres_server) as url:
        yield url


def make_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME holding a copy of the project's dagster.yaml (writer pool limit 1), with the
    instance created once, before any process races to create it."""
    from dagster import DagsterInstance

    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", path / "dagster.yaml")
    from analytics_assets.warehouse.pool import create_pool

    with DagsterInstance.from_config(str(path)) as instance:  # created once, before runs race
        create_pool(instance, "duckdb_writer", 1)
    return path
