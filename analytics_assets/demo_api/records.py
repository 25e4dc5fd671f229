"""Deterministic demo records and the timestamp helpers shared with the server.

Generation has to stay cheap (a million records in a few seconds) because
benchmarks build large stores, so timestamps are glued together from
precomputed day and time-of-day strings instead of going through ``datetime``
for every record.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

Record = dict[str, Any]

CATEGORIES = ("electronics", "books", "garden", "toys", "sports", "fashion")
SOURCES = ("web", "mobile", "api", "store")
TAGS = ("new", "sale", "featured", "gift", "clearance")
COUNTRIES = ("DE", "US", "FR", "GB", "NL", "PL", "JP", "BR")

_DAY = 86_400
_MAX_CREATED_LAG_DAYS = 30


def generate_records(count: int, days: int, end_date: date, seed: int = 0) -> list[Record]:
    """Build ``count`` records whose ``updated_at`` covers the ``days`` before ``end_date``.

    Day ``i % days`` is assigned round-robin so every day gets ``count / days``
    records (give or take one) while ids and update times stay uncorrelated,
    like a real source. The same arguments always give the same records.

    ``properties`` objects are shared between records from a small pool: the
    store never mutates values in place and hands out deep copies only.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    rand = random.Random(seed).random
    first_day = end_date.toordinal() - days - _MAX_CREATED_LAG_DAYS
    prefixes = [date.fromordinal(first_day + d).isoformat() + "T" for d in range(days + _MAX_CREATED_LAG_DAYS)]
    clock = _clock()
    pool = _properties_pool()
    pool_size = len(pool)
    records: list[Record] = []
    append = records.append
    with paused_gc():
        for i in range(count):
            day = i % days + _MAX_CREATED_LAG_DAYS
            second = int(rand() * _DAY)
            # One draw gives both how many days earlier the record was created
            # and the time of day, kept before ``second`` on the same day.
            r = rand() * _MAX_CREATED_LAG_DAYS
            lag = int(r)
            created_second = int((r - lag) * (_DAY if lag else second + 1))
            updated_at = prefixes[day] + clock[second]
            created_at = prefixes[day - lag] + clock[created_second]
            r = rand()
            append(
                {
                    "id": i + 1,
                    "name": f"item-{i + 1:05d}",
                    "category": None if r < 0.1 else CATEGORIES[int(r * 60) % 6],
                    "metric_value": None if (r := rand()) < 0.05 else int(r * 100_000) / 100,
                    "event_count": None if (r := rand()) < 0.05 else int(r * 10_000),
                    "is_active": None if (r := rand()) < 0.05 else r < 0.7,
                    "properties": None if (r := rand()) < 0.1 else pool[int(r * 1000) % pool_size],
                    "created_at": created_at,
                    "updated_at": updated_at,
                }
            )
    return records


@contextmanager
def paused_gc() -> Iterator[None]:
    """Building millions of containers otherwise triggers repeated, useless full collections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _properties_pool() -> list[dict[str, Any]]:
    return [
        {"source": source, "tags": list(TAGS[i : i + n]), "geo": {"country": country}}
        for i, source in enumerate(SOURCES)
        for n in range(3)
        for country in COUNTRIES
    ]


@cache
def _clock() -> list[str]:
    return [f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]


def format_timestamp(value: datetime) -> str:
    """Render a datetime the way records carry it: UTC with a ``Z`` suffix."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None).isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text + "Z"


def parse_timestamp(value: str) -> datetime:
    """Parse the ISO 8601 forms clients send; naive values are taken as UTC.

    A ``+`` in an unencoded query string arrives as a space, so ``+00:00``
    offsets mangled that way are repaired instead of rejected.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace(" ", "+"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def timestamp_key(value: Any) -> str | None:
    """Sortable string for a record's timestamp, or None when it is not one.

    Comparing fixed-width strings is what makes filtering a million records
    cheap; tests may store junk in ``updated_at``, which simply gets no key.
    """
    if isinstance(value, str):
        if len(value) == 20 and value[10] == "T" and value[19] == "Z":
            return value[:19]
        try:
            value = parse_timestamp(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        # Whole seconds drop the fraction so canonical strings need only a slice;
        # "…:05" still sorts before "…:05.5" because a prefix sorts first.
        return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return None


def clone(value: Any) -> Any:
    """Deep-copy JSON-like data several times faster than ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if kind is list:
        return [clone(v) for v in value]
    return value

