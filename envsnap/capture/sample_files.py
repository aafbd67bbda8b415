"""Sampling parquet files and datasets (row groups streamed, pages skipped), and what all sources share.

See :mod:`envsnap.capture.sample` for the algorithms and the guarantees; this module does the reading.
Only footers are read before the row ids are drawn; then each row group that holds a drawn row is read
(only its pages that hold drawn rows, for flat columns) and reduced to those rows at once. The drawing,
column checks and record helpers here serve the CSV and in-memory sources too.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import random
import re
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.capture.base import SampleOptions
from envsnap.capture.sample_access import FileEntry, LocalSource, Source, iso_time
from envsnap.core.arrow import int64_array, string_array
from envsnap.errors import InputError

__all__ = [
    "Drawn",
    "Progress",
    "check_columns",
    "conform",
    "draw",
    "fingerprint",
    "iso_time",
    "sample_parquet",
    "split",
    "target_rows",
]

Progress = Callable[[int, int], None]

MIN_ROW_GROUPS = 2
FILE_LIST_LIMIT = 100
_WINDOW = 2  # row groups in flight ahead of the one being finished (memory: a few groups' pages)


# -- drawing rows ----------------------------------------------------------------------------------------


def draw(rng: random.Random, population: int, k: int) -> list[int]:
    """``k`` distinct ids of ``range(population)``, sorted; memory O(k), never O(population) beyond 2k."""
    if k >= population:
        return list(range(population))
    if k * 2 > population:
        excluded = _draw_set(rng, population, population - k)
        return [i for i in range(population) if i not in excluded]
    return sorted(_draw_set(rng, population, k))


def _draw_set(rng: random.Random, population: int, k: int) -> set[int]:
    # Rejection on a set: at most half the ids are drawn, so each draw succeeds with probability >= 1/2.
    # (random.sample would materialise range(population) when k is a sizeable share of it.)
    drawn: set[int] = set()
    while len(drawn) < k:
        drawn.add(rng.randrange(population))
    return drawn


def target_rows(options: SampleOptions, total: int) -> int:
    """How many rows ``options`` ask of a source of ``total`` rows (``fraction`` rounds half up)."""
    if options.fraction is not None:
        return min(total, math.floor(options.fraction * total + 0.5))
    return min(total, options.rows if options.rows is not None else 1000)


def split(ids: Sequence[int], starts: Sequence[int]) -> dict[int, list[int]]:
    """Sorted global ids -> {unit index: local ids}, for units starting at ``starts``."""
    out: dict[int, list[int]] = {}
    for i in ids:
        unit = bisect.bisect_right(starts, i) - 1
        out.setdefault(unit, []).append(i - starts[unit])
    return out


# -- sources ---------------------------------------------------------------------------------------------


@dataclass
class _Part:
    """One parquet file of a source, known from its footer alone."""

    entry: FileEntry
    footer: bytes
    metadata: pq.FileMetaData
    partition: dict[str, Any] = field(default_factory=dict)
    arrow_names: list[str] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        return self.entry.relpath

    @property
    def size(self) -> int:
        return self.entry.size


@dataclass
class Drawn:
    """What a sampling routine hands back to :func:`sample_input`."""

    table: pa.Table
    schema: pa.Schema
    source: dict[str, Any]
    fingerprint: dict[str, Any] | None
    algorithm: str
    row_groups_read: int | None = None
    note: str | None = None


def _read_footer(name: str, source: Source, entry: FileEntry) -> _Part:
    """Read a parquet file's footer (with its first 4 bytes, the only bytes read before sampling)."""
    path, relpath, size = source.location, entry.relpath, entry.size
    fh = source.open(entry)
    try:
        head = fh.read_at(0, 4)
        if size < 12:
            raise InputError(name, path, f"{relpath} is too short to be a parquet file ({size} bytes)")
        length, magic = struct.unpack("<I4s", fh.read_at(size - 8, 8))
        if magic == b"PARE" or head == b"PARE":
            raise InputError(name, path, f"{relpath} is an encrypted parquet file; encryption is not supported")
        if head != b"PAR1" or magic != b"PAR1":
            problem = "does not start with" if head != b"PAR1" else "does not end with"
            raise InputError(
                name, path, f"{relpath} is not a parquet file or is truncated (it {problem} the PAR1 magic bytes)"
            )
        if length > size - 12:
            raise InputError(name, path, f"corrupt parquet file {relpath}: footer length {length} is too large")
        footer = fh.read_at(size - 8 - length, length)
    except (OSError, struct.error) as exc:
        raise InputError(name, path, f"cannot read {relpath}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        fh.close()
    blob = b"PAR1" + footer + struct.pack("<I", length) + b"PAR1"
    try:
        metadata = pq.read_metadata(pa.BufferReader(blob))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(name, path, f"corrupt parquet file {relpath}: {exc}") from None
    return _Part(entry, footer, metadata)


def _hive_keys(relative_dir: str) -> dict[str, str | None]:
    """``year=2024/country=US`` -> {"year": "2024", "country": "US"}; other path segments are not keys."""
    keys: dict[str, str | None] = {}
    if relative_dir in ("", "."):
        return keys
    for segment in relative_dir.split("/"):
        key, sep, value = segment.partition("=")
        if sep and key:
            keys[unquote(key)] = None if value in ("", "__HIVE_DEFAULT_PARTITION__") else unquote(value)
    return keys


def _partition_type(values: Iterable[str | None]) -> pa.DataType:
    """int32 when every value is an int32 (as pyarrow's hive discovery infers), int64, else string."""
    present = [v for v in values if v is not None]
    if present and all(re.fullmatch(r"-?[0-9]+", v) for v in present):
        return pa.int32() if all(-(2**31) <= int(v) < 2**31 for v in present) else pa.int64()
    return pa.string()


def _constant(value: Any, rows: int, kind: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(rows, kind)
    if pa.types.is_integer(kind):
        return int64_array([value] * rows).cast(kind)
    return string_array([value] * rows)


def _parquet_parts(name: str, source: Source) -> tuple[list[_Part], pa.Schema, bool]:
    """The files of a parquet file or directory (or prefix), sorted, and the hive partition schema (may be
    empty), and whether the location is one file.

    A directory is walked like pyarrow's dataset discovery (names starting with "." or "_" are skipped:
    ``_SUCCESS``, ``.crc`` files), without importing pyarrow.dataset (which imports pandas).
    """
    path = source.location
    single = source.entry()
    if single is not None:
        return [_read_footer(name, source, single)], pa.schema([]), True
    entries = source.list()
    if not entries:
        raise InputError(
            name, path, "the directory holds no parquet files", hint="give a parquet file, a dataset directory or a CSV"
        )
    if source.remote and len(entries) > 1:  # a request's latency each: read the footers side by side
        with ThreadPoolExecutor(8, thread_name_prefix="envsnap-footers") as pool:
            parts = list(pool.map(lambda e: _read_footer(name, source, e), entries))
    else:
        parts = [_read_footer(name, source, e) for e in entries]
    raw: dict[str, list[str | None]] = {}
    for part in parts:
        keys = _hive_keys(part.relpath.rpartition("/")[0])
        part.partition = dict(keys)
        for key, value in keys.items():
            raw.setdefault(key, []).append(value)
    fields = [pa.field(key, _partition_type(values)) for key, values in raw.items()]
    for part in parts:
        typed: dict[str, Any] = {}
        for f in fields:
            value = part.partition.get(f.name)
            typed[f.name] = int(value) if value is not None and pa.types.is_integer(f.type) else value
        part.partition = typed
    parts.sort(key=lambda p: p.relpath)
    return parts, pa.schema(fields), False


def _parquet_schema(name: str, path: str, parts: list[_Part], partitions: pa.Schema) -> pa.Schema:
    try:
        schemas = [p.metadata.schema.to_arrow_schema() for p in parts]
        for part, part_schema in zip(parts, schemas, strict=True):
            part.arrow_names = part_schema.names
        schema = schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(name, path, f"the files have incompatible schemas: {exc}") from None
    for f in partitions:
        if f.name not in schema.names:
            schema = schema.append(f)
    return schema


def check_columns(name: str, path: str, names: Sequence[str], options: SampleOptions) -> list[str]:
    """The columns to sample, in order; an unknown ``columns`` or ``mask`` entry is an InputError."""
    known = set(names)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    for option, wanted in (("--columns", options.columns or ()), ("--mask", options.mask)):
        for column in wanted:
            if column not in known:
                raise InputError(name, path, f"no column {column!r} ({option}); its columns are: {shown}")
    return list(dict.fromkeys(options.columns)) if options.columns else list(names)


def conform(arrays: Mapping[str, Any], rows: int, schema: pa.Schema, name: str, path: str, where: str) -> pa.Table:
    """A table of exactly ``schema``'s columns and types from ``arrays`` (missing columns are null)."""
    columns = []
    for f in schema:
        column = arrays.get(f.name)
        if column is None:
            column = pa.nulls(rows, f.type)
        elif column.type != f.type:
            try:
                column = column.cast(f.type)
            except (pa.ArrowException, ValueError) as exc:
                raise InputError(name, path, f"column {f.name!r} of {where} does not fit {f.type}: {exc}") from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def fingerprint(entries: list[dict[str, Any]], digest_keys: Sequence[str]) -> dict[str, Any]:
    """A cheap identity of the source files: sizes, footers (or mtimes), no data hashed."""
    basis = json.dumps([[e[k] for k in digest_keys] for e in entries], separators=(",", ":")).encode()
    return {
        "digest": "sha256:" + hashlib.sha256(basis).hexdigest(),
        "basis": list(digest_keys),
        "modified": max((e["modified"] for e in entries if e["modified"]), default=None),
        "files": entries[:FILE_LIST_LIMIT],
        "files_truncated": len(entries) > FILE_LIST_LIMIT,
    }


def _choose_row_groups(rng: random.Random, rows: Sequence[int], k: int) -> dict[int, list[int]]:
    """``method="row-groups"``: random whole row groups, then ``k`` rows uniformly among their rows."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    chosen: list[int] = []
    pooled = 0
    for g in order:
        if pooled >= k and len(chosen) >= min(len(rows), MIN_ROW_GROUPS):
            break
        chosen.append(g)
        pooled += rows[g]
    chosen.sort()
    starts = []
    acc = 0
    for g in chosen:
        starts.append(acc)
        acc += rows[g]
    return {chosen[unit]: ids for unit, ids in split(draw(rng, acc, k), starts).items()}


def sample_parquet(
    name: str,
    path: str,
    options: SampleOptions,
    rng: random.Random,
    progress: Progress | None,
    source: Source | None = None,
) -> Drawn:
    """Sample a parquet file or dataset directory (or ``s3://`` object or prefix): draw from the footers,
    then stream the row groups."""
    from envsnap.capture.parquet_pages import SparseReader

    source = source if source is not None else LocalSource(name, path)
    parts, partitions, one_file = _parquet_parts(name, source)
    schema = _parquet_schema(name, path, parts, partitions)
    wanted = check_columns(name, path, schema.names, options)
    target = pa.schema([schema.field(c) for c in wanted], metadata=schema.metadata)
    groups = [(p, g) for p, part in enumerate(parts) for g in range(part.metadata.num_row_groups)]
    rows = [parts[p].metadata.row_group(g).num_rows for p, g in groups]
    starts = []
    total = 0
    for n in rows:
        starts.append(total)
        total += n
    k = target_rows(options, total)
    if options.method == "row-groups":
        selected = _choose_row_groups(rng, rows, k)
    else:
        selected = split(draw(rng, total, k), starts)
    work = sorted(selected)

    def file_columns(part: _Part) -> list[str]:
        return [c for c in wanted if c in part.arrow_names]

    def chunk_bytes(g: int) -> int:
        p, rg = groups[g]
        meta = parts[p].metadata.row_group(rg)
        keep = set(file_columns(parts[p]))
        return sum(
            meta.column(i).total_compressed_size
            for i in range(meta.num_columns)
            if meta.column(i).path_in_schema.split(".")[0] in keep
        )

    sizes = [chunk_bytes(g) for g in work]
    total_bytes = sum(sizes)
    if progress is not None:
        progress(0, total_bytes)
    pieces: list[pa.Table] = []
    readers: dict[int, SparseReader] = {}
    left = Counter(groups[g][0] for g in work)  # row groups still to finish, per file
    pending: deque[tuple[int, int, Callable[[], pa.Table] | None]] = deque()
    done = 0

    def finish() -> None:
        nonlocal done
        g, size, waiter = pending.popleft()
        p, rg = groups[g]
        part, ids = parts[p], selected[g]
        arrays: dict[str, Any] = {}
        if waiter is not None:
            try:
                piece = waiter()
            except (pa.ArrowException, OSError) as exc:
                raise InputError(name, path, f"corrupt parquet file {part.relpath} (row group {rg}): {exc}") from None
            arrays.update(zip(piece.column_names, piece.columns, strict=True))
        for column in wanted:
            if column not in arrays and column in partitions.names:
                arrays[column] = _constant(part.partition.get(column), len(ids), target.field(column).type)
        pieces.append(conform(arrays, len(ids), target, name, path, part.relpath))
        left[p] -= 1
        if not left[p] and p in readers:
            readers.pop(p).close()
        done += size
        if progress is not None:
            progress(done, total_bytes)

    workers = min(8, max(2, 2 * (os.cpu_count() or 1)))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="envsnap-sample") as pool:
            for g, size in zip(work, sizes, strict=True):
                p, rg = groups[g]
                part = parts[p]
                columns = file_columns(part)
                waiter = None
                if columns:  # else only partition keys are wanted: nothing to read
                    try:
                        if p not in readers:
                            opened = source.open(part.entry)
                            try:
                                handle = pq.ParquetFile(opened.arrow, metadata=part.metadata)
                            except BaseException:
                                opened.close()
                                raise
                            readers[p] = SparseReader(opened, part.footer, handle, remote=source.remote)
                            readers[p].plan([(groups[w][1], columns) for w in work if groups[w][0] == p])
                        waiter = readers[p].submit(rg, columns, selected[g], pool)
                    except (pa.ArrowException, OSError) as exc:
                        raise InputError(name, path, f"cannot read {part.relpath}: {exc}") from None
                pending.append((g, size, waiter))
                while len(pending) > _WINDOW:
                    finish()
            while pending:
                finish()
    finally:
        for reader in readers.values():
            reader.close()
    table = pa.concat_tables(pieces).combine_chunks() if pieces else target.empty_table()
    entries = [
        {
            "path": part.relpath,
            "size": part.size,
            "modified": part.entry.modified,
            "footer_sha256": hashlib.sha256(part.footer).hexdigest(),
        }
        for part in parts
    ]
    facts = {
        "kind": "parquet" if one_file else "parquet-dataset",
        "path": path,
        "size": sum(part.size for part in parts),
        "rows": total,
        "files": len(parts),
        "row_groups": len(groups),
        "partitioning": partitions.names,
    }
    identity = fingerprint(entries, ("path", "size", "footer_sha256"))
    algorithm = "row-groups" if options.method == "row-groups" else "row-ids"
    return Drawn(table, schema, facts, identity, algorithm, row_groups_read=len(work))
