"""Sampling a CSV file: streamed in blocks with pyarrow's CSV reader, never loaded whole.

Local files are read with the OS; an ``s3://`` object is streamed (8 MiB range requests, decompressed on
the fly), never downloaded whole. ``rows``: one pass, reservoir sampling (Li's Algorithm L: k uniform rows,
O(k) memory, few random draws).
``fraction``: a first pass counts the rows, then the drawn row ids are taken in a second pass. Column types
are what pyarrow infers from the first block; a later block that does not fit them is an InputError.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from envsnap.capture.base import SampleOptions
from envsnap.capture.sample_access import FileEntry, LocalSource, Source
from envsnap.capture.sample_files import (
    Drawn,
    Progress,
    check_columns,
    conform,
    draw,
    fingerprint,
    target_rows,
)
from envsnap.core.arrow import int64_array
from envsnap.errors import InputError

__all__ = ["csv_kind", "sample_csv"]

CSV_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
_CSV_BLOCK = 8 << 20


def csv_kind(path: str) -> tuple[str, str | None] | None:
    """(delimiter, compression codec) for a CSV path, None when the name is not a CSV's."""
    lower = path.lower()
    codec = None
    for suffix, name in CSV_CODECS.items():
        if lower.endswith(suffix):
            codec = name
            lower = lower[: -len(suffix)]
            break
    if lower.endswith(".tsv"):
        return "\t", codec
    if lower.endswith(".csv"):
        return ",", codec
    return None


class _CsvStream:
    """Opens the CSV again for each pass; reports the raw bytes consumed for progress."""

    def __init__(self, name: str, source: Source, entry: FileEntry, delimiter: str, codec: str | None) -> None:
        self.name, self.path, self.delimiter, self.codec = name, source.location, delimiter, codec
        self.source, self.entry = source, entry
        self.size = entry.size

    def _open(self, raw: Any, columns: Sequence[str] | None) -> Any:
        import pyarrow.csv as pacsv

        stream: Any = pa.PythonFile(raw, mode="r")
        if self.codec is not None:
            stream = pa.CompressedInputStream(stream, self.codec)
        return pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter),
            convert_options=pacsv.ConvertOptions(include_columns=list(columns) if columns is not None else None),
        )

    def batches(self, columns: Sequence[str] | None, progress: Progress | None = None) -> Iterable[pa.RecordBatch]:
        """The record batches of one pass over the file (only ``columns`` converted, when given)."""
        try:
            with self.source.stream(self.entry) as raw:
                for batch in self._open(raw, columns):
                    yield batch
                    if progress is not None:
                        progress(min(raw.tell(), self.size), self.size)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(self.name, self.path, f"cannot read the CSV: {exc}") from None

    def schema(self) -> pa.Schema:
        """The columns and the types pyarrow infers from the first block (the block size of the real pass)."""
        try:
            with self.source.stream(self.entry) as raw:
                schema: pa.Schema = self._open(raw, None).schema
                return schema
        except (pa.ArrowException, OSError) as exc:
            raise InputError(self.name, self.path, f"cannot read the CSV: {exc}") from None


def _reservoir(
    batches: Iterable[pa.RecordBatch], k: int, rng: random.Random, schema: pa.Schema
) -> tuple[pa.Table, int]:
    """Li's Algorithm L over a stream of batches: k uniform rows in one pass; returns (rows, rows seen)."""
    filled: list[pa.Table] = []
    held = 0
    reservoir: pa.Table | None = None
    ids: list[int] = []
    seen = 0

    def uniform() -> float:
        u = rng.random()
        while u == 0.0:
            u = rng.random()
        return u

    w = math.exp(math.log(uniform()) / k) if k else 0.0
    upcoming = k - 1 + math.floor(math.log(uniform()) / math.log1p(-w)) + 1 if k else -1
    for batch in batches:
        table = pa.Table.from_batches([batch])
        start, end = seen, seen + batch.num_rows
        seen = end
        if k == 0:
            continue
        if held < k:
            n = min(k - held, batch.num_rows)
            filled.append(table.slice(0, n))
            ids.extend(range(start, start + n))
            held += n
            if held == k:
                reservoir = pa.concat_tables(filled)
                filled = []
        replace: dict[int, int] = {}
        while upcoming < end:
            replace[rng.randrange(k)] = upcoming - start  # a later row for the same slot wins
            w *= math.exp(math.log(uniform()) / k)
            upcoming += math.floor(math.log(uniform()) / math.log1p(-w)) + 1
        if replace and reservoir is not None:
            incoming = table.take(int64_array(list(replace.values())))
            index = list(range(k))
            for j, (slot, local) in enumerate(replace.items()):
                index[slot] = k + j
                ids[slot] = start + local
            reservoir = pa.concat_tables([reservoir, incoming]).take(int64_array(index))
    result = reservoir if reservoir is not None else (pa.concat_tables(filled) if filled else schema.empty_table())
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return result.take(int64_array(order)), seen


def sample_csv(
    name: str,
    path: str,
    kind: tuple[str, str | None],
    options: SampleOptions,
    rng: random.Random,
    progress: Progress | None,
    source: Source | None = None,
    entry: FileEntry | None = None,
) -> Drawn:
    """Sample a CSV file or ``s3://`` object (``kind``: delimiter and codec, from :func:`csv_kind`)."""
    source = source if source is not None else LocalSource(name, path)
    entry = entry if entry is not None else source.entry()
    if entry is None:
        raise InputError(name, path, "is a directory, not a CSV file")
    stream = _CsvStream(name, source, entry, *kind)
    schema = stream.schema()
    wanted = check_columns(name, path, schema.names, options)
    target = pa.schema([schema.field(c) for c in wanted])
    columns = wanted if options.columns else None
    note = "a CSV has no row groups: sampled uniformly" if options.method == "row-groups" else None
    if options.fraction is None:
        k = options.rows if options.rows is not None else 1000
        table, total = _reservoir(stream.batches(columns, progress), k, rng, target)
        algorithm = "reservoir"
    else:
        total = sum(b.num_rows for b in stream.batches(wanted[:1]))
        ids = draw(rng, total, target_rows(options, total))
        pieces = []
        seen = 0
        for batch in stream.batches(columns, progress):
            lo = bisect.bisect_left(ids, seen)
            hi = bisect.bisect_left(ids, seen + batch.num_rows)
            if hi > lo:
                pieces.append(pa.Table.from_batches([batch]).take(int64_array([i - seen for i in ids[lo:hi]])))
            seen += batch.num_rows
        table = pa.concat_tables(pieces) if pieces else target.empty_table()
        algorithm = "count-then-row-ids"
    facts = {"path": entry.relpath, "size": entry.size, "modified": entry.modified}
    source_facts = {
        "kind": "csv",
        "path": path,
        "size": entry.size,
        "rows": total,
        "files": 1,
        "row_groups": None,
        "partitioning": [],
    }
    table = table.combine_chunks()
    table = conform(
        dict(zip(table.column_names, table.columns, strict=True)),
        table.num_rows,
        target,
        name,
        path,
        entry.relpath,
    )
    return Drawn(table, schema, source_facts, fingerprint([facts], ("path", "size", "modified")), algorithm, note=note)
