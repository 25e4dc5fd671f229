"""Files private from their first byte: the DuckDB file, its WAL, the lock beside it, DuckDB's spill
folder and dlt's working folders are created by the run's process with owner-only modes, in a
checkout's `data/` (0755) and under a umask of 022, watched while a `dagster asset materialize`
process runs, and looked at after one is killed in the middle of its load."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from analytics_assets_tests.reliability.conftest import BIN, Harness, Processes, cli_env, make_dagster_home
from analytics_assets_tests.reliability.test_crash_safety import KILL_POINTS, packages, stop_at

PARTITION = "2026-11-17"


def exposed(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (not `root` itself: the user's) that group or others may
    read, write or enter, with its mode."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder) / name
            try:
                mode = stat.S_IMODE(path.lstat().st_mode)
            except FileNotFoundError:
                continue  # gone between the listing and the look (a package moving on)
            if mode & 0o077:
                found[str(path.relative_to(root))] = oct(mode)
    return found


class ModeWatcher:
    """Looks at every mode under a folder, over and over, while a run works in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, str] = {}
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "ModeWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for path, mode in exposed(self.root).items():
                self.seen.setdefault(path, mode)
            self.looks += 1
            time.sleep(0.001)


@pytest.mark.parametrize("ending", ["completes", "killed while loading"])
def test_warehouse_files_are_private_from_their_first_byte(harness_for, processes: Processes, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, ending: str) -> None:
    harness: Harness = harness_for(records=3000)
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # a checkout's data/
    db = data / "warehouse.duckdb"
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(db))
    env = cli_env(make_dagster_home(tmp_path / "dagster_home"), ANALYTICS_HTTP_TIMEOUT="30")
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "analytics_assets.definitions",
               "--select", "analytics/resource_name", "--partition", PARTITION]

    with ModeWatcher(data) as watcher:
        cli = processes.start(command, env, "private-files", umask=0o022)
        if ending == "completes":
            assert cli.wait(timeout=300) == 0, cli.output()[-3000:]
        else:
            _, folder = stop_at(cli, db, set(), KILL_POINTS["loading"])
            assert cli.process.returncode == -signal.SIGKILL
            assert packages(folder, "loaded") == [], "the kill should land inside the load"
    created = sorted(str(path.relative_to(data)) for path in data.rglob("*"))
    assert {"warehouse.duckdb", "warehouse.duckdb.lock", "dlt_pipelines"} <= set(created), created
    assert any(name.endswith(".parquet") for name in created), "the run should have written a load package"
    if ending == "killed while loading":
        assert (data / "warehouse.duckdb.wal").exists(), "a load killed midway leaves its WAL"
    assert stat.S_IMODE(data.stat().st_mode) == 0o755, "the user's folder keeps its mode"
    assert exposed(data) == {}, f"left readable by others: {exposed(data)}"
    assert watcher.looks > 20 and watcher.seen == {}, f"readable by others while the run went: {watcher.seen}"
    print(f"{ending}: {len(created)} files and folders, {watcher.looks} looks at their modes, none exposed",
          file=sys.stderr)
