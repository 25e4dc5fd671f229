"""Backfilling a long history: one run against N runs at once, through real Dagster runs.

    .venv/bin/python benchmarks/backfill.py                         # 90 days x 1,000 records, N = 4
    .venv/bin/python benchmarks/backfill.py --days 365              # a year
    .venv/bin/python benchmarks/backfill.py --days 8 --per-day 200  # smoke
    .venv/bin/python benchmarks/backfill.py --against main          # also the code at main, in the same run

Every run is a `dagster asset materialize` process of one deployment (one DAGSTER_HOME, so they
share the rate limit budget as a deployment's runs do), under a wrapper that reports its peak RSS;
the demo API runs in this process, and nothing else does while the runs go: its limiter's 429s and
every request's arrival are the figures. "One run" materializes every day; "N runs" materialize
the days split into N consecutive ranges, launched at once. Before either, an untimed run of the
first day creates the tables (on a new PostgreSQL database first runs take turns on the
table-creation lock, fetch included). Scenarios:

- latency: the API answers every page after 50 ms and sets no limit;
- announced: the API admits 10 requests a second and says so (X-RateLimit-*);
- silent: the same limiter, saying it only by 429 + Retry-After.

The runs load PostgreSQL (a server started here with .ci/postgres, or --postgres-url) with the
writer pool at N, so that N runs fetch and load at the same time; on DuckDB (--warehouse duckdb)
the writer pool and the file's lock make runs take turns, and N runs measure that. Ratios come
from figures measured in this same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import _checkout  # noqa: E402 - the project at another commit, as bench.py's --against takes it
END = date(2026, 11, 20)  # the data's exclusive end: the last day backfilled is the 19th
CLIENT = ("demo-client", "demo-secret")
# Runs a command and prints the largest resident set of its processes (Linux: KiB): Dagster waits
# for its step processes, so they count among the wrapper's children.
PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print(f"peak RSS KiB: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", flush=True)
sys.exit(code)
"""


@dataclass
class Scenario:
    name: str
    api: dict  # DemoApiConfig fields besides the data's shape


SCENARIOS = [
    Scenario("latency 50 ms, no limit", {"latency_ms": 50.0}),
    Scenario("10 requests/s, announced (X-RateLimit-*)", {"rate_limit": 10.0, "rate_limit_headers": "x"}),
    Scenario("10 requests/s, silent (429 + Retry-After)", {"rate_limit": 10.0}),
]


@dataclass
class Outcome:
    """N runs (or one) of one scenario, as measured."""

    runs: int
    seconds: float = 0.0
    records: int = 0
    rows: int = 0
    refused: int = 0
    requests: int = 0
    failed: int = 0
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds


# --- the warehouse ------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(url: Optional[str]) -> Iterator[str]:
    """A PostgreSQL server's URL: `url`, else one started with .ci/postgres for this benchmark."""
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="analytics-backfill-postgres-")
    os.chmod(folder, 0o755)  # as root the server runs as `postgres`, which must reach it
    script = str(ROOT / ".ci" / "postgres")
    started = subprocess.run([script, "start", folder], capture_output=True, text=True)
    if started.returncode:
        raise SystemExit(f"could not start PostgreSQL ({started.stderr.strip()}); pass --postgres-url or "
                         "--warehouse duckdb")
    try:
        yield started.stdout.strip().split("=", 1)[1]
    finally:
        subprocess.run([script, "stop", folder], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_warehouse(kind: str, server: Optional[str], folder: Path) -> Iterator[dict]:
    """The environment pointing runs at an empty warehouse of `kind`, dropped afterwards."""
    if kind == "duckdb":
        yield {"ANALYTICS_DESTINATION": "duckdb", "ANALYTICS_DUCKDB_PATH": str(folder / "warehouse.duckdb")}
        return
    import psycopg2

    assert server is not None
    name = f"backfill_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = server.rsplit("/", 1)[0] + "/" + name
    try:
        yield {"ANALYTICS_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url, "_URL": url}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def rows_landed(kind: str, target: dict) -> int:
    if kind == "duckdb":
        import duckdb

        with duckdb.connect(target["ANALYTICS_DUCKDB_PATH"], read_only=True) as connection:
            return connection.execute("SELECT count(*) FROM analytics.resource_name").fetchone()[0]
    import psycopg2

    with psycopg2.connect(target["_URL"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM analytics.resource_name")
        count = cursor.fetchone()[0]
    connection.close()
    return count


# --- the runs ----------------------------------------------------------------------------------------


def deployment(folder: Path, slots: int, code: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml and both writer pools created, the shared
    warehouse's with `slots` slots."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    code_text = (f"import sys; sys.path.insert(0, {str(code)!r}); from dagster import DagsterInstance; "
                 "from analytics_assets.warehouse.pool import create_pool; "
                 f"i = DagsterInstance.from_config({str(home)!r}); create_pool(i, 'duckdb_writer', 1); "
                 f"create_pool(i, 'warehouse_writer', {slots}); i.dispose()")
    subprocess.run([sys.executable, "-c", code_text], check=True, cwd=code)
    return home


def ranges(days: list[str], parts: int) -> list[tuple[str, str]]:
    """`days` split into `parts` consecutive ranges, as even as can be."""
    size, extra = divmod(len(days), parts)
    out, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        out.append((days[start], days[end - 1]))
        start = end
    return out


def measure(scenario: Scenario, days: list[str], per_day: int, parts: int, kind: str, server: Optional[str],
            code: Path, workdir: Path) -> Outcome:
    """`parts` runs over `days` at once, against a demo API of the scenario's own, into a fresh
    warehouse; every run's process from launch to exit."""
    from analytics_assets.demo_api import DemoApi, DemoApiConfig

    folder = workdir / f"{scenario.name[:8].replace(' ', '_')}-{parts}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    outcome = Outcome(parts)
    config = DemoApiConfig(records=per_day * len(days), days=len(days), end_date=END, **scenario.api)
    with DemoApi(config) as api, fresh_warehouse(kind, server, folder) as target:
        home = deployment(folder, parts, code)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "DESTINATION__"))},
               "DAGSTER_HOME": str(home), "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1",
               "ANALYTICS_API_BASE_URL": api.base_url, "ANALYTICS_CLIENT_ID": CLIENT[0],
               "ANALYTICS_CLIENT_SECRET": CLIENT[1], "ANALYTICS_PARTITIONS_START": days[0],
               **{k: v for k, v in target.items() if not k.startswith("_")}}
        dagster = str(Path(sys.executable).parent / "dagster")

        def materialize(first: str, last: str, log: Path) -> subprocess.Popen:
            command = [sys.executable, "-c", PEAK_RSS, dagster, "asset", "materialize", "-m",
                       "analytics_assets.definitions", "--select", "analytics/resource_name",
                       "--partition-range", f"{first}...{last}"]
            with open(log, "wb") as sink:
                return subprocess.Popen(command, cwd=code, env=env, stdout=sink, stderr=subprocess.STDOUT)

        # The tables first, untimed: on a new PostgreSQL database first runs take turns on the
        # table-creation lock, fetch included (issue 21, item 3), so N first runs never overlap.
        if materialize(days[0], days[0], folder / "tables.log").wait():
            raise SystemExit("the run creating the tables failed:\n" + (folder / "tables.log").read_text()[-3000:])
        api.reset_stats()
        logs = [folder / f"run-{i}.log" for i in range(parts)]
        started = time.monotonic()
        processes = [materialize(first, last, log) for (first, last), log in zip(ranges(days, parts), logs)]
        codes = [process.wait() for process in processes]
        outcome.seconds = time.monotonic() - started
        outcome.refused, outcome.requests = api.rate_limited, len(api.request_times)
        outcome.records = len(api.all_records())
        with contextlib.suppress(Exception):  # no table: every run failed before loading
            outcome.rows = rows_landed(kind, target)
    for exit_code, log in zip(codes, logs):
        text = log.read_text(errors="replace")
        if exit_code != 0:
            outcome.failed += 1
            print(f"    a run failed ({log}):\n" + "\n".join(text.splitlines()[-5:]), flush=True)
        if "peak RSS KiB: " in text:
            outcome.peak_rss_mb.append(int(text.rsplit("peak RSS KiB: ", 1)[1].split()[0]) / 1024)
    return outcome


# --- the report --------------------------------------------------------------------------------------


def row(label: str, o: Outcome) -> str:
    rss = f"{max(o.peak_rss_mb):,.0f}" if o.peak_rss_mb else "—"
    rows = "all" if o.rows == o.records else f"{o.rows:,} of {o.records:,}"
    return (f"  {label:<22}{o.seconds:>9.1f}{o.rate:>12,.0f}{rss:>15}{o.refused:>7}{o.requests:>10}"
            f"{o.failed:>8}  {rows}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days of history (365: a year)")
    parser.add_argument("--per-day", type=int, default=1000, help="records a day (100 a page)")
    parser.add_argument("--runs", type=int, default=4, help="N: the runs the days are split into")
    parser.add_argument("--only", help="the scenarios whose name contains this")
    parser.add_argument("--warehouse", choices=("postgres", "duckdb"), default="postgres")
    parser.add_argument("--postgres-url", help="a PostgreSQL server to create the databases on (default: one "
                        "started with .ci/postgres)")
    parser.add_argument("--against", metavar="REF", help="also measure N runs of the code at this git commit")
    args = parser.parse_args()

    days = [(END - timedelta(days=args.days - i)).isoformat() for i in range(args.days)]
    chosen = [s for s in SCENARIOS if not args.only or args.only in s.name]
    workdir = Path(tempfile.mkdtemp(prefix="analytics-backfill-"))
    print(f"Backfill: {args.days} days x {args.per_day:,} records ({args.days * args.per_day:,}), 100 a page; one run "
          f"against {args.runs} runs at once; {args.warehouse}; {os.cpu_count()} cores; demo API in this process\n")
    header = (f"  {'':<22}{'wall s':>9}{'records/s':>12}{'peak RSS MB':>15}{'429s':>7}{'requests':>10}"
              f"{'failed':>8}  rows landed")
    try:
        with postgres_server(args.postgres_url) if args.warehouse == "postgres" else contextlib.nullcontext() as server, \
                _checkout(args.against, workdir) as earlier:
            for scenario in chosen:
                print(scenario.name, flush=True)
                print(header)
                one = measure(scenario, days, args.per_day, 1, args.warehouse, server, ROOT, workdir)
                print(row("one run", one), flush=True)
                many = measure(scenario, days, args.per_day, args.runs, args.warehouse, server, ROOT, workdir)
                print(row(f"{args.runs} runs", many), flush=True)
                before = None
                if earlier is not None:
                    before = measure(scenario, days, args.per_day, args.runs, args.warehouse, server, earlier, workdir)
                    print(row(f"{args.runs} runs @{args.against}", before), flush=True)
                print(f"  {args.runs} runs / one run: wall time {many.seconds / one.seconds:.2f}, records/s "
                      f"{many.rate / one.rate:.2f}, 429s {many.refused} vs {one.refused}"
                      + (f"; @{args.against}: wall {before.seconds / one.seconds:.2f}, 429s {before.refused}"
                         if before else "") + "\n", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
