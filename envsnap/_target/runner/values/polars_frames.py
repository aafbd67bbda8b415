"""polars DataFrames (a LazyFrame is collected, and the collected frame flows on): recorded as the table,
written by polars itself where pyarrow is missing."""

from __future__ import annotations

import importlib
import sys
from typing import Any

KIND = "polars"
# polars dtypes that have no parquet form.
_UNSUPPORTED = ("Object",)


def matches(value: Any) -> bool:
    pl = sys.modules.get("polars")
    return pl is not None and isinstance(value, (pl.DataFrame, pl.LazyFrame))


def settle(value: Any) -> Any:
    pl = sys.modules["polars"]
    return value.collect() if isinstance(value, pl.LazyFrame) else value


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    frame = settle(value)
    schema = {str(name): str(dtype) for name, dtype in frame.schema.items()}
    for name, dtype in schema.items():
        if dtype.split("(")[0] in _UNSUPPORTED:
            raise TypeError(f"column {name!r} has polars dtype {dtype}, which parquet cannot hold; cast it first")
    return {"rows": int(frame.height), "dtypes": schema}


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    return settle(value).to_arrow()


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    path = stem + ".parquet"
    settle(value).write_parquet(path)
    return path, "parquet"


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    raise TypeError(f"a polars frame is only ever written as parquet, not {form}")


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    pl = importlib.import_module("polars")
    return table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)


def accept(value: Any) -> Any:
    pl = importlib.import_module("polars")
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        return pl.from_pandas(value)
    if hasattr(value, "ndim"):
        return pl.from_numpy(value)
    return pl.from_arrow(value)
