"""The records of a sync: every page counted per UTC day, held to the window it was asked for,
checked against the declared schema (a resource's `columns`) and handed to dlt.

dlt's schema contracts do not cover nullability and report violations without the record's id, so
records are checked here, during extraction, before anything reaches the destination: a violation
fails the run with nothing committed. Fed dicts, dlt normalises row by row (see the README's
performance figures: dlt's defaults are several times slower); fed Arrow tables of the declared
schema it writes parquet directly.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from typing import Any, Callable, Mapping, Optional, Sequence

import orjson
import pyarrow as pa

from dlt.common.data_types.type_helpers import coerce_value, py_type_to_sc_type

from ..errors import SchemaViolation, WindowViolation
from ..window import Window
from .config import Resource
from .names import CURSOR_AT, instant, key_getter, reader
from .stats import SyncStats


def column_hints(resource: Resource) -> dict[str, dict[str, Any]]:
    """dlt column hints, so the table has the declared types and NOT NULLs from its first load.
    Timestamps keep their time zone; a resource with a window gets this project's `_cursor_at`, and
    duplicate records inside one load keep the newest of it."""
    hints: dict[str, dict[str, Any]] = {}
    for column in resource.declared:
        hint: dict[str, Any] = {"name": column.name, "data_type": column.data_type, "nullable": column.nullable,
                                "description": column.description}
        if column.data_type == "timestamp":
            hint["timezone"] = True
        hints[column.name] = hint
    if resource.cursor:
        hints[CURSOR_AT] = {"name": CURSOR_AT, "data_type": "timestamp", "timezone": True, "nullable": True,
                            "dedup_sort": "desc", "description": f"The instant of `{resource.cursor}`, in UTC "
                            "(this project's: each day's figures count by it)."}
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
    if instant(value) is None:
        return f"is not a timestamp (ISO 8601, a date, or epoch seconds or milliseconds) ({str(value)[:40]!r})"
    return None


def _is_date(value: Any) -> Optional[str]:
    if instant(value) is None:
        return f"is not a date ({str(value)[:40]!r})"
    return None


def _coerced(data_type: str, value: Any) -> Any:
    """A value in a declared type: timestamps and dates read as this project reads a cursor (any UTC
    offset, none taken as UTC, epoch seconds or milliseconds by their size); the rest as dlt's
    normaliser coerces it (numeric text to a number, `"yes"` to a bool...)."""
    if data_type in ("timestamp", "date"):
        moment = instant(value)
        if moment is None:
            raise ValueError(value)
        return moment if data_type == "timestamp" else moment.date()
    return coerce_value(data_type, py_type_to_sc_type(type(value)), value)


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
    "date": _is_date,
}

MAX_FIELD_NAME = 255  # characters of an undeclared field's name: no destination takes longer column names

# The Python types each declared type takes as they are, checked a whole column at a time; `bool` is
# its own type here, so True never passes for a bigint. Timestamps are parsed by Arrow afterwards.
# Any other value is coerced as dlt's own normaliser would (numeric text to a number, epoch seconds
# or a timestamp without a zone to a UTC timestamp...), or names its record and field.
_COLUMN_TYPES: dict[str, set] = {
    "bigint": {int},
    "double": {int, float},
    "bool": {bool},
    "json": {dict, list},
    "text": {str},
    "timestamp": {str},
    "date": {str},
}


class PageValidator:
    """Checks a batch of records against the declared columns, a column at a time; when a column
    fails, the records are checked one by one to name the first bad record and field. Undeclared
    fields are drift: reported, and kept as new columns, unless the schema is frozen."""

    def __init__(self, resource: Resource, stats: SyncStats, freeze: bool = False, max_new_columns: int = 100) -> None:
        self.resource = resource.name
        self.stats = stats
        self.freeze = freeze
        self.max_new_columns = max_new_columns
        self.key_of = key_getter(resource.key)
        self.columns = resource.declared
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
            if nulls and not column.nullable:
                self.raise_first_violation(records)
            if not kinds <= _COLUMN_TYPES[column.data_type]:
                column_values = self.coerce(column, column_values, records)
            elif column.data_type == "text" and not _encodable(column_values, nulls):
                self.raise_first_violation(records)
            values[column.name] = column_values
        if complete and set(map(len, records)) <= {len(names)}:
            return values, []  # every record holds exactly the declared fields: no drift
        return values, self.drift(records)

    def drift(self, records: list) -> list[str]:
        extra = set().union(*(record.keys() for record in records)) - self.declared
        known = self.stats.drift_columns.get(self.resource, set())
        too_long = next((name for name in extra - known if len(str(name)) > MAX_FIELD_NAME), None)
        if too_long is not None:
            offender = next(record for record in records if too_long in record)
            raise SchemaViolation(
                self.resource, self.key_of(offender), f"{str(too_long)[:40]}…",
                f"is a field name of {len(str(too_long)):,} characters, more than the {MAX_FIELD_NAME} a column name "
                "may have", "No column can hold it: fix the API, or declare the fields you want in the resource's "
                "`columns` and set ANALYTICS_SCHEMA_DRIFT=freeze to refuse the rest.")
        if len(known | extra) > self.max_new_columns:
            name = sorted(extra - known)[0]
            offender = next(record for record in records if name in record)
            raise SchemaViolation(
                self.resource, self.key_of(offender), name,
                f"is one of {len(known | extra)} undeclared fields, more than ANALYTICS_MAX_NEW_COLUMNS="
                f"{self.max_new_columns} a run takes as new columns",
                "Declare the fields the API sends in the resource's `columns` (API config), raise "
                "ANALYTICS_MAX_NEW_COLUMNS, or set ANALYTICS_SCHEMA_DRIFT=freeze to refuse them all.")
        if extra and self.freeze:
            name = sorted(extra)[0]
            offender = next(record for record in records if name in record)
            raise SchemaViolation(
                self.resource,
                self.key_of(offender),
                name,
                "is not declared and the schema is frozen (ANALYTICS_SCHEMA_DRIFT=freeze)",
                "Declare it in the resource's `columns` in the API config, or set ANALYTICS_SCHEMA_DRIFT=evolve.",
            )
        if extra:
            self.stats.note_drift(self.resource, extra)
        return sorted(extra)

    def coerce(self, column: Any, values: Sequence[Any], records: list, every: bool = False) -> list:
        """A column's values in its declared type, coerced as dlt's normaliser would (`every` value,
        or those of another type); raises SchemaViolation naming the first record whose value dlt
        would not coerce either."""
        out = []
        for value, record in zip(values, records):
            if value is not None and (every or type(value) not in _COLUMN_TYPES[column.data_type]):
                try:
                    value = _coerced(column.data_type, value)
                except Exception:  # dlt's coercions raise what their parsers raise
                    problem = _CHECKS[column.data_type](value) or f"cannot be read as a {column.data_type}"
                    raise SchemaViolation(
                        self.resource, self.key_of(record), column.name,
                        f"{problem} (got {type(value).__name__} {str(value)[:40]!r}), and dlt would not coerce it",
                        f"Fix the record upstream, or declare the column's `data_type` as the API sends it "
                        "(`columns` in the API config).") from None
            out.append(value)
        if column.data_type == "text" and not _encodable(out):
            self.raise_first_violation(records)
        return out

    def raise_first_violation(self, records: list, column: Optional[str] = None) -> None:
        """Record by record, the slow and precise path."""
        for record in records:
            self._check(record)
        offender = self.key_of(records[0]) if records else None
        raise SchemaViolation(self.resource, offender, column or "<record>", "could not be read as declared")

    def _check(self, record: Any) -> None:
        if not isinstance(record, Mapping):
            raise SchemaViolation(self.resource, None, "<record>", f"is not a JSON object: {str(record)[:60]!r}")
        for column in self.columns:
            value = record.get(column.name)
            if value is None:
                if not column.nullable:
                    problem = "is null" if column.name in record else "is missing"
                    raise SchemaViolation(
                        self.resource, self.key_of(record), column.name, f"{problem} but is declared NOT NULL",
                        "Fix the record upstream, or declare the column `nullable: true` (`columns` in the API "
                        "config) if the API may leave it out.")
                continue
            problem = _CHECKS[column.data_type](value)
            if problem:
                raise SchemaViolation(
                    self.resource, self.key_of(record), column.name, f"{problem} (got {type(value).__name__} {str(value)[:40]!r})"
                )


def _encodable(values: Sequence[Any], nulls: bool = True) -> bool:
    try:
        "".join([value for value in values if value is not None] if nulls else values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


ARROW_TYPES = {
    "bigint": pa.int64(),
    "text": pa.string(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "json": pa.string(),  # JSON text; the column hint makes it a JSON column in DuckDB
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


# The standard encoder, for what orjson refuses (integers beyond 64 bits, text holding a lone
# surrogate): the same compact, non-ASCII-preserving output. One instance for the run: `json.dumps`
# with options builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_dumps = orjson.dumps


MAX_NESTING = 255  # levels a JSON value may have: what orjson encodes; no column holds deeper data


class TooDeep(ValueError):
    """A JSON value nested more than MAX_NESTING levels."""


def _json_text(value: Any) -> Optional[str]:
    """A JSON value as compact JSON text; orjson does it about eight times faster than `json`."""
    if value is None:
        return None
    try:
        return _dumps(value).decode()
    except orjson.JSONEncodeError:
        if _depth(value) > MAX_NESTING:
            raise TooDeep() from None
        return _JSON.encode(value)


def _depth(value: Any) -> int:
    """How deep a decoded JSON value nests, without recursion (an API can nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_NESTING:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_texts(values: Any) -> list:
    try:
        return [None if value is None else _dumps(value).decode() for value in values]
    except orjson.JSONEncodeError:
        return [_json_text(value) for value in values]


# dlt recomputes and validates the table schema for every Arrow item it receives (its contract
# cache does not cover Arrow), a few milliseconds each. Pages are therefore handed over in batches.
BATCH_ROWS = 10_000


class PageStep:
    """A dlt pipe step (`resource.add_step`): pages in; records held to the window and counted per
    UTC day of their cursor; with declared columns and no nesting, Arrow tables of up to BATCH_ROWS
    out, else the records as dicts for dlt to normalise.

    Each page is validated and turned into Arrow arrays as it arrives, and its records (decoded
    dicts) are let go at once: a batch kept as 10,000 dicts with nested `properties` made Python's
    cyclic garbage collector walk ever more objects, about a fifth of a run's CPU. Arrays are
    concatenated into one table per batch. Undeclared fields keep their Python values until the
    batch is complete, so their type is inferred over the whole batch.

    The window: every record's cursor (read where the API puts it, as an instant: `names.instant`)
    must lie at or after the window's start, or the API ignored the window's parameters and the run
    fails before anything is written; a record at or after its end belongs to a later partition
    (an API filtering by the start only, or whose end is inclusive) and is left out, counted. Kept
    records carry the instant in `_cursor_at`.

    A step has no end-of-stream call, so the batch is flushed on the page after which dlt's
    paginator says there is no next page (dlt hands each page over with its paginator attached).
    """

    def __init__(self, resource: Resource, stats: SyncStats, window: Optional[Window] = None,
                 freeze: bool = False, max_new_columns: int = 100) -> None:
        self.resource = resource.name
        self.stats = stats
        self.key_fields = resource.key
        self.key_of = key_getter(resource.key)
        self.cursor = resource.cursor
        self.cursor_of = reader(self.cursor) if self.cursor else None
        self.window = window if self.cursor else None
        self.sent = resource.incremental.params(window.start, window.end) if window and resource.incremental else {}
        self.columns = resource.declared
        self.declared = frozenset(column.name for column in self.columns)
        self.flatten = resource.max_table_nesting == 0
        self.arrow = bool(self.columns) and self.flatten
        # The declared timestamp column the cursor is, read by Arrow with the rest: no second parse.
        self.cursor_column = self.cursor if self.cursor in self.declared and \
            resource.columns[self.cursor].data_type == "timestamp" else None
        # A declared key of one field: its Arrow array serves as the batch's keys, read once.
        self.key_column = resource.key[0] if len(resource.key) == 1 and resource.key[0] in self.declared else None
        self.validate = PageValidator(resource, stats, freeze, max_new_columns)
        self.fields = [
            pa.field(column.name, ARROW_TYPES[column.data_type], nullable=column.nullable) for column in self.columns
        ]
        self._start_batch()
        self.emitted = False
        self.passes = 1

    def _start_batch(self) -> None:
        self.chunks: list[list[pa.Array]] = [[] for _ in self.columns]
        self.moments: list[pa.Array] = []
        self.keys: list = []
        self.extra: dict[str, list] = {}  # undeclared field -> values, None where a record lacks it
        self.rows = 0

    def __call__(self, page: Any, meta: Any = None) -> Any:
        records = page if isinstance(page, list) else [page]
        paginator = getattr(page, "paginator", None)
        self._follow(paginator)
        self.stats.page_fetched(self.resource, len(records))
        if not self.arrow:  # dlt infers the schema, from the records as they came
            return self._as_dicts(records)
        if records:
            self.add(records)
        last_page = paginator is None or not paginator.has_next_page
        if self.rows >= BATCH_ROWS or (last_page and (self.rows or not self.emitted)):
            # An empty window still hands dlt the declared schema, so the table exists, typed,
            # from the very first run.
            self.emitted = True
            return self.flush()
        return None

    def _follow(self, paginator: Any) -> None:
        """What the paginator says of the read this page belongs to: the API's total, and whether
        the window is being read again (what the abandoned read counted no longer proves anything)."""
        if paginator is None:
            return
        passes = getattr(paginator, "passes", 1)
        if passes != self.passes:
            self.passes = passes
            self.stats.restart_window(self.resource)
        api_total = getattr(paginator, "api_total", None)
        if api_total is not None:
            self.stats.of(self.resource).api_total = api_total

    def _check_keys(self, keys: list, records: list) -> None:
        """Every record names its row: a key field missing from one would merge it into nothing."""
        missing = next((i for i, key in enumerate(keys) if key is None or (isinstance(key, tuple) and None in key)), None)
        if missing is not None and self.key_fields:
            record = records[missing]
            field = next(name for name in self.key_fields if not isinstance(record, Mapping) or record.get(name) is None)
            raise SchemaViolation(self.resource, keys[missing], field, "is missing",
                                  "It is part of the resource's `primary_key` (API config): name the fields that "
                                  "identify a record, as the API sends them.")

    def _as_dicts(self, records: list) -> list:
        """A page for dlt to normalise: checked, held to the window, nested values as JSON text
        unless the resource nests them into child tables."""
        if self.columns:
            self.validate(records)
        else:
            self.validate.drift(records)
        for record in records:  # before dlt nests or encodes what no column can hold
            self._check_depth(record)
        keys = [self.key_of(record) for record in records]
        self._check_keys(keys, records)
        self.stats.ids_fetched(self.resource, keys)
        if self.cursor_of is None:
            self.stats.ids_kept(self.resource, [self.key_of(record) for record in records])
            return records
        moments = self._moments(records)
        kept = self._window(moments, lambda i: (self.key_of(records[i]), self.cursor_of(records[i])))
        records = [{**record, CURSOR_AT: moment} for record, moment, keep in
                   zip(records, moments.to_pylist(), kept.to_pylist()) if keep]
        self.stats.ids_kept(self.resource, [self.key_of(record) for record in records])
        return records

    def add(self, records: list) -> None:
        """Validates one page and keeps it as Arrow arrays; raises SchemaViolation naming the record."""
        values, extra = self.validate(records)
        for chunks, column in zip(self.chunks, self.columns):
            column_values = values[column.name]
            if column.data_type == "json":
                column_values = self._json_column(column.name, column_values, records)
            try:
                array = self._array(column, column_values, records)
            except (pa.ArrowException, OverflowError):  # an integer out of range
                self.validate.raise_first_violation(records, column.name)
            chunks.append(array)
            if column.name == self.cursor_column:
                self.moments.append(array)
            if column.name == self.key_column:
                self.keys.append(array)
        if self.cursor_of is not None and self.cursor_column is None:
            self.moments.append(self._moments(records))
        if self.key_column is None:
            self.keys.append([self.key_of(record) for record in records])
            self._check_keys(self.keys[-1], records)
        self.stats.ids_fetched(self.resource, self.keys[-1])
        for name in extra:
            if name not in self.extra:
                self.extra[name] = [None] * self.rows
        for name, column_values in self.extra.items():
            column_values.extend(self._flat(record).get(name) for record in records)
        self.rows += len(records)

    def flush(self) -> pa.Table:
        arrays = [
            pa.concat_arrays(chunks) if chunks else pa.array([], field.type)
            for chunks, field in zip(self.chunks, self.fields)
        ]
        fields = list(self.fields)
        for name, column_values in self.extra.items():
            array = _infer(column_values)
            arrays.append(array)
            fields.append(pa.field(name, array.type))
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        keys: Any = [key for chunk in self.keys for key in chunk] if self.key_column is None else \
            (pa.concat_arrays(self.keys) if self.keys else pa.array([], pa.int64()))
        if self.cursor_of is not None:
            # Once a batch, not a page: a page at a time, these cost about 0.2 s per 100,000 records.
            moments = pa.concat_arrays(self.moments) if self.moments else pa.array([], ARROW_TYPES["timestamp"])
            cursor = table.column(self.cursor).combine_chunks() if self.cursor_column else None
            kept = self._window(moments, lambda i: (_scalar(keys[i]), cursor[i].as_py().isoformat() if cursor else None))
            table = table.append_column(pa.field(CURSOR_AT, ARROW_TYPES["timestamp"]), moments)
            if kept.false_count:
                table = table.filter(kept)
                keys = keys.filter(kept) if isinstance(keys, pa.Array) else \
                    [key for key, keep in zip(keys, kept.to_pylist()) if keep]
        self.stats.ids_kept(self.resource, keys)
        self._start_batch()
        return table

    def _moments(self, records: list) -> pa.Array:
        """The instants of the records' cursors; a record without one fails the run, naming it."""
        values = [self.cursor_of(record) for record in records]
        moments = [instant(value) for value in values]
        missing = next((i for i, moment in enumerate(moments) if moment is None), None)
        if missing is not None:
            value = values[missing]
            raise SchemaViolation(
                self.resource, self.key_of(records[missing]), str(self.cursor),
                "is missing" if value is None else f"is not a timestamp, a date or epoch seconds/milliseconds "
                f"(got {type(value).__name__} {str(value)[:40]!r})",
                "The window is checked and each day counted by it: set the endpoint's `incremental.cursor_path` "
                "to the field the API filters by, as the API spells it (a dotted path for a nested field).")
        return pa.array(moments, ARROW_TYPES["timestamp"])

    def _window(self, moments: pa.Array, offender: Callable[[int], tuple[Any, Any]]) -> pa.Array:
        """Which records the run keeps: none may lie before the window (the API ignored or misread
        the window's parameters: the run fails before anything is written, naming the record by
        `offender(index)`); those at or after its end are left to the partitions they belong to,
        counted. The kept records are counted per UTC day."""
        import pyarrow.compute as pc  # about 0.15 s to import: only a sync needs it

        kept = pa.array([True] * len(moments), pa.bool_())
        if self.window is not None and len(moments):
            bounds = pc.min_max(moments)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None and low < self.window.start:
                index = pc.index(pc.fill_null(pc.greater_equal(moments, self.window.start), True), False).as_py()
                record_id, value = offender(index)
                raise WindowViolation(self.resource, self.sent, str(self.window), record_id, str(self.cursor), value)
            if high is not None and high >= self.window.end:
                kept = pc.fill_null(pc.less(moments, self.window.end), True)
                self.stats.past_window_end(self.resource, kept.false_count)
        days = pc.value_counts(moments.filter(kept).cast(pa.date32()))
        self.stats.days_fetched(self.resource, Counter(
            {str(day): count for day, count in zip(days.field(0).to_pylist(), days.field(1).to_pylist())}))
        return kept

    def _json_column(self, name: str, values: Sequence[Any], records: list) -> list:
        try:
            return _json_texts(values)
        except TooDeep:
            offender = next(record for record in records if _depth(record.get(name)) > MAX_NESTING)
            raise SchemaViolation(self.resource, self.key_of(offender), name,
                                  f"is nested more than {MAX_NESTING} levels deep",
                                  "No column holds such data; fix it upstream.") from None

    def _check_depth(self, record: Any) -> None:
        """A nested value no column can hold fails the run naming its field and record (orjson, which
        dlt writes JSON with, refuses more than 255 levels)."""
        if not isinstance(record, dict):
            return
        for name, value in record.items():
            if isinstance(value, (dict, list)):
                self._json_column(name, [value], [record])

    def _flat(self, record: dict) -> dict:
        """A record whose undeclared objects and lists are JSON text: a nested value costs a column
        of text, never a column or child table per key and level."""
        nested = [name for name, value in record.items() if isinstance(value, (dict, list)) and name not in self.declared]
        if not nested:
            return record
        texts = {name: self._json_column(name, [record[name]], [record])[0] for name in nested}
        return {**record, **texts}

    def _array(self, column: Any, values: Sequence[Any], records: list) -> pa.Array:
        """Timestamps as text are read by Arrow (any UTC offset); what Arrow cannot read (no zone,
        epoch seconds or milliseconds, `+0000`) is read as a cursor is (`names.instant`)."""
        if column.data_type not in ("timestamp", "date"):
            return pa.array(values, ARROW_TYPES[column.data_type])
        try:
            return pa.array(values, pa.string()).cast(ARROW_TYPES[column.data_type])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(self.validate.coerce(column, values, records, every=True), ARROW_TYPES[column.data_type])


def _scalar(value: Any) -> Any:
    return value.as_py() if isinstance(value, pa.Scalar) else value


def _infer(values: Any) -> pa.Array:
    """An undeclared field keeps Arrow's inferred type, or becomes JSON text when it has none."""
    values = list(values)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_json_text(value) for value in values], pa.string())
