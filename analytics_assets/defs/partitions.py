"""Daily UTC partitions on the records' `updated_at`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster import DailyPartitionsDefinition

from .settings import partitions_start_from_env
from .source import Window


def daily_partitions() -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=partitions_start_from_env(), timezone="UTC")


def window_of(context) -> Window:  # noqa: ANN001 - asset or asset-check context
    """The whole window of the run: one day, or every day of a single-run backfill."""
    start, end = context.partition_time_window
    return Window(start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def day_window(partition_key: str) -> Window:
    start = datetime.fromisoformat(partition_key).replace(tzinfo=timezone.utc)
    return Window(start, start + timedelta(days=1))
