"""The API's names and the table's: a field is read out of a record by the path the API spells
(`updatedAt`, `attributes.updated-at`, `data[-1].id`), and stored under the name dlt gives it
(`updated_at`, `attributes__updated_at`), by the naming convention of the pipeline's schema (dlt's
`snake_case` unless the deployment configures another: it is asked, not copied).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from typing import Any, Callable, Optional

from dlt.common import jsonpath
from dlt.common.normalizers.naming import NamingConvention

SOURCE_NAME = "analytics"  # the dlt source, and so the schema, of every resource
# A column of this project's own in every table with a window: the instant of the record's cursor,
# in UTC, whatever the API sends (ISO text with any offset, a date, epoch seconds or milliseconds).
# Each day's figures, the merge's choice among duplicates and the models read it.
CURSOR_AT = "_cursor_at"
EPOCH_MILLIS_FROM = 1e11  # an epoch value this large is milliseconds (as seconds it lies past the year 5000)


@functools.cache
def naming() -> NamingConvention:
    from dlt.common.schema import Schema

    return Schema(SOURCE_NAME).naming


def column(path: str) -> str:
    """The table's name for a field the API sends at `path` (a dotted path is flattened as dlt does)."""
    convention = naming()
    return convention.make_path(*(convention.normalize_identifier(part) for part in path.split(".")))


def table(name: str) -> str:
    return naming().normalize_table_identifier(name)


def reader(path: str) -> Callable[[Any], Any]:
    """The value at `path` of a record or a page, None if absent: a plain key is read directly (a
    JSONPath lookup costs more than the rest of a page's paging), a dotted path key by key, anything
    else as a JSONPath."""
    if path.isidentifier():
        return lambda payload: payload.get(path) if isinstance(payload, dict) else None
    if all(part and not any(c in part for c in "[]*$@?()'\"") for part in path.split(".")):
        parts = path.split(".")

        def walk(payload: Any) -> Any:
            for part in parts:
                if not isinstance(payload, dict):
                    return None
                payload = payload.get(part)
            return payload

        return walk
    compiled = jsonpath.compile_path(path)

    def read(payload: Any) -> Any:
        values = jsonpath.find_values(compiled, payload) if isinstance(payload, (dict, list)) else []
        return values[0] if values else None

    return read


def key_getter(fields: tuple[str, ...]) -> Callable[[Any], Any]:
    """A record's key: the value of its one key field, or the tuple of a composite key's values (None
    for a resource without one: a parent read only for its children)."""
    if not fields:
        return lambda record: None
    if len(fields) == 1:  # records decoded from JSON are dicts: `isinstance(dict)` is the cheap test
        name = fields[0]
        return lambda record: record.get(name) if isinstance(record, dict) else None
    return lambda record: tuple(record.get(name) for name in fields) if isinstance(record, dict) else None


def instant(value: Any) -> Optional[datetime]:
    """A cursor value as a UTC instant: a timestamp (ISO 8601 with any offset, `+0000` too; none is
    taken as UTC), a date (its midnight), or epoch seconds or milliseconds, as a number or as text;
    None when it is none of these."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    try:
        if isinstance(value, (int, float)):
            return _epoch(value)
        text = str(value).strip()
        if text and (text[0].isdigit() or text[0] == "-") and _numeric(text):
            return _epoch(float(text))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= EPOCH_MILLIS_FROM else number
    return datetime.fromtimestamp(seconds, timezone.utc)
