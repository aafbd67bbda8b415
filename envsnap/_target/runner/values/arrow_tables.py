"""pyarrow Tables and RecordBatches, and any object that exports an Arrow C stream (``__arrow_c_stream__``:
DuckDB relations, nanoarrow, ...): recorded as the table; such an object flows on as a pyarrow Table."""

from __future__ import annotations

import importlib
import sys
from typing import Any

KIND = "arrow"


def matches(value: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        return True
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(value, (pl.DataFrame, pl.LazyFrame)):
        return False  # polars frames keep their own kind
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, (pd.DataFrame, pd.Series)):
        return False
    return hasattr(type(value), "__arrow_c_stream__")


def settle(value: Any) -> Any:
    """A stream-exporting object is read once, into the pyarrow Table that flows on."""
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(value, pa.Table):
        return value
    return to_arrow(value, None)


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    rows = getattr(value, "num_rows", None)
    return {"rows": int(rows) if rows is not None else None}


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    try:
        pa = importlib.import_module("pyarrow")
    except ImportError:
        raise TypeError("an Arrow stream needs pyarrow in this interpreter to be read") from None
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    return pa.table(value)


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    raise TypeError("an Arrow value needs pyarrow in this interpreter to be written")  # unreachable: pyarrow made it


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    raise TypeError(f"an Arrow table is only ever written as parquet, not {form}")


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    if hasattr(table, "to_arrow"):  # read back by polars
        return table.to_arrow()
    return table


def accept(value: Any) -> Any:
    pa = importlib.import_module("pyarrow")
    if hasattr(value, "to_arrow"):  # polars
        return value.to_arrow()
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        return pa.Table.from_pandas(value)
    if hasattr(value, "ndim"):  # numpy
        from . import numpy_arrays

        return numpy_arrays.to_arrow(value, None)
    return pa.table(value)
