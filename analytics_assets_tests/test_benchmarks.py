"""The benchmark runs and prints its table (a smoke test: timings are never asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke_prints_every_section():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--records", "3000", "--latency-records", "1000",
         "--merge-rows", "12000", "20000", "--import-repeat", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    output = completed.stdout
    for line in ("floor", "ours", "dlt_defaults", "ours / floor:", "ours / dlt defaults:", "ours / ceiling:",
                 "merge one day", "import analytics_assets.definitions and load its definitions"):
        assert line in output
    assert output.count("3,000") >= 3, "every contender loaded every record"


@pytest.mark.slow
def test_summary_rebuild_benchmark_smoke():
    """Small, once: both strategies end equal to the full rebuild (the script checks it)."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "summary_rebuild.py"), "--rows", "200000", "--repeat", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    assert "full rebuild" in completed.stdout


@pytest.mark.slow
def test_rate_limits_benchmark_smoke():
    """Six windows a scenario: an epoch Reset is whole seconds, so one window's wait can run up to a
    second long when the machine is busy; over three windows that alone took the limit used below
    its target, over six it does not."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rate_limits.py"), "--records", "6000"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    assert "silent" in completed.stdout
