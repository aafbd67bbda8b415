"""The verifying, safe reader. Every snapshot is treated as hostile input.

Rules (DESIGN.md, "reading untrusted archives"): regular files only (no symlinks, hardlinks, devices);
no absolute, ``..``, backslash or NUL names; no duplicates, also after case folding; size limits
checked from the headers before anything is inflated and enforced again while streaming; containment of
directory members checked with ``commonpath``. The member set must equal the manifest's: missing and
unlisted members are errors. Member bytes are hash-checked before they are parsed (see ``model``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from envsnap.core import storage
from envsnap.errors import IntegrityError, SnapshotError, StorageError, UnsafeArchiveError
from envsnap.snapshot import canonical
from envsnap.snapshot.manifest import MANIFEST, Manifest, manifest_checksum
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.stores import DirStore, ZipStore

__all__ = ["check_member_name", "open_snapshot", "opened"]

MAX_MANIFEST_SIZE = 16 << 20
MAX_MEMBER_SIZE = 8 << 30
MAX_TOTAL_SIZE = 32 << 30
MAX_MEMBERS = 100_000
#: Deflate cannot compress better than about 1032:1; a header claiming more is a lie or a bomb.
MAX_DEFLATE_RATIO = 1100
#: Remote zips are read in aligned blocks of this size (a few kept): the directory, the manifest and the
#: small JSON members beside it arrive in a handful of range requests (docs/storage.md).
READ_AHEAD = 64 << 10


def check_member_name(path: str, name: str) -> None:
    """Refuse a member name that could escape the snapshot or mean different files on different systems."""
    if not name or len(name) > 1024:
        raise UnsafeArchiveError(path, f"member name {name!r} is empty or too long")
    if "\x00" in name or "\\" in name or any(ord(c) < 32 for c in name):
        raise UnsafeArchiveError(path, f"member name {name!r} contains a NUL, backslash or control character")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(path, f"member name {name!r} is absolute")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeArchiveError(path, f"member name {name!r} contains '..', '.' or an empty component")


def _check_unique(path: str, names: Iterable[str]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        folded = name.casefold()
        if folded in seen:
            what = "duplicate member" if seen[folded] == name else "members that collide after case folding:"
            other = "" if seen[folded] == name else f" {seen[folded]!r} and"
            raise UnsafeArchiveError(path, f"{what}{other} {name!r}")
        seen[folded] = name


def _parse_manifest(path: str, raw: bytes) -> Manifest:
    if len(raw) > MAX_MANIFEST_SIZE:
        raise SnapshotError(path, "manifest.json is larger than 16 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(path, "manifest.json is not valid JSON (truncated or corrupt)") from exc
    manifest = Manifest.from_dict(data, source=path)  # the version gate and the schema first
    if "checksum" not in data and manifest.minor >= 1:
        raise IntegrityError(
            path, "manifest.json has no checksum, which every minor >= 1 manifest has (altered or corrupt)"
        )
    if "checksum" in data:  # minor >= 1: the manifest's own hash, and its exact canonical bytes
        if data["checksum"] != manifest_checksum(data):
            raise IntegrityError(path, "manifest.json does not match its own checksum (altered or corrupt)")
        if raw != canonical.dumps(data):
            raise IntegrityError(path, "manifest.json is not in its canonical form (altered or corrupt)")
    return manifest


def _compare_sets(path: str, manifest: Manifest, present: Iterable[str]) -> None:
    present_set = set(present) - {MANIFEST}
    listed = set(manifest.members)
    for name in manifest.members:
        check_member_name(path, name)
    missing = sorted(listed - present_set)
    if missing:
        raise IntegrityError(path, f"member {missing[0]} is listed in the manifest but missing")
    extra = sorted(present_set - listed)
    if extra:
        raise IntegrityError(path, f"member {extra[0]} is not listed in the manifest (added after capture?)")
    total = sum(info.size for info in manifest.members.values())
    if total > MAX_TOTAL_SIZE or any(info.size > MAX_MEMBER_SIZE for info in manifest.members.values()):
        raise UnsafeArchiveError(path, "members are larger than envsnap's limits (8 GiB each, 32 GiB in all)")


def _open_zip(path: str, opener: Callable[[], Any] | None = None) -> Snapshot:
    source = opener() if opener is not None else path
    try:
        archive = zipfile.ZipFile(source)
    except BaseException as exc:
        if not isinstance(source, str):
            source.close()
        # The object store failed while the directory was read: say that, not "garbage".
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            raise
        # zipfile is not written for hostile input: a bad archive raises BadZipFile, struct or unicode
        # errors, NotImplementedError for a flipped version byte, OverflowError for a huge offset. All mean
        # "not ours".
        raise SnapshotError(path, "not an envsnap archive (not a zip file: truncated, empty or garbage)") from exc
    try:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise UnsafeArchiveError(path, f"archive has {len(infos)} entries, more than {MAX_MEMBERS}")
        files: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            check_member_name(path, name.rstrip("/") if info.is_dir() else name)
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise UnsafeArchiveError(path, f"member {name!r} is a symlink")
            if info.is_dir():
                continue
            if kind not in (0, stat.S_IFREG):
                raise UnsafeArchiveError(path, f"member {name!r} is not a regular file")
            if info.flag_bits & 0x1:
                raise UnsafeArchiveError(path, f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UnsafeArchiveError(path, f"member {name!r} uses an unsupported compression method")
            if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_DEFLATE_RATIO * max(
                info.compress_size, 1
            ):
                raise UnsafeArchiveError(path, f"member {name!r} claims an impossible compression ratio (zip bomb)")
            files[name] = info
        _check_unique(path, [i.filename for i in infos])
        manifest_info = files.get(MANIFEST)
        if manifest_info is None:
            raise SnapshotError(path, "archive has no manifest.json; not an envsnap snapshot")
        if manifest_info.file_size > MAX_MANIFEST_SIZE:
            raise SnapshotError(path, "manifest.json is larger than 16 MiB")
        try:
            with archive.open(manifest_info) as stream:
                raw = stream.read(MAX_MANIFEST_SIZE + 1)
        except Exception as exc:  # a corrupt deflate stream or header: see _open_zip
            raise SnapshotError(path, f"manifest.json is corrupt ({exc})") from exc
        manifest = _parse_manifest(path, raw)
        _compare_sets(path, manifest, files)
        for name, promised in manifest.members.items():
            if files[name].file_size != promised.size:
                raise IntegrityError(path, f"member {name} does not match its manifest size (altered or corrupt)")
    except BaseException:
        archive.close()
        raise
    return Snapshot(manifest, ZipStore(path, archive, files, opener), path=path)


def _walk_dir(path: str) -> list[str]:
    names: list[str] = []
    stack = [("", path)]
    while stack:
        prefix, current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise SnapshotError(path, f"cannot list {current}: {exc.strerror}") from exc
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                raise UnsafeArchiveError(path, f"member {rel!r} is a symlink")
            if entry.is_dir(follow_symlinks=False):
                stack.append((rel + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                check_member_name(path, rel)
                names.append(rel)
            else:
                raise UnsafeArchiveError(path, f"member {rel!r} is not a regular file")
            if len(names) > MAX_MEMBERS:
                raise UnsafeArchiveError(path, f"snapshot has more than {MAX_MEMBERS} files")
    return names


def _open_dir(path: str) -> Snapshot:
    names = _walk_dir(path)
    _check_unique(path, names)
    if MANIFEST not in names:
        raise SnapshotError(path, "directory has no manifest.json; not an envsnap snapshot")
    store = DirStore(path)
    with store.open_member(MANIFEST) as stream:
        raw = stream.read(MAX_MANIFEST_SIZE + 1)
    manifest = _parse_manifest(path, raw)
    _compare_sets(path, manifest, names)
    return Snapshot(manifest, store, path=path)


def _open_s3(uri: str) -> Snapshot:
    """A ``*.envsnap`` object on S3, read by range requests: the zip's directory and the manifest first,
    members only when asked for (``show`` fetches a few KiB of a large snapshot)."""
    size = storage.stat(uri)
    if size is None:
        raise SnapshotError(uri, "no such snapshot object", hint="check the bucket and key (`aws s3 ls` lists them)")
    fs = storage.filesystem()
    return _open_zip(uri, lambda: storage.open_input(uri, fs, read_ahead=READ_AHEAD))


def open_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Open a snapshot directory or ``*.envsnap`` zip, checking names, member set and manifest.

    ``path`` may also be an ``s3://bucket/key.envsnap`` object (docs/storage.md) or an MLflow
    ``runs:/RUN_ID/...`` artifact URI (docs/mlflow.md).

    Member bytes are verified lazily, when read; :meth:`Snapshot.verify` checks them all.
    """
    spath = os.fspath(path)
    if storage.is_s3(spath):
        return _open_s3(spath)
    if spath.startswith(storage.RUNS_PREFIX):
        from envsnap.core import mlflow_runs

        snap = open_snapshot(mlflow_runs.resolve_runs_uri(spath))
        snap.path = spath  # shown and named by the URI the user gave, not the private download directory
        return snap
    try:
        st = os.stat(spath)
    except FileNotFoundError as exc:
        raise SnapshotError(spath, "no such snapshot", hint="check the path") from exc
    except OSError as exc:
        raise SnapshotError(spath, f"cannot open snapshot: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        return _open_dir(spath)
    if stat.S_ISREG(st.st_mode):
        return _open_zip(spath)
    raise SnapshotError(spath, "not a file or directory")


@contextlib.contextmanager
def opened(value: Snapshot | str | os.PathLike[str]) -> Iterator[Snapshot]:
    """A Snapshot as given, or one opened from a path (and closed afterwards)."""
    if isinstance(value, Snapshot):
        yield value
        return
    with open_snapshot(os.fspath(value)) as snap:
        yield snap
