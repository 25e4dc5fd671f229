"""Side-by-side benchmark: ours vs dlt's defaults vs the physical floor, measured in one run.

    python benchmarks/bench.py                # 100,000 records
    python benchmarks/bench.py --large        # 1,000,000 records
    python benchmarks/bench.py --records 3000 --latency-records 1000 --merge-rows 12000 20000 --import-repeat 1  # smoke
    python benchmarks/bench.py --against main~3    # also ours at another commit, in the same run

The demo API runs in its own process, and so does each contender, so that peak RSS is the
contender's own and nobody shares a GIL with the server. Ratios come from figures measured in this
same run; nothing is compared with numbers from elsewhere.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
DAYS = 10
CLIENT = ("demo-client", "demo-secret")


# --- the demo API in its own process ----------------------------------------------------------


@contextmanager
def demo_api(records: int, latency_ms: float = 0.0) -> Iterator[str]:
    command = [sys.executable, "-m", "analytics_assets.cli", "demo-api", "--port", "0",
               "--records", str(records), "--days", str(DAYS), "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        base_url = None
        for line in process.stdout:
            if line.strip().startswith("base URL:"):
                base_url = line.split("base URL:")[1].strip()
                break
        if base_url is None:
            raise RuntimeError("the demo API did not start")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- contenders, each run in a fresh process ----------------------------------------------------


def _point_ours_at(base_url: str, workdir: Path) -> None:
    """The environment a deployment of ours would have, set before its definitions load."""
    os.environ.update(
        ANALYTICS_API_BASE_URL=base_url,
        ANALYTICS_CLIENT_ID=CLIENT[0],
        ANALYTICS_CLIENT_SECRET=CLIENT[1],
        ANALYTICS_DUCKDB_PATH=str(workdir / "ours.duckdb"),
        ANALYTICS_PARTITIONS_START=(datetime.now(timezone.utc).date() - timedelta(days=DAYS)).isoformat(),
    )


def run_ours(base_url: str, workdir: Path) -> int:
    """A full Dagster materialization of the merged table: one run over every day of data."""
    end = datetime.now(timezone.utc).date()
    first = end - timedelta(days=DAYS)
    from dagster import AssetSelection, DagsterInstance, define_asset_job, Definitions

    job = define_asset_job("bench", selection=AssetSelection.keys("analytics/resource_name"))
    merged = Definitions.merge(_definitions(), Definitions(jobs=[job]))
    result = merged.resolve_job_def("bench").execute_in_process(
        instance=DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": (end - timedelta(days=1)).isoformat()},
    )
    assert result.success
    return _count(workdir / "ours.duckdb")


@functools.cache
def _definitions() -> Any:
    """The code location's definitions (at this commit, or another for `--against`), loaded once per
    process as a code server or run worker loads them: before the clock starts."""
    from analytics_assets.definitions import build_defs

    return build_defs()


def run_dlt_defaults(base_url: str, workdir: Path) -> int:
    """The same API through a plain rest_api_source with dlt's own settings (insert_values)."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": base_url,
            "auth": {"type": "oauth2_client_credentials", "access_token_url": base_url + "/oauth/token",
                     "client_id": CLIENT[0], "client_secret": CLIENT[1]},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [{"name": "resource_name", "endpoint": {
            "path": "/v1/resource", "data_selector": "data",
            "paginator": {"type": "offset", "limit": 100, "total_path": "total"}}}],
    })
    pipeline = dlt.pipeline("bench_dlt_defaults", destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
                            dataset_name="analytics", pipelines_dir=str(workdir / "dlt_pipelines"))
    pipeline.run(source)
    return _count(workdir / "dlt.duckdb")


def run_floor(base_url: str, workdir: Path) -> int:
    """The machine's limit for this job: one session fetching the pages in order, each batch of
    pages upserted into DuckDB through Arrow. No validation, no retries, no framework."""
    import duckdb
    import pyarrow as pa
    import requests

    session = requests.Session()
    token = session.post(base_url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT[0], "client_secret": CLIENT[1]}).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    connection = duckdb.connect(str(workdir / "floor.duckdb"))
    connection.execute("CREATE SCHEMA analytics")
    connection.execute("""CREATE TABLE analytics.resource_name (id BIGINT PRIMARY KEY, name TEXT, category TEXT,
        metric_value DOUBLE, event_count BIGINT, is_active BOOLEAN, properties JSON,
        created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ)""")
    columns = ["id", "name", "category", "metric_value", "event_count", "is_active", "properties", "created_at", "updated_at"]
    offset, total, batch = 0, None, []

    def flush() -> None:
        rows = pa.Table.from_pylist([{**r, "properties": json.dumps(r["properties"])} for r in batch])
        connection.register("batch", rows.select(columns))
        connection.execute("INSERT OR REPLACE INTO analytics.resource_name SELECT * FROM batch")
        connection.unregister("batch")
        batch.clear()

    while total is None or offset < total:
        page = session.get(base_url + "/v1/resource", params={"offset": offset, "limit": 100}).json()
        total = page["total"]
        batch.extend(page["data"])
        offset += len(page["data"])
        if len(batch) >= 10_000:
            flush()
    if batch:
        flush()
    connection.close()
    return _count(workdir / "floor.duckdb")


def _count(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute("SELECT count(*) FROM analytics.resource_name").fetchone()[0]


CONTENDERS = {"ours": run_ours, "dlt_defaults": run_dlt_defaults, "floor": run_floor}


def measure(mode: str, base_url: str, workdir: Path, code: Path = ROOT) -> dict:
    """Runs one contender in a fresh process, importing this project from `code`; returns records,
    seconds and that process's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    completed = subprocess.run(
        [sys.executable, __file__, "--run", mode, "--base-url", base_url, "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=code, env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# What each contender imports before its clock starts: import time is benchmarked on its own below.
# Dagster imports its run storage (SQLAlchemy, Alembic: about 0.6 s) only when the first instance is
# made; a run worker has its instance already, so a throwaway one is made before the clock starts.
_DAGSTER = "import dagster; _definitions(); dagster.DagsterInstance.ephemeral()"
WARM_UP = {
    "ours": _DAGSTER,
    "ours_one_day": _DAGSTER,
    "dlt_defaults": "import dlt, dlt.sources.rest_api",
    "floor": "import duckdb, pyarrow, requests",
}


def _child(mode: str, base_url: str, workdir: Path) -> None:
    if mode.startswith("ours"):
        _point_ours_at(base_url, workdir)
    exec(WARM_UP[mode])
    started = time.perf_counter()
    rows = CONTENDERS[mode](base_url, workdir)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


# --- merge growth and import time ---------------------------------------------------------------


def merge_growth(sizes: list[int], workdir: Path) -> dict[int, float]:
    """Seconds to materialize one day (~1,000 records) into a table that already holds `size` rows."""
    results = {}
    day_records = 1000 * DAYS
    for size in sizes:
        with demo_api(day_records) as base_url:
            path = workdir / f"merge_{size}"
            path.mkdir()
            first = measure("ours", base_url, path)  # creates the table and dlt's state
            _pad(path / "ours.duckdb", size - first["rows"])
            results[size] = measure("ours_one_day", base_url, path)["seconds"]
    return results


def run_ours_one_day(base_url: str, workdir: Path) -> int:
    end = datetime.now(timezone.utc).date()
    from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

    job = define_asset_job("bench", selection=AssetSelection.keys("analytics/resource_name"))
    merged = Definitions.merge(_definitions(), Definitions(jobs=[job]))
    result = merged.resolve_job_def("bench").execute_in_process(
        instance=DagsterInstance.ephemeral(), partition_key=(end - timedelta(days=1)).isoformat())
    assert result.success
    return _count(workdir / "ours.duckdb")


CONTENDERS["ours_one_day"] = run_ours_one_day


def _pad(path: Path, rows: int) -> None:
    """Grow the merged table with distinct far-away ids, as years of history would."""
    import duckdb

    if rows <= 0:
        return
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            """INSERT INTO analytics.resource_name BY NAME
               SELECT 10000000 + i AS id, 'history-' || i AS name, 'books' AS category, i * 0.5 AS metric_value,
                      i AS event_count, true AS is_active, '{}'::JSON AS properties,
                      TIMESTAMPTZ '2020-01-01 00:00:00+00' AS created_at,
                      TIMESTAMPTZ '2020-01-01 00:00:00+00' + INTERVAL (i % 1000) MINUTE AS updated_at,
                      '0' AS _dlt_load_id
               FROM range(?) t(i)""",
            [rows],
        )


@contextmanager
def _checkout(ref: Optional[str], workdir: Path) -> Iterator[Optional[Path]]:
    """The project at another commit, in a temporary git worktree, for `--against`."""
    if ref is None:
        yield None
        return
    folder = workdir / "checkout"
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, capture_output=True)


def import_seconds(statement: str, repeat: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True, cwd=tempfile.gettempdir()).stdout) for _ in range(repeat)]
    return statistics.median(samples)


# --- the report ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--large", action="store_true", help="1,000,000 records")
    parser.add_argument("--latency-records", type=int, default=100_000)
    parser.add_argument("--merge-rows", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--import-repeat", type=int, default=5, help="runs per import timing (median)")
    parser.add_argument("--against", metavar="REF", help="also measure ours at this git commit, in the same run")
    parser.add_argument("--run", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _child(args.run, args.base_url, args.workdir)
        return 0

    records = 1_000_000 if args.large else args.records
    workdir = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    try:
        print(f"Benchmark on {os.cpu_count()} cores, {records:,} records, 100 a page, demo API on 127.0.0.1")
        # dlt's defaults take about 4 GB at 100,000 records and grow with them: at 1,000,000 they
        # would take more memory than the machine has.
        contenders = ("floor", "ours") if args.large else ("floor", "ours", "dlt_defaults")
        with _checkout(args.against, workdir) as earlier:
            with demo_api(records) as base_url:
                results = {mode: measure(mode, base_url, workdir) for mode in contenders}
                if earlier is not None:
                    (workdir / "earlier").mkdir()
                    results[f"ours@{args.against}"] = measure("ours", base_url, workdir / "earlier", earlier)
            print(f"\n{'contender':<22}{'rows':>12}{'seconds':>10}{'records/s':>12}{'peak RSS MB':>13}")
            for mode, r in results.items():
                r["rate"] = records / r["seconds"]
                print(f"{mode:<22}{r['rows']:>12,}{r['seconds']:>10.1f}{r['rate']:>12,.0f}{r['peak_rss_mb']:>13,.0f}")
                assert r["rows"] == records, f"{mode} loaded {r['rows']} of {records}"
            print(f"ours / floor:        {results['ours']['rate'] / results['floor']['rate']:.2f}")
            if earlier is not None:
                print(f"ours / ours at {args.against}: "
                      f"{results['ours']['rate'] / results[f'ours@{args.against}']['rate']:.2f}")
            if "dlt_defaults" in results:
                print(f"ours / dlt defaults: {results['ours']['rate'] / results['dlt_defaults']['rate']:.2f}")
            else:
                print("dlt defaults: skipped at --large (about 4 GB at 100,000 records, growing with the records)")

            latency = 50
            ceiling = 100 / (latency / 1000)
            for name, code in [("ours", ROOT)] + ([(f"ours at {args.against}", earlier)] if earlier else []):
                folder = workdir / f"latency-{len(name)}"
                folder.mkdir()
                with demo_api(args.latency_records, latency_ms=latency) as base_url:
                    rate = args.latency_records / measure("ours", base_url, folder, code)["seconds"]
                print(f"\nlatency {latency} ms/request, {args.latency_records:,} records: {name} {rate:,.0f} records/s, "
                      f"sequential ceiling {ceiling:,.0f}; {name} / ceiling: {rate / ceiling:.2f}")

        growth = merge_growth(args.merge_rows, workdir)
        small, large = args.merge_rows
        print(f"\nmerge one day (~1,000 records) into {small:,} rows: {growth[small]:.2f} s; into {large:,} rows: "
              f"{growth[large]:.2f} s; ratio {growth[large] / growth[small]:.2f}")

        ours_import = import_seconds("from analytics_assets.definitions import defs; defs()", args.import_repeat)
        base_import = import_seconds("import dagster, dagster_dlt", args.import_repeat)
        print(f"\nimport analytics_assets.definitions and load its definitions: {ours_import:.2f} s; "
              f"dagster + dagster_dlt alone: {base_import:.2f} s; ratio {ours_import / base_import:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
