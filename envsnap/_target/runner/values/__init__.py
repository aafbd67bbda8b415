"""Stage values of any shape: what a stage may return, and the one recorded form each kind has.

Shipped (stdlib only at import; runs in the job's interpreter). A stage returns what ML code returns; each
kind lives in its own module with the same small interface, and :data:`KINDS` is the registry, in the
order a value is matched:

=============  ========================================  ===========================================
kind           what                                      recorded as (the table form, parquet)
=============  ========================================  ===========================================
``pandas``     pandas DataFrame                          the table (index kept as pandas does)
``arrow``      pyarrow Table / RecordBatch, any          the table
               ``__arrow_c_stream__`` object
``polars``     polars DataFrame (a LazyFrame, collected) the table
``series``     pandas Series                             one column, its name kept
``numpy``      numpy ndarray                             1-D: one column; 2-D: ``c0..cN`` (or the
                                                         stage's ``columns``); N-D: a tensor column
``sparse``     scipy sparse matrix                       ``row, col, value`` (COO), shape recorded
``records``    a list of dicts (rows)                    the table
``dict``       metrics: scalars, lists, arrays, nested   one row, a column per flattened key
``estimator``  anything with fitted ``*_`` attributes    one row, a column per fitted attribute
=============  ========================================  ===========================================

``None`` (kind ``none``) records nothing and the previous value flows on; a tuple, or a list of values
such as ``train_test_split`` returns (kind ``tuple``), records each element (``stage.0``, ``stage.1``).
Anything else is refused with :class:`UnsupportedValue`, one line naming the type and the kinds above.

Each kind module has ``KIND``, ``matches(value)``, ``describe(value, columns)`` (JSON facts recorded in
the stage record: dtype, shape, the dict's data, the estimator's fitted state), ``to_arrow(value, columns)``
(needs pyarrow), ``write(value, stem, columns)`` (the native form when pyarrow is missing: returns
``(file, form)``), ``from_file(path, form, facts)`` (the host turns that form into an Arrow table),
``from_arrow(table, facts)`` (a recorded table back into the kind: replays that start mid-pipeline) and
``accept(value)`` (a value of another kind converted, for a stage's ``accepts``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from . import (
    arrow_tables,
    estimators,
    metrics,
    numpy_arrays,
    pandas_frames,
    pandas_series,
    polars_frames,
    row_records,
    sparse_matrices,
)

#: The registry: kind name -> module, in matching order (a Series before an array, an estimator last).
KINDS = {
    module.KIND: module
    for module in (
        pandas_frames,
        pandas_series,
        arrow_tables,
        polars_frames,
        numpy_arrays,
        sparse_matrices,
        row_records,
        metrics,
        estimators,
    )
}
#: Kinds that are tables as they are: read back as a table and converted when a stage takes them.
TABLE_KINDS = ("pandas", "arrow", "polars")
#: What ``accepts`` may ask a stage's input to be converted to.
ACCEPTS = ("pandas", "arrow", "polars", "numpy")
SUPPORTED = (
    "a table (pandas, pyarrow, polars), a numpy array, a pandas Series, a scipy sparse matrix, a list of dicts, "
    "a dict of metrics, a fitted estimator, None, or a tuple of these"
)


class UnsupportedValue(Exception):
    """A value no kind can record (a generator, an open file, an object array, a dict holding a model)."""


def kind_of(value: Any) -> str:
    """The kind of ``value``; raise :class:`UnsupportedValue` naming its type and the supported kinds."""
    if value is None:
        return "none"
    if type(value) is tuple:
        return "tuple"
    for kind, module in KINDS.items():
        if module.matches(value):
            return str(kind)
    if type(value) is list and value and all(_element(item) for item in value):
        return "tuple"  # a list of values (train_test_split's four), recorded element by element
    raise UnsupportedValue(f"{type_label(value)}, which envsnap cannot record; a stage returns {SUPPORTED}")


def _element(item: Any) -> bool:
    """Whether ``item`` can be one element of a returned tuple or list (a value of a kind, not None)."""
    return item is not None and any(module.matches(item) for module in KINDS.values())


def type_label(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def settle(value: Any, kind: str) -> Any:
    """The value that flows to the next stage (a polars LazyFrame is collected once, here)."""
    settle_kind = getattr(KINDS[kind], "settle", None)
    return settle_kind(value) if settle_kind is not None else value


def describe(value: Any, kind: str, columns: list[str] | None = None) -> dict[str, Any]:
    """``{"kind": kind, ...facts}`` of a value (see the kind modules)."""
    facts = {"kind": kind}
    facts.update(KINDS[kind].describe(value, columns))
    return facts


def to_arrow(value: Any, kind: str, columns: list[str] | None = None) -> Any:
    """The table form of ``value`` as a pyarrow Table (pyarrow must be importable)."""
    return KINDS[kind].to_arrow(value, columns)


def table(value: Any, kind: str, facts: dict[str, Any]) -> Any:
    """The table form of ``value`` whose ``facts`` were just described (pyarrow must be importable).

    A dict's data and an estimator's description are the whole value: their one-row table is built from
    those facts rather than described a second time (and a dict's from its data as redacted there).
    """
    if kind == "dict":
        return metrics.table_of(facts["data"])
    if kind == "estimator":
        return estimators.table_of(facts["description"])
    return KINDS[kind].to_arrow(value, facts.get("columns"))


def has_pyarrow() -> bool:
    try:
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        return False
    return True


def write(value: Any, kind: str, out_dir: str, stem: str, columns: list[str] | None = None) -> dict[str, Any]:
    """Write ``value``'s table form under ``out_dir`` as ``stem.parquet`` when this interpreter can, else
    in the kind's native form; return its facts plus ``file``, ``form`` and ``rows`` (None when unknown)."""
    facts = describe(value, kind, columns)
    module = KINDS[kind]
    if has_pyarrow():
        import pyarrow.parquet as pq

        written = table(value, kind, facts)
        pq.write_table(written, os.path.join(out_dir, stem + ".parquet"))
        facts.update(file=stem + ".parquet", form="parquet", rows=int(written.num_rows))
        return facts
    file, form = module.write(value, os.path.join(out_dir, stem), columns)
    facts.update(file=os.path.basename(file), form=form, rows=facts.get("rows"))
    return facts


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    """The Arrow table of a value written in another form (host side, where pyarrow is)."""
    if form == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    return KINDS[str(facts["kind"])].from_file(path, form, facts)


def load(path: str, kind: str, facts: dict[str, Any] | None = None) -> Any:
    """A recorded value (a parquet file, or a dict's JSON) back as ``kind`` (pipeline inputs, replays ``--from``)."""
    facts = dict(facts or {"kind": kind})
    module = KINDS.get(kind)
    if kind == "dict" or path.endswith(".json"):
        return metrics.load_json(path)
    table = read_table(path)
    if module is None:
        return table
    return module.from_arrow(table, facts)


def read_table(path: str) -> Any:
    """A parquet file as a pyarrow Table, or a polars DataFrame where this interpreter has no pyarrow."""
    if has_pyarrow():
        import pyarrow.parquet as pq

        return pq.read_table(path)
    try:
        pl = importlib.import_module("polars")
    except ImportError:
        raise UnsupportedValue(
            f"cannot read {os.path.basename(path)}: this interpreter has neither pyarrow nor polars to read parquet"
        ) from None
    return pl.read_parquet(path)


def convert(value: Any, kind: str | None) -> Any:
    """``value`` as ``kind`` (``pandas``, ``arrow``, ``polars``, ``numpy``); unchanged without a kind or as one."""
    if kind is None or value is None:
        return value
    module = KINDS[kind]
    if module.matches(value):
        return value
    return module.accept(value)
