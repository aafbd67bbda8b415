"""A small Thrift compact protocol codec: parquet footers and page headers, read and written back.

Generic (no parquet schema compiled in): a struct is a list of (field id, type, value) triples in wire
order, so fields this code does not touch are kept as they were and a struct parsed and dumped again is
byte-identical (tested on real footers). Lists keep their element type, maps their key and value types.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = [
    "BINARY",
    "BYTE",
    "DOUBLE",
    "FALSE",
    "I16",
    "I32",
    "I64",
    "LIST",
    "MAP",
    "SET",
    "STOP",
    "STRUCT",
    "TRUE",
    "Reader",
    "Struct",
    "ThriftError",
    "Writer",
    "dump_struct",
    "get",
    "parse_struct",
]

# Thrift compact protocol type ids.
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)

#: A parsed Thrift struct: (field id, type, value) triples in wire order.
Struct = list[tuple[int, int, Any]]


class ThriftError(ValueError):
    """Bytes that are not the Thrift compact structure expected."""


class Reader:
    """Reads values from ``buf`` starting at ``pos``; ``pos`` is left after what was read."""

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
        if kind in (TRUE, FALSE):
            return kind == TRUE
        if kind == BYTE:
            b = self.byte()
            return b - 256 if b > 127 else b
        if kind in (I16, I32, I64):
            return self.zigzag()
        if kind == DOUBLE:
            if self.pos + 8 > len(self.buf):
                raise ThriftError("truncated thrift data")
            self.pos += 8
            return struct.unpack_from("<d", self.buf, self.pos - 8)[0]
        if kind == BINARY:
            return self.binary()
        if kind in (LIST, SET):
            head = self.byte()
            size, elem = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if elem in (TRUE, FALSE):  # booleans inside collections are one byte each
                return (elem, [self.byte() == TRUE for _ in range(size)])
            return (elem, [self.value(elem) for _ in range(size)])
        if kind == MAP:
            size = self.varint()
            if size == 0:
                return (0, 0, [])
            head = self.byte()
            key, val = head >> 4, head & 0x0F
            return (key, val, [(self.value(key), self.value(val)) for _ in range(size)])
        if kind == STRUCT:
            return self.struct()
        raise ThriftError(f"unknown thrift type {kind}")

    def skip(self, kind: int) -> None:
        """Step over a value without building it (page headers carry statistics nobody here reads)."""
        if kind in (I16, I32, I64):
            self.varint()
        elif kind == BINARY:
            size = self.varint()  # read first: ``self.pos += self.varint()`` would add to the old position
            self.pos += size
            if self.pos > len(self.buf):
                raise ThriftError("truncated thrift data")
        elif kind == STRUCT:
            while (head := self.byte()) != STOP:
                if not head >> 4:
                    self.zigzag()
                self.skip(head & 0x0F)
        elif kind in (BYTE, DOUBLE):
            self.pos += 1 if kind == BYTE else 8
        elif kind in (LIST, SET, MAP):
            self.value(kind)
        elif kind not in (TRUE, FALSE):
            raise ThriftError(f"unknown thrift type {kind}")

    def ints(self, wanted: frozenset[int]) -> dict[int, int]:
        """The integer fields ``wanted`` of the struct at the cursor; every other field is skipped."""
        found: dict[int, int] = {}
        last = 0
        while (head := self.byte()) != STOP:
            kind, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            if fid in wanted and kind in (I16, I32, I64):
                found[fid] = self.zigzag()
            else:
                self.skip(kind)
        return found

    def struct(self) -> Struct:
        fields: Struct = []
        last = 0
        while True:
            head = self.byte()
            if head == STOP:
                return fields
            kind, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            fields.append((fid, kind, self.value(kind)))
            last = fid


class Writer:
    """Appends values to ``out``, the mirror of :class:`Reader`."""

    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def value(self, kind: int, value: Any) -> None:
        if kind in (TRUE, FALSE):
            return  # a bool field's value is its type nibble
        if kind == BYTE:
            self.out.append(value & 0xFF)
        elif kind in (I16, I32, I64):
            self.varint((value << 1) ^ (value >> 63))
        elif kind == DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (LIST, SET):
            elem, items = value
            if len(items) < 15:
                self.out.append((len(items) << 4) | elem)
            else:
                self.out.append(0xF0 | elem)
                self.varint(len(items))
            for item in items:
                if elem in (TRUE, FALSE):
                    self.out.append(TRUE if item else FALSE)
                else:
                    self.value(elem, item)
        elif kind == MAP:
            key, val, pairs = value
            self.varint(len(pairs))
            if pairs:
                self.out.append((key << 4) | val)
                for k, v in pairs:
                    self.value(key, k)
                    self.value(val, v)
        elif kind == STRUCT:
            self.struct(value)
        else:
            raise ThriftError(f"unknown thrift type {kind}")

    def struct(self, fields: Struct) -> None:
        last = 0
        for fid, kind, value in fields:
            wire = (TRUE if value else FALSE) if kind in (TRUE, FALSE) else kind
            delta = fid - last
            if 0 < delta <= 15:
                self.out.append((delta << 4) | wire)
            else:
                self.out.append(wire)
                self.varint((fid << 1) ^ (fid >> 63))
            self.value(wire, value)
            last = fid
        self.out.append(STOP)


def parse_struct(data: bytes) -> Struct:
    """Parse a Thrift compact struct (a parquet footer, a page header)."""
    return Reader(data).struct()


def dump_struct(fields: Struct) -> bytes:
    """Serialise a struct parsed by :func:`parse_struct` (possibly edited) back to bytes."""
    writer = Writer()
    writer.struct(fields)
    return bytes(writer.out)


def get(fields: Struct, fid: int) -> Any:
    """The value of field ``fid``, or None when absent."""
    for f, _, value in fields:
        if f == fid:
            return value
    return None
