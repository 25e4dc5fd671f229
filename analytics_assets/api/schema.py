"""The declared schema: one table of columns, applied as dlt column hints and checked record by record.

dlt's schema contracts do not cover nullability and report violations without the record's id, so
records are checked here, during extraction, before anything reaches the destination: a violation
fails the run with nothing committed.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Optional, Sequence

from .errors import SchemaViolation
from .stats import SyncStats


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # a dlt data type
    nullable: bool
    description: str


RESOURCE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "resource_name": (
        Column("id", "bigint", False, "Primary key of the record in the API."),
        Column("name", "text", False, "Display name of the record."),
        Column("category", "text", True, "Category the record belongs to."),
        Column("metric_value", "double", True, "The record's measured value."),
        Column("event_count", "bigint", True, "Number of events counted for the record."),
        Column("is_active", "bool", True, "Whether the record is active."),
        Column("properties", "json", True, "Free-form attributes, kept as one JSON column."),
        Column("created_at", "timestamp", False, "When the record was created (UTC)."),
        Column("updated_at", "timestamp", False, "When the record last changed (UTC); partitions filter on it."),
    )
}

# Duplicate ids inside one load keep the newest version.
DEDUP_SORT_COLUMN = "updated_at"


def declared_columns(resource: str) -> tuple[Column, ...]:
    return RESOURCE_COLUMNS.get(resource, ())


def column_hints(resource: str) -> dict[str, dict[str, Any]]:
    """dlt column hints, so the table has these types and NOT NULLs from its first load."""
    hints: dict[str, dict[str, Any]] = {}
    for column in declared_columns(resource):
        hint: dict[str, Any] = {
            "name": column.name,
            "data_type": column.data_type,
            "nullable": column.nullable,
            "description": column.description,
        }
        if column.data_type == "timestamp":
            hint["timezone"] = True
        if column.name == DEDUP_SORT_COLUMN:
            hint["dedup_sort"] = "desc"
        hints[column.name] = hint
    return hints


def _is_text(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return "is not text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds an unpaired surrogate)"
    return None


def _is_timestamp(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return "is not an ISO 8601 timestamp"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"is not an ISO 8601 timestamp ({value[:40]!r})"
    return None if parsed.tzinfo else "is a timestamp without a time zone"


_CHECKS: dict[str, Callable[[Any], Optional[str]]] = {
    "bigint": lambda v: "is not an integer"
    if not isinstance(v, int) or isinstance(v, bool)
    else None
    if -(2**63) <= v < 2**63
    else "is beyond the 64-bit integer range",
    "double": lambda v: None
    if isinstance(v, (int, float)) and not isinstance(v, bool)
    else "is not a number",
    "bool": lambda v: None if isinstance(v, bool) else "is not a boolean",
    "json": lambda v: None if isinstance(v, (dict, list)) else "is not a JSON object",
    "text": _is_text,
    "timestamp": _is_timestamp,
}

# The Python types each declared type accepts, checked a whole column at a time; `bool` is its own
# type here, so True never passes for a bigint. Timestamps are parsed by Arrow afterwards.
_COLUMN_TYPES: dict[str, set] = {
    "bigint": {int},
    "double": {int, float},
    "bool": {bool},
    "json": {dict, list},
    "text": {str},
    "timestamp": {str},
}


class PageValidator:
    """Checks a batch of records against the declared columns, a column at a time; when a column
    fails, the records are checked one by one to name the first bad record and field. Undeclared
    fields are drift: reported, and kept as new columns, unless the schema is frozen."""

    def __init__(self, resource: str, stats: SyncStats, freeze: bool = False) -> None:
        self.resource = resource
        self.stats = stats
        self.freeze = freeze
        self.columns = declared_columns(resource)
        self.declared = frozenset(c.name for c in self.columns)
        self._getter = operator.itemgetter(*(c.name for c in self.columns)) if self.columns else None

    def __call__(self, records: list) -> tuple[dict[str, Any], list[str]]:
        """The declared columns' values, and the batch's undeclared fields; raises SchemaViolation.

        The common case costs a few C-level passes over the batch: records decoded from JSON are
        dicts, one `itemgetter` call per record reads every declared field at once, `zip` turns the
        rows into columns, and a column's set of value types says whether it holds what its type
        accepts. Anything unusual (a record that is not an object, a missing field) takes the
        per-field path; any violation takes the record-by-record path that names it."""
        if set(map(type, records)) - {dict} and not all(isinstance(record, Mapping) for record in records):
            self.raise_first_violation(records)
        names = [column.name for column in self.columns]
        complete = True
        try:
            rows = list(map(self._getter, records)) if names else []
        except KeyError:  # a declared field missing from some record: fine if nullable
            complete = False
            rows = [tuple(record.get(name) for name in names) for record in records]
        if len(names) == 1:
            rows = [(value,) for value in rows]
        columns = list(zip(*rows)) if rows else [() for _ in names]
        values: dict[str, Any] = {}
        for column, column_values in zip(self.columns, columns):
            kinds = set(map(type, column_values))
            nulls = type(None) in kinds
            kinds.discard(type(None))
            if (nulls and not column.nullable) or not kinds <= _COLUMN_TYPES[column.data_type]:
                self.raise_first_violation(records)
            if column.data_type == "text" and not _encodable(column_values, nulls):
                self.raise_first_violation(records)
            values[column.name] = column_values
        if complete and set(map(len, records)) <= {len(names)}:
            return values, []  # every record holds exactly the declared fields: no drift
        return values, self._drift(records)

    def _drift(self, records: list) -> list[str]:
        extra = set().union(*(record.keys() for record in records)) - self.declared
        if extra and self.freeze:
            name = sorted(extra)[0]
            offender = next(record for record in records if name in record)
            raise SchemaViolation(
                self.resource,
                offender.get("id"),
                name,
                "is not declared and the schema is frozen (ANALYTICS_SCHEMA_DRIFT=freeze); "
                "declare it or set ANALYTICS_SCHEMA_DRIFT=evolve",
            )
        if extra:
            self.stats.note_drift(self.resource, extra)
        return sorted(extra)

    def raise_first_violation(self, records: list, column: Optional[str] = None) -> None:
        """Record by record, the slow and precise path."""
        for record in records:
            self._check(record)
        offender = records[0].get("id") if records else None
        raise SchemaViolation(self.resource, offender, column or "<record>", "could not be read as declared")

    def _check(self, record: Any) -> None:
        if not isinstance(record, Mapping):
            raise SchemaViolation(self.resource, None, "<record>", f"is not a JSON object: {str(record)[:60]!r}")
        for column in self.columns:
            value = record.get(column.name)
            if value is None:
                if not column.nullable:
                    problem = "is null" if column.name in record else "is missing"
                    raise SchemaViolation(self.resource, record.get("id"), column.name, f"{problem} but is declared NOT NULL")
                continue
            problem = _CHECKS[column.data_type](value)
            if problem:
                raise SchemaViolation(
                    self.resource, record.get("id"), column.name, f"{problem} (got {type(value).__name__} {str(value)[:40]!r})"
                )


def _encodable(values: Sequence[Any], nulls: bool = True) -> bool:
    try:
        "".join([value for value in values if value is not None] if nulls else values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
