"""sha256 of files and streams, read in fixed-size chunks so that memory stays flat whatever the size."""

from __future__ import annotations

import hashlib
from typing import Protocol

__all__ = ["CHUNK", "Readable", "hash_file", "hash_stream"]

CHUNK = 1 << 20


class Readable(Protocol):
    """What :func:`hash_stream` needs of a stream: ``read(n)`` returning at most ``n`` bytes, ``b""`` at the end."""

    def read(self, n: int = -1, /) -> bytes: ...


def hash_stream(stream: Readable, limit: int | None = None) -> tuple[str, int]:
    """sha256 (hex) and length of what ``stream`` yields, stopping after ``limit`` bytes when given.

    A caller that checks a promised size passes ``size + 1``: a longer stream is caught without being read
    to its end (a compression bomb in a zip member).
    """
    digest = hashlib.sha256()
    seen = 0
    while limit is None or seen < limit:
        chunk = stream.read(CHUNK if limit is None else min(CHUNK, limit - seen))
        if not chunk:
            break
        digest.update(chunk)
        seen += len(chunk)
    return digest.hexdigest(), seen


def hash_file(path: str) -> tuple[str, int]:
    """sha256 (hex) and size of a file, streamed in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return hash_stream(fh)
