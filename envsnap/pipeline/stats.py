"""Schema and column statistics of a stage's intermediate (pyarrow.compute only, no pandas).

Per column: type, null count and rate, min/max (numbers, strings, booleans, temporal), quantiles
(numbers), the number of distinct values and the most frequent values. Non-finite floats and values that
JSON cannot hold are stored as null; long strings are cut, so a record stays small whatever the data.
Everything is computed in Arrow (one hash pass per column for distinct and top values); only a handful
of values per column are converted to Python.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
from typing import Any

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
TOP_VALUES = 5
MAX_STRING = 200


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str):
        return value[:MAX_STRING]
    if isinstance(value, bytes):
        return value[: MAX_STRING // 2].hex()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return None


def _distinct_and_top(column: Any) -> tuple[int, list[dict[str, Any]] | None]:
    """Distinct non-null values and the most frequent ones, from ONE hash pass (``value_counts``).

    Only a few candidates leave Arrow (``select_k``): converting a million counts to Python would cost
    more than everything else. A column whose values are all distinct has no top values (null).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(column.drop_null())
    distinct = len(counts)
    if distinct == 0 or distinct == len(column) - column.null_count:
        return distinct, None
    table = pa.table({"values": counts.field("values"), "counts": counts.field("counts")})
    candidates = pc.select_k_unstable(table, k=min(distinct, TOP_VALUES * 4), sort_keys=[("counts", "descending")])
    rows = table.take(candidates).to_pylist()
    rows.sort(key=lambda r: (-r["counts"], str(r["values"])))  # a stable order for ties
    return distinct, [{"value": _json_value(r["values"]), "count": r["counts"]} for r in rows[:TOP_VALUES]]


def schema_fields(schema: Any) -> list[dict[str, Any]]:
    """``[{name, type, nullable}]`` of a pyarrow schema."""
    return [{"name": f.name, "type": str(f.type), "nullable": bool(f.nullable)} for f in schema]


def column_stats(table: Any) -> list[dict[str, Any]]:
    """One stats record per column of the pyarrow ``table``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = table.num_rows
    out = []
    for field, chunked in zip(table.schema, table.columns, strict=True):
        column = chunked
        kind = field.type
        nulls = column.null_count
        record: dict[str, Any] = {
            "name": field.name,
            "type": str(kind),
            "null_count": nulls,
            "null_rate": (nulls / rows) if rows else 0.0,
            "min": None,
            "max": None,
            "quantiles": None,
            "distinct": None,
            "top_values": None,
        }
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        orderable = (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_temporal(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
        )
        if rows > nulls and orderable:
            try:
                bounds = pc.min_max(column)
                record["min"] = _json_value(bounds["min"].as_py())
                record["max"] = _json_value(bounds["max"].as_py())
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                pass
            if pa.types.is_integer(kind) or pa.types.is_floating(kind):
                values = pc.quantile(column, q=list(QUANTILES)).to_pylist()
                record["quantiles"] = {str(q): _json_value(v) for q, v in zip(QUANTILES, values, strict=True)}
            with contextlib.suppress(pa.ArrowNotImplementedError, pa.ArrowInvalid):
                record["distinct"], record["top_values"] = _distinct_and_top(column)
        out.append(record)
    return out
