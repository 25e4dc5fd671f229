"""The daily summary model, rebuilt whole vs only the days a sync touched, measured in one run.

    python benchmarks/summary_rebuild.py                      # 1,000,000 and 10,000,000 rows
    python benchmarks/summary_rebuild.py --rows 200000 --repeat 1   # smoke

`analytics.resource_name_daily_summary` is rebuilt whole from the merged table after every sync
(`rebuild_summary` in analytics_assets/builders/models.py), because a sync moves records between days:
a record updated upstream leaves the day of its old `updated_at`. The alternative rebuilds only the
days a sync touched, its window's days and the days its records are moved out of, which have to be
looked up BEFORE the merge (afterwards the old `updated_at` is gone). This measures what each costs
on a table of 10,000,000 rows, so that the choice rests on figures and not on a guess.

The scenario is a daily sync: a history of `--days` days (rows / days records a day), then one new
day whose records are the day's own plus 2% that were updated upstream and move from the 20
previous days. Both strategies run the model's own SQL (`create_summary_table`, `summarize`,
`rebuild_summary`, `days_differing`), through the project's own SQL path (dlt's DuckDB client with
the project's DuckDB settings: 32 MB memory limit, one thread), in a fresh process per size so that
peak RSS is that size's own. The table is generated in DuckDB (hashes of the id as seeded random
numbers: unlike `setseed`/`random()`, reproducible whatever the threads). Not measured: the merge
itself, which both strategies share.

The days-only rebuild is measured with its days written two ways: `day_of(updated_at) IN (days)`,
the model's own day expression, which DuckDB evaluates on every row; and each day as a UTC range of
`updated_at`, which DuckDB answers from the row groups whose min/max (zone maps) overlap the days, so
the alternative is judged at its best. Each form starts from the summary as the previous sync left
it, and must end equal to the full rebuild.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
TABLE = "analytics.resource_name"
LOAD = "analytics_staging.resource_name"  # where dlt stages a load before merging it
CURSOR = "updated_at"
START = date(2025, 1, 1)
START_EPOCH = 1_735_689_600  # START at 00:00 UTC
MOVED_SHARE = 50  # one record in 50 of the sync's was updated upstream...
MOVED_DAYS = 20  # ...and moves from one of the 20 previous days
FORMS = ("day_in", "ranges")  # how the days-only rebuild writes its days (see `days_where`)
CATEGORIES = ["books", "games", "music", "movies", "sports", "travel", "food", "health", "tools", "garden"]

COLUMNS = """id BIGINT, name TEXT, category TEXT, metric_value DOUBLE, event_count BIGINT, is_active BOOLEAN,
    properties JSON, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, _dlt_load_id TEXT, _dlt_id TEXT"""
# Records from (id, day, salt) rows: 1 in 20 without a category, 1 in 25 without a metric_value.
RECORDS = """SELECT id, 'record-' || id,
        CASE WHEN h % 20 = 0 THEN NULL ELSE {categories}[1 + (h // 20) % 10] END,
        CASE WHEN h % 25 = 1 THEN NULL ELSE ((h // 500) % 100000) / 100.0 END,
        (h // 7) % 1000, (h // 11) % 3 <> 0,
        json_object('source', 'benchmark', 'rank', (h // 13) % 100),
        to_timestamp({start} + day * 86400 + (h // 17) % 86400 - (h // 19) % 2592000),
        to_timestamp({start} + day * 86400 + (h // 17) % 86400),
        CAST({start} + day * 86400 AS VARCHAR), substr(hex(h), 1, 14)
    FROM (SELECT id, day, CAST(hash(id, salt) >> 2 AS BIGINT) AS h FROM ({ids}))"""


# --- the warehouse ------------------------------------------------------------------------------


def generate(path: Path, rows: int, days: int) -> int:
    """The merged table with `days` days of history, and the next day's load staged beside it, as
    dlt stages a load before merging it. Returns the load's size. Built with DuckDB's own settings
    (all cores, most of the RAM): only the measurements run as the project runs DuckDB."""
    import duckdb

    per_day = rows // days
    moved = per_day // MOVED_SHARE
    per_moved_day = moved // MOVED_DAYS
    history = f"SELECT i AS id, i // {per_day} AS day, 0 AS salt FROM range({per_day * days}) t(i)"
    load = f"""SELECT {per_day * days} + i AS id, {days} AS day, 1 AS salt FROM range({per_day - moved}) t(i)
        UNION ALL
        SELECT ({days - MOVED_DAYS} + i // {per_moved_day}) * {per_day}
               + (i % {per_moved_day}) * {per_day // per_moved_day} AS id, {days} AS day, 1 AS salt
        FROM range({per_moved_day * MOVED_DAYS}) t(i)"""
    records = RECORDS.format(categories=CATEGORIES, start=START_EPOCH, ids="{ids}")
    with duckdb.connect(str(path)) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for schema_table, ids in ((TABLE, history), (LOAD, load)):
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_table.split('.')[0]}")
            connection.execute(f"CREATE TABLE {schema_table} ({COLUMNS})")  # no key: dlt creates none on DuckDB
            connection.execute(f"INSERT INTO {schema_table} {records.format(ids=ids)}")
        return connection.execute(f"SELECT count(*) FROM {LOAD}").fetchone()[0]


@contextmanager
def warehouse(path: Path, workdir: Path) -> Iterator[Any]:
    """The DuckDB file through the project's SQL path, with the project's DuckDB settings."""
    from analytics_assets.warehouse.pipeline import make_pipeline
    from analytics_assets.warehouse.sql import open_sql

    with open_sql(make_pipeline(path, pipelines_dir=workdir / "dlt_pipelines")) as sql:
        yield sql


def merge(sql: Any) -> None:
    """What dlt's merge does to the table (not measured: both strategies share it)."""
    with sql.client.begin_transaction():
        sql.execute(f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {LOAD})")
        sql.execute(f"INSERT INTO {TABLE} SELECT * FROM {LOAD}")


# --- the two strategies -------------------------------------------------------------------------


def days_left(sql: Any, load_ids: Any) -> list[date]:
    """The days the load's records are on BEFORE the merge: the days they will move out of, which
    the days-only strategy must rebuild too. `load_ids` is an Arrow table, as the sync holds them."""
    from analytics_assets.builders.models import day_of

    connection = sql.client.native_connection
    connection.register("load_ids", load_ids)
    try:
        return [day for (day,) in sql.rows(
            f"SELECT DISTINCT {day_of(CURSOR)} FROM {TABLE} WHERE id IN (SELECT id FROM load_ids)")]
    finally:
        connection.unregister("load_ids")


def dates(days: list[date]) -> str:
    return ", ".join(f"DATE '{day.isoformat()}'" for day in days)


def days_where(days: list[date], form: str) -> str:
    """`days` of the cursor as a WHERE clause: `day_in` with the model's day expression, `ranges`
    as half-open UTC ranges of the cursor itself, which DuckDB can prune row groups with."""
    from analytics_assets.builders.models import day_of

    if form == "day_in":
        return f"WHERE {day_of(CURSOR)} IN ({dates(days)})"
    return "WHERE " + " OR ".join(
        f"({CURSOR} >= TIMESTAMPTZ '{day.isoformat()} 00:00:00+00' AND "
        f"{CURSOR} < TIMESTAMPTZ '{(day + timedelta(days=1)).isoformat()} 00:00:00+00')" for day in days)


def rebuild_days(sql: Any, days: list[date], form: str) -> None:
    """The alternative to `rebuild_summary`: only `days` replaced, in one transaction."""
    from analytics_assets.builders.models import SUMMARY_TABLE, create_summary_table, summarize

    with sql.creating_tables():
        sql.execute(create_summary_table())
        sql.execute(f"DELETE FROM {SUMMARY_TABLE} WHERE day IN ({dates(days)})")
        sql.execute(summarize(TABLE, CURSOR, where=days_where(days, form)))


def restore_summary(sql: Any, saved: str) -> None:
    """The summary back as the previous sync left it (not measured)."""
    from analytics_assets.builders.models import SUMMARY_TABLE

    with sql.client.begin_transaction():
        sql.execute(f"DELETE FROM {SUMMARY_TABLE}")
        sql.execute(f"INSERT INTO {SUMMARY_TABLE} SELECT * FROM {saved}")


def summary_rows(sql: Any) -> list[tuple]:
    from analytics_assets.builders.models import SUMMARY_TABLE

    return sql.rows(f"SELECT * FROM {SUMMARY_TABLE} ORDER BY day, category NULLS FIRST")


def same_summary(a: list[tuple], b: list[tuple]) -> bool:
    """Equal but for the last bits of the float sums, which depend on the order rows are added in."""
    return len(a) == len(b) and all(
        x[:3] == y[:3] and x[5] == y[5] and all(
            (u is None and v is None) or (u is not None and v is not None and math.isclose(u, v, rel_tol=1e-9))
            for u, v in zip(x[3:5], y[3:5]))
        for x, y in zip(a, b))


# --- measuring ----------------------------------------------------------------------------------


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


_peak_before_reset = [0.0]


def process_peak_mb() -> float:
    """The process's peak RSS across resets (resetting VmHWM resets `ru_maxrss` as well)."""
    return max(_peak_before_reset[0], _status_mb("VmHWM"))


def timed(repeat: int, action: Callable[[], Any]) -> tuple[float, float, Any]:
    """Median seconds of `repeat` calls, the peak RSS while they ran (MB; Linux lets a process reset
    its own peak, so each strategy gets its own), and the last call's result."""
    _peak_before_reset[0] = process_peak_mb()
    Path("/proc/self/clear_refs").write_text("5")
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), _status_mb("VmHWM"), result


def measure_size(rows: int, days: int, repeat: int, workdir: Path) -> dict:
    """One size, in this process: the table generated, then each strategy timed on it."""
    import pyarrow  # noqa: F401  (imported before the clock starts, as a sync has it)
    from analytics_assets.builders.models import SUMMARY_TABLE, days_differing, rebuild_summary

    path = workdir / f"summary_{rows}.duckdb"
    started = time.perf_counter()
    load_size = generate(path, rows, days)
    generated = time.perf_counter() - started
    window = [START + timedelta(days=days)]  # the synced day
    saved = "analytics.summary_before_sync"
    with warehouse(path, workdir) as sql:
        rebuild_summary(sql, TABLE, CURSOR)  # the model as the previous sync left it
        sql.execute(f"CREATE TABLE {saved} AS SELECT * FROM {SUMMARY_TABLE}")
        load_ids = sql.client.native_connection.sql(f"SELECT id FROM {LOAD}").to_arrow_table()
        base_rss = _status_mb("VmRSS")

        lookup, lookup_rss, left = timed(repeat, lambda: days_left(sql, load_ids))
        merge(sql)
        stale = len(days_differing(sql, TABLE, CURSOR))  # what the check would report now
        touched = sorted(set(left) | set(window))

        by_days, days_s, days_rss = {}, {}, {}
        for form in FORMS:
            restore_summary(sql, saved)
            rebuild_days(sql, touched, form)  # from the stale summary: must end equal to a full rebuild
            by_days[form] = summary_rows(sql)
            days_s[form], days_rss[form], _ = timed(repeat, lambda form=form: rebuild_days(sql, touched, form))
        full_s, full_rss, _ = timed(repeat, lambda: rebuild_summary(sql, TABLE, CURSOR))
        full = summary_rows(sql)
        for form in FORMS:
            assert same_summary(by_days[form], full), f"the days-only rebuild ({form}) differs from the full one"
        check_s, check_rss, differing = timed(repeat, lambda: days_differing(sql, TABLE, CURSOR))
        assert differing == [], differing
        table_rows = sql.rows(f"SELECT count(*) FROM {TABLE}")[0][0]
    file_mb = path.stat().st_size / 2**20
    path.unlink()
    return {
        "rows": rows, "table_rows": table_rows, "load": load_size, "days_moved_out": len(left),
        "days_rebuilt": len(touched), "stale_days_after_merge": stale, "summary_rows": len(full),
        "generate_s": generated, "file_mb": file_mb,
        "full_s": full_s, "lookup_s": lookup, "days_s": days_s, "check_s": check_s,
        "base_rss_mb": base_rss, "full_rss_mb": full_rss, "lookup_rss_mb": lookup_rss,
        "days_rss_mb": days_rss, "check_rss_mb": check_rss,
        "peak_rss_mb": process_peak_mb(),
    }


def run_child(rows: int, days: int, repeat: int, workdir: Path) -> dict:
    """One size in a fresh process: its peak RSS is its own, and DuckDB starts cold."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    completed = subprocess.run(
        [sys.executable, __file__, "--child", "--rows", str(rows), "--days", str(days),
         "--repeat", str(repeat), "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{rows:,} rows failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="history sizes, each measured in its own process (default: 1M and 10M)")
    parser.add_argument("--days", type=int, default=100, help="days of history (rows / days records a day)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.days <= MOVED_DAYS:
        parser.error(f"--days must be more than {MOVED_DAYS}")
    if min(args.rows) // args.days < MOVED_SHARE * MOVED_DAYS:
        parser.error(f"--rows must give at least {MOVED_SHARE * MOVED_DAYS:,} records a day")
    if args.child:
        print(json.dumps(measure_size(args.rows[0], args.days, args.repeat, args.workdir)))
        return 0

    import duckdb

    workdir = Path(tempfile.mkdtemp(prefix="summary-bench-"))
    try:
        print(f"Summary rebuild on {os.cpu_count()} cores, DuckDB {duckdb.__version__} with the project's settings "
              f"(memory_limit 32MB, threads 1); median of {args.repeat}; a sync of one day, "
              f"2% of it moved from {MOVED_DAYS} earlier days")
        results = []
        for rows in args.rows:
            results.append(r := run_child(rows, args.days, args.repeat, workdir))
            print(f"  {rows:,} rows: generated in {r['generate_s']:.1f} s, file {r['file_mb']:,.0f} MB; load "
                  f"{r['load']:,} records; {r['stale_days_after_merge']} days stale after the merge; "
                  f"{r['days_rebuilt']} days rebuilt; summary {r['summary_rows']:,} rows, "
                  f"equal after either days-only rebuild and the full one")
        for r in results:
            r["alternative_s"] = {form: r["lookup_s"] + r["days_s"][form] for form in FORMS}
            r["ratio"] = {form: r["full_s"] / r["alternative_s"][form] for form in FORMS}

        print("\nseconds (days-only = pre-merge lookup + rebuild of the touched days, "
              "its days as `day IN` or as ranges)")
        print(f"{'table rows':>12}{'(a) full':>10}{'(b) lookup':>12}{'day IN':>9}{'ranges':>9}"
              f"{'(c) check':>11}{'full/(lookup+day IN)':>22}{'full/(lookup+ranges)':>22}")
        for r in results:
            print(f"{r['table_rows']:>12,}{r['full_s']:>10.3f}{r['lookup_s']:>12.3f}{r['days_s']['day_in']:>9.3f}"
                  f"{r['days_s']['ranges']:>9.3f}{r['check_s']:>11.3f}{r['ratio']['day_in']:>22.2f}"
                  f"{r['ratio']['ranges']:>22.2f}")
        print("\npeak RSS, MB (resident before measuring, then the peak during each; the process includes generating)")
        print(f"{'table rows':>12}{'before':>8}{'full':>7}{'lookup':>8}{'day IN':>8}{'ranges':>8}{'check':>7}"
              f"{'process':>9}")
        for r in results:
            print(f"{r['table_rows']:>12,}{r['base_rss_mb']:>8,.0f}{r['full_rss_mb']:>7,.0f}{r['lookup_rss_mb']:>8,.0f}"
                  f"{r['days_rss_mb']['day_in']:>8,.0f}{r['days_rss_mb']['ranges']:>8,.0f}{r['check_rss_mb']:>7,.0f}"
                  f"{r['peak_rss_mb']:>9,.0f}")
        if len(results) > 1:
            small, large = results[0], results[-1]
            print(f"\nfrom {small['rows']:,} to {large['rows']:,} rows: full x{large['full_s'] / small['full_s']:.1f}, "
                  + ", ".join(f"lookup+{form} x{large['alternative_s'][form] / small['alternative_s'][form]:.1f}"
                              for form in FORMS)
                  + f", check x{large['check_s'] / small['check_s']:.1f}")
        r = results[-1]
        print(f"\nfull rebuild costs {r['full_s']:.2f} s at {r['rows']:,} rows; rebuilding only the touched days "
              f"{r['alternative_s']['ranges']:.2f} s with its days as ranges ({r['lookup_s']:.2f} s pre-merge lookup + "
              f"{r['days_s']['ranges']:.2f} s for {r['days_rebuilt']} days; full/this {r['ratio']['ranges']:.1f}), "
              f"{r['alternative_s']['day_in']:.2f} s as `day IN` (full/this {r['ratio']['day_in']:.1f}); "
              f"the check costs {r['check_s']:.2f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
