"""Quiet by default: dlt's anonymous telemetry (an event per pipeline step, sent to dltHub) is off
for this project's pipelines unless the deployment turns it on, in dlt's own ways. Each case is a
`dagster asset materialize` process whose telemetry endpoint is a recorder of the test's own on
127.0.0.1 (RUNTIME__DLTHUB_TELEMETRY_ENDPOINT), with dlt's global and project folders of the test's
own, so that nothing on the machine says either way."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from analytics_assets_tests.reliability.conftest import Processes, cli_env, make_dagster_home

PARTITION = "2026-11-17"


class TelemetryRecorder:
    """What dlt's tracker posts, by event name."""

    def __init__(self) -> None:
        events: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    events.append(json.loads(body).get("event", "?"))
                except ValueError:
                    events.append("?")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.events = events
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[TelemetryRecorder]:
    started = TelemetryRecorder()
    yield started
    started.close()


SAID = {
    # How the deployment said it, and whether events should go out.
    "nothing": ({}, None, False),
    "RUNTIME__DLTHUB_TELEMETRY=true": ({"RUNTIME__DLTHUB_TELEMETRY": "true"}, None, True),
    "RUNTIME__DLTHUB_TELEMETRY=false": ({"RUNTIME__DLTHUB_TELEMETRY": "false"}, None, False),
    "[runtime] dlthub_telemetry = true in .dlt/config.toml": ({}, "[runtime]\ndlthub_telemetry = true\n", True),
}


@pytest.mark.parametrize("said", list(SAID))
def test_dlts_telemetry_is_off_unless_the_deployment_turns_it_on(harness_for, processes: Processes, tmp_path: Path,
                                                                 recorder: TelemetryRecorder, said: str) -> None:
    variables, config_toml, sent = SAID[said]
    harness_for(records=500)
    project, data = tmp_path / "project", tmp_path / "dlt_data"
    (project / ".dlt").mkdir(parents=True)
    data.mkdir()
    if config_toml:
        (project / ".dlt" / "config.toml").write_text(config_toml)
    env = cli_env(make_dagster_home(tmp_path / "dagster_home"), DLT_PROJECT_DIR=str(project), DLT_DATA_DIR=str(data),
                  RUNTIME__DLTHUB_TELEMETRY_ENDPOINT=recorder.url, **variables)
    if "RUNTIME__DLTHUB_TELEMETRY" not in variables:
        env.pop("RUNTIME__DLTHUB_TELEMETRY", None)
    cli = processes.materialize(env, partition=PARTITION)
    assert cli.wait(timeout=300) == 0, cli.output()[-3000:]
    if sent:
        assert {"pipeline_extract", "pipeline_load"} <= set(recorder.events), recorder.events
    else:
        assert recorder.events == [], f"dlt sent telemetry: {recorder.events}"
