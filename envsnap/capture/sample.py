"""Sampling of input batches: uniform, seeded, and reading only what the sample needs.

Sources: a parquet file; a directory (dataset) of parquet files, hive partitions included (partition keys
become columns of the sample); a CSV file (``.csv``/``.tsv``, optionally ``.gz``/``.bz2``/``.zst``/``.lz4``);
in-process, a pandas DataFrame, a pyarrow Table or RecordBatch, or any object exporting an Arrow stream.
pandas is never imported here: a DataFrame is recognised by its type's module.

How rows are drawn (``record["algorithm"]``):

* ``row-ids`` (parquet, in-memory; iid): the global row ids are drawn up front with ``random.Random(seed)``
  from the row counts in the parquet footers (no data is read for that). Row groups are then streamed one
  by one and only the drawn rows are kept, so memory is bounded by one row group, never the dataset; row
  groups without a drawn row are not read, and within a row group only the pages holding drawn rows are
  decoded (:mod:`envsnap.capture.parquet_pages`). With ``columns`` only those columns are decoded.
* ``row-groups`` (``method="row-groups"``; **not iid**): whole row groups are picked at random (enough to
  hold the requested rows, and at least 4 when there are that many, so that the rows do not all come from
  one region of the data), then rows uniformly within them. Much faster on big datasets, but rows that sit
  together in the data come together in the sample.
* ``reservoir`` (CSV with ``rows``; iid): one streaming pass, reservoir sampling (Li's Algorithm L).
* ``count-then-row-ids`` (CSV with ``fraction``; iid): a first pass counts the rows, a second takes the
  drawn ids. CSV has no row groups, so ``row-groups`` samples a CSV uniformly and says so in ``note``.

The same source, options and seed give the same rows, in source order. Masked columns (``options.mask``)
are replaced by salted tokens before anything else sees the sample (stats, parquet, the stages).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import io
import json
import math
import os
import random
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.capture.base import InputSpec, SampleOptions
from envsnap.capture.data import column_stats
from envsnap.errors import InputError

Progress = Callable[[int, int], None]

METHODS = ("uniform", "row-groups")
MIN_ROW_GROUPS = 4
CSV_SUFFIXES = (".csv", ".tsv")
CSV_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
FILE_LIST_LIMIT = 100
_CSV_BLOCK = 8 << 20
_MASK_CONTEXT = b"envsnap-mask-v1"


@dataclass(frozen=True)
class SampledInput:
    """One sampled input: the sample (masked columns already tokenised) and its JSON-able record."""

    name: str
    table: pa.Table
    record: dict[str, Any]


# -- masking ---------------------------------------------------------------------------------------------


@cache
def _process_salt() -> bytes:
    return secrets.token_bytes(32)


def mask_salt(environ: Mapping[str, str]) -> bytes:
    """The salt of mask tokens: derived from the per-user redaction key, else random for this process.

    Derived from the key that ``env/envvars.json`` digests use (``ENVSNAP_REDACTION_KEY`` or the key file),
    so tokens are stable across snapshots of one user; the salt itself is never stored.
    """
    from envsnap.capture.envvars import load_key

    key = load_key(environ).secret
    if key is None:
        return _process_salt()
    return hmac.new(key, _MASK_CONTEXT, hashlib.sha256).digest()


def salt_id(salt: bytes) -> str:
    """8 hex digits naming a salt: tokens of two snapshots are comparable exactly when their ids are equal."""
    return hashlib.sha256(salt + b"envsnap-salt-id").hexdigest()[:8]


def _token_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, (int, float)):
        return repr(value).encode()
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).encode()
    return json.dumps(value, sort_keys=True, default=str).encode()


def mask_token(value: Any, salt: bytes) -> str | None:
    """``tok_`` + 16 hex digits of HMAC-SHA256(salt, value); None stays None.

    Equal values give equal tokens whatever column or input they sit in, so joins and group-bys on masked
    keys behave as on the raw values.
    """
    if value is None:
        return None
    return "tok_" + hmac.new(salt, _token_bytes(value), hashlib.sha256).hexdigest()[:16]


def mask_table(table: pa.Table, columns: Iterable[str], salt: bytes) -> pa.Table:
    """``table`` with every column named in ``columns`` replaced by string tokens (nulls stay null)."""
    import pyarrow.compute as pc

    wanted = set(columns)
    for i, name in enumerate(table.column_names):
        if name not in wanted:
            continue
        column = table.column(i)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        try:
            uniques = pc.unique(column)
            tokens = pa.array([mask_token(v, salt) for v in uniques.to_pylist()], pa.string())
            masked: pa.Array | pa.ChunkedArray = tokens.take(pc.index_in(column, value_set=uniques))
        except pa.ArrowNotImplementedError:  # nested values: token each row
            masked = pa.array([mask_token(v, salt) for v in column.to_pylist()], pa.string())
        table = table.set_column(i, pa.field(name, pa.string(), nullable=True), masked)
    return table


# -- drawing rows ----------------------------------------------------------------------------------------


def _draw(rng: random.Random, population: int, k: int) -> list[int]:
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


def _target_rows(options: SampleOptions, total: int) -> int:
    if options.fraction is not None:
        return min(total, math.floor(options.fraction * total + 0.5))
    return min(total, options.rows if options.rows is not None else 1000)


def _split(ids: Sequence[int], starts: Sequence[int]) -> dict[int, list[int]]:
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
class _Drawn:
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


def _parquet_parts(name: str, path: str) -> tuple[list[_Part], pa.Schema]:
    """The files of a parquet file or directory, sorted, and the hive partition schema (may be empty)."""
    if os.path.isfile(path):
        return [_read_footer(name, path, os.path.basename(path))], pa.schema([])
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        fragments = list(dataset.get_fragments())
    except (pa.ArrowException, OSError) as exc:
        raise InputError(name, path, f"cannot open the parquet dataset: {exc}") from None
    if not fragments:
        raise InputError(
            name, path, "the directory holds no parquet files", hint="give a parquet file, a dataset directory or a CSV"
        )
    partitioning = getattr(dataset, "partitioning", None)
    part_schema = partitioning.schema if partitioning is not None else pa.schema([])
    parts = []
    for fragment in fragments:
        rel = os.path.relpath(fragment.path, path).replace(os.sep, "/")
        part = _read_footer(name, fragment.path, rel)
        part.partition = ds.get_partition_keys(fragment.partition_expression) or {}
        parts.append(part)
    parts.sort(key=lambda p: p.relpath)
    return parts, part_schema


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


def _check_columns(name: str, path: str, names: Sequence[str], options: SampleOptions) -> list[str]:
    """The columns to sample, in order; an unknown ``columns`` or ``mask`` entry is an InputError."""
    known = set(names)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    for option, wanted in (("--columns", options.columns or ()), ("--mask", options.mask)):
        for column in wanted:
            if column not in known:
                raise InputError(name, path, f"no column {column!r} ({option}); its columns are: {shown}")
    return list(dict.fromkeys(options.columns)) if options.columns else list(names)


def _conform(table: pa.Table, schema: pa.Schema, name: str, path: str, where: str) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types (missing columns are null)."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            column = table.column(f.name)
            if column.type != f.type:
                try:
                    column = column.cast(f.type)
                except (pa.ArrowException, ValueError) as exc:
                    raise InputError(name, path, f"column {f.name!r} of {where} does not fit {f.type}: {exc}") from None
            arrays.append(column)
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


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
    return {chosen[unit]: ids for unit, ids in _split(_draw(rng, acc, k), starts).items()}


def _sample_parquet(
    name: str, path: str, options: SampleOptions, rng: random.Random, progress: Progress | None
) -> _Drawn:
    from envsnap.capture.parquet_pages import SparseReader

    parts, partitions = _parquet_parts(name, path)
    schema = _parquet_schema(name, path, parts, partitions)
    wanted = _check_columns(name, path, schema.names, options)
    target = pa.schema([schema.field(c) for c in wanted], metadata=schema.metadata)
    groups = [(p, g) for p, part in enumerate(parts) for g in range(part.metadata.num_row_groups)]
    rows = [parts[p].metadata.row_group(g).num_rows for p, g in groups]
    starts = []
    total = 0
    for n in rows:
        starts.append(total)
        total += n
    k = _target_rows(options, total)
    if options.method == "row-groups":
        selected = _choose_row_groups(rng, rows, k)
    else:
        selected = _split(_draw(rng, total, k), starts)
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
    pieces = []
    done = 0
    current: tuple[int, SparseReader] | None = None
    workers = min(8, max(2, 2 * (os.cpu_count() or 1)))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="envsnap-sample") as pool:
            for g, size in zip(work, sizes, strict=True):
                p, rg = groups[g]
                part = parts[p]
                if current is None or current[0] != p:
                    if current is not None:
                        current[1].close()
                    handle = pq.ParquetFile(part.path, metadata=part.metadata)
                    current = (p, SparseReader(part.path, part.footer, handle))
                columns = file_columns(part)
                try:
                    piece = current[1].read(rg, columns, selected[g], pool)
                except (pa.ArrowException, OSError) as exc:
                    raise InputError(name, path, f"corrupt parquet file {part.relpath} (row group {rg}): {exc}") from None
                for column in wanted:
                    if column not in columns and column in partitions.names:
                        value = pa.array([part.partition.get(column)] * piece.num_rows, target.field(column).type)
                        piece = piece.append_column(target.field(column), value)
                pieces.append(_conform(piece, target, name, path, part.relpath))
                done += size
                if progress is not None:
                    progress(done, total_bytes)
    finally:
        if current is not None:
            current[1].close()
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
    return _Drawn(table, schema, source, fingerprint, algorithm, row_groups_read=len(work))


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


def _reservoir(batches: Iterable[pa.RecordBatch], k: int, rng: random.Random, schema: pa.Schema) -> tuple[pa.Table, int]:
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
            incoming = table.take(pa.array(list(replace.values()), pa.int64()))
            index = list(range(k))
            for j, (slot, local) in enumerate(replace.items()):
                index[slot] = k + j
                ids[slot] = start + local
            reservoir = pa.concat_tables([reservoir, incoming]).take(pa.array(index, pa.int64()))
    result = reservoir if reservoir is not None else (pa.concat_tables(filled) if filled else schema.empty_table())
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return result.take(pa.array(order, pa.int64())), seen


def _sample_csv(
    name: str, path: str, kind: tuple[str, str | None], options: SampleOptions, rng: random.Random,
    progress: Progress | None,
) -> _Drawn:
    stream = _CsvStream(name, path, *kind)
    schema = stream.schema()
    wanted = _check_columns(name, path, schema.names, options)
    target = pa.schema([schema.field(c) for c in wanted])
    columns = wanted if options.columns else None
    note = "a CSV has no row groups: sampled uniformly" if options.method == "row-groups" else None
    if options.fraction is None:
        k = options.rows if options.rows is not None else 1000
        table, total = _reservoir(stream.batches(columns, progress), k, rng, target)
        algorithm = "reservoir"
    else:
        total = sum(b.num_rows for b in stream.batches(wanted[:1]))
        ids = _draw(rng, total, _target_rows(options, total))
        pieces = []
        seen = 0
        for batch in stream.batches(columns, progress):
            lo = bisect.bisect_left(ids, seen)
            hi = bisect.bisect_left(ids, seen + batch.num_rows)
            if hi > lo:
                pieces.append(pa.Table.from_batches([batch]).take(pa.array([i - seen for i in ids[lo:hi]], pa.int64())))
            seen += batch.num_rows
        table = pa.concat_tables(pieces) if pieces else target.empty_table()
        algorithm = "count-then-row-ids"
    st = os.stat(path)
    entry = {"path": os.path.basename(path), "size": st.st_size, "modified": _iso(st.st_mtime_ns)}
    source = {
        "kind": "csv", "path": path, "size": st.st_size, "rows": total, "files": 1, "row_groups": None,
        "partitioning": [],
    }
    table = _conform(table.combine_chunks(), target, name, path, os.path.basename(path))
    return _Drawn(table, schema, source, _fingerprint([entry], ("path", "size", "modified")), algorithm, note=note)


# -- in-memory sources -----------------------------------------------------------------------------------


def _is_dataframe(source: Any) -> bool:
    kind = type(source)
    return kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "pandas"


def describe_source(source: Any) -> str:
    """How an input's source is shown: its path, or ``<DataFrame>``/``<Table>``/``<TypeName>``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)  # type: ignore[return-value]
    if _is_dataframe(source):
        return "<DataFrame>"
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return "<Table>"
    return f"<{type(source).__name__}>"


def _sample_memory(name: str, source: Any, options: SampleOptions, rng: random.Random) -> _Drawn:
    shown = describe_source(source)
    note = "an in-memory table has no row groups: sampled uniformly" if options.method == "row-groups" else None
    if _is_dataframe(source):
        labels = {str(c): c for c in source.columns}
        total = len(source)
        _check_columns(name, shown, list(labels), options)
        ids = _draw(rng, total, _target_rows(options, total))
        keep_index = type(source.index).__name__ != "RangeIndex"  # a RangeIndex is only row numbers
        try:
            table = pa.Table.from_pandas(source.iloc[ids], preserve_index=keep_index)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(name, shown, f"cannot convert the DataFrame to Arrow: {exc}") from None
        kind = "pandas"
    else:
        if isinstance(source, pa.RecordBatch):
            source = pa.Table.from_batches([source])
        elif not isinstance(source, pa.Table):
            if not hasattr(source, "__arrow_c_stream__"):
                raise InputError(
                    name, shown, f"unsupported source of type {type(source).__name__}",
                    hint="give a path, a pandas DataFrame or a pyarrow Table",
                )
            try:
                source = pa.table(source)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise InputError(name, shown, f"cannot read it as an Arrow table: {exc}") from None
        total = source.num_rows
        _check_columns(name, shown, source.column_names, options)
        table = source.take(pa.array(_draw(rng, total, _target_rows(options, total)), pa.int64()))
        kind = "arrow"
    schema = table.schema
    wanted = _check_columns(name, shown, schema.names, options)
    table = table.select(wanted).combine_chunks()
    source_facts = {
        "kind": kind, "path": None, "size": None, "rows": total, "files": None, "row_groups": None,
        "partitioning": [],
    }
    return _Drawn(table, schema, source_facts, None, "row-ids", note=note)


# -- the entry point -------------------------------------------------------------------------------------


def _check_options(name: str, shown: str, options: SampleOptions) -> None:
    if options.method not in METHODS:
        raise InputError(name, shown, f"unknown sampling method {options.method!r}; use one of {', '.join(METHODS)}")
    if options.fraction is not None and not 0.0 <= options.fraction <= 1.0:
        raise InputError(name, shown, f"fraction {options.fraction} is not between 0 and 1")
    if options.fraction is None and options.rows is not None and options.rows < 0:
        raise InputError(name, shown, f"cannot sample {options.rows} rows")


def _sample_path(name: str, path: str, options: SampleOptions, rng: random.Random, progress: Progress | None) -> _Drawn:
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
                name, path, "is neither a parquet file (no PAR1 magic bytes) nor a CSV file (.csv, .tsv)",
                hint="give a parquet file, a directory of parquet files or a .csv file",
            )
        return _sample_parquet(name, path, options, rng, progress)
    return _sample_csv(name, path, kind, options, rng, progress)


def sample_input(
    spec: InputSpec,
    options: SampleOptions,
    *,
    salt: bytes | None,
    progress: Progress | None = None,
) -> SampledInput:
    """Sample one input as ``options`` say; return the sample (masked) and its record.

    ``salt`` keys the mask tokens (see :func:`mask_salt`); when columns are to be masked and no salt is
    given, a random per-process salt is used (masking is never skipped). ``progress(done, total)`` is called
    with bytes read so far, for a caller that wants a progress bar; the library itself never prints.
    Raises :class:`~envsnap.errors.InputError` naming the input for a missing, unreadable, corrupt or
    unsupported source and for an unknown column in ``columns`` or ``mask``.
    """
    name = spec.name
    shown = describe_source(spec.source)
    _check_options(name, shown, options)
    rng = random.Random(options.seed)
    if isinstance(spec.source, (str, os.PathLike)):
        drawn = _sample_path(name, os.fspath(spec.source), options, rng, progress)  # type: ignore[arg-type]
    else:
        drawn = _sample_memory(name, spec.source, options, rng)
    table = drawn.table
    masked = sorted(set(options.mask) & set(table.column_names))
    masking = None
    if options.mask:
        salt = salt if salt is not None else _process_salt()
        table = mask_table(table, masked, salt)
        masking = {"columns": masked, "salt_id": salt_id(salt)}
    iid = drawn.algorithm != "row-groups"
    record = {
        "name": name,
        "source": drawn.source,
        "fingerprint": drawn.fingerprint,
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in drawn.schema],
        "method": "uniform" if iid else "row-groups",
        "iid": iid,
        "algorithm": drawn.algorithm,
        "seed": options.seed,
        "requested": {
            "rows": None if options.fraction is not None else (options.rows if options.rows is not None else 1000),
            "fraction": options.fraction,
            "method": options.method,
        },
        "rows": table.num_rows,
        "row_groups_read": drawn.row_groups_read,
        "selected": list(dict.fromkeys(options.columns)) if options.columns else None,
        "masking": masking,
        "note": drawn.note,
        "columns": column_stats(table, masked=masked, population=drawn.source["rows"]),
    }
    return SampledInput(name, table, record)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as parquet bytes (zstd); the same table always gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
