"""The README's walkthrough, run as a newcomer would: its lines taken from the README itself."""

import dataclasses
import os
import re
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from analytics_assets_tests.conftest import assert_table_matches, day_bounds

ROOT = Path(__file__).resolve().parents[1]
LEFT_BY_THE_WALKTHROUGH = ("data/api.yaml", "data/walkthrough.duckdb", "data/walkthrough_home", "data/dlt_pipelines")


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- walkthrough -->\n```bash\n(.*?\n)```$", text, re.S | re.M).group(1)


def remove_what_it_leaves(kept: tuple[str, ...] = ()) -> None:
    """Removes what the walkthrough writes under data/, but for `kept` (there before: the demo's)."""
    import shutil

    for name in set(LEFT_BY_THE_WALKTHROUGH) - set(kept):
        path = ROOT / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        Path(f"{path}.lock").unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)


@pytest.mark.slow
def test_the_walkthrough_lands_the_stand_ins_rows_as_written(tmp_path):
    from analytics_assets.demo_api.cli import _config, _parser

    lines = walkthrough()
    yesterday = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    kept = tuple(name for name in LEFT_BY_THE_WALKTHROUGH if name.endswith("dlt_pipelines") and (ROOT / name).exists())
    remove_what_it_leaves(kept)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    if os.environ.get("PYTHONPATH"):  # a checkout imported instead of the installed package
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    log = tmp_path / "walkthrough.log"  # a file, not a pipe: the demo API in the background keeps a pipe open
    with log.open("w") as out:
        shell = subprocess.Popen(["bash", "-e", "-c", lines], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            shell.wait(timeout=400)
        finally:
            os.killpg(shell.pid, signal.SIGTERM)  # the demo API it started in the background
    output = log.read_text()
    try:
        assert shell.returncode == 0, output[-4000:]
        assert re.search(r"events\s*│", output) and "analytics/events" in output, output[-3000:]
        # The stand-in's records: the same switches make the same data (seeded, ending today).
        command = re.search(r"analytics-assets demo-api (.+?) &", lines).group(1).split()
        from analytics_assets.demo_api import DemoApi

        with DemoApi(dataclasses.replace(_config(_parser().parse_args(command)), port=0)) as stand_in:
            expected = stand_in.records_in_window(*day_bounds(yesterday))
        assert expected, "the stand-in holds records yesterday"
        assert_table_matches(ROOT / "data" / "walkthrough.duckdb", expected, table="analytics.events")
        with duckdb.connect(str(ROOT / "data" / "walkthrough.duckdb"), read_only=True) as db:
            shown = db.execute("SELECT count(*) FROM analytics.events").fetchall()[0][0]
        assert re.search(rf"│\s*{shown}\s*│", output), f"the rows shown are not the table's:\n{output[-2000:]}"
    finally:
        remove_what_it_leaves(kept)
