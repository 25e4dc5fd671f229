"""`analytics-assets`: the newcomer's entry points.

`demo` proves the whole path offline in one command: bundled API, Dagster run, DuckDB file, checks.
`dev` opens the same project in the Dagster UI (`dg dev`), wired to the demo API. `demo-api` serves
the API alone. Both use data/demo.duckdb and a persistent data/dagster_home (so runs show up in the
UI afterwards), never the warehouse or instance the environment names, unless --use-environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path
from typing import Optional

from dagster import DagsterInstance

from .window import Window
from .definitions import build_defs
from .defs.jobs import JOB_NAME
from .defs.resources import WarehouseResource
from .demo_api import DemoApi, DemoApiConfig
from .settings import Settings, variable
from .warehouse.pool import create_pool
from .warehouse.destinations import DESTINATIONS, private_folder
from .warehouse.sql import location

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_RECORDS = 5000
DEMO_DAYS = 7
DEMO_DATA = Path("data")  # under the current folder: data/demo.duckdb, data/dagster_home


def _demo_environment(use_environment: bool) -> None:
    """The demo's own scratch warehouse and Dagster instance under data/, whatever the environment
    names (a deployment's warehouse must not receive demo rows), unless told otherwise."""
    if use_environment:
        return
    for name in list(os.environ):
        if name.startswith(("ANALYTICS_", "DESTINATION__")):
            del os.environ[name]
    os.environ[variable("duckdb_path")] = str((DEMO_DATA / "demo.duckdb").resolve())
    os.environ["DAGSTER_HOME"] = str((DEMO_DATA / "dagster_home").resolve())


def _dagster_home() -> Path:
    """$DAGSTER_HOME, created once with the project's dagster.yaml (writer pool limit 1)."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEMO_DATA / "dagster_home").resolve()
    private_folder(home).chmod(0o700)  # Dagster's storage: the runs, their logs and metadata
    config = home / "dagster.yaml"
    if not config.exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(home)
    settings = Settings.from_env()
    destination = DESTINATIONS[settings.destination]
    with DagsterInstance.get() as instance:
        create_pool(instance, destination.pool, settings.writer_pool_limit or (1 if destination.single_writer else None))
    return home


def _point_at(api: DemoApi) -> None:
    os.environ[variable("api_base_url")] = api.base_url
    os.environ[variable("client_id")] = api.config.client_id
    os.environ[variable("client_secret")] = api.config.client_secret


def demo(days: int, records: int, use_environment: bool = False) -> int:
    _demo_environment(use_environment)
    _dagster_home()
    with DemoApi(DemoApiConfig(records=records, days=DEMO_DAYS)) as api:
        _point_at(api)
        defs = build_defs()
        keys = defs.resolve_job_def(JOB_NAME).partitions_def.get_partition_keys()[-days:]
        print(f"Demo API on {api.base_url} ({records} records over {DEMO_DAYS} days); "
              f"materializing {keys[0]} .. {keys[-1]} as one run")
        with DagsterInstance.get() as instance:
            result = defs.resolve_job_def(JOB_NAME).execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                },
                raise_on_error=False,
            )
        _report(result, keys, api)
    return 0 if result.success else 1


def _report(result, keys: list[str], api: DemoApi) -> None:  # noqa: ANN001 - a run's result
    warehouse = WarehouseResource()
    print(f"\nRun {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    with warehouse.sql(result.run_id) as sql:
        if sql.has_table("resource_name"):
            print(f"Landed in {location(warehouse.pipeline(result.run_id))} (table {sql.table('resource_name')}):")
            rows = sql.rows_per_day("resource_name", "updated_at", Window.of_days(keys[0], keys[-1]))
            for key in keys:
                served = len(api.records_in_window(*astuple(Window.of_days(key))))
                print(f"  {key}: {rows.get(key, 0)} rows (the API holds {served})")
    for check in result.get_asset_check_evaluations():
        print(f"  check {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    print("Browse it: `analytics-assets dev`, then open http://127.0.0.1:3000")


def _anchor_relative_paths(base: Path) -> None:
    """Keep the paths the environment gives (or defaults to) relative to `base`, the folder the
    command was run from, once the Dagster processes run in another folder: the DuckDB file, the
    API config file, and dlt's `.dlt/` folder of config and secrets (DLT_PROJECT_DIR)."""
    settings = Settings.from_env(only=("duckdb_path", "api_config"))
    os.environ[variable("duckdb_path")] = str((base / settings.duckdb_path).resolve())
    if settings.api_config is not None:
        os.environ[variable("api_config")] = str((base / settings.api_config).resolve())
    os.environ.setdefault("DLT_PROJECT_DIR", str(base.resolve()))


def dev(port: int, use_environment: bool = False) -> int:
    """`dg dev` on the project's workspace.yaml, run inside DAGSTER_HOME.

    Inside DAGSTER_HOME, because Dagster's dev command reads its working folder: a dagster.yaml
    there (the project root has one) other than $DAGSTER_HOME's makes it warn that the file is not
    used, and a `.env` there is loaded into the processes, which would bring back the variables the
    demo drops. DAGSTER_HOME holds the instance's own dagster.yaml (copied from the project's) and
    no `.env`. The workspace file is named (`-w`) rather than found from the folder, which is also
    why dg does not change into the project root.
    """
    base = Path.cwd()
    _demo_environment(use_environment)
    home = _dagster_home()
    _anchor_relative_paths(base)
    with DemoApi(DemoApiConfig(records=DEMO_RECORDS, days=DEMO_DAYS)) as api:
        _point_at(api)
        print(f"Demo API on {api.base_url}; starting `dg dev` on http://127.0.0.1:{port}", flush=True)
        command = [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                   "-h", "127.0.0.1", "-p", str(port)]
        try:
            return subprocess.call(command, cwd=home)
        except KeyboardInterrupt:
            return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="analytics-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="materialize the last days from the bundled demo API")
    run_demo.add_argument("--days", type=int, default=3, help="how many recent daily partitions (default 3)")
    run_demo.add_argument("--records", type=int, default=DEMO_RECORDS)
    run_dev = commands.add_parser("dev", help="the Dagster UI on the bundled demo API")
    run_dev.add_argument("--port", type=int, default=3000)
    for command in (run_demo, run_dev):
        command.add_argument("--use-environment", action="store_true",
                             help="keep the environment's warehouse and DAGSTER_HOME instead of data/demo.duckdb "
                             "and data/dagster_home")
    commands.add_parser("demo-api", help="serve the bundled demo API alone", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo(args.days, args.records, args.use_environment)
    if args.command == "dev":
        return dev(args.port, args.use_environment)
    from .demo_api.cli import main as demo_api_main

    return demo_api_main(rest)


if __name__ == "__main__":
    sys.exit(main())
