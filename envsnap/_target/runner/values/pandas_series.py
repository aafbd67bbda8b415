"""pandas Series: recorded as one column, its name kept (``value`` when it has none)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from . import pandas_frames

KIND = "series"


def matches(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.Series)


def _column(value: Any) -> str:
    return "value" if value.name is None else str(value.name)


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    return {"rows": len(value), "name": None if value.name is None else str(value.name), "dtype": str(value.dtype)}


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(value.to_frame(_column(value)))


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    return pandas_frames.write(value.to_frame(_column(value)), stem, columns)


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    return pandas_frames.from_file(path, form, facts)


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    frame = table.to_pandas()
    series = frame[frame.columns[0]]
    series.name = facts.get("name")
    return series


def accept(value: Any) -> Any:
    pd = importlib.import_module("pandas")
    return pd.Series(value)
