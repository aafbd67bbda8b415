"""Table kinds: pandas DataFrames and pyarrow Tables, told apart without importing either."""

from __future__ import annotations

import sys
from typing import Any

from . import values


def table_kind(obj: Any) -> str | None:
    """``"pandas"`` for a DataFrame, ``"arrow"`` for a pyarrow Table/RecordBatch, else None (not a table).

    Looked up in ``sys.modules`` so that checking never imports a library the stage did not use.
    """
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        return "pandas"
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(obj, (pa.Table, pa.RecordBatch)):
        return "arrow"
    return None


def to_arrow(obj: Any) -> Any:
    """A pyarrow Table for any table-like value (a pandas index is kept as pandas does; see :mod:`.values`)."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        return obj
    kind = values.kind_of(obj)
    return values.to_arrow(values.settle(obj, kind), kind)


def columns_of(table: Any) -> list[str]:
    """Column names of a table of either kind."""
    if table_kind(table) == "pandas":
        return [str(c) for c in table.columns]
    return [str(c) for c in getattr(table, "column_names", [])]
