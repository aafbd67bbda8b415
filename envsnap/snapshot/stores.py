"""Member stores: where an opened snapshot's bytes come from (memory, a directory, a zip).

Each store is opened by :mod:`envsnap.snapshot.reader`, which has already checked every name. A store
only reads, never past the size the manifest promised (plus one byte, so that "longer than promised" is
caught without reading a compression bomb to its end).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from envsnap.core.hashing import hash_stream
from envsnap.errors import IntegrityError, SnapshotError, UnsafeArchiveError

__all__ = ["DirStore", "MemberStore", "MemoryStore", "ZipStore"]


class MemberStore(ABC):
    """Random access to the raw bytes of members."""

    def __init__(self, path: str) -> None:
        self.path = path

    @abstractmethod
    def open_member(self, member: str) -> _Reader:
        """A binary stream over the member."""

    def read(self, member: str, size: int) -> bytes:
        """Read at most ``size + 1`` bytes of ``member``."""
        with self.open_member(member) as stream:
            return stream.read(size + 1)

    def hash_member(self, member: str, size: int) -> tuple[str, int]:
        """sha256 and length of ``member``, streamed, stopping one byte past ``size``."""
        with self.open_member(member) as stream:
            return hash_stream(stream, size + 1)

    def open_seekable(self, member: str, size: int) -> BinaryIO:
        """A seekable binary file over ``member`` (random access, e.g. for parquet). Not verified: the
        caller checks the hash (:meth:`hash_member`). The default holds at most ``size + 1`` bytes."""
        return io.BytesIO(self.read(member, size))

    def local_path(self, member: str) -> str | None:
        """The member's own file on disk, when it has one (a directory snapshot), else None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook; most stores hold nothing open
        """Release any open handle."""


class _Reader:
    """The minimal protocol of a readable binary stream used here."""

    def read(self, n: int = -1) -> bytes:  # pragma: no cover - protocol only
        raise NotImplementedError

    def __enter__(self) -> _Reader:  # pragma: no cover - protocol only
        return self

    def __exit__(self, *exc: object) -> None:  # pragma: no cover - protocol only
        pass


class _BytesReader(_Reader):
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        out = self._data[self._pos : end]
        self._pos += len(out)
        return out


class MemoryStore(MemberStore):
    """Members held in memory: a snapshot fresh from ``capture()`` that has not been written yet."""

    def __init__(self, members: Mapping[str, bytes], path: str = "<memory>") -> None:
        super().__init__(path)
        self._members = dict(members)

    def open_member(self, member: str) -> _Reader:
        return _BytesReader(self._members[member])


class DirStore(MemberStore):
    """A snapshot directory. Each open re-checks that the member is a regular file inside the root."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._root = os.path.realpath(path)

    def file_path(self, member: str) -> str:
        """The checked on-disk path of ``member``."""
        full = os.path.join(self._root, *member.split("/"))
        try:
            st = os.lstat(full)
        except FileNotFoundError as exc:
            raise IntegrityError(self.path, f"member {member} is listed in the manifest but missing") from exc
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeArchiveError(self.path, f"member {member} is not a regular file (symlink or device)")
        real = os.path.realpath(full)
        if os.path.commonpath([self._root, real]) != self._root:
            raise UnsafeArchiveError(self.path, f"member {member} resolves outside the snapshot")
        return full

    def open_member(self, member: str) -> _Reader:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.file_path(member), flags)
        except OSError as exc:
            raise SnapshotError(self.path, f"cannot read member {member}: {exc.strerror}") from exc
        return os.fdopen(fd, "rb")  # type: ignore[return-value]

    def local_path(self, member: str) -> str | None:
        """The checked on-disk path (see :meth:`file_path`)."""
        return self.file_path(member)

    def open_seekable(self, member: str, size: int) -> BinaryIO:
        """The member's own file (checked as in :meth:`open_member`): already seekable."""
        return self.open_member(member)  # type: ignore[return-value]


class ZipStore(MemberStore):
    """A ``*.envsnap`` zip, read with random access: ``show`` never inflates members it does not need."""

    def __init__(
        self,
        path: str,
        archive: zipfile.ZipFile,
        infos: Mapping[str, zipfile.ZipInfo],
        opener: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(path)
        self._zip = archive
        self._infos = dict(infos)
        #: Opens a second handle on the archive for :meth:`open_seekable`: a local file by default, a
        #: remote object (``s3://``, read by range requests through ``read_at``) when given.
        self._opener = opener

    def open_member(self, member: str) -> _Reader:
        info = self._infos.get(member)
        if info is None:
            raise IntegrityError(self.path, f"member {member} is listed in the manifest but missing")
        try:
            return self._zip.open(info)  # type: ignore[return-value]
        except Exception as exc:  # hostile bytes fail inside zipfile/zlib in many ways: all are corruption
            raise SnapshotError(self.path, f"member {member} cannot be read ({exc})") from exc

    def open_seekable(self, member: str, size: int) -> BinaryIO:
        """A stored (uncompressed) member is a window of the archive file, read by offset with its own
        handle: parquet readers seek backwards, which a ``ZipExtFile`` serves by re-reading from the start.
        A compressed member is inflated into memory (bounded by its manifest size)."""
        info = self._infos.get(member)
        if info is None:
            raise IntegrityError(self.path, f"member {member} is listed in the manifest but missing")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            return super().open_seekable(member, size)
        fh = self._opener() if self._opener is not None else open(self.path, "rb")  # noqa: SIM115 - owned by the window
        try:
            header = _pread(fh, 30, info.header_offset)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise IntegrityError(self.path, f"member {member} has no valid local header")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            return _Window(fh, start, min(info.file_size, size + 1))  # type: ignore[return-value]
        except BaseException:
            fh.close()
            raise

    def read(self, member: str, size: int) -> bytes:
        try:
            return super().read(member, size)
        except Exception as exc:  # hostile bytes fail inside zipfile/zlib in many ways: all are corruption
            raise IntegrityError(self.path, f"member {member} is corrupt ({exc})") from exc

    def hash_member(self, member: str, size: int) -> tuple[str, int]:
        try:
            return super().hash_member(member, size)
        except Exception as exc:  # hostile bytes fail inside zipfile/zlib in many ways: all are corruption
            raise IntegrityError(self.path, f"member {member} is corrupt ({exc})") from exc

    def close(self) -> None:
        self._zip.close()


def _pread(fh: Any, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset`` without moving a shared position: ``os.pread`` on a local file,
    ``read_at`` (one HTTP range request) on a remote object opened by :mod:`envsnap.core.storage`."""
    read_at = getattr(fh, "read_at", None)
    if read_at is not None:
        return bytes(read_at(n, offset))
    return os.pread(fh.fileno(), n, offset)


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of an open file from ``start`` (``os.pread``: no
    shared file position, and the GIL is released while reading)."""

    def __init__(self, fh: Any, start: int, length: int) -> None:
        super().__init__()
        self._fh = fh
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._length - self._pos)
        n = left if size is None or size < 0 else min(size, left)
        if n == 0:
            return b""
        data = _pread(self._fh, n, self._start + self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()
