"""The demo API's console command in a process of its own, for the tests of its flags."""

from __future__ import annotations

import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def cli_server(*flags: str, stop_signal: int = signal.SIGINT) -> Iterator[dict[str, str]]:
    """The CLI in its own process; yields what it printed, keyed like its output lines. It must
    then exit cleanly on `stop_signal`."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "analytics_assets.demo_api.cli", "--port", "0", *flags]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        while not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, "CLI exited before serving"
            lines.append(line)
        yield {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
