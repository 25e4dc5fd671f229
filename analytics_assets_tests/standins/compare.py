"""Loading a stand-in with plain dlt, and comparing tables row by row with what the stand-in holds.

The yardstick is plain dlt itself: `load_with_plain_dlt` runs dlt's own `rest_api_source` on the
stand-in's `plain_dlt_config`, and `dlt_row` says what dlt's default normalisation makes of a served
record, so a test can hold any loader's table against both.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, cast

import dlt
import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.detections import is_iso_timestamp
from dlt.common.time import parse_iso_like_datetime
from dlt.sources.rest_api import rest_api_source

UTC = timezone.utc
NAMING = NamingConvention()
DATASET = "standin"


def dlt_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The row dlt's default normalisation makes of `record` with `max_table_nesting=0`:

    - names: each top-level key through dlt's snake_case naming (`updatedAt` -> `updated_at`,
      `SystemModstamp` -> `system_modstamp`, `updated-at` -> `updated_at`, `Id` -> `id`);
    - nested values: a dict or list stays one JSON value (compared parsed; keys inside it are NOT renamed);
    - timestamps: a string that dlt's default `iso_timestamp` detection takes for a timestamp (ISO 8601
      with `Z`, `+0000` or `+01:00`, or naive, read as UTC) becomes an aware UTC datetime: compare
      instants, not spellings. A bare date (`2026-11-17`), epoch numbers and epoch text
      (`1763337600.000100`) are NOT timestamps to dlt: they stay text or integers;
    - numbers: ints and floats unchanged; numbers sent as text (`"19.99"`) stay text;
    - nulls: a key whose value is null is left out (a NULL cell, or no column at all when every value
      is null): `assert_rows_equal` treats a missing column and NULL alike.

    dlt infers a column's type from its first value; this mirrors it value by value, which is the same
    thing because every stand-in serves one kind of value per field."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        row[NAMING.normalize_identifier(key)] = _cell(value)
    return row


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.loads(json.dumps(value))
    if isinstance(value, str) and is_iso_timestamp(str, value):
        return as_utc(cast(datetime, parse_iso_like_datetime(value)))
    return value


def as_utc(moment: datetime) -> datetime:
    """An aware UTC stdlib datetime (pendulum's and DuckDB's zone objects compare equal, but print
    differently; a naive value is UTC, as dlt reads it)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                    moment.microsecond, tzinfo=UTC)


def load_with_plain_dlt(standin: Any, resource: str, start: datetime, end: datetime, duckdb_path: Path,
                        pipelines_dir: Optional[Path] = None, config: Optional[dict[str, Any]] = None,
                        max_table_nesting: int = 0) -> Any:
    """Runs plain dlt (`rest_api_source` + `dlt.pipeline`) on the stand-in's `plain_dlt_config` for
    `[start, end)` (or on `config`), loading only `resource` (and the parents it needs) into
    `duckdb_path`, dataset `standin`, with a private pipelines folder. Returns dlt's LoadInfo."""
    config = config if config is not None else standin.plain_dlt_config(start, end)
    if config is None:
        raise ValueError(f"plain dlt cannot load {standin.name}: {type(standin).plain_dlt_config.__doc__}")
    source = rest_api_source(cast(Any, config), name=standin.name, max_table_nesting=max_table_nesting)
    source = source.with_resources(resource)
    pipeline = dlt.pipeline(
        pipeline_name=f"plain_{standin.name}",
        destination=dlt.destinations.duckdb(str(duckdb_path)),
        dataset_name=DATASET,
        pipelines_dir=str(pipelines_dir or duckdb_path.parent / f"{duckdb_path.stem}_pipelines"),
    )
    return pipeline.run(source)


def table_rows(duckdb_path: Path, table: str, dataset: str = DATASET) -> list[dict[str, Any]]:
    """Every row of `dataset.table`, read with DuckDB itself: dlt's `_dlt_*` columns dropped, JSON
    cells parsed, timestamps as aware UTC datetimes. A table dlt never created (a window without
    records leaves none) reads as no rows."""
    with duckdb.connect(str(duckdb_path), read_only=True) as connection:
        exists = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [dataset, table]).fetchone()
        if not exists or not exists[0]:
            return []
        cursor = connection.execute(f'SELECT * FROM "{dataset}"."{table}"')
        columns = [(d[0], str(d[1]).upper()) for d in cursor.description]
        rows = cursor.fetchall()
    out = []
    for values in rows:
        row = {}
        for (name, kind), value in zip(columns, values, strict=True):
            if name.startswith("_dlt_"):
                continue
            if kind == "JSON" and isinstance(value, str):
                value = json.loads(value)
            elif isinstance(value, datetime):
                value = as_utc(value)
            row[name] = value
        out.append(row)
    return out


def normalised(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for comparison: no `_dlt_*` columns, no NULLs, datetimes as aware UTC."""
    return {name: as_utc(value) if isinstance(value, datetime) else value
            for name, value in row.items() if value is not None and not name.startswith("_dlt_")}


def assert_rows_equal(actual: Iterable[Mapping[str, Any]], expected: Iterable[Mapping[str, Any]],
                      key: Sequence[str], limit: int = 5) -> None:
    """Row by row on `key`: no duplicate keys on either side, the same keys, and every row's values
    equal after `normalised`. The message names the first few differences."""
    actual_by_key = _by_key(actual, key, "loaded")
    expected_by_key = _by_key(expected, key, "expected")
    missing = sorted(set(expected_by_key) - set(actual_by_key), key=str)
    extra = sorted(set(actual_by_key) - set(expected_by_key), key=str)
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected rows missing, e.g. {key}={missing[:limit]}")
    if extra:
        problems.append(f"{len(extra)} rows not expected, e.g. {key}={extra[:limit]}")
    for row_key in sorted(set(actual_by_key) & set(expected_by_key), key=str):
        got, want = normalised(actual_by_key[row_key]), normalised(expected_by_key[row_key])
        if got != want:
            columns = sorted(set(got) | set(want))
            diff = {c: (got.get(c), want.get(c)) for c in columns if got.get(c) != want.get(c)}
            problems.append(f"row {dict(zip(key, row_key, strict=True))}: (loaded, expected) differ in {diff}")
            if len(problems) >= limit:
                break
    assert not problems, "\n".join(problems)


def _by_key(rows: Iterable[Mapping[str, Any]], key: Sequence[str], side: str) -> dict[tuple, Mapping[str, Any]]:
    out: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        row_key = tuple(_key_part(row.get(column)) for column in key)
        assert row_key not in out, f"{side} rows hold {dict(zip(key, row_key, strict=True))} twice"
        out[row_key] = row
    return out


def _key_part(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value.isoformat() if isinstance(value, date) else value
