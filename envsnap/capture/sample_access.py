"""Where a sampled input's bytes come from: local files or ``s3://`` objects, behind one small interface.

The samplers see a :class:`Source` for the location given (a path or a URI):

* ``entry()`` — the location as one file (:class:`FileEntry`: size, modification time), or None when it is
  a directory or a prefix;
* ``list()`` — the files under that directory or prefix, as pyarrow's dataset discovery sees them (names
  starting with ``.`` or ``_`` skipped, ``_SUCCESS`` and ``.crc`` files), sorted, names relative with ``/``;
* ``open(entry)`` — random access (:class:`RandomAccess`: ``read_at(offset, size)``, and ``arrow``, what
  pyarrow's parquet reader opens);
* ``stream(entry)`` — one sequential pass (for CSV).

Local files are read with ``pread``. ``s3://`` objects go through :mod:`envsnap.core.storage` (pyarrow's S3
filesystem, the only module that touches it): each ``read_at`` is one HTTP range request and nothing is
prefetched, so a parquet sample fetches footers, then only the column chunks (or pages) it needs; a CSV is
streamed in 8 MiB range requests and decompressed on the fly, never downloaded whole or to disk. A storage
failure (missing bucket or key, no or wrong credentials, a refusing endpoint) is an
:class:`~envsnap.errors.InputError` naming the input.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Protocol

from envsnap.core import storage
from envsnap.errors import InputError, StorageError

__all__ = ["FileEntry", "LocalSource", "RandomAccess", "S3Source", "Source", "iso_time", "open_source"]

_STREAM_BUFFER = 8 << 20


def iso_time(ns: int) -> str:
    """A file time (``st_mtime_ns``) as ISO 8601 UTC with microseconds."""
    seconds, rest = divmod(ns, 10**9)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class FileEntry:
    """One file of a source: where it is, its name relative to the source (``/``-separated; a single file:
    its base name), its size and its modification time (ISO 8601 UTC; an object's Last-Modified)."""

    location: str
    relpath: str
    size: int
    modified: str | None


class RandomAccess(Protocol):
    """A file open for reads at any offset."""

    #: What pyarrow opens for this file (a local path, or a pyarrow NativeFile).
    arrow: Any

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` (fewer only at the end of the file)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def _skipped(relpath: str) -> bool:
    return any(segment.startswith((".", "_")) for segment in relpath.split("/"))


class Source(Protocol):
    """A sampled input's location: one file, or a directory/prefix of files."""

    name: str
    location: str
    #: Whether reads cost a request each (object storage): readers then fetch larger spans at once.
    remote: bool

    def entry(self) -> FileEntry | None: ...

    def list(self) -> list[FileEntry]: ...

    def open(self, entry: FileEntry) -> RandomAccess: ...

    def stream(self, entry: FileEntry) -> contextlib.AbstractContextManager[Any]: ...

    def close(self) -> None:
        """Release what the source keeps open."""
        ...


class _LocalFile:
    def __init__(self, path: str) -> None:
        self.arrow = path
        self._fd: int | None = os.open(path, os.O_RDONLY)

    def read_at(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            raise OSError("the file is closed")
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LocalSource:
    """A local file or directory."""

    remote = False

    def __init__(self, name: str, path: str) -> None:
        self.name, self.location = name, path

    def entry(self) -> FileEntry | None:
        path = self.location
        if not os.path.exists(path):
            raise InputError(self.name, path, "no such file or directory")
        if os.path.isdir(path):
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InputError(self.name, path, f"cannot read it: {exc.strerror or exc}") from None
        return FileEntry(path, os.path.basename(path), st.st_size, iso_time(st.st_mtime_ns))

    def list(self) -> list[FileEntry]:
        out: list[FileEntry] = []
        for folder, dirs, files in os.walk(self.location):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            for file_name in sorted(files):
                if file_name.startswith((".", "_")):
                    continue
                full = os.path.join(folder, file_name)
                relpath = os.path.relpath(full, self.location).replace(os.sep, "/")
                try:
                    st = os.stat(full)
                except OSError as exc:
                    raise InputError(
                        self.name, self.location, f"cannot read {relpath}: {exc.strerror or exc}"
                    ) from None
                out.append(FileEntry(full, relpath, st.st_size, iso_time(st.st_mtime_ns)))
        return sorted(out, key=lambda e: e.relpath)

    def close(self) -> None:
        pass

    def open(self, entry: FileEntry) -> RandomAccess:
        try:
            return _LocalFile(entry.location)
        except OSError as exc:
            raise InputError(self.name, self.location, f"cannot read {entry.relpath}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def stream(self, entry: FileEntry) -> Iterator[BinaryIO]:
        with open(entry.location, "rb") as fh:
            yield fh


class _S3File:
    """A range-read view of an object; the object stays open with its :class:`S3Source` (``close`` is a
    no-op here), so the footer read and the row-group reads share one handle and its one HEAD request."""

    def __init__(self, native: Any, name: str, uri: str) -> None:
        self.arrow = native
        self._name, self._uri = name, uri

    def read_at(self, offset: int, size: int) -> bytes:
        try:
            data: bytes = self.arrow.read_at(size, offset)
        except OSError as exc:  # the endpoint went away, the object was deleted, credentials expired
            error = storage.translate(exc, self._uri, "reading the object")
            raise InputError(self._name, self._uri, error.problem, hint=error.hint) from None
        return data

    def close(self) -> None:
        pass


class _Stream(io.RawIOBase):
    """A read-only Python file over a pyarrow input stream that counts what it handed out (``tell``)."""

    def __init__(self, native: Any) -> None:
        super().__init__()
        self._native = native
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._native.read() if size is None or size < 0 else self._native.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._native.close()
        super().close()


class S3Source:
    """An ``s3://bucket/key`` object, or every object under ``s3://bucket/prefix/``."""

    remote = True

    def __init__(self, name: str, uri: str) -> None:
        self.name, self.location = name, uri
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()
        with self._errors():
            self._where = storage.parse_s3(uri)
            self._fs = storage.filesystem()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            raise InputError(self.name, self.location, exc.problem, hint=exc.hint) from None

    def _prefix(self) -> str:
        return self._where.child("").uri if self._where.key else self._where.uri

    def entry(self) -> FileEntry | None:
        where = self._where
        if where.key and not where.key.endswith("/"):
            with self._errors():
                info = storage.describe(where.uri, self._fs)
            if info is not None:
                return FileEntry(where.uri, info.name, info.size, info.modified)
            if not self.list():
                raise InputError(
                    self.name,
                    self.location,
                    "no such object, and no objects under that prefix",
                    hint="check the key (`aws s3 ls` lists a prefix)",
                )
        return None

    def list(self) -> list[FileEntry]:
        prefix = self._prefix()
        with self._errors():
            objects = storage.list_objects(prefix, self._fs)
        return [
            FileEntry(prefix + o.name, o.name, o.size, o.modified)
            for o in objects
            if o.name and not _skipped(o.name) and not o.name.endswith("/")
        ]

    def open(self, entry: FileEntry) -> RandomAccess:
        with self._lock:
            native = self._handles.get(entry.location)
            if native is None:
                with self._errors():
                    native = storage.open_input(entry.location, self._fs)
                self._handles[entry.location] = native
        return _S3File(native, self.name, entry.location)

    def close(self) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for native in handles:
            with contextlib.suppress(OSError):
                native.close()

    @contextlib.contextmanager
    def stream(self, entry: FileEntry) -> Iterator[Any]:
        with self._errors():
            native = storage.open_stream(entry.location, self._fs, buffer_size=_STREAM_BUFFER)
        with _Stream(native) as stream:
            yield stream


def open_source(name: str, location: str) -> Source:
    """The :class:`Source` for ``location``: ``s3://`` objects, else a local path (other URIs are refused)."""
    if storage.is_s3(location):
        return S3Source(name, location)
    if "://" in location:
        raise InputError(
            name,
            location,
            "only local paths and s3:// locations can be sampled",
            hint="copy the data to a local path or to S3-compatible storage first",
        )
    return LocalSource(name, location)
