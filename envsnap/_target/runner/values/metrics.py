"""Dicts (metrics, small results): recorded as JSON in the stage record and, for comparing, as ONE row with
a column per flattened key (``a.b``): numbers stay numbers (compared with ``--rtol``/``--atol``), anything
else is its JSON text. Values may be scalars, numpy scalars and arrays, lists and nested dicts; anything
else (a DataFrame, a model, a file) is refused naming its key."""

from __future__ import annotations

import json
import math
from typing import Any

KIND = "dict"
#: More values than this in one dict means it is data, not metrics: return it as its own stage value.
MAX_ELEMENTS = 1_000_000


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_ELEMENTS


def matches(value: Any) -> bool:
    return isinstance(value, dict)


def plain(value: Any, key: str = "", budget: _Budget | None = None) -> Any:
    """``value`` as plain JSON (non-finite floats as the strings ``nan``/``inf``); TypeError naming the key."""
    budget = budget or _Budget()
    budget.left -= 1
    if budget.left < 0:
        raise TypeError(
            f"key {key!r}: the dict holds more than {MAX_ELEMENTS} values; return the data as its own stage"
        )
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v, f"{key}.{k}" if key else str(k), budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{key}[{i}]", budget) for i, v in enumerate(value)]
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "tolist") and getattr(dtype, "kind", "O") != "O":
        if getattr(value, "size", 1) > budget.left:
            raise TypeError(f"key {key!r}: an array of {value.size} values is data, not a metric; return it as a stage")
        budget.left -= int(getattr(value, "size", 1))
        return plain(value.tolist(), key, budget)
    raise TypeError(
        f"key {key!r} holds {type(value).__module__}.{type(value).__qualname__}, which is not a JSON value "
        "(numbers, strings, lists, arrays and nested dicts are)"
    )


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": scalar-or-JSON-text}`` of plain JSON ``data`` (lists stay whole, as JSON text)."""
    out: dict[str, Any] = {}
    for key, item in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out.update(flatten(item, name))
        elif isinstance(item, (dict, list)):
            out[name] = json.dumps(item, sort_keys=True)
        else:
            out[name] = item
    return out


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    return {"rows": 1, "data": plain(value)}


def one_row(row: dict[str, Any]) -> Any:
    """An Arrow table of one row, a column per key (a dict's keys, an estimator's attributes)."""
    import pyarrow as pa

    return pa.table({name: pa.array([item]) for name, item in row.items()}) if row else pa.table({"_empty": [True]})


def table_of(data: Any) -> Any:
    """The one-row Arrow table of plain ``data``."""
    return one_row(flatten(data))


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    return table_of(plain(value))


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    return write_json(stem, plain(value))


def write_json(stem: str, data: Any) -> tuple[str, str]:
    """``stem.json`` holding plain ``data``: the hand-over form of a dict and of an estimator's state."""
    path = stem + ".json"
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return path, "json"


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    return table_of(load_json(path))


def load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    if facts.get("data") is not None:
        return facts["data"]
    rows = table.to_pylist() if hasattr(table, "to_pylist") else table.to_dicts()
    return rows[0] if rows else {}


def accept(value: Any) -> Any:
    return dict(value)
