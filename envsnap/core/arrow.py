"""pyarrow helpers shared by capture and diff: the untrusted-parquet guard and arrays built from buffers.

Reading untrusted parquet: never let pyarrow unpickle an extension type from a file's metadata.
CVE-2023-47248: pyarrow < 14.0.1 rebuilt ``arrow.py_extension_type`` columns by unpickling bytes stored in
the file, so opening a parquet file could run code. envsnap requires pyarrow >= 14.0.1, where that
auto-load is off by default (and later releases removed ``PyExtensionType`` altogether); :func:`guard`
turns it off explicitly on the releases that still have the switch, in case something in the process
turned it on. Every parquet member of a snapshot is read after :func:`guard` ran.

pyarrow is imported only when one of these functions runs: importing this module costs nothing.
"""

from __future__ import annotations

import array
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["guard", "int64_array", "string_array", "without_views"]

_done = False


def guard() -> Any:
    """Import pyarrow with pickled extension types disabled; returns the module."""
    global _done  # noqa: PLW0603 - once per process
    import pyarrow

    if not _done:
        py_extension = getattr(pyarrow, "PyExtensionType", None)
        set_auto_load = getattr(py_extension, "set_auto_load", None)
        if callable(set_auto_load):
            set_auto_load(False)
        _done = True
    return pyarrow


def int64_array(values: Sequence[int]) -> pa.Array:
    """An int64 array (take indices) built from a buffer.

    ``pa.array(list)`` imports pandas whenever pandas is installed (+0.14 s): sampling never needs it.
    """
    import pyarrow as pa

    data = array.array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string array built from buffers (see :func:`int64_array`); None is null."""
    import pyarrow as pa

    encoded = [b"" if v is None else v.encode("utf-8", "surrogatepass") for v in values]
    offsets = array.array("q", itertools.accumulate((len(e) for e in encoded), initial=0))
    validity = None
    if any(v is None for v in values):
        bits = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v is not None:
                bits[i // 8] |= 1 << (i % 8)
        validity = pa.py_buffer(bytes(bits))
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.large_string(), len(values), buffers).cast(pa.string())


def _plain_type(type_: pa.DataType) -> pa.DataType:
    """``type_`` with string/binary *view* types (polars' Arrow export) as large string/binary, nested too."""
    import pyarrow as pa

    if pa.types.is_string_view(type_):
        return pa.large_string()
    if pa.types.is_binary_view(type_):
        return pa.large_binary()
    if pa.types.is_large_list(type_) or pa.types.is_list(type_):
        item = _plain_type(type_.value_type)
        if item == type_.value_type:
            return type_
        return pa.large_list(item) if pa.types.is_large_list(type_) else pa.list_(item)
    if pa.types.is_struct(type_):
        fields = [type_.field(i) for i in range(type_.num_fields)]
        plain = [f.with_type(_plain_type(f.type)) for f in fields]
        return type_ if plain == fields else pa.struct(plain)
    return type_


def without_views(table: pa.Table) -> pa.Table:
    """``table`` with view-typed columns cast to their plain types: Arrow's compute kernels (``take``,
    hashing) and older parquet readers do not all handle views, and a polars frame exports them."""
    import pyarrow as pa

    schema = pa.schema([f.with_type(_plain_type(f.type)) for f in table.schema], metadata=table.schema.metadata)
    return table if schema == table.schema else table.cast(schema)
