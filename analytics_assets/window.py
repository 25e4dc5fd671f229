"""The window a sync asks an API for: the days of one daily partition, or of a range of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone


@dataclass(frozen=True)
class Window:
    """Half-open `[start, end)`, both aware and in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def of_days(cls, first: date | str, last: date | str | None = None) -> "Window":
        """The days `first`..`last` (inclusive), as daily partitions name them."""
        first_day = date.fromisoformat(first) if isinstance(first, str) else first
        last_day = (date.fromisoformat(last) if isinstance(last, str) else last) if last else first_day
        start = datetime.combine(first_day, datetime.min.time(), timezone.utc)
        return cls(start, datetime.combine(last_day, datetime.min.time(), timezone.utc) + timedelta(days=1))

    @property
    def days(self) -> list[str]:
        """The partition keys of the whole days in the window."""
        day, keys = self.start.date(), []
        while datetime.combine(day, datetime.min.time(), timezone.utc) < self.end:
            keys.append(day.isoformat())
            day += timedelta(days=1)
        return keys

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"
