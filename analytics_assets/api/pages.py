"""Pages of records handed to dlt as Arrow tables of the declared schema.

Fed dicts, dlt normalises row by row (about 2,000 rows/s with its defaults, 6,000 with parquet
here); fed Arrow tables it writes parquet directly (about 11,000). Each page is validated first, so
a bad record still fails with its field and id before anything is written.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import orjson
import pyarrow as pa

from .schema import PageValidator, declared_columns

ARROW_TYPES = {
    "bigint": pa.int64(),
    "text": pa.string(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "json": pa.string(),  # JSON text; the column hint makes it a JSON column in DuckDB
    "timestamp": pa.timestamp("us", tz="UTC"),
}


# The standard encoder, for what orjson refuses (integers beyond 64 bits, text holding a lone
# surrogate): the same compact, non-ASCII-preserving output. One instance for the run: `json.dumps`
# with options builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_dumps = orjson.dumps


def _json_text(value: Any) -> Optional[str]:
    """A JSON value as compact JSON text; orjson does it about eight times faster than `json`."""
    if value is None:
        return None
    try:
        return _dumps(value).decode()
    except orjson.JSONEncodeError:
        return _JSON.encode(value)


def _json_texts(values: Any) -> list:
    try:
        return [None if value is None else _dumps(value).decode() for value in values]
    except orjson.JSONEncodeError:
        return [_json_text(value) for value in values]


# dlt recomputes and validates the table schema for every Arrow item it receives (its contract
# cache does not cover Arrow), a few milliseconds each. Pages are therefore handed over in batches.
BATCH_ROWS = 10_000


class PageToArrow:
    """A dlt pipe step (`resource.add_step`): pages in, Arrow tables of up to BATCH_ROWS out.

    Each page is validated and turned into Arrow arrays as it arrives, and its records (decoded
    dicts) are let go at once: a batch kept as 10,000 dicts with nested `properties` made Python's
    cyclic garbage collector walk ever more objects, about a fifth of a run's CPU. Arrays are
    concatenated into one table per batch. Undeclared fields keep their Python values until the
    batch is complete, so their type is inferred over the whole batch.

    A step has no end-of-stream call, so the batch is flushed on the page after which dlt's
    paginator says there is no next page (dlt hands each page over with its paginator attached).
    """

    def __init__(self, validator: PageValidator) -> None:
        self.validate = validator
        self.columns = declared_columns(validator.resource)
        self.fields = [
            pa.field(column.name, ARROW_TYPES[column.data_type], nullable=column.nullable) for column in self.columns
        ]
        self._start_batch()
        self.emitted = False

    def _start_batch(self) -> None:
        self.chunks: list[list[pa.Array]] = [[] for _ in self.columns]
        self.extra: dict[str, list] = {}  # undeclared field -> values, None where a record lacks it
        self.rows = 0

    def __call__(self, page: Any, meta: Any = None) -> Any:
        records = page if isinstance(page, list) else [page]
        if records:
            self.add(records)
        paginator = getattr(page, "paginator", None)
        last_page = paginator is None or not paginator.has_next_page
        if self.rows >= BATCH_ROWS or (last_page and (self.rows or not self.emitted)):
            # An empty window still hands dlt the declared schema, so the table exists, typed,
            # from the very first run.
            self.emitted = True
            return self.flush()
        return None

    def add(self, records: list) -> None:
        """Validates one page and keeps it as Arrow arrays; raises SchemaViolation naming the record."""
        values, extra = self.validate(records)
        for chunks, column in zip(self.chunks, self.columns):
            column_values = values[column.name]
            if column.data_type == "json":
                column_values = _json_texts(column_values)
            try:
                if column.data_type == "timestamp":
                    array = pa.array(column_values, pa.string()).cast(ARROW_TYPES["timestamp"])
                else:
                    array = pa.array(column_values, ARROW_TYPES[column.data_type])
            except (pa.ArrowException, OverflowError):  # a timestamp Arrow cannot read, an integer out of range
                self.validate.raise_first_violation(records, column.name)
            chunks.append(array)
        for name in extra:
            if name not in self.extra:
                self.extra[name] = [None] * self.rows
        for name, column_values in self.extra.items():
            column_values.extend(record.get(name) for record in records)
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
        self._start_batch()
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _infer(values: Any) -> pa.Array:
    """An undeclared field keeps Arrow's inferred type, or becomes JSON text when it has none."""
    values = list(values)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_json_text(value) for value in values], pa.string())
