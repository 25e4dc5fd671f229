"""The warehouses the tables can live in: what differs between them is one table here
(`DESTINATIONS`), keyed by the names a deployment may give (`settings.DestinationName`), and where
one deployment's tables live (`WarehouseTarget`).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

# DuckDB sizes its memory from the machine's RAM and runs a thread per core; capped, a large merge
# spills to disk instead of growing the run's footprint with the number of rows (measured: a
# 1,000,000-row load went from +185 MB to +120 MB, and no slower).
DUCKDB_CONFIG = {"memory_limit": "32MB", "threads": 1}


@dataclass(frozen=True)
class Destination:
    """A dlt destination: how it is named in the UI, the file format dlt loads it with (pages arrive
    as Arrow; PostgreSQL takes parquet only through an optional ADBC driver, so CSV through COPY),
    and whether it has a single writer (a DuckDB file: one process at a time)."""

    name: str
    title: str
    file_format: str = "parquet"

    @property
    def single_writer(self) -> bool:
        return self.name == "duckdb"

    @property
    def pool(self) -> str:
        """The Dagster pool of every step that writes it."""
        return "duckdb_writer" if self.single_writer else "warehouse_writer"


DESTINATIONS = {
    d.name: d
    for d in (
        Destination("duckdb", "DuckDB"),
        Destination("postgres", "PostgreSQL", "csv"),
        Destination("motherduck", "MotherDuck"),
        Destination("snowflake", "Snowflake"),
        Destination("bigquery", "BigQuery"),
    )
}


@dataclass(frozen=True)
class WarehouseTarget:
    """Where one deployment's tables live. Credentials of the server destinations are dlt's to
    find (DESTINATION__<NAME>__CREDENTIALS, .dlt/secrets.toml): they never pass through Dagster."""

    destination: Destination
    duckdb_path: Path

    def dlt_destination(self, staging_suffix: Optional[str] = None) -> Any:
        """`staging_suffix` gives a run on a shared warehouse a staging dataset of its own: dlt's
        merge truncates and refills `<dataset>_staging`, so two concurrent runs sharing it would
        lose each other's rows. DuckDB has one writer and keeps the shared one."""
        import dlt  # only a run needs it: the settings and the definitions read this table

        if self.destination.single_writer:
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            private_folder(self.duckdb_path.parent)
            return dlt.destinations.duckdb(DuckDbCredentials(str(self.duckdb_path), global_config=DUCKDB_CONFIG))
        options = {"staging_dataset_name_layout": f"%s_staging_{staging_suffix}"} if staging_suffix else {}
        return getattr(dlt.destinations, self.destination.name)(**options)


def private_folder(path: Path) -> Path:
    """`path`, created with any missing parents readable by their owner only (`mkdir(parents=True)`
    would give the parents the umask's mode)."""
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    return path


def owner_only(path: Path) -> None:
    """A file of ours (the DuckDB file and its WAL) readable by its owner only: it holds the data.
    For files an earlier version created; new ones are private from their first byte (`private_files`)."""
    for file in (path, path.with_name(path.name + ".wal")):
        if file.exists():
            file.chmod(0o600)


class _PrivateUmask:
    """The process's umask with 077 added while any thread is inside `private_files()`, and the one
    it had once the last leaves (the umask belongs to the process, not to a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._saved = os.umask(0o077)
                os.umask(self._saved | 0o077)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    os.umask(self._saved)


_UMASK = _PrivateUmask()


@contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside are their owner's alone from their first byte, whatever the
    folder's mode and the umask: DuckDB creates its file, its WAL and its spill folder, and dlt its
    working folders and files, with the umask's mode, which a chmod afterwards corrects only after a
    window (and a crash mid-load would leave a WAL anyone could read). Files other threads create
    meanwhile are owner-only too, which errs the safe way."""
    with _UMASK.held():
        yield
