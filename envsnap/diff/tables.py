"""Streaming compare of two parquet tables: schema, row counts, cells (with tolerances), stats shift.

Neither table is ever materialised. Both files are read as record batches of at most :data:`BATCH_ROWS`
rows (``ParquetFile.iter_batches``); the two streams are aligned by row position by slicing, so the
files' row groups need not line up. Peak memory is about two batches per side plus the stats samples
(see :mod:`envsnap.diff.stats_shift`), whatever the file size.

The compare kernel is two ``pyarrow.compute`` calls per column per batch in the common case
(``not_equal`` and a ``sum`` of it, plus ``is_null``/``xor`` only when a side has nulls); only the few
cells that differ exactly are taken out for NaN handling, tolerance and max abs/rel diff. The tolerance
rule is numpy.isclose's: ``|a - b| <= atol + rtol * |b|``; NaN equals NaN; a null on one side only is a
*null mismatch*, which is always a difference. ``ColumnDiff.differing`` counts the cells that differ
beyond tolerance, null mismatches included.

With ``keys`` the rows are matched on the key columns instead of by position: the key columns of both
sides plus one row id per side are held in memory (the only part that grows with the row count; about
the size of the key columns), rows present on one side only are reported, and side b is read by row
group on demand for the rows that a batch of side a needs (the last two row groups are kept), so a b in
the same order as a is read about once; a shuffled b is read once per batch of a in the worst case. A
keyed diff reads b once more for its stats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from envsnap.diff.model import ColumnDiff, SchemaChange, StatsShift, TableDiff
from envsnap.diff.stats_shift import ColumnSketch, column_kind, sample_positions, shift

__all__ = ["BATCH_ROWS", "Source", "diff_parquet", "jsonable", "schema_changes"]

BATCH_ROWS = 1 << 16
ROW_ID = "__envsnap_row"
#: Decode the next batch of each side in a thread while this one is compared (see _prefetched).
PREFETCH = True

Source = str | os.PathLike[str] | BinaryIO


def jsonable(value: Any) -> Any:
    """A cell value as JSON: ISO times, hex bytes, 'nan'/'inf' strings, str for the rest."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _Column:
    """The running compare of one common column."""

    def __init__(self, name: str, type_a: Any, type_b: Any) -> None:
        import pyarrow as pa

        self.name = name
        self.cast: Any = None  # the type both sides are cast to before comparing, when they differ
        self.numeric = False
        self.incomparable: str | None = None
        if type_a != type_b:
            if _is_number(type_a) and _is_number(type_b):
                self.cast = pa.float64()
            else:
                self.cast = type_a
        value_type = self.cast or type_a
        if pa.types.is_dictionary(value_type):
            self.cast = value_type = value_type.value_type
        self.numeric = _is_number(value_type)
        self.floating = bool(pa.types.is_floating(value_type)) or self.cast == pa.float64()
        self.nested = bool(pa.types.is_nested(value_type))
        self.inexact = 0
        self.beyond = 0
        self.null_mismatches = 0
        self.max_abs: float | None = None
        self.max_rel: float | None = None

    def compare(self, a: Any, b: Any, rtol: float, atol: float) -> Any:
        """Compare two aligned arrays; return the local indices of the cells that differ (numpy array)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.incomparable:
            return np.empty(0, dtype="int64")
        if self.cast is not None:
            try:
                a = a.cast(self.cast) if a.type != self.cast else a
                b = b.cast(self.cast) if b.type != self.cast else b
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                self.incomparable = f"cannot compare {a.type} with {b.type}: {exc}"
                return np.empty(0, dtype="int64")
        found: list[Any] = []
        if a.null_count or b.null_count:
            mismatch = pc.xor(a.is_null(), b.is_null())
            count = pc.sum(mismatch).as_py() or 0
            if count:
                self.null_mismatches += count
                self.beyond += count
                found.append(pc.indices_nonzero(mismatch).to_numpy().astype("int64"))
        if self.nested:
            idx = np.array(
                [
                    i
                    for i, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist(), strict=True))
                    if x != y and x is not None and y is not None
                ],
                dtype="int64",
            )
            self.inexact += len(idx)
            self.beyond += len(idx)
            found.append(idx)
            return np.concatenate(found)
        differs = pc.not_equal(a, b)
        count = pc.sum(differs).as_py() or 0
        if count:
            idx = pc.indices_nonzero(pc.fill_null(differs, False))
            found.append(self._inexact(a.take(idx), b.take(idx), idx.to_numpy().astype("int64"), rtol, atol))
        return np.concatenate(found) if found else np.empty(0, dtype="int64")

    def _inexact(self, a: Any, b: Any, idx: Any, rtol: float, atol: float) -> Any:
        """The cells that are not exactly equal: drop NaN==NaN, apply the tolerance, track max diffs."""
        import numpy as np
        import pyarrow as pa

        if not self.numeric:
            self.inexact += len(idx)
            self.beyond += len(idx)
            return idx
        x = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        y = np.asarray(b.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        real = ~(np.isnan(x) & np.isnan(y))
        x, y, idx = x[real], y[real], idx[real]
        if not len(idx):
            return idx
        self.inexact += len(idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.abs(x - y)
            rel = diff / np.abs(y)
            within = diff <= atol + rtol * np.abs(y)
        finite = diff[~np.isnan(diff)]
        if len(finite):
            self.max_abs = max(self.max_abs or 0.0, float(finite.max()))
        rel = rel[~np.isnan(rel)]
        if len(rel):
            self.max_rel = max(self.max_rel or 0.0, float(rel.max()))
        self.beyond += int((~within).sum())
        return idx[~within]

    def result(self) -> ColumnDiff:
        if self.incomparable:
            status = "incomparable"
        elif self.beyond:
            status = "different"
        elif self.inexact:
            status = "within_tolerance"
        else:
            status = "equal"
        return ColumnDiff(
            column=self.name,
            status=status,
            differing=self.beyond,
            null_mismatches=self.null_mismatches,
            max_abs_diff=_finite(self.max_abs),
            max_rel_diff=_finite(self.max_rel),
        )


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _is_number(type_: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_))


def schema_changes(a: Any, b: Any) -> list[SchemaChange]:
    """Columns added, removed, moved (order among the common columns), retyped, nullability changed."""
    changes: list[SchemaChange] = []
    names_a, names_b = list(a.names), list(b.names)
    for name in names_a:
        if name not in names_b:
            changes.append(SchemaChange(name, "removed", before=str(a.field(name).type)))
    for name in names_b:
        if name not in names_a:
            changes.append(SchemaChange(name, "added", after=str(b.field(name).type)))
    order_a = [n for n in names_a if n in names_b]
    order_b = [n for n in names_b if n in names_a]
    for name in order_a:
        if order_a.index(name) != order_b.index(name):
            changes.append(SchemaChange(name, "moved", before=names_a.index(name), after=names_b.index(name)))
        fa, fb = a.field(name), b.field(name)
        if fa.type != fb.type:
            changes.append(SchemaChange(name, "retyped", before=str(fa.type), after=str(fb.type)))
        if fa.nullable != fb.nullable:
            changes.append(SchemaChange(name, "nullability", before=fa.nullable, after=fb.nullable))
    return changes


class _Side:
    """One input: the parquet file, its sketches and sample positions."""

    def __init__(self, source: Source) -> None:
        import pyarrow.parquet as pq

        from envsnap.core.arrow import guard

        guard()  # snapshot parquet is untrusted: no pickled extension types
        self.file = pq.ParquetFile(source, pre_buffer=False)
        self.rows = self.file.metadata.num_rows
        self.schema = self.file.schema_arrow
        self.columns: list[str] = []

    def track(self, columns: Sequence[str]) -> None:
        """Keep sketches of ``columns`` (the common ones)."""
        self.columns = list(columns)
        self.kinds = {c: column_kind(self.schema.field(c).type) for c in self.columns}
        self.sketches = {c: ColumnSketch(self.kinds[c]) for c in self.columns}
        self.positions = sample_positions(self.rows)

    def batches(self, columns: Sequence[str]) -> Iterator[tuple[int, Any]]:
        """(offset, batch) over the file, each batch fed to the sketches as it passes."""
        offset = 0
        stream = self.file.iter_batches(batch_size=BATCH_ROWS, columns=list(columns), use_threads=True)
        for batch in _prefetched(stream) if PREFETCH else stream:
            self.observe(batch, offset)
            yield offset, batch
            offset += batch.num_rows

    def observe(self, batch: Any, offset: int) -> None:
        import numpy as np
        import pyarrow as pa

        lo, hi = np.searchsorted(self.positions, [offset, offset + batch.num_rows])
        sampled = batch.take(pa.array(self.positions[lo:hi] - offset))
        for column in self.columns:
            self.sketches[column].update(batch.column(column), sampled.column(column))

    def drain(self, columns: Sequence[str]) -> None:
        for _ in self.batches(columns):
            pass


def _prefetched(stream: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """``stream`` decoded ``depth`` batches ahead in a thread: pyarrow releases the GIL while decoding,
    so the next batches decode on the other core while this one is compared and sketched."""
    import queue
    import threading

    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Put ``item`` unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in stream:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer(exc)

    worker = threading.Thread(target=produce, name="envsnap-parquet-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _aligned(a: _Side, b: _Side, columns: Sequence[str]) -> Iterator[tuple[int, Any, Any]]:
    """(position, batch_a, batch_b) of equal length, slicing whichever side's batch is longer."""
    it_a, it_b = a.batches(columns), b.batches(columns)
    buf_a: Any = None
    buf_b: Any = None
    pos = 0
    while True:
        if buf_a is None or buf_a.num_rows == 0:
            buf_a = next((batch for _, batch in it_a), None)
        if buf_b is None or buf_b.num_rows == 0:
            buf_b = next((batch for _, batch in it_b), None)
        if buf_a is None or buf_b is None:
            break
        n = min(buf_a.num_rows, buf_b.num_rows)
        yield pos, buf_a.slice(0, n), buf_b.slice(0, n)
        buf_a, buf_b = buf_a.slice(n), buf_b.slice(n)
        pos += n
    for _ in it_a:  # the longer side's tail still feeds its stats
        pass
    for _ in it_b:
        pass


def _row(batch: Any, index: int, columns: Sequence[str]) -> dict[str, Any]:
    return {c: jsonable(batch.column(c)[index].as_py()) for c in columns}


def diff_parquet(
    a: Source,
    b: Source,
    *,
    name: str,
    rtol: float = 0.0,
    atol: float = 0.0,
    keys: Sequence[str] = (),
    max_rows: int = 10,
) -> TableDiff:
    """Compare two parquet sources (paths or seekable binary files) without loading either whole.

    Reports schema changes, row counts, each common column's status (equal | within_tolerance |
    different | incomparable) with counts and max abs/rel diffs, the first ``max_rows`` differing rows
    (by position, or by ``keys``; each with ``differing``, the columns that differ in it beyond tolerance)
    and the stats shift of every common column.
    """
    side_a, side_b = _Side(a), _Side(b)
    schema_a, schema_b = side_a.schema, side_b.schema
    common = [n for n in schema_a.names if n in schema_b.names]
    side_a.track(common)
    side_b.track(common)
    changes = schema_changes(schema_a, schema_b)
    missing = [k for k in keys if k not in common]
    if missing:
        return TableDiff(
            name=name,
            status="incomparable",
            rows=(side_a.rows, side_b.rows),
            schema=tuple(changes),
            matched_by="key",
            note=f"key column(s) {', '.join(missing)} not on both sides",
        )
    compared = [c for c in common if c not in keys]
    cols = {c: _Column(c, schema_a.field(c).type, schema_b.field(c).type) for c in compared}
    notes: list[str] = []
    if keys:
        samples, extra_different = _keyed(side_a, side_b, list(keys), common, cols, rtol, atol, max_rows, notes)
    else:
        samples = _positional(side_a, side_b, common, cols, rtol, atol, max_rows)
        extra_different = side_a.rows != side_b.rows
    columns = tuple(cols[c].result() for c in compared)
    # numpy sorts and Arrow counts release the GIL: the columns' shifts are computed on both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        stats: tuple[StatsShift, ...] = tuple(
            pool.map(
                lambda c: shift(c, side_a.kinds[c], side_a.sketches[c], side_b.sketches[c], schema_a.field(c).type),
                # A column whose kind changed (numbers -> text) has no distribution shift: its retype is the change.
                [c for c in common if side_a.kinds[c] == side_b.kinds[c]],
            )
        )
    for column in cols.values():
        if column.incomparable:
            notes.append(f"column {column.name}: {column.incomparable}")
    if changes or extra_different or any(c.status in ("different", "incomparable") for c in columns):
        status = "different"
    elif any(c.status == "within_tolerance" for c in columns):
        status = "within_tolerance"
    else:
        status = "equal"
    if side_a.rows != side_b.rows:
        notes.insert(0, f"row counts differ: {side_a.rows} vs {side_b.rows}")
    return TableDiff(
        name=name,
        status=status,
        rows=(side_a.rows, side_b.rows),
        schema=tuple(changes),
        columns=columns,
        stats=stats,
        sample_rows=tuple(samples),
        matched_by="key" if keys else "position",
        note="; ".join(notes) or None,
    )


def _positional(
    a: _Side, b: _Side, common: Sequence[str], cols: dict[str, _Column], rtol: float, atol: float, max_rows: int
) -> list[dict[str, Any]]:
    import numpy as np

    samples: list[dict[str, Any]] = []
    for pos, batch_a, batch_b in _aligned(a, b, common):
        found = [col.compare(batch_a.column(n), batch_b.column(n), rtol, atol) for n, col in cols.items()]
        if len(samples) < max_rows:
            rows = np.unique(np.concatenate(found)) if found else np.empty(0, dtype="int64")
            chosen = rows[: max_rows - len(samples)]
            for local, differing in zip(chosen.tolist(), _differing(chosen, list(cols), found), strict=True):
                samples.append(
                    {
                        "position": pos + local,
                        "a": _row(batch_a, local, common),
                        "b": _row(batch_b, local, common),
                        "differing": differing,
                    }
                )
    return samples


def _differing(rows: Any, names: Sequence[str], found: Sequence[Any]) -> list[list[str]]:
    """For each local row index in ``rows``, the columns (of ``names``) whose differing indices hold it."""
    import numpy as np

    hits = [np.isin(rows, idx) if len(idx) else np.zeros(len(rows), dtype=bool) for idx in found]
    return [[name for name, hit in zip(names, hits, strict=True) if hit[i]] for i in range(len(rows))]


def _key_index(side: _Side, keys: list[str], row_id: str) -> tuple[Any, int]:
    """Unique keys of one side with the first row id holding each, and how many rows repeat a key."""
    import pyarrow as pa

    table = side.file.read(columns=keys, use_threads=True)
    table = table.append_column(row_id, pa.array(range(table.num_rows), type=pa.int64()))
    grouped = table.group_by(keys, use_threads=False).aggregate([(row_id, "min"), (row_id, "count")])
    duplicates = table.num_rows - grouped.num_rows
    return grouped.rename_columns([*keys, row_id, f"{row_id}_n"]).drop_columns([f"{row_id}_n"]), duplicates


class _RowGroups:
    """Rows of side b by global position, read row group by row group; the last two are kept."""

    def __init__(self, side: _Side, columns: Sequence[str]) -> None:
        import numpy as np

        meta = side.file.metadata
        self.side = side
        self.columns = list(columns)
        self.starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self.cache: dict[int, Any] = {}

    def take(self, positions: Any) -> Any:
        """The rows at ``positions`` (numpy int64), in that order, as one table."""
        import numpy as np
        import pyarrow as pa

        order = np.argsort(positions, kind="stable")
        ordered = positions[order]
        groups = np.searchsorted(self.starts, ordered, side="right") - 1
        parts = []
        for group in np.unique(groups):
            if group not in self.cache:
                if len(self.cache) >= 2:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[int(group)] = self.side.file.read_row_group(int(group), columns=self.columns)
            local = ordered[groups == group] - self.starts[group]
            parts.append(self.cache[int(group)].take(pa.array(local)))
        table = pa.concat_tables(parts) if parts else self.side.file.schema_arrow.empty_table().select(self.columns)
        return table.take(pa.array(np.argsort(order, kind="stable")))


def _keyed(
    a: _Side,
    b: _Side,
    keys: list[str],
    common: Sequence[str],
    cols: dict[str, _Column],
    rtol: float,
    atol: float,
    max_rows: int,
    notes: list[str],
) -> tuple[list[dict[str, Any]], bool]:
    """Match rows on ``keys``; compare matched rows batch by batch of a; report rows on one side only."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    index_a, dup_a = _key_index(a, keys, "__a")
    index_b, dup_b = _key_index(b, keys, "__b")
    for side, dup in (("a", dup_a), ("b", dup_b)):
        if dup:
            notes.append(f"{dup} rows of {side} repeat a key; the first row of each key is compared")
    joined = index_a.join(index_b, keys=keys, join_type="full outer", use_threads=False)
    ia = joined.column("__a")
    ib = joined.column("__b")
    matched = joined.filter(pc.and_(ia.is_valid(), ib.is_valid()))
    only_a = joined.filter(ib.is_null()).sort_by("__a")
    only_b = joined.filter(ia.is_null()).sort_by("__b")
    pairs = matched.sort_by("__a")
    pos_a = pairs.column("__a").to_numpy()
    pos_b = pairs.column("__b").to_numpy()
    first_only_a = only_a.column("__a").to_numpy()[:max_rows]
    del joined, index_a, index_b, matched
    rows_b = _RowGroups(b, common)
    samples: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for offset, batch_a in a.batches(common):
        lo, hi = np.searchsorted(pos_a, [offset, offset + batch_a.num_rows])
        for p in first_only_a[(first_only_a >= offset) & (first_only_a < offset + batch_a.num_rows)].tolist():
            row = _row(batch_a, p - offset, common)
            extra.append({"key": {k: row[k] for k in keys}, "a": row, "b": None, "differing": []})
        if hi == lo:
            continue
        sel_a = batch_a.take(pa.array(pos_a[lo:hi] - offset))
        sel_b = rows_b.take(pos_b[lo:hi])
        found = [col.compare(sel_a.column(n), sel_b.column(n), rtol, atol) for n, col in cols.items()]
        if len(samples) < max_rows and found:
            chosen = np.unique(np.concatenate(found))[: max_rows - len(samples)]
            for local, differing in zip(chosen.tolist(), _differing(chosen, list(cols), found), strict=True):
                row_a = _row(sel_a, local, common)
                samples.append(
                    {
                        "key": {k: row_a[k] for k in keys},
                        "a": row_a,
                        "b": _row(sel_b, local, common),
                        "differing": differing,
                    }
                )
    b.drain(common)
    if len(only_b):
        first_b = rows_b.take(only_b.column("__b").to_numpy()[:max_rows])
        for i in range(first_b.num_rows):
            row = _row(first_b, i, common)
            extra.append({"key": {k: row[k] for k in keys}, "a": None, "b": row, "differing": []})
    if len(only_a) or len(only_b):
        notes.append(f"{len(only_a)} rows only in a, {len(only_b)} rows only in b (matched on {', '.join(keys)})")
    return samples + extra, bool(len(only_a) or len(only_b) or dup_a or dup_b)
