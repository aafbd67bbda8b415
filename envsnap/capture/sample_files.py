"""Sampling from files: parquet files and datasets (row groups streamed, pages skipped) and CSV.

See :mod:`envsnap.capture.sample` for the algorithms and the guarantees; this module does the reading.
Only footers are read before the row ids are drawn; then each row group that holds a drawn row is read
(only its pages that hold drawn rows, for flat columns) and reduced to those rows at once.
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
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.capture.base import SampleOptions
from envsnap.capture.parquet_pages import int64_array, string_array
from envsnap.errors import InputError

Progress = Callable[[int, int], None]

MIN_ROW_GROUPS = 2
CSV_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
FILE_LIST_LIMIT = 100
_CSV_BLOCK = 8 << 20
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

    path: str
    relpath: str
    size: int
    mtime_ns: int
    footer: bytes
    metadata: pq.FileMetaData
    partition: dict[str, Any] = field(default_factory=dict)
    arrow_names: list[str] = field(default_factory=list)


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


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_footer(name: str, path: str, relpath: str) -> _Part:
    """Stat a parquet file and read its footer (the only bytes read before sampling)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(4)
            if st.st_size < 12:
                raise InputError(name, path, f"{relpath} is too short to be a parquet file ({st.st_size} bytes)")
            fh.seek(-8, os.SEEK_END)
            length, magic = struct.unpack("<I4s", fh.read(8))
            if magic == b"PARE" or head == b"PARE":
                raise InputError(name, path, f"{relpath} is an encrypted parquet file; encryption is not supported")
            if head != b"PAR1" or magic != b"PAR1":
                problem = "does not start with" if head != b"PAR1" else "does not end with"
                raise InputError(
                    name, path, f"{relpath} is not a parquet file or is truncated (it {problem} the PAR1 magic bytes)"
                )
            if length > st.st_size - 12:
                raise InputError(name, path, f"corrupt parquet file {relpath}: footer length {length} is too large")
            fh.seek(-8 - length, os.SEEK_END)
            footer = fh.read(length)
    except OSError as exc:
        raise InputError(name, path, f"cannot read {relpath}: {exc.strerror or exc}") from None
    blob = b"PAR1" + footer + struct.pack("<I", length) + b"PAR1"
    try:
        metadata = pq.read_metadata(pa.BufferReader(blob))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(name, path, f"corrupt parquet file {relpath}: {exc}") from None
    return _Part(path, relpath, st.st_size, st.st_mtime_ns, footer, metadata)


def _hive_keys(relative_dir: str) -> dict[str, str | None]:
    """``year=2024/country=US`` -> {"year": "2024", "country": "US"}; other path segments are not keys."""
    keys: dict[str, str | None] = {}
    if relative_dir in ("", "."):
        return keys
    for segment in relative_dir.split(os.sep):
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


def _parquet_parts(name: str, path: str) -> tuple[list[_Part], pa.Schema]:
    """The files of a parquet file or directory, sorted, and the hive partition schema (may be empty).

    A directory is walked like pyarrow's dataset discovery (names starting with "." or "_" are skipped:
    ``_SUCCESS``, ``.crc`` files), without importing pyarrow.dataset (which imports pandas).
    """
    if os.path.isfile(path):
        return [_read_footer(name, path, os.path.basename(path))], pa.schema([])
    parts: list[_Part] = []
    raw: dict[str, list[str | None]] = {}
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        keys = _hive_keys(os.path.relpath(folder, path))
        for file_name in sorted(files):
            if file_name.startswith((".", "_")):
                continue
            full = os.path.join(folder, file_name)
            part = _read_footer(name, full, os.path.relpath(full, path).replace(os.sep, "/"))
            part.partition = dict(keys)
            for key, value in keys.items():
                raw.setdefault(key, []).append(value)
            parts.append(part)
    if not parts:
        raise InputError(
            name, path, "the directory holds no parquet files", hint="give a parquet file, a dataset directory or a CSV"
        )
    fields = [pa.field(key, _partition_type(values)) for key, values in raw.items()]
    for part in parts:
        part.partition = {
            f.name: (int(v) if pa.types.is_integer(f.type) and v is not None else v)
            for f in fields
            for v in [part.partition.get(f.name)]
        }
    parts.sort(key=lambda p: p.relpath)
    return parts, pa.schema(fields)


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


def _conform(arrays: Mapping[str, Any], rows: int, schema: pa.Schema, name: str, path: str, where: str) -> pa.Table:
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


def _fingerprint(entries: list[dict[str, Any]], digest_keys: Sequence[str]) -> dict[str, Any]:
    """A cheap identity of the source files: sizes, footers (or mtimes), no data hashed."""
    basis = json.dumps([[e[k] for k in digest_keys] for e in entries], separators=(",", ":")).encode()
    return {
        "digest": "sha256:" + hashlib.sha256(basis).hexdigest(),
        "basis": list(digest_keys),
        "modified": max((e["modified"] for e in entries), default=None),
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


def _sample_parquet(
    name: str, path: str, options: SampleOptions, rng: random.Random, progress: Progress | None
) -> Drawn:
    from envsnap.capture.parquet_pages import SparseReader

    parts, partitions = _parquet_parts(name, path)
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
        pieces.append(_conform(arrays, len(ids), target, name, path, part.relpath))
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
                    if p not in readers:
                        handle = pq.ParquetFile(part.path, metadata=part.metadata)
                        readers[p] = SparseReader(part.path, part.footer, handle)
                    waiter = readers[p].submit(rg, columns, selected[g], pool)
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
            "modified": _iso(part.mtime_ns),
            "footer_sha256": hashlib.sha256(part.footer).hexdigest(),
        }
        for part in parts
    ]
    source = {
        "kind": "parquet" if os.path.isfile(path) else "parquet-dataset",
        "path": path,
        "size": sum(part.size for part in parts),
        "rows": total,
        "files": len(parts),
        "row_groups": len(groups),
        "partitioning": partitions.names,
    }
    fingerprint = _fingerprint(entries, ("path", "size", "footer_sha256"))
    algorithm = "row-groups" if options.method == "row-groups" else "row-ids"
    return Drawn(table, schema, source, fingerprint, algorithm, row_groups_read=len(work))


# -- CSV -------------------------------------------------------------------------------------------------


def _csv_kind(path: str) -> tuple[str, str | None] | None:
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

    def __init__(self, name: str, path: str, delimiter: str, codec: str | None) -> None:
        self.name, self.path, self.delimiter, self.codec = name, path, delimiter, codec
        self.size = os.path.getsize(path)

    def batches(
        self, columns: Sequence[str] | None, progress: Progress | None = None, block: int = _CSV_BLOCK
    ) -> Iterable[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(block_size=block)
        parse = pacsv.ParseOptions(delimiter=self.delimiter)
        convert = pacsv.ConvertOptions(include_columns=list(columns) if columns is not None else None)
        try:
            with open(self.path, "rb") as raw:
                stream: Any = pa.PythonFile(raw, mode="r")
                if self.codec is not None:
                    stream = pa.CompressedInputStream(stream, self.codec)
                reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
                for batch in reader:
                    yield batch
                    if progress is not None:
                        progress(min(raw.tell(), self.size), self.size)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(self.name, self.path, f"cannot read the CSV: {exc}") from None

    def schema(self) -> pa.Schema:
        for batch in self.batches(None, block=1 << 20):
            return batch.schema
        raise InputError(self.name, self.path, "the CSV file is empty (no header line)")


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


def _sample_csv(
    name: str,
    path: str,
    kind: tuple[str, str | None],
    options: SampleOptions,
    rng: random.Random,
    progress: Progress | None,
) -> Drawn:
    stream = _CsvStream(name, path, *kind)
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
    st = os.stat(path)
    entry = {"path": os.path.basename(path), "size": st.st_size, "modified": _iso(st.st_mtime_ns)}
    source = {
        "kind": "csv",
        "path": path,
        "size": st.st_size,
        "rows": total,
        "files": 1,
        "row_groups": None,
        "partitioning": [],
    }
    table = table.combine_chunks()
    table = _conform(
        dict(zip(table.column_names, table.columns, strict=True)),
        table.num_rows,
        target,
        name,
        path,
        os.path.basename(path),
    )
    return Drawn(table, schema, source, _fingerprint([entry], ("path", "size", "modified")), algorithm, note=note)


def sample_path(name: str, path: str, options: SampleOptions, rng: random.Random, progress: Progress | None) -> Drawn:
    if "://" in path:
        raise InputError(name, path, "remote sources are not supported", hint="copy the data to a local path first")
    if not os.path.exists(path):
        raise InputError(name, path, "no such file or directory")
    if os.path.isdir(path):
        return _sample_parquet(name, path, options, rng, progress)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(name, path, f"cannot read it: {exc.strerror or exc}") from None
    kind = _csv_kind(path)
    if head in (b"PAR1", b"PARE") or kind is None:
        if head not in (b"PAR1", b"PARE") and not path.lower().endswith((".parquet", ".parq", ".pq")):
            raise InputError(
                name,
                path,
                "is neither a parquet file (no PAR1 magic bytes) nor a CSV file (.csv, .tsv)",
                hint="give a parquet file, a directory of parquet files or a .csv file",
            )
        return _sample_parquet(name, path, options, rng, progress)
    return _sample_csv(name, path, kind, options, rng, progress)
