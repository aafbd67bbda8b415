"""Atomic writes of a snapshot, as a directory or as a ``*.envsnap`` zip.

Everything is written under a temporary name in the destination directory, fsynced, then moved into
place with ``os.replace`` and the directory fsynced: a killed capture leaves no file under the final
name. Zips are reproducible: fixed timestamps and permissions, sorted members, manifest first; JSON and
text members deflated, parquet stored (it is compressed already and must stay seekable).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from envsnap.core import storage
from envsnap.errors import OutputError
from envsnap.snapshot.manifest import MANIFEST, Manifest, manifest_bytes

__all__ = [
    "check_destination",
    "check_output",
    "check_remote_destination",
    "is_zip_path",
    "write_snapshot",
]

ZIP_SUFFIXES = (".envsnap", ".zip")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def is_zip_path(dest: str | os.PathLike[str]) -> bool:
    """Whether ``dest`` names the zip form (by suffix)."""
    return os.fspath(dest).endswith(ZIP_SUFFIXES)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_destination(dest: Path, force: bool) -> None:
    """Refuse a destination that cannot be written, before any work; missing directories are fine
    (the writer creates them) when their nearest existing ancestor is a writable directory."""
    parent = dest.parent
    ancestor = _existing_ancestor(parent)
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {dest}: {ancestor} is not a directory; choose another -o path")
    if not os.access(ancestor, os.W_OK):
        raise OutputError(f"cannot write {dest}: directory {ancestor} is not writable")
    if dest.exists() or dest.is_symlink():
        if not force:
            raise OutputError(f"{dest} already exists; choose another -o path or pass --force to replace it")
        if dest.is_dir() and not dest.is_symlink() and not (dest / MANIFEST).is_file():
            raise OutputError(f"{dest} is a directory that is not a snapshot; refusing to replace it")


def _write_zip(tmp: str, manifest: bytes, members: Mapping[str, bytes]) -> None:
    with open(tmp, "wb") as fh:
        with zipfile.ZipFile(fh, "w") as archive:
            for name, data in [(MANIFEST, manifest), *sorted(members.items())]:
                info = zipfile.ZipInfo(name, date_time=_EPOCH)
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_STORED if name.endswith(".parquet") else zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compresslevel=6 if info.compress_type else None)
        fh.flush()
        os.fsync(fh.fileno())


def _write_tree(root: str, manifest: bytes, members: Mapping[str, bytes]) -> None:
    dirs = {root}
    for name, data in [(MANIFEST, manifest), *sorted(members.items())]:
        full = os.path.join(root, *name.split("/"))
        parent = os.path.dirname(full)
        os.makedirs(parent, exist_ok=True)
        dirs.add(parent)
        with open(full, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    for d in sorted(dirs, key=len, reverse=True):
        _fsync_dir(d)


def check_remote_destination(uri: str, force: bool) -> None:
    """Refuse an ``s3://`` destination that cannot take a snapshot, before any work: not a ``*.envsnap``
    key, a bucket that does not exist, unusable credentials, or an existing key without ``force``."""
    where = storage.parse_s3(uri)
    if not where.key or where.key.endswith("/"):
        raise OutputError(
            f"cannot write {uri}: it names a prefix, not an object; "
            f"end the URI with a file name, e.g. {uri.rstrip('/')}/run.envsnap"
        )
    if not is_zip_path(uri):
        raise OutputError(
            f"cannot write {uri}: on object storage a snapshot is one *.envsnap object; end the key with .envsnap"
        )
    if storage.stat(uri) is not None and not force:
        raise OutputError(f"{uri} already exists; choose another -o key or pass --force to replace it")


def check_output(dest: str | os.PathLike[str], force: bool) -> Path | str:
    """Check a snapshot destination (``-o``) before any work and return it as the writer takes it: an
    ``s3://`` URI as given (:func:`check_remote_destination`), a local path made absolute
    (:func:`check_destination`). The one entry point for every command that writes a snapshot."""
    spath = os.fspath(dest)
    if storage.is_s3(spath):
        check_remote_destination(spath, force)
        return spath
    if storage.is_remote(spath):
        raise OutputError(
            f"cannot write {spath}: an MLflow run is read with runs:/ and written with --mlflow; "
            "give -o a path or an s3:// URI"
        )
    path = Path(spath).absolute()
    check_destination(path, force)
    return path


def _write_remote(uri: str, manifest: bytes, members: Mapping[str, bytes], force: bool) -> str:
    """The zip is built in a local temporary file, then uploaded atomically (``storage.upload_file``)."""
    check_remote_destination(uri, force)
    fd, tmp = tempfile.mkstemp(prefix=".envsnap-upload.", suffix=".envsnap")
    os.close(fd)
    try:
        _write_zip(tmp, manifest, members)
        storage.upload_file(tmp, uri, force=force)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return uri


def write_snapshot(
    dest: str | os.PathLike[str], manifest: Manifest, members: Mapping[str, bytes], *, force: bool = False
) -> Path | str:
    """Write ``members`` and ``manifest`` to ``dest`` atomically; return the final path (an ``s3://`` URI
    is returned as given: the object is uploaded atomically, docs/storage.md)."""
    if storage.is_s3(dest):
        return _write_remote(os.fspath(dest), manifest_bytes(manifest), members, force)
    path = Path(dest).absolute()
    check_destination(path, force)
    data = manifest_bytes(manifest)
    path.parent.mkdir(parents=True, exist_ok=True)
    parent = str(path.parent)
    taken = OutputError(f"{path} appeared while writing (another capture?); nothing was replaced")
    if is_zip_path(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        try:
            _write_zip(tmp, data, members)
            if force:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                os.replace(tmp, path)
            else:
                # A hard link publishes the file atomically and, unlike rename, fails if the name was
                # taken since the check: without --force nothing is ever replaced.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise taken from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    else:
        tmpdir = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        trash: str | None = None
        try:
            _write_tree(tmpdir, data, members)
            if path.exists() or path.is_symlink():
                if not force:
                    raise taken
                trash = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent)
                with contextlib.suppress(FileNotFoundError):  # another --force writer moved it first
                    os.replace(path, os.path.join(trash, "old"))
            try:
                os.replace(tmpdir, path)
            except OSError as exc:
                # rename(2) onto a directory that another writer created meanwhile: ENOTEMPTY / EEXIST.
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise taken from None
                raise
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        finally:
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
    _fsync_dir(parent)
    return path
