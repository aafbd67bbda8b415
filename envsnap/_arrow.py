"""Reading untrusted parquet: never let pyarrow unpickle an extension type from a file's metadata.

CVE-2023-47248: pyarrow < 14.0.1 rebuilt ``arrow.py_extension_type`` columns by unpickling bytes stored in
the file, so opening a parquet file could run code. envsnap requires pyarrow >= 14.0.1, where that
auto-load is off by default (and later releases removed ``PyExtensionType`` altogether); this guard turns
it off explicitly on the releases that still have the switch, in case something in the process turned
it on. Every parquet member of a snapshot is read after :func:`guard` ran.
"""

from __future__ import annotations

from typing import Any

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
