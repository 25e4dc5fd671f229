"""The warehouse resource: where a run's pipeline and SQL read and write."""

import os
from pathlib import Path

from analytics_assets.builders.resources import WarehouseResource
from analytics_assets.warehouse.sql import duckdb_file


def test_a_relative_duckdb_path_means_the_folder_the_process_runs_in(tmp_path: Path, monkeypatch) -> None:
    """dlt remembers the folder a pipeline was first created in (its state's `initial_cwd`) and
    would resolve a relative DuckDB path against it: a sensor's pipeline first made under `dg dev`
    in data/dagster_home then read data/dagster_home/data/warehouse.duckdb. The path is absolute
    from the moment the settings are read, so the process's own folder decides."""
    root = tmp_path / "project"
    elsewhere = root / "data" / "dagster_home"
    elsewhere.mkdir(parents=True)
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(root / "data" / "warehouse.duckdb"))
    monkeypatch.chdir(elsewhere)
    with WarehouseResource().sql("a_sensor") as sql:  # the pipeline's state remembers data/dagster_home
        assert not sql.has_table("resource_name")

    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", os.path.join("data", "warehouse.duckdb"))
    monkeypatch.chdir(root)
    warehouse = WarehouseResource()
    with warehouse.sql("a_sensor"):
        assert duckdb_file(warehouse.pipeline("a_sensor")) == root / "data" / "warehouse.duckdb"
    assert not (elsewhere / "data").exists()
