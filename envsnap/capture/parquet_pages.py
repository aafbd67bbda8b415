"""Read chosen rows of a parquet row group, decoding only the pages that hold them.

pyarrow decodes whole column chunks: to keep 20 rows of a 1M-row row group it decompresses and decodes
the million. Parquet stores a chunk as pages (pyarrow writes at most 20,000 rows a page), and a uniform
sample of 1,000 rows from a 50-row-group dataset touches about a third of each chunk's pages. So for every
flat column we hand pyarrow a small synthetic parquet file: only the data pages that hold drawn rows (and
the chunk's dictionary page when one of them is dictionary-encoded) — the file's own bytes, same codec,
encodings and checksums — behind a footer rewritten to describe just that. Only the footer is new; pyarrow
does all the decoding.

Anything unusual falls back to pyarrow's read of the whole chunk: nested or repeated columns, encrypted or
external column chunks, a header this module cannot parse, a type that does not come back as expected, and
chunks where the drawn rows touch most pages anyway (then the rewrite would only add work).

On object storage (``remote=True``) every read is an HTTP range request: the column chunks the sample
needs are fetched whole, adjacent ones in one request (gaps up to 8 KiB bridged, up to 32 MiB a request,
across row groups when :meth:`SparseReader.plan` was told which row groups follow), pages are sliced from
those buffers, and a chunk the drawn rows mostly cover is decoded from the same buffer rather than fetched
again by pyarrow: each chunk read is fetched once, and a buffer is dropped when its last row group is done.

Footers and page headers are Thrift compact protocol (:mod:`envsnap.capture.thrift_compact`).
"""

from __future__ import annotations

import base64
import bisect
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.capture import thrift_compact as thrift
from envsnap.capture.sample_access import FileEntry, LocalSource, RandomAccess
from envsnap.capture.thrift_compact import Struct, ThriftError, dump_struct, get, parse_struct
from envsnap.core.arrow import int64_array

__all__ = ["SparseReader"]

#: Page types (parquet.thrift PageType).
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
#: Skip pages only when the drawn rows leave at least this share of a chunk's data pages untouched.
_MAX_HIT_SHARE = 0.7
_MIN_DATA_PAGES = 3
_WHOLE_CHUNK_READ = 4 << 20  # chunks up to this size are read in one call instead of header by header
_WHOLE_CHUNK_READ_REMOTE = 64 << 20  # on object storage a read is a request: fetch whole chunks up to this
_HOLE = 8 << 10  # remote: adjacent chunks closer than this are fetched in one request, the gap with them
_SPAN_LIMIT = 32 << 20  # remote: at most this much in one request (and in one buffer)

#: Fetched spans of a row group: (offset in the file, the bytes or the fetch under way).
_Spans = list[tuple[int, "Future[bytes] | bytes"]]


@dataclass(frozen=True)
class _Page:
    offset: int  # of the header, in the file
    size: int  # header + compressed body
    uncompressed: int  # header + uncompressed body
    rows: int
    kind: int
    dictionary_encoded: bool


_PAGE_FIELDS = frozenset({1, 2, 3})
_V1_FIELDS = frozenset({1, 2})  # num_values, encoding
_V2_FIELDS = frozenset({3, 4})  # num_rows, encoding
_DICTIONARY_ENCODINGS = (2, 8)  # PLAIN_DICTIONARY, RLE_DICTIONARY


def _page_header(buf: bytes, pos: int) -> tuple[int, int, int, int, int, bool]:
    """(kind, header length, compressed size, uncompressed size, rows, dictionary-encoded) of a page header.

    Only the few fields needed are built; statistics and the rest are stepped over (30,000 headers for a
    50-row-group sample: this is the hot loop of the Python side).
    """
    reader = thrift.Reader(buf, pos)
    sizes: dict[int, int] = {}
    rows, encoding = 0, 0
    last = 0
    while (head := reader.byte()) != thrift.STOP:
        kind, delta = head & 0x0F, head >> 4
        fid = last + delta if delta else reader.zigzag()
        last = fid
        if fid in _PAGE_FIELDS and kind == thrift.I32:
            sizes[fid] = reader.zigzag()
        elif fid == 5 and kind == thrift.STRUCT:  # data_page_header: num_values are the rows of a flat column
            found = reader.ints(_V1_FIELDS)
            rows, encoding = found.get(1, -1), found.get(2, 0)
        elif fid == 8 and kind == thrift.STRUCT:  # data_page_header_v2
            found = reader.ints(_V2_FIELDS)
            rows, encoding = found.get(3, -1), found.get(4, 0)
        else:
            reader.skip(kind)
    if len(sizes) != 3 or rows < 0 or sizes[3] < 0 or sizes[2] < 0:
        raise ThriftError("page header without a type, sizes or row count")
    return sizes[1], reader.pos - pos, sizes[3], sizes[2], rows, encoding in _DICTIONARY_ENCODINGS


@dataclass(frozen=True)
class _Layout:
    """A parsed footer and where its top-level flat columns are: name -> (leaf index, schema element)."""

    tree: Struct
    flat: dict[str, tuple[int, Struct]]


def _layout(footer: bytes, schema: pa.Schema) -> _Layout | None:
    """The footer's layout, or None when the file cannot be read sparsely at all (encrypted, unparsable)."""
    try:
        tree = parse_struct(footer)
    except ThriftError:
        return None
    elements: list[Struct] = (get(tree, 2) or (0, []))[1]
    if get(tree, 8) is not None or not elements:  # 8: encryption_algorithm
        return None
    unique = {n for n in schema.names if schema.names.count(n) == 1}
    flat: dict[str, tuple[int, Struct]] = {}
    leaf = 0
    index = 1
    while index < len(elements):  # the root's children, in order; a nested group is skipped whole
        element = elements[index]
        if get(element, 1) is None:  # no physical type: a group
            pending = 1
            index += 1
            while pending and index < len(elements):
                child = elements[index]
                if get(child, 1) is None:
                    pending += (get(child, 5) or 0) - 1
                else:
                    pending -= 1
                    leaf += 1
                index += 1
            continue
        name = get(element, 4)
        if isinstance(name, bytes) and get(element, 3) != 2:  # 3: repetition; 2 = REPEATED
            text = name.decode("utf-8", "replace")
            if text in unique and not pa.types.is_nested(schema.field(text).type):
                flat[text] = (leaf, element)
        leaf += 1
        index += 1
    return _Layout(tree, flat) if flat else None


class SparseReader:
    """Reads chosen rows of one parquet file's row groups; see the module docstring.

    ``file`` is the open file (or a local path), ``footer`` the file's raw footer (the Thrift bytes before
    the trailing length and magic) and ``parquet_file`` the pyarrow handle used for dense reads and for the
    expected Arrow types. ``remote``: reads are requests (see the module docstring).
    """

    def __init__(
        self, file: RandomAccess | str, footer: bytes, parquet_file: pq.ParquetFile, *, remote: bool = False
    ) -> None:
        self._path = file if isinstance(file, str) else None
        self._file: RandomAccess | None = None if isinstance(file, str) else file
        self._footer = footer
        self._pf = parquet_file
        self._remote = remote
        self._parsed = False
        self._layout: _Layout | None = None
        self._kv: dict[str, Any] = {}
        # remote: the planned spans (id -> (start, end)), which row groups use them, the fetches under way
        self._span_ids: dict[int, list[int]] = {}
        self._span_at: dict[int, tuple[int, int]] = {}
        self._span_users: dict[int, int] = {}
        self._fetches: dict[int, Future[bytes]] = {}
        self._next_span = 0
        #: Column chunks read page by page, and read whole by pyarrow (for benchmarks and tests).
        self.sparse_reads = 0
        self.dense_reads = 0

    def close(self) -> None:
        """Close the file used for page reads."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(
        self,
        row_group: int,
        columns: Sequence[str],
        rows: Sequence[int],
        pool: Executor | None = None,
    ) -> pa.Table:
        """Rows ``rows`` (sorted, distinct, local to the row group) of ``columns``, as pyarrow reads them."""
        return self.submit(row_group, columns, rows, pool)()

    def _parsed_layout(self) -> _Layout | None:
        if not self._parsed:
            self._layout = _layout(self._footer, self._pf.schema_arrow)
            self._parsed = True
        return self._layout

    def plan(self, work: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Remote: the row groups (and columns) about to be read, in order, so that their column chunks
        are fetched in as few requests as the limits allow. Without a plan each row group is planned
        alone when it is submitted."""
        layout = self._parsed_layout()
        if not self._remote or layout is None:
            return
        chunks: list[tuple[int, int, int]] = []
        for row_group, names in work:
            group = get(layout.tree, 4)[1][row_group]
            self._span_ids.setdefault(row_group, [])
            for name in names:
                if name not in layout.flat:
                    continue
                meta = get(get(group, 1)[1][layout.flat[name][0]], 3)
                try:
                    start, size = self._span(meta)
                except (ThriftError, TypeError):
                    continue
                if size <= _SPAN_LIMIT:
                    chunks.append((start, start + size, row_group))
        merged: list[tuple[int, int, set[int]]] = []
        for start, end, row_group in sorted(chunks):
            if merged and start - merged[-1][1] <= _HOLE and end - merged[-1][0] <= _SPAN_LIMIT:
                first, last, users = merged[-1]
                merged[-1] = (first, max(last, end), users | {row_group})
            else:
                merged.append((start, end, {row_group}))
        for start, end, users in merged:
            span = self._next_span
            self._next_span += 1
            self._span_at[span] = (start, end)
            self._span_users[span] = len(users)
            for row_group in users:
                self._span_ids[row_group].append(span)

    def _claim(self, row_group: int, names: Sequence[str], pool: Executor | None) -> _Spans:
        """The spans of ``row_group``, their fetches started (on ``pool``, else now)."""
        if row_group not in self._span_ids:
            self.plan([(row_group, names)])
        out: _Spans = []
        for span in self._span_ids.get(row_group, []):
            start, end = self._span_at[span]
            fetch = self._fetches.get(span)
            if fetch is None:
                if pool is not None:
                    fetch = pool.submit(self._read, start, end - start)
                else:
                    fetch = Future()
                    try:
                        fetch.set_result(self._read(start, end - start))
                    except (ThriftError, OSError) as exc:
                        fetch.set_exception(exc)
                self._fetches[span] = fetch
            out.append((start, fetch))
        return out

    def _release(self, row_group: int) -> None:
        """``row_group`` is done: drop the buffers no later row group needs."""
        for span in self._span_ids.pop(row_group, []):
            self._span_users[span] -= 1
            if not self._span_users[span]:
                del self._span_users[span], self._span_at[span]
                self._fetches.pop(span, None)

    def submit(
        self,
        row_group: int,
        columns: Sequence[str],
        rows: Sequence[int],
        pool: Executor | None = None,
    ) -> Callable[[], pa.Table]:
        """Start :meth:`read` on ``pool``; the returned function waits and gives the table.

        Starting the next row groups before finishing this one keeps every core busy: a row group's
        columns finish unevenly, and no core should wait for the slowest.
        """
        schema = self._pf.schema_arrow
        layout = self._parsed_layout()
        sparse: list[str] = []
        futures: list[Future[pa.Array | None]] = []
        spans: _Spans | None = None
        if layout is not None and (self._remote or len(rows) * 2 < self._pf.metadata.row_group(row_group).num_rows):
            sparse = [c for c in columns if c in layout.flat]
            if self._remote and sparse:
                spans = self._claim(row_group, sparse, pool)
            if pool is not None:
                futures = [pool.submit(self._sparse_column, layout, row_group, c, rows, spans) for c in sparse]

        def finish() -> pa.Table:
            arrays: dict[str, pa.Array | pa.ChunkedArray | None] = dict.fromkeys(columns)
            try:
                if futures:
                    arrays.update(zip(sparse, (f.result() for f in futures), strict=True))
                elif layout is not None and sparse:
                    arrays.update((c, self._sparse_column(layout, row_group, c, rows, spans)) for c in sparse)
            finally:
                self._release(row_group)
            dense = [c for c in columns if arrays[c] is None]
            self.sparse_reads += len(columns) - len(dense)
            self.dense_reads += len(dense)
            if dense:
                table = self._pf.read_row_group(row_group, columns=dense, use_threads=True)
                table = table.take(int64_array(rows))
                arrays.update((name, table.column(name)) for name in dense)
            fields = [schema.field(c) for c in columns]
            return pa.Table.from_arrays(
                [arrays[c] for c in columns], schema=pa.schema(fields, metadata=schema.metadata)
            )

        return finish

    def _read(self, offset: int, size: int) -> bytes:
        if self._file is None:
            if self._path is None:
                raise ThriftError("the reader is closed")
            self._file = LocalSource("", self._path).open(FileEntry(self._path, "", 0, None))
        data = self._file.read_at(offset, size)
        if len(data) != size:
            raise ThriftError("the file is shorter than its footer says")
        return data

    @staticmethod
    def _span(meta: Struct) -> tuple[int, int]:
        """(offset, size) of a column chunk in the file, dictionary page included."""
        data_offset, dict_offset, size = get(meta, 9), get(meta, 11), get(meta, 7)
        start = dict_offset if isinstance(dict_offset, int) and 0 < dict_offset < data_offset else data_offset
        if not isinstance(start, int) or not isinstance(size, int):
            raise ThriftError("a column chunk without offsets")
        return start, size

    def _pages(
        self, meta: Struct, spans: list[tuple[int, bytes]] | None = None
    ) -> tuple[list[_Page], int, bytes | None]:
        """Every page of a column chunk, from its headers; with the chunk's offset and, when it was read
        in one piece (or is among the prefetched ``spans``), its bytes."""
        start, size = self._span(meta)
        end = start + size
        limit = _WHOLE_CHUNK_READ_REMOTE if self._remote else _WHOLE_CHUNK_READ
        whole = next(
            (buf[start - at : end - at] for at, buf in spans or () if at <= start and end <= at + len(buf)), None
        )
        if whole is None and size <= limit:
            whole = self._read(start, size)
        pages: list[_Page] = []
        pos = start
        while pos < end:
            if whole is not None:
                kind, hlen, csize, usize, rows, encoded = _page_header(whole, pos - start)
            else:
                want = 256
                while True:  # read as much header as it takes: a header may carry big min/max statistics
                    try:
                        kind, hlen, csize, usize, rows, encoded = _page_header(self._read(pos, min(want, end - pos)), 0)
                        break
                    except ThriftError:
                        if want >= end - pos:
                            raise
                        want *= 16
            pages.append(_Page(pos, hlen + csize, hlen + usize, rows, kind, encoded))
            pos += hlen + csize
        if pos != end:
            raise ThriftError("pages overrun their column chunk")
        return pages, start, whole

    def _sparse_column(
        self,
        layout: _Layout,
        row_group: int,
        name: str,
        rows: Sequence[int],
        spans: _Spans | None = None,
    ) -> pa.Array | None:
        """The drawn rows of one flat column, or None when a dense read is the better (or only) way."""
        leaf, element = layout.flat[name]
        group = get(layout.tree, 4)[1][row_group]
        chunk = get(group, 1)[1][leaf]
        meta = get(chunk, 3)
        if meta is None or get(chunk, 1) is not None or get(chunk, 8) is not None:
            return None  # external file, or encrypted column metadata
        try:
            fetched = [(at, f.result() if isinstance(f, Future) else f) for at, f in spans or ()]
            pages, start, whole = self._pages(meta, fetched)
        except (ThriftError, OSError, TypeError):
            return None
        data = [p for p in pages if p.kind in (_DATA_PAGE, _DATA_PAGE_V2)]
        dictionary = [p for p in pages if p.kind == _DICTIONARY_PAGE]
        starts: list[int] = []
        total = 0
        for page in data:
            starts.append(total)
            total += page.rows
        if not data or total != get(group, 3) or len(dictionary) > 1:
            return None
        where = [bisect.bisect_right(starts, r) - 1 for r in rows]
        hit = sorted(set(where))
        if len(data) < _MIN_DATA_PAGES or len(hit) > _MAX_HIT_SHARE * len(data):
            if not (self._remote and whole is not None):
                return None
            hit = list(range(len(data)))  # decode the chunk already fetched, not fetch it again
        base: dict[int, int] = {}
        kept_rows = 0
        for h in hit:
            base[h] = kept_rows
            kept_rows += data[h].rows
        positions = [base[page] + r - starts[page] for r, page in zip(rows, where, strict=True)]
        # After a writer's dictionary overflows, later pages are PLAIN: their dictionary page is not needed.
        needed = dictionary if any(data[h].dictionary_encoded for h in hit) else []
        kept = needed + [data[h] for h in hit]
        if whole is not None:
            body = [whole[p.offset - start : p.offset - start + p.size] for p in kept]
        else:
            body = [self._read(p.offset, p.size) for p in kept]
        footer = self._footer_for(layout, leaf, element, name, meta, kept, kept_rows)
        blob = b"".join([b"PAR1", *body, footer, struct.pack("<I", len(footer)), b"PAR1"])
        try:
            column = pq.ParquetFile(pa.BufferReader(blob)).read_row_group(0, use_threads=False).column(0)
        except (pa.ArrowException, OSError):
            return None  # let the dense read decide whether the data is really unreadable
        expected = self._pf.schema_arrow.field(name).type
        if column.type != expected:
            try:
                column = column.cast(expected)
            except (pa.ArrowException, ValueError):
                return None
        taken: pa.Array = column.take(int64_array(positions))
        return taken

    def _footer_for(
        self, layout: _Layout, leaf: int, element: Struct, name: str, meta: Struct, kept: list[_Page], rows: int
    ) -> bytes:
        """A footer for a one-column, one-row-group file holding the ``kept`` pages right after the magic."""
        compressed = sum(p.size for p in kept)
        uncompressed = sum(p.uncompressed for p in kept)
        dictionary = [p for p in kept if p.kind == _DICTIONARY_PAGE]
        replaced = {5: rows, 6: uncompressed, 7: compressed, 9: 4 + sum(p.size for p in dictionary)}
        new_meta: Struct = []
        for fid, kind, value in meta:
            if fid in (1, 2, 3, 4, 8):  # type, encodings, path, codec, key-value metadata
                new_meta.append((fid, kind, value))
            elif fid in replaced:  # num_values, sizes, first data page
                new_meta.append((fid, thrift.I64, replaced[fid]))
            elif fid == 11 and dictionary:
                new_meta.append((11, thrift.I64, 4))
            # not kept: statistics, encoding stats, bloom filters, size statistics (they describe the chunk)
        chunk: Struct = [(2, thrift.I64, 4), (3, thrift.STRUCT, new_meta)]
        group: Struct = [
            (1, thrift.LIST, (thrift.STRUCT, [chunk])),
            (2, thrift.I64, uncompressed),
            (3, thrift.I64, rows),
        ]
        root = [(fid, kind, 1 if fid == 5 else value) for fid, kind, value in get(layout.tree, 2)[1][0]]
        tree: Struct = []
        for fid, kind, value in layout.tree:
            if fid in (1, 6):  # version; created_by (pyarrow works around old writers' bugs by it)
                tree.append((fid, kind, value))
            elif fid == 2:
                tree.append((2, thrift.LIST, (thrift.STRUCT, [root, element])))
            elif fid == 3:
                tree.append((3, thrift.I64, rows))
            elif fid == 4:
                tree.append((4, thrift.LIST, (thrift.STRUCT, [group])))
            elif fid == 5 and self._narrow_kv(layout, name) is not None:
                tree.append((5, thrift.LIST, self._narrow_kv(layout, name)))
            elif fid == 7 and leaf < len(value[1]):  # column orders, one per leaf
                tree.append((7, thrift.LIST, (value[0], [value[1][leaf]])))
        return dump_struct(tree)

    def _narrow_kv(self, layout: _Layout, name: str) -> Any:
        """The footer's key-value metadata with ``ARROW:schema`` narrowed to column ``name``."""
        if name not in self._kv:
            kv = get(layout.tree, 5)
            entries = []
            if kv is not None:
                field = self._pf.schema_arrow.field(name)
                serialized = base64.b64encode(pa.schema([field]).serialize().to_pybytes())
                for entry in kv[1]:
                    key = get(entry, 1)
                    if key == b"ARROW:schema":
                        entries.append([(1, thrift.BINARY, key), (2, thrift.BINARY, serialized)])
                    elif key != b"pandas":  # pandas metadata names every column: not this file's
                        entries.append(entry)
            self._kv[name] = (kv[0], entries) if kv is not None else None
        return self._kv[name]
