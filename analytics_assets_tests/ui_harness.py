"""Helpers for the browser tests: `dagster dev` as a user starts it, wired to a bundled demo API,
and Debian's Chromium driven by Playwright (no downloaded browser)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ANALYTICS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = PROJECT_ROOT / "artifacts" / "ui"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    """`dagster dev -w workspace.yaml` on 127.0.0.1, in a process group of its own so the
    webserver, the daemon and the code servers all stop together."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log_path: Path, port: Optional[int] = None,
                 workspace: Path = PROJECT_ROOT / "workspace.yaml") -> None:
        self.workspace = workspace
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The caller's settings only: a developer's own ANALYTICS_*/DAGSTER_* variables stay out.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "DAGSTER_"))}
        self.env = {**inherited, **env}
        self.cwd = cwd
        self.log_path = log_path
        self.process: Optional[subprocess.Popen] = None

    def start(self, ready_timeout: float = 120.0) -> "DagsterDev":
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster), "dev", "-w", str(self.workspace),
                   "-h", "127.0.0.1", "-p", str(self.port)]
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"dagster dev not ready on {self.url} after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=grace)
        except ProcessLookupError:
            pass
        # Children that outlived the leader (code server, daemon) share its group id.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "DagsterDev":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def chromium_context(user_data_dir: Path, **options) -> Iterator["BrowserContext"]:  # noqa: F821
    """A fresh headless Chromium profile (Debian's binary), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(user_data_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
            **options,
        )
        try:
            yield context
        finally:
            context.close()


def dismiss_community_prompt(page, timeout_ms: float = 15_000) -> None:  # noqa: ANN001 - a Playwright Page
    """A fresh instance greets the first visitor on 127.0.0.1 with a newsletter prompt (about a second
    after load) that covers the page; skip it as a user would. Skipping is remembered by the instance."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    prompt = page.get_by_text("Join the Dagster community")
    try:
        prompt.wait_for(timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return  # already dismissed on this instance
    page.get_by_role("button", name="Skip", exact=True).click()
    prompt.wait_for(state="hidden")
