"""scipy sparse matrices (what a OneHotEncoder returns): recorded as ``row, col, value`` (COO), shape
and dtype recorded; a recorded table comes back as a CSR matrix."""

from __future__ import annotations

import importlib
import sys
from typing import Any

KIND = "sparse"


def matches(value: Any) -> bool:
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and bool(sparse.issparse(value))


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "shape": [int(n) for n in value.shape],
        "dtype": str(value.dtype),
        "nnz": int(value.nnz),
        "rows": int(value.nnz),
    }
    if columns:
        facts["columns"] = [str(c) for c in columns]
    return facts


def _coo(value: Any) -> Any:
    coo = value.tocoo()
    coo.sum_duplicates()
    return coo


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    coo = _coo(value)
    return pa.table({"row": coo.row.astype("int64"), "col": coo.col.astype("int64"), "value": coo.data})


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    np = sys.modules["numpy"]
    coo = _coo(value)
    path = stem + ".npz"
    np.savez(path, row=coo.row.astype("int64"), col=coo.col.astype("int64"), value=coo.data)
    return path, "npz"


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    import numpy as np
    import pyarrow as pa

    with np.load(path, allow_pickle=False) as data:
        return pa.table({"row": data["row"], "col": data["col"], "value": data["value"]})


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    sparse = importlib.import_module("scipy.sparse")
    rows = table.column("row").to_numpy()
    cols = table.column("col").to_numpy()
    values = table.column("value").to_numpy()
    return sparse.coo_matrix((values, (rows, cols)), shape=tuple(facts["shape"])).tocsr()


def accept(value: Any) -> Any:
    sparse = importlib.import_module("scipy.sparse")
    return sparse.csr_matrix(value)
