"""Column statistics of a pyarrow table, as recorded for sampled inputs and pipeline intermediates.

One definition for every recorder, so a table's stats have one shape wherever it is stored: capture's input
sampling (``data/inputs/NAME.json``), the pipeline's stage intermediates and shrink's rewritten samples.
pyarrow is imported only when :func:`column_stats` runs.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Collection
from typing import Any

__all__ = ["MAX_TEXT", "QUANTILES", "QUANTILE_KEYS", "TOP_VALUES", "column_stats", "json_value"]

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
QUANTILE_KEYS = ("p0", "p1", "p25", "p50", "p75", "p99", "p100")
TOP_VALUES = 10
MAX_TEXT = 200


def json_value(value: Any) -> Any:
    """A value JSON can hold: NaN -> null, infinities -> "inf"/"-inf", times -> ISO text, bytes -> hex."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, bytes):
        return value[:32].hex()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return json_value(str(value))


def _temporal_values(values: Any) -> list[Any]:
    """Temporal values as ISO text (durations as seconds), by pyarrow's string cast.

    ``as_py()`` would make datetimes, and pyarrow imports pandas to make them (+0.14 s); the cast also keeps
    nanoseconds. Offsets are written ``+01:00``; UTC stays ``Z``.
    """
    import pyarrow as pa

    if pa.types.is_duration(values.type):
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[values.type.unit]
        return [v / per_second for v in values.cast(pa.int64()).to_pylist()]
    texts = values.cast(pa.string()).to_pylist()
    return [re.sub(r"([+-][0-9]{2})([0-9]{2})$", r"\1:\2", t.replace(" ", "T", 1)) for t in texts]


def _numeric(entry: dict[str, Any], values: Any) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(values.type):
        nan = pc.is_nan(values)
        entry["nan_count"] = pc.sum(nan).as_py() or 0
        values = values.filter(pc.invert(nan))
        if len(values) == 0:
            return
    bounds = pc.min_max(values)
    entry["min"] = json_value(bounds["min"].as_py())
    entry["max"] = json_value(bounds["max"].as_py())
    as_float = values.cast(pa.float64()) if pa.types.is_decimal(values.type) else values
    entry["mean"] = json_value(pc.mean(as_float).as_py())
    quantiles = pc.quantile(as_float, q=list(QUANTILES), interpolation="linear").to_pylist()
    entry["quantiles"] = {k: json_value(v) for k, v in zip(QUANTILE_KEYS, quantiles, strict=True)}


def _ordered(entry: dict[str, Any], values: Any) -> None:
    """min/max and quantiles ("lower": values that occur) of a temporal column."""
    import pyarrow.compute as pc

    from envsnap.core.arrow import int64_array

    ordered = values.take(pc.sort_indices(values))
    last = len(ordered) - 1
    picks = _temporal_values(ordered.take(int64_array([0, last, *(math.floor(q * last) for q in QUANTILES)])))
    entry["min"], entry["max"] = picks[0], picks[1]
    entry["quantiles"] = dict(zip(QUANTILE_KEYS, picks[2:], strict=True))


def _lengths(entry: dict[str, Any], values: Any, text: bool) -> None:
    import pyarrow.compute as pc

    lengths = pc.utf8_length(values) if text else pc.binary_length(values)
    bounds = pc.min_max(lengths)
    entry["length"] = {
        "min": bounds["min"].as_py(),
        "max": bounds["max"].as_py(),
        "mean": json_value(pc.mean(lengths).as_py()),
    }


def _stats(field: Any, column: Any, *, masked: bool, population: int | None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(column)
    nulls = column.null_count
    entry: dict[str, Any] = {
        "name": field.name,
        "type": str(field.type),
        "masked": masked,
        "null_count": nulls,
        "null_rate": nulls / rows if rows else None,
    }
    kind = field.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    values = column.drop_null()
    if len(values) == 0:
        return entry
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        _numeric(entry, values)
    elif pa.types.is_temporal(kind):
        _ordered(entry, values)
    elif text or binary:
        _lengths(entry, values, text)
        if text and not masked:
            bounds = pc.min_max(values)
            entry["min"] = json_value(bounds["min"].as_py())
            entry["max"] = json_value(bounds["max"].as_py())
    elif pa.types.is_boolean(kind):
        entry["true_count"] = pc.sum(values.cast(pa.int64())).as_py()
    try:
        counts = pc.value_counts(values)
    except pa.ArrowNotImplementedError:
        return entry  # nested values: counts only
    frequencies = counts.field("counts").to_pylist()
    distinct = len(frequencies)
    entry["distinct"] = distinct
    entry["distinct_estimate"] = _distinct_estimate(frequencies, len(values), rows, population)
    if (text or pa.types.is_boolean(kind)) and not masked:
        pairs = [(c, v) for v, c in zip(counts.field("values").to_pylist(), frequencies, strict=True) if c > 1]
        pairs.sort(key=lambda p: (-p[0], str(p[1])))
        entry["top"] = [{"value": json_value(v), "count": c} for c, v in pairs[:TOP_VALUES]]
    return entry


def _distinct_estimate(frequencies: list[int], valid: int, rows: int, population: int | None) -> int:
    """Distinct values in the whole source, estimated from the sample (GEE: Charikar et al., 2000).

    Values seen once in the sample stand for sqrt(N/n) values each; values seen more often are counted
    once. Exact when the sample is the whole source.
    """
    distinct = len(frequencies)
    if not population or population <= rows or rows == 0:
        return distinct
    singletons = sum(1 for c in frequencies if c == 1)
    estimate = math.sqrt(population / rows) * singletons + (distinct - singletons)
    ceiling = population * valid / rows
    return round(max(distinct, min(estimate, ceiling)))


def column_stats(table: Any, *, masked: Collection[str] = (), population: int | None = None) -> list[dict[str, Any]]:
    """Stats of every column of the pyarrow ``table``, in order.

    Per column: type, null count and rate; numbers: min, max, mean, quantiles (p0 p1 p25 p50 p75 p99
    p100, linear), NaN count; temporal: min, max, quantiles (values that occur); strings and binaries:
    length min/max/mean; strings: min, max and the 10 most frequent values seen at least twice; booleans:
    true count; all: distinct values in the sample and an estimate for the ``population`` (rows of the
    source). ``masked`` columns hold tokens: no values of theirs are listed (no min, max or top values).
    Every value is JSON-safe (see :func:`json_value`).
    """
    return [
        _stats(field, table.column(i), masked=field.name in masked, population=population)
        for i, field in enumerate(table.schema)
    ]
