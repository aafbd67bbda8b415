"""pandas DataFrames: recorded as the table (pyarrow keeps the index as pandas does); without pyarrow, as
a ``.columns`` directory of one ``.npy`` per numeric column and JSON for the rest."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

KIND = "pandas"


def matches(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    return {"rows": len(value), "dtypes": {str(c): str(t) for c, t in value.dtypes.items()}}


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(value)


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    """A directory ``stem.columns``: ``index.json`` (names, kinds) and ``N.npy`` / ``N.json`` per column."""
    frame = value if _plain_index(value) else value.reset_index()
    directory = stem + ".columns"
    os.makedirs(directory, exist_ok=True)
    entries = []
    for position, (name, series) in enumerate(frame.items()):
        entries.append(write_column(directory, position, str(name), series.to_numpy()))
    with open(os.path.join(directory, "index.json"), "w", encoding="utf-8") as fh:
        json.dump({"columns": entries}, fh)
    return directory, "columns"


def _plain_index(frame: Any) -> bool:
    pd = sys.modules["pandas"]
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def write_column(directory: str, position: int, name: str, array: Any) -> dict[str, Any]:
    """One column of a ``.columns`` directory: numbers, booleans and datetimes as ``.npy``, the rest as JSON."""
    np = importlib.import_module("numpy")
    if array.dtype.kind in "biufMm":
        np.save(os.path.join(directory, f"{position}.npy"), array, allow_pickle=False)
        return {"name": name, "file": f"{position}.npy"}
    items = [None if item is None or _missing(item) else str(item) for item in array.tolist()]
    with open(os.path.join(directory, f"{position}.json"), "w", encoding="utf-8") as fh:
        json.dump(items, fh)
    return {"name": name, "file": f"{position}.json"}


def _missing(item: Any) -> bool:
    """NaN, NaT and pandas' NA (none equals itself)."""
    try:
        return bool(item != item)  # noqa: PLR0124 - the one test that covers NaN, NaT and NA alike
    except (TypeError, ValueError):
        return False


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    """The Arrow table of a ``.columns`` directory (host side)."""
    import numpy as np
    import pyarrow as pa

    with open(os.path.join(path, "index.json"), encoding="utf-8") as fh:
        entries = json.load(fh)["columns"]
    arrays, names = [], []
    for entry in entries:
        file = os.path.join(path, entry["file"])
        if file.endswith(".npy"):
            arrays.append(pa.array(np.load(file, allow_pickle=False)))
        else:
            with open(file, encoding="utf-8") as fh:
                arrays.append(pa.array(json.load(fh), type=pa.string()))
        names.append(entry["name"])
    return pa.table(arrays, names=names)


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    return table.to_pandas()


def accept(value: Any) -> Any:
    pd = importlib.import_module("pandas")
    if hasattr(value, "to_pandas"):  # pyarrow, polars
        return value.to_pandas()
    if hasattr(value, "ndim"):  # numpy
        return pd.DataFrame(value)
    return pd.DataFrame(value)
