"""numpy arrays: 1-D -> one column (``value``), 2-D -> columns ``c0..cN`` (or the stage's ``columns``),
N-D -> one fixed-shape tensor column; dtype and shape recorded, and a recorded table comes back as the same
array. Without pyarrow an array is written as ``.npy`` (never pickled: object arrays are refused)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

KIND = "numpy"


def matches(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, (np.ndarray, np.generic))


def _array(value: Any) -> Any:
    np = sys.modules["numpy"]
    array = np.asarray(value)
    if array.dtype.kind == "O":
        array = _strings(array)
    return array


def _strings(array: Any) -> Any:
    """An object array of strings (and None) as a unicode array; anything else refused, naming the column."""
    np = sys.modules["numpy"]
    flat = array.reshape(array.shape[0], -1) if array.ndim >= 2 else array.reshape(-1, 1)
    for column in range(flat.shape[1]):
        for item in flat[:, column]:
            if item is not None and not isinstance(item, str):
                where = f"column c{column}" if array.ndim >= 2 else "its values"
                raise TypeError(
                    f"a numpy array of dtype object ({where} holds {type(item).__name__}); "
                    "return numbers or strings (e.g. .astype(float)), or a DataFrame"
                )
    return np.array([["" if i is None else i for i in row] for row in flat]).reshape(array.shape)


def _names(array: Any, columns: list[str] | None) -> list[str]:
    if array.ndim == 2:
        width = array.shape[1]
        if columns is not None:
            if len(columns) != width:
                raise TypeError(f"the stage names {len(columns)} columns, but the array has {width}")
            return [str(c) for c in columns]
        return [f"c{i}" for i in range(width)]
    if columns:
        return [str(columns[0])]
    return ["value"]


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    array = _array(value)
    facts: dict[str, Any] = {
        "dtype": str(array.dtype),
        "shape": [int(n) for n in array.shape],
        "rows": int(array.shape[0]) if array.ndim else 1,
    }
    if array.ndim <= 2:
        facts["columns"] = _names(array, columns)
    return facts


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    np = sys.modules["numpy"]
    array = _array(value)
    names = _names(array, columns) if array.ndim <= 2 else ["value"]
    if array.ndim == 0:
        return pa.table([pa.array([array.item()])], names=names)
    if array.ndim == 1:
        return pa.table([pa.array(array)], names=names)
    if array.ndim == 2:
        return pa.table([pa.array(np.ascontiguousarray(array[:, i])) for i in range(array.shape[1])], names=names)
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(array))
    return pa.table([tensor], names=names)


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    np = sys.modules["numpy"]
    path = stem + ".npy"
    np.save(path, _array(value), allow_pickle=False)
    return path, "npy"


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    import numpy as np

    return to_arrow(np.load(path, allow_pickle=False), facts.get("columns"))


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    np = importlib.import_module("numpy")
    shape = facts.get("shape")
    dtype = facts.get("dtype")
    if hasattr(table, "to_numpy") and not hasattr(table, "column_names"):  # read back by polars
        array = table.to_numpy()
        return array.reshape(shape) if shape is not None else array
    if shape is not None and len(shape) > 2:
        return table.column(0).combine_chunks().to_numpy_ndarray()
    columns = [table.column(i).to_numpy() for i in range(table.num_columns)]
    array = columns[0] if shape is not None and len(shape) <= 1 else np.column_stack(columns)
    if shape is not None:
        array = array.reshape(shape)
    return array.astype(dtype) if dtype and not str(dtype).startswith("<U") else array


def accept(value: Any) -> Any:
    np = importlib.import_module("numpy")
    if hasattr(value, "column_names") and hasattr(value, "num_columns"):  # pyarrow
        if value.column_names == ["value"]:  # a 1-D array's table form comes back 1-D
            return value.column(0).to_numpy()
        return np.column_stack([value.column(i).to_numpy() for i in range(value.num_columns)])
    if hasattr(value, "to_numpy"):  # pandas, polars
        return value.to_numpy()
    return np.asarray(value)
