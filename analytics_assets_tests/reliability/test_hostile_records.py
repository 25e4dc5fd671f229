"""Records a hostile API sends that would grow what a run writes without bound: each fails the run
before anything is committed, naming the record and the field, and what the run wrote to Dagster's
storage stays small."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_assets_tests.reliability.conftest import Harness

PARTITION = "2026-11-18"


def folder_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


@pytest.mark.parametrize("size", [256, 3_000_000])
def test_an_undeclared_field_name_too_long_for_a_column_fails_the_run(harness: Harness, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Ten pages each adding a field with a 3 MB name once grew DAGSTER_HOME by 245 MiB: the first
    such name ends the run, quoted only in part."""
    from dagster import DagsterInstance

    before = harness.prime(PARTITION)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    harness.api.faults.queue("long_field_names", size=size, times=10)
    with DagsterInstance.get() as instance:
        result = harness.run(PARTITION, instance=instance)
    message = harness.failed(result, ["field name of", f"{size:,} characters", "more than the 255"], before)
    assert len(message) < 20_000
    assert folder_bytes(home) < 5 * 2**20, "what the failed run wrote to Dagster's storage should stay small"


def test_a_field_name_of_255_characters_is_a_column(harness: Harness) -> None:
    harness.api.faults.queue("long_field_names", size=255)
    result = harness.run(PARTITION)
    assert result.success
