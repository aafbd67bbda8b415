"""A list of dicts (rows, as ``json.load`` or an API client returns them): recorded as the table; a
recorded table comes back as the list of dicts."""

from __future__ import annotations

import json
from typing import Any

KIND = "records"


def matches(value: Any) -> bool:
    return type(value) is list and bool(value) and all(isinstance(row, dict) for row in value)


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    return {"rows": len(value)}


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(value)


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    path = stem + ".json"
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, default=_refuse)
    return path, "json"


def _refuse(item: Any) -> Any:
    raise TypeError(f"a row holds {type(item).__name__}, which is not a JSON value")


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    import pyarrow as pa

    with open(path, encoding="utf-8") as fh:
        return pa.Table.from_pylist(json.load(fh))


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    return table.to_pylist() if hasattr(table, "to_pylist") else table.to_dicts()


def accept(value: Any) -> Any:
    if hasattr(value, "to_dicts"):
        return value.to_dicts()
    if hasattr(value, "to_pylist"):
        return value.to_pylist()
    return value.to_dict("records")
