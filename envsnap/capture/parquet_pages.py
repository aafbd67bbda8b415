"""Read chosen rows of a parquet row group, decoding only the pages that hold them.

pyarrow decodes whole column chunks: to keep 20 rows of a 1M-row row group it decompresses and decodes
the million. Parquet stores a chunk as pages (pyarrow writes at most 20,000 rows a page), and a uniform
sample of 1,000 rows from a 50-row-group dataset touches about a third of each chunk's pages. So for every
flat column we hand pyarrow a small synthetic parquet file: the chunk's dictionary page plus only the data
pages that hold drawn rows — the file's own bytes, same codec, encodings and checksums — behind a footer
rewritten to describe just that. Only the footer is new; pyarrow does all the decoding.

Anything unusual falls back to pyarrow's read of the whole chunk: nested or repeated columns, encrypted or
external column chunks, a header this module cannot parse, a type that does not come back as expected, and
chunks where the drawn rows touch most pages anyway (then the rewrite would only add work).

The footer is Thrift compact protocol. The small generic reader/writer below keeps every field it does
not touch, in order, so a footer parsed and written back is byte-identical (tested).
"""

from __future__ import annotations

import base64
import bisect
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Thrift compact protocol type ids.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)

#: A parsed Thrift struct: (field id, type, value) triples in wire order.
Struct = list[tuple[int, int, Any]]

#: Page types (parquet.thrift PageType).
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
#: Skip pages only when the drawn rows leave at least this share of a chunk's data pages untouched.
_MAX_HIT_SHARE = 0.7
_MIN_DATA_PAGES = 3
_WHOLE_CHUNK_READ = 4 << 20  # chunks up to this size are read in one call instead of header by header


class ThriftError(ValueError):
    """Bytes that are not the Thrift compact structure expected."""


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def byte(self) -> int:
        try:
            value = self.buf[self.pos]
        except IndexError:
            raise ThriftError("truncated thrift data") from None
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        n = self.varint()
        end = self.pos + n
        if end > len(self.buf):
            raise ThriftError("truncated thrift data")
        value = bytes(self.buf[self.pos : end])
        self.pos = end
        return value

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            b = self.byte()
            return b - 256 if b > 127 else b
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            if self.pos + 8 > len(self.buf):
                raise ThriftError("truncated thrift data")
            self.pos += 8
            return struct.unpack_from("<d", self.buf, self.pos - 8)[0]
        if kind == _BINARY:
            return self.binary()
        if kind in (_LIST, _SET):
            head = self.byte()
            size, elem = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if elem in (_TRUE, _FALSE):  # booleans inside collections are one byte each
                return (elem, [self.byte() == _TRUE for _ in range(size)])
            return (elem, [self.value(elem) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            if size == 0:
                return (0, 0, [])
            head = self.byte()
            key, val = head >> 4, head & 0x0F
            return (key, val, [(self.value(key), self.value(val)) for _ in range(size)])
        if kind == _STRUCT:
            return self.struct()
        raise ThriftError(f"unknown thrift type {kind}")

    def struct(self) -> Struct:
        fields: Struct = []
        last = 0
        while True:
            head = self.byte()
            if head == _STOP:
                return fields
            kind, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            fields.append((fid, kind, self.value(kind)))
            last = fid


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def value(self, kind: int, value: Any) -> None:
        if kind in (_TRUE, _FALSE):
            return  # a bool field's value is its type nibble
        if kind == _BYTE:
            self.out.append(value & 0xFF)
        elif kind in (_I16, _I32, _I64):
            self.varint((value << 1) ^ (value >> 63))
        elif kind == _DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == _BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            elem, items = value
            if len(items) < 15:
                self.out.append((len(items) << 4) | elem)
            else:
                self.out.append(0xF0 | elem)
                self.varint(len(items))
            for item in items:
                if elem in (_TRUE, _FALSE):
                    self.out.append(_TRUE if item else _FALSE)
                else:
                    self.value(elem, item)
        elif kind == _MAP:
            key, val, pairs = value
            self.varint(len(pairs))
            if pairs:
                self.out.append((key << 4) | val)
                for k, v in pairs:
                    self.value(key, k)
                    self.value(val, v)
        elif kind == _STRUCT:
            self.struct(value)
        else:
            raise ThriftError(f"unknown thrift type {kind}")

    def struct(self, fields: Struct) -> None:
        last = 0
        for fid, kind, value in fields:
            if kind in (_TRUE, _FALSE):
                kind = _TRUE if value else _FALSE
            delta = fid - last
            if 0 < delta <= 15:
                self.out.append((delta << 4) | kind)
            else:
                self.out.append(kind)
                self.varint((fid << 1) ^ (fid >> 63))
            self.value(kind, value)
            last = fid
        self.out.append(_STOP)


def parse_struct(data: bytes) -> Struct:
    """Parse a Thrift compact struct (a parquet footer, a page header)."""
    return _Reader(data).struct()


def dump_struct(fields: Struct) -> bytes:
    """Serialise a struct parsed by :func:`parse_struct` (possibly edited) back to bytes."""
    writer = _Writer()
    writer.struct(fields)
    return bytes(writer.out)


def _get(fields: Struct, fid: int) -> Any:
    for f, _, value in fields:
        if f == fid:
            return value
    return None


@dataclass(frozen=True)
class _Page:
    offset: int  # of the header, in the file
    size: int  # header + compressed body
    uncompressed: int  # header + uncompressed body
    rows: int
    kind: int


def _page_header(buf: bytes, pos: int) -> tuple[int, int, int, int, int]:
    """(kind, header length, compressed size, uncompressed size, rows) of the page header at ``pos``."""
    reader = _Reader(buf, pos)
    header = reader.struct()
    kind, uncompressed, compressed = _get(header, 1), _get(header, 2), _get(header, 3)
    if not isinstance(kind, int) or not isinstance(compressed, int) or not isinstance(uncompressed, int):
        raise ThriftError("page header without type or sizes")
    rows = 0
    if kind == _DATA_PAGE:
        rows = _get(_get(header, 5) or [], 1)  # num_values: rows, for a flat column
    elif kind == _DATA_PAGE_V2:
        rows = _get(_get(header, 8) or [], 3)  # num_rows
    if not isinstance(rows, int) or rows < 0 or compressed < 0:
        raise ThriftError("page header with a bad row count or size")
    return kind, reader.pos - pos, compressed, uncompressed, rows


class SparseReader:
    """Reads chosen rows of one parquet file's row groups; see the module docstring.

    ``footer`` is the file's raw footer (the Thrift bytes before the trailing length and magic) and
    ``parquet_file`` the pyarrow handle used for dense reads and for the expected Arrow types.
    """

    def __init__(self, path: str, footer: bytes, parquet_file: pq.ParquetFile) -> None:
        self.path = path
        self._footer = footer
        self._pf = parquet_file
        self._fd: int | None = None
        self._tree: Struct | None = None
        self._flat: dict[str, int] | None = None  # top-level flat column name -> leaf index
        self._kv: dict[str, Any] = {}

    def close(self) -> None:
        """Close the file descriptor used for page reads."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(
        self,
        row_group: int,
        columns: Sequence[str],
        rows: Sequence[int],
        pool: Executor | None = None,
    ) -> pa.Table:
        """Rows ``rows`` (sorted, distinct, local to the row group) of ``columns``, as pyarrow reads them."""
        schema = self._pf.schema_arrow
        total = self._pf.metadata.row_group(row_group).num_rows
        take = pa.array(rows, pa.int64())
        arrays: dict[str, pa.Array | pa.ChunkedArray | None] = dict.fromkeys(columns)
        sparse: list[str] = []
        if len(rows) * 2 < total and self._prepare():
            assert self._flat is not None
            sparse = [c for c in columns if c in self._flat]
        run: Callable[[str], pa.Array | None] = lambda name: self._sparse_column(row_group, name, rows)  # noqa: E731
        futures = [pool.submit(run, name) for name in sparse] if pool is not None else []
        results = [f.result() for f in futures] if futures else [run(name) for name in sparse]
        for name, array in zip(sparse, results, strict=True):
            arrays[name] = array
        dense = [c for c in columns if arrays[c] is None]
        if dense:
            table = self._pf.read_row_group(row_group, columns=dense, use_threads=True).take(take)
            for name in dense:
                arrays[name] = table.column(name)
        fields = [schema.field(c) for c in columns]
        return pa.Table.from_arrays([arrays[c] for c in columns], schema=pa.schema(fields, metadata=schema.metadata))

    # -- the footer ------------------------------------------------------------------------------------

    def _prepare(self) -> bool:
        """Parse the footer once; False when this file cannot be read sparsely at all."""
        if self._flat is not None:
            return bool(self._flat)
        self._flat = {}
        try:
            tree = parse_struct(self._footer)
        except ThriftError:
            return False
        if _get(tree, 8) is not None:  # encryption_algorithm: encrypted footer fields
            return False
        elements = (_get(tree, 2) or (0, []))[1]
        if not elements:
            return False
        arrow_names = set(self._pf.schema_arrow.names)
        leaf = 0
        index = 1
        while index < len(elements):  # walk the root's children; skip nested groups whole
            element = elements[index]
            if _get(element, 1) is None:  # a group: its leaves are nested columns
                leaves, index = self._count_leaves(elements, index)
                leaf += leaves
                continue
            name = _get(element, 4)
            if isinstance(name, bytes) and _get(element, 3) != 2:  # not REPEATED
                text = name.decode("utf-8", "replace")
                if text in arrow_names and not pa.types.is_nested(self._pf.schema_arrow.field(text).type):
                    self._flat[text] = leaf
            leaf += 1
            index += 1
        self._tree = tree
        return bool(self._flat)

    @staticmethod
    def _count_leaves(elements: list[Struct], index: int) -> tuple[int, int]:
        """Leaves under the group at ``index`` and the index just after its subtree."""
        pending = 1
        leaves = 0
        while pending and index < len(elements):
            element = elements[index]
            is_group = _get(element, 1) is None
            pending += (_get(element, 5) or 0) - 1 if is_group else -1
            leaves += 0 if is_group else 1
            index += 1
        return leaves, index

    def _arrow_schema_kv(self, name: str) -> Any:
        """The footer's key-value metadata with ``ARROW:schema`` narrowed to column ``name``."""
        if name not in self._kv:
            assert self._tree is not None
            kv = _get(self._tree, 5)
            if kv is None:
                self._kv[name] = None
            else:
                field = self._pf.schema_arrow.field(name)
                serialized = base64.b64encode(pa.schema([field]).serialize().to_pybytes())
                entries = []
                for entry in kv[1]:
                    key = _get(entry, 1)
                    if key == b"ARROW:schema":
                        entries.append([(1, _BINARY, key), (2, _BINARY, serialized)])
                    elif key != b"pandas":  # pandas metadata names every column: not this file's
                        entries.append(entry)
                self._kv[name] = (kv[0], entries)
        return self._kv[name]

    # -- pages ---------------------------------------------------------------------------------------

    def _read(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise ThriftError("the file is shorter than its footer says")
        return data

    def _pages(self, meta: Struct) -> list[_Page]:
        """Every page of a column chunk, from its headers."""
        data_offset = _get(meta, 9)
        dict_offset = _get(meta, 11)
        size = _get(meta, 7)
        start = dict_offset if isinstance(dict_offset, int) and 0 < dict_offset < data_offset else data_offset
        end = start + size
        whole = self._read(start, size) if size <= _WHOLE_CHUNK_READ else None
        pages: list[_Page] = []
        pos = start
        while pos < end:
            if whole is not None:
                kind, hlen, csize, usize, rows = _page_header(whole, pos - start)
            else:
                want = 256
                while True:
                    buf = self._read(pos, min(want, end - pos))
                    try:
                        kind, hlen, csize, usize, rows = _page_header(buf, 0)
                        break
                    except ThriftError:
                        if want >= end - pos:
                            raise
                        want *= 16  # a header with big min/max statistics
            pages.append(_Page(pos, hlen + csize, hlen + usize, rows, kind))
            pos += hlen + csize
        if pos != end:
            raise ThriftError("pages overrun their column chunk")
        return pages

    def _sparse_column(self, row_group: int, name: str, rows: Sequence[int]) -> pa.Array | None:
        """The drawn rows of one flat column, or None when a dense read is the better (or only) way."""
        assert self._tree is not None and self._flat is not None
        leaf = self._flat[name]
        group = _get(self._tree, 4)[1][row_group]
        chunk = _get(group, 1)[1][leaf]
        meta = _get(chunk, 3)
        if meta is None or _get(chunk, 1) is not None or _get(chunk, 8) is not None:
            return None  # external file, or encrypted column metadata
        try:
            pages = self._pages(meta)
        except (ThriftError, OSError, TypeError):
            return None
        data = [p for p in pages if p.kind in (_DATA_PAGE, _DATA_PAGE_V2)]
        dictionary = [p for p in pages if p.kind == _DICTIONARY_PAGE]
        starts: list[int] = []
        total = 0
        for page in data:
            starts.append(total)
            total += page.rows
        if len(data) < _MIN_DATA_PAGES or total != _get(group, 3) or len(dictionary) > 1:
            return None
        hit = sorted({bisect.bisect_right(starts, r) - 1 for r in rows})
        if len(hit) > _MAX_HIT_SHARE * len(data):
            return None
        kept = dictionary + [data[h] for h in hit]
        base: dict[int, int] = {}
        acc = 0
        for h in hit:
            base[h] = acc
            acc += data[h].rows
        positions = []
        for r in rows:
            page = bisect.bisect_right(starts, r) - 1
            positions.append(base[page] + r - starts[page])
        body = [self._read(p.offset, p.size) for p in kept]
        footer = self._footer_for(leaf, name, meta, kept, acc, bool(dictionary))
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
        taken: pa.Array = column.take(pa.array(positions, pa.int64()))
        return taken

    def _footer_for(self, leaf: int, name: str, meta: Struct, kept: list[_Page], rows: int, has_dict: bool) -> bytes:
        """A footer for a one-column, one-row-group file holding the ``kept`` pages after the magic."""
        assert self._tree is not None
        compressed = sum(p.size for p in kept)
        uncompressed = sum(p.uncompressed for p in kept)
        first_data = 4 + sum(p.size for p in kept if p.kind == _DICTIONARY_PAGE)
        new_meta: Struct = []
        for fid, kind, value in meta:
            if fid in (1, 2, 3, 4, 8):  # type, encodings, path, codec, key-value metadata
                new_meta.append((fid, kind, value))
            elif fid == 5:
                new_meta.append((5, _I64, rows))
            elif fid == 6:
                new_meta.append((6, _I64, uncompressed))
            elif fid == 7:
                new_meta.append((7, _I64, compressed))
            elif fid == 9:
                new_meta.append((9, _I64, first_data))
            elif fid == 11 and has_dict:
                new_meta.append((11, _I64, 4))
            # statistics, encoding stats, bloom filters, size statistics: they describe the whole chunk
        new_meta.sort(key=lambda f: f[0])
        chunk: Struct = [(2, _I64, 4), (3, _STRUCT, new_meta)]
        group: Struct = [(1, _LIST, (_STRUCT, [chunk])), (2, _I64, uncompressed), (3, _I64, rows)]
        elements = _get(self._tree, 2)[1]
        root = [(fid, kind, 1 if fid == 5 else value) for fid, kind, value in elements[0]]
        element = self._leaf_element(leaf, elements)
        tree: Struct = []
        for fid, kind, value in self._tree:
            if fid in (1, 6):  # version, created_by (pyarrow works around old writers' bugs by it)
                tree.append((fid, kind, value))
            elif fid == 2:
                tree.append((2, _LIST, (_STRUCT, [root, element])))
            elif fid == 3:
                tree.append((3, _I64, rows))
            elif fid == 4:
                tree.append((4, _LIST, (_STRUCT, [group])))
            elif fid == 5:
                kv = self._arrow_schema_kv(name)
                if kv is not None:
                    tree.append((5, _LIST, kv))
            elif fid == 7:
                orders = value[1]
                if leaf < len(orders):
                    tree.append((7, _LIST, (value[0], [orders[leaf]])))
        return dump_struct(tree)

    @staticmethod
    def _leaf_element(leaf: int, elements: list[Struct]) -> Struct:
        seen = -1
        for element in elements[1:]:
            if _get(element, 1) is not None:
                seen += 1
                if seen == leaf:
                    return element
        raise ThriftError(f"no schema element for leaf {leaf}")
