"""Rate limits, measured: the project's sync against the demo API's rate limiter, in one run.

    .venv/bin/python benchmarks/rate_limits.py                    # 20,000 records a scenario, 10 requests/s
    .venv/bin/python benchmarks/rate_limits.py --records 3000     # smoke

Each scenario starts the demo API in this process with a limiter of its own (10 requests per
1-second window by default: 20,000 records are 201 requests, about 20 s a scenario), and runs one
sync of the whole window (`warehouse.pipeline.sync`, every record) in a fresh process, with the
seed's retry policy (3 retries, backoff 2, waits capped at 60 s) and the scenario's settings. The
figures come from the server: its limiter's 429s, and the arrival of every request.

- limit used = requests admitted / (elapsed x limit), elapsed from the first request's arrival to the
  last's; over the sync's whole time (token, paging, normalize and load) it is shown alongside.
- announced limits (X-RateLimit-* with a delta or an epoch Reset, IETF RateLimit-*): target zero
  429s and at least 0.90 of the limit used;
- a silent limiter (429 + Retry-After only): at least 0.80 used and the run succeeds, at
  ANALYTICS_MAX_CONCURRENCY 1, 8, 32 and 64;
- ANALYTICS_MAX_REQUESTS_PER_SECOND: no second holds more requests than the ceiling allows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Scenario:
    name: str
    kind: str  # "announced", "silent" or "ceiling"
    api: dict = field(default_factory=dict)  # DemoApiConfig fields
    env: dict = field(default_factory=dict)  # ANALYTICS_* of the sync

    @property
    def limit(self) -> Optional[float]:
        return self.api.get("rate_limit")

    @property
    def ceiling(self) -> Optional[float]:
        value = self.env.get("ANALYTICS_MAX_REQUESTS_PER_SECOND")
        return float(value) if value else None


def scenarios(rate: float, window: float) -> list[Scenario]:
    limiter = {"rate_limit": rate, "rate_limit_window": window}
    return [
        Scenario("X-RateLimit-*, delta Reset", "announced", {**limiter, "rate_limit_headers": "x"}),
        Scenario("X-RateLimit-*, epoch Reset", "announced",
                 {**limiter, "rate_limit_headers": "x", "rate_limit_reset": "epoch"}),
        Scenario("RateLimit-* (IETF)", "announced", {**limiter, "rate_limit_headers": "ietf"}),
        *[Scenario(f"silent, concurrency {n}", "silent", dict(limiter), {"ANALYTICS_MAX_CONCURRENCY": str(n)})
          for n in (1, 8, 32, 64)],
        Scenario(f"ceiling {rate * 2:g}/s, API unlimited", "ceiling", {},
                 {"ANALYTICS_MAX_REQUESTS_PER_SECOND": f"{rate * 2:g}"}),
        Scenario(f"ceiling {rate / 2:g}/s under an announced {rate:g}/s", "ceiling", {**limiter, "rate_limit_headers": "x"},
                 {"ANALYTICS_MAX_REQUESTS_PER_SECOND": f"{rate / 2:g}"}),
    ]


# --- the sync, in a fresh process -----------------------------------------------------------------


def _child(workdir: Path) -> None:
    """One sync of every record, with the settings of the environment; prints what it did."""
    from analytics_assets.api.definition import load_definition
    from analytics_assets.api.stats import SyncStats
    from analytics_assets.settings import Settings
    from analytics_assets.warehouse.pipeline import make_pipeline, sync

    settings = Settings.from_env()
    stats = SyncStats()
    pipeline = make_pipeline(workdir / "rate_limits.duckdb", pipelines_dir=workdir / "pipelines")
    started = time.perf_counter()
    error = None
    try:
        sync(pipeline, load_definition(settings), settings, None, stats)
    except Exception as failure:  # reported, not raised: a failed run is a figure too
        error = f"{type(failure).__name__}: {str(failure)[:300]}"
    seconds = time.perf_counter() - started
    rows = 0
    if error is None:
        import duckdb

        with duckdb.connect(str(workdir / "rate_limits.duckdb"), read_only=True) as connection:
            rows = connection.execute("SELECT count(*) FROM analytics.resource_name").fetchone()[0]
    print(json.dumps({"rows": rows, "seconds": seconds, "error": error, "retries": stats.retries,
                      "rate_limit_wait": stats.rate_limit_wait_seconds, "requests": stats.requests}))


def run_sync(base_url: str, scenario: Scenario, workdir: Path) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")},
           "ANALYTICS_API_BASE_URL": base_url, "ANALYTICS_CLIENT_ID": "demo-client",
           "ANALYTICS_CLIENT_SECRET": "demo-secret", "PYTHONPATH": str(ROOT), **scenario.env}
    completed = subprocess.run([sys.executable, __file__, "--run", "--workdir", str(workdir)],
                               capture_output=True, text=True, cwd=ROOT, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"the sync's process failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the figures ----------------------------------------------------------------------------------


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second ([t, t + 1))."""
    best, first = 0, 0
    for last, arrived in enumerate(times):
        while arrived - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def measure(scenario: Scenario, records: int, workdir: Path) -> dict:
    from analytics_assets.demo_api import DemoApi, DemoApiConfig

    with DemoApi(DemoApiConfig(records=records, days=1, **scenario.api)) as api:
        result = run_sync(api.base_url, scenario, workdir)
        times, refused = sorted(api.request_times), api.rate_limited
    admitted = len(times) - refused
    span = times[-1] - times[0] if len(times) > 1 else math.nan
    figures = {**result, "refused": refused, "admitted": admitted, "span": span,
               "busiest_second": busiest_second(times), "ok": result["error"] is None and result["rows"] == records}
    if scenario.limit:
        figures["used"] = admitted / (span * scenario.limit)
        figures["used_whole_sync"] = admitted / (result["seconds"] * scenario.limit)
    if scenario.ceiling:
        figures["rate"] = (len(times) - 1) / span
    return figures


def verdict(scenario: Scenario, f: dict) -> tuple[bool, str]:
    if not f["ok"]:
        return False, f"run failed: {f['error'] or 'rows ' + str(f['rows'])}"
    if scenario.kind == "announced":
        return f["refused"] == 0 and f["used"] >= 0.90, "zero 429s, used >= 0.90"
    if scenario.kind == "silent":
        return f["used"] >= 0.80, "run succeeds, used >= 0.80"
    allowed = math.floor(scenario.ceiling)  # type: ignore[arg-type]
    return f["busiest_second"] <= allowed and f["rate"] <= scenario.ceiling, \
        f"no second above {allowed} requests, mean rate <= {scenario.ceiling:g}/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10.0, help="the API's limit, requests per second")
    parser.add_argument("--window", type=float, default=1.0, help="the limiter's window, seconds")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _child(args.workdir)
        return 0

    chosen = [s for s in scenarios(args.rate, args.window) if not args.only or args.only in s.name]
    print(f"Rate limits: {args.records:,} records a scenario (100 a page), the demo API's limiter at {args.rate:g} "
          f"requests/s ({max(1, int(args.rate * args.window))} per {args.window:g} s window), {os.cpu_count()} cores\n")
    header = (f"{'scenario':<44}{'429s':>6}{'admitted':>10}{'elapsed s':>11}{'used':>7}{'(whole sync)':>14}"
              f"{'busiest 1 s':>13}{'sync s':>8}{'retries':>9}  target")
    print(header)
    failed = 0
    for scenario in chosen:
        workdir = Path(tempfile.mkdtemp(prefix="analytics-ratelimits-"))
        try:
            f = measure(scenario, args.records, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        passed, target = verdict(scenario, f)
        failed += not passed
        used = f"{f['used']:.3f}" if "used" in f else "—"
        whole = f"{f['used_whole_sync']:.3f}" if "used_whole_sync" in f else (f"{f['rate']:.2f}/s" if "rate" in f else "—")
        print(f"{scenario.name:<44}{f['refused']:>6}{f['admitted']:>10}{f['span']:>11.2f}{used:>7}{whole:>14}"
              f"{f['busiest_second']:>13}{f['seconds']:>8.1f}{f['retries']:>9}  {'PASS' if passed else 'FAIL'}: {target}",
              flush=True)
    print(f"\n{len(chosen) - failed} of {len(chosen)} scenarios met their target.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
