"""The replay venv cache: one directory per runtime key, built once, published whole, checked before use.

Layout under ``<envsnap cache>/venvs`` (:func:`store_root`)::

    .uv/                    uv's cache: every wheel unpacked once; every venv hard-links its files from here
    .locks/KEY.build        held (exclusive) while KEY is being built: a second replay waits, then reuses
    .locks/KEY.use          held (shared) by every process using KEY: eviction skips a key in use
    .building-KEY-XXXX/     a build in progress; renamed to KEY only once complete (never used before)
    KEY/venv/               the venv (the docker engine mounts it read-only at /opt/venv)
    KEY/manifest.json       what the build wrote: every file's size and mtime_ns, and their digest
    KEY/pycache/            byte code, written by the replays themselves (PYTHONPYCACHEPREFIX)
    KEY/last-used           touched on every use: the least recently used keys are evicted first

**Why a manifest of sizes and mtimes**: a full sha256 of a 500 MB venv costs seconds on every replay, the
budget of a warm replay is 3 s. Any write to a file (a byte flipped, a file truncated or replaced, one
added or removed) changes its size or mtime_ns or the set of names; only a write that also restores the
mtime by hand would pass. The wheels themselves are checked by sha256 at every build (``--require-hashes``).

**Bound**: ``$ENVSNAP_CACHE_MAX`` is a number of keys (default 12) or a size (``20G``, ``500M``); after a
build, the least recently used keys beyond it are removed (never one another process is using).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import filecmp
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from envsnap.core.hashing import hash_file
from envsnap.core.naming import human_size
from envsnap.errors import EnvsnapError
from envsnap.replay.wheelhouse import Wheelhouse, cache_root

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "CacheBound",
    "CacheEntry",
    "CacheError",
    "CacheFullError",
    "VenvStore",
    "disk_usage",
    "is_disk_full",
    "os_error_disk_full",
    "parse_bound",
    "raise_if_disk_full",
    "store_root",
]

DEFAULT_MAX_ENTRIES = 12
MANIFEST = "manifest.json"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_DISK_FULL = re.compile(r"No space left on device|ENOSPC|os error 28|Disk quota exceeded", re.IGNORECASE)


class CacheError(EnvsnapError):
    """The replay cache cannot be used (a bad bound, an unwritable directory)."""


class CacheFullError(CacheError):
    """The disk holding the replay cache filled up during a build; nothing of it was kept."""


def store_root() -> Path:
    """``<envsnap cache>/venvs``: the venvs of both engines and the uv store they share."""
    return cache_root() / "venvs"


def is_disk_full(text: str) -> bool:
    """Whether an installer's output says the disk is full."""
    return bool(_DISK_FULL.search(text))


@dataclass(frozen=True)
class CacheBound:
    """At most ``entries`` keys, or at most ``size`` bytes on disk (one of the two)."""

    entries: int | None = None
    size: int | None = None

    def describe(self) -> str:
        return f"{self.entries} venvs" if self.entries is not None else f"{human_size(self.size or 0)}"


def parse_bound(text: str | None) -> CacheBound:
    """``12`` (keys) or ``20G`` / ``500M`` / ``1.5T`` (bytes); empty means the default."""
    if not text or not text.strip():
        return CacheBound(entries=DEFAULT_MAX_ENTRIES)
    value = text.strip()
    if value.isdigit():
        if int(value) < 1:
            raise CacheError(f"ENVSNAP_CACHE_MAX={value!r}: keep at least 1 venv", hint="e.g. ENVSNAP_CACHE_MAX=12")
        return CacheBound(entries=int(value))
    match = _SIZE.match(value)
    if match is None or not match.group(2):
        raise CacheError(
            f"ENVSNAP_CACHE_MAX={value!r} is neither a number of venvs nor a size",
            hint="e.g. ENVSNAP_CACHE_MAX=12 or ENVSNAP_CACHE_MAX=20G",
        )
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match.group(2).upper()]
    return CacheBound(size=int(float(match.group(1)) * scale))


def _bound_from_env() -> CacheBound:
    return parse_bound(os.environ.get("ENVSNAP_CACHE_MAX") or os.environ.get("ENVSNAP_VENV_CACHE_MAX"))


def disk_usage(paths: list[Path], seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes on disk under ``paths``, each file counted once however many hard links it has (as ``du``)."""
    seen = set() if seen is None else seen
    total = 0
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                total += st.st_blocks * 512
    return total


def _scan(venv: Path) -> dict[str, list[int] | str]:
    """Every file of ``venv`` (not byte code): ``[size, mtime_ns]``, or a symlink's target."""
    files: dict[str, list[int] | str] = {}
    for dirpath, dirnames, filenames in os.walk(venv):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, venv)
        for name in (*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))):
            path = os.path.join(dirpath, name)
            key = name if rel == "." else f"{rel}/{name}"
            st = os.lstat(path)
            files[key] = os.readlink(path) if os.path.islink(path) else [st.st_size, st.st_mtime_ns]
    return files


def _digest(files: dict[str, list[int] | str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A published key: its engine, Python, size on disk (its own files counted once) and last use."""

    key: str
    engine: str
    python: str
    path: Path
    size: int
    last_used: float
    created: float


class VenvStore:
    """The cache of replay venvs (:mod:`envsnap.replay.cache`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or store_root()
        self._use_locks: dict[str, IO[str]] = {}

    # -- places -------------------------------------------------------------------------------------
    @property
    def uv_cache(self) -> Path:
        return self.root / ".uv"

    def entry(self, key: str) -> Path:
        return self.root / key

    def ensure(self) -> None:
        try:
            for path in (self.root, self.root / ".locks", self.uv_cache):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the replay cache {self.root}: {exc.strerror or exc}",
                hint="set ENVSNAP_CACHE_DIR to a writable directory",
            ) from None

    # -- locks --------------------------------------------------------------------------------------
    def _lock_file(self, key: str, kind: str) -> IO[str]:
        self.ensure()
        return open(self.root / ".locks" / f"{key}.{kind}", "a+", encoding="utf-8")

    def use(self, key: str) -> None:
        """Hold a shared lock on ``key`` for the rest of this process: eviction leaves it alone."""
        if key in self._use_locks:
            return
        handle = self._lock_file(key, "use")
        fcntl.flock(handle, fcntl.LOCK_SH)
        self._use_locks[key] = handle

    def release(self, key: str) -> None:
        handle = self._use_locks.pop(key, None)
        if handle is not None:
            handle.close()

    @contextlib.contextmanager
    def building(self, key: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """Exclusive right to build ``key``: a second process waits here (``waiting`` is told first)."""
        handle = self._lock_file(key, "build")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            handle.close()

    # -- lookup -------------------------------------------------------------------------------------
    def check(self, key: str) -> str | None:
        """None when ``key`` is published and unchanged since its build; else what is wrong with it."""
        entry = self.entry(key)
        try:
            manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "not built"
        except (OSError, ValueError):
            return "its manifest is unreadable"
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or manifest.get("digest") != _digest(files):
            return "its manifest does not match its digest"
        try:
            found = _scan(entry / "venv")
        except OSError as exc:
            return f"its files cannot be read ({exc.strerror or exc})"
        if found == files:
            return None
        for name in sorted(set(files) | set(found)):
            if name not in found:
                return f"{name} was removed"
            if name not in files:
                return f"{name} was added"
            if found[name] != files[name]:
                return f"{name} was changed"
        return "its files changed"  # pragma: no cover - the loop finds the difference

    def manifest(self, key: str) -> dict[str, object]:
        try:
            data = json.loads((self.entry(key) / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def touch(self, key: str) -> None:
        stamp = self.entry(key) / "last-used"
        with contextlib.suppress(OSError):
            stamp.touch()
            os.utime(stamp)

    # -- build and publish --------------------------------------------------------------------------
    def new_build(self, key: str) -> Path:
        """A fresh private directory for a build of ``key`` (inside the store: same filesystem as uv's
        cache, so the venv's files are hard links)."""
        self.ensure()
        path = Path(tempfile.mkdtemp(prefix=f".building-{key}-", dir=self.root))
        os.chmod(path, 0o755)  # noqa: S103 - read by the replay container's user; inside the private cache
        return path

    def publish(self, build: Path, key: str, info: dict[str, object]) -> Path:
        """Write ``build``'s manifest, then rename it to ``key``: the key appears only once complete."""
        files = _scan(build / "venv")
        manifest = {**info, "key": key, "created": time.time(), "files": files, "digest": _digest(files)}
        target = build / MANIFEST
        with open(target, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        (build / "last-used").touch()
        entry = self.entry(key)
        if entry.exists():  # a changed copy being replaced: moved aside first, removed after
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{key}-", dir=self.root))
            os.replace(entry, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(build, entry)
        with contextlib.suppress(OSError):
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def link_wheels(self, wheelhouse: Wheelhouse) -> tuple[str, str | None]:
        """Put the wheelhouse's (hash-checked) wheels into the store's one wheel directory, and uv's binary
        beside it; returns both paths relative to the store.

        uv's cache knows a local wheel by its path and mtime: a wheel found at the same path with the same
        mtime is not unpacked again, so every build must find its wheels at one stable path (a hard link of
        the wheel cache's blob keeps its mtime).
        """
        self.ensure()
        directory = self.root / ".wheels"
        directory.mkdir(exist_ok=True)
        blobs = cache_root() / "wheels" / "blobs"
        for wheel in (*wheelhouse.wheels, *((wheelhouse.uv,) if wheelhouse.uv else ())):
            # The wheel cache's blob (hash-checked as the wheelhouse took it out), else the wheelhouse's copy.
            source = blobs / wheel.sha256 / wheel.filename
            if not source.is_file():
                source = wheelhouse.directory / wheel.filename
            dest = directory / wheel.filename
            if dest.exists() and (os.path.samefile(source, dest) or hash_file(str(dest))[0] == wheel.sha256):
                continue
            tmp = directory / f".{wheel.filename}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        uv = None
        if wheelhouse.uv is not None:
            tools = self.root / ".tools" / f"uv-{wheelhouse.uv.sha256[:16]}"
            binary = tools / "uv"
            if not binary.is_file():
                tmp_dir = Path(tempfile.mkdtemp(prefix=".tools-", dir=self.root))
                with zipfile.ZipFile(directory / wheelhouse.uv.filename) as zf:
                    member = next((n for n in zf.namelist() if n.endswith(".data/scripts/uv")), None)
                    if member is not None:
                        (tmp_dir / "uv").write_bytes(zf.read(member))
                        os.chmod(tmp_dir / "uv", 0o755)  # noqa: S103 - a program run by the build container
                tools.parent.mkdir(exist_ok=True)
                if (tmp_dir / "uv").is_file():
                    os.chmod(tmp_dir, 0o755)  # noqa: S103 - read by the build container
                    with contextlib.suppress(OSError):
                        os.replace(tmp_dir, tools)
                shutil.rmtree(tmp_dir, ignore_errors=True)
            uv = str(binary.relative_to(self.root)) if binary.is_file() else None
        return ".wheels", uv

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[None]:
        """Host-side writes for ``key``'s build: a full disk becomes :class:`CacheFullError`, any other
        failure to write a :class:`CacheError`, each one line."""
        try:
            yield
        except OSError as exc:
            if os_error_disk_full(exc):
                raise_if_disk_full("No space left on device", self.root)
            raise CacheError(
                f"cannot write the replay venv {key} into {self.root}: {exc.strerror or exc}",
                hint="set ENVSNAP_CACHE_DIR to a writable directory",
            ) from None

    def share_bytecode(self, key: str) -> int:
        """Hard-link ``key``'s byte code to identical files of other venvs; the bytes saved.

        A mounted venv is always at ``/opt/venv``, so the same module of the same package version has the
        same byte-code path in every venv's cache, and identical bytes (its header holds the source's mtime
        and size: the same hard-linked source file). Python replaces a byte-code file by a rename, never
        in place, so a shared file is never changed under another venv.
        """
        mine = self.entry(key) / "pycache"
        others = [e.path / "pycache" for e in self.entries() if e.key != key]
        saved = 0
        if not mine.is_dir() or not others:
            return 0
        for dirpath, _dirnames, filenames in os.walk(mine):
            rel = os.path.relpath(dirpath, mine)
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                for other in others:
                    twin = os.path.join(other, rel, name)
                    try:
                        tw = os.lstat(twin)
                        if (tw.st_dev, tw.st_ino) == (st.st_dev, st.st_ino):
                            break
                        if tw.st_size != st.st_size or not filecmp.cmp(path, twin, shallow=False):
                            continue
                        tmp = f"{path}.{os.getpid()}.share"
                        os.link(twin, tmp)
                        os.replace(tmp, path)
                    except OSError:  # absent there, or not ours to link (protected hard links): keep ours
                        continue
                    saved += st.st_blocks * 512
                    break
        return saved

    def discard(self, build: Path) -> None:
        shutil.rmtree(build, ignore_errors=True)

    # -- listing, pruning ---------------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """The published keys, most recently used first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not (path / MANIFEST).is_file():
                continue
            manifest = self.manifest(path.name)
            try:
                last = (path / "last-used").stat().st_mtime
            except OSError:
                last = float(manifest.get("created") or 0)  # type: ignore[arg-type]
            found.append(
                CacheEntry(
                    key=path.name,
                    engine=str(manifest.get("engine") or "?"),
                    python=str(manifest.get("python") or "?"),
                    path=path,
                    size=disk_usage([path]),
                    last_used=last,
                    created=float(manifest.get("created") or 0),  # type: ignore[arg-type]
                )
            )
        return sorted(found, key=lambda e: (-e.last_used, e.key))

    def total_size(self) -> int:
        """Bytes on disk of the whole store (venvs, byte code, uv's cache), each file counted once."""
        return disk_usage([self.root]) if self.root.is_dir() else 0

    def remove(self, key: str) -> bool:
        """Remove ``key`` unless another process is using it (False then)."""
        handle = self._lock_file(key, "use")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            entry = self.entry(key)
            if entry.exists():
                stale = Path(tempfile.mkdtemp(prefix=f".stale-{key}-", dir=self.root))
                os.replace(entry, stale / "old")
                _rmtree(stale)
            return True
        finally:
            handle.close()

    def prune(self, keep: int, *, protect: str | None = None) -> list[str]:
        """Remove all but the ``keep`` most recently used keys (``protect`` is kept in any case); the
        leftovers of killed builds go too. Returns the removed keys."""
        removed = []
        entries = [e for e in self.entries() if e.key != protect]
        slots = keep - (1 if protect else 0)
        for entry in entries[max(0, slots) :]:
            if entry.key not in self._use_locks and self.remove(entry.key):
                removed.append(entry.key)
        self._sweep()
        return removed

    def evict(self, protect: str | None = None, bound: CacheBound | None = None) -> list[str]:
        """Apply the bound (``$ENVSNAP_CACHE_MAX``): the least recently used keys go first."""
        bound = bound or _bound_from_env()
        if bound.entries is not None:
            return self.prune(bound.entries, protect=protect)
        removed: list[str] = []
        limit = bound.size or 0
        for entry in reversed(self.entries()):
            if self.total_size() <= limit:
                break
            if entry.key != protect and entry.key not in self._use_locks and self.remove(entry.key):
                removed.append(entry.key)
        self._sweep()
        return removed

    def clear(self) -> tuple[list[str], list[str]]:
        """Remove every key not in use and, when none is in use, uv's cache, the wheel links and uv's binary
        (all re-created by the next build); (removed, kept because in use)."""
        removed: list[str] = []
        busy: list[str] = []
        for entry in self.entries():
            (removed if entry.key not in self._use_locks and self.remove(entry.key) else busy).append(entry.key)
        self._sweep()
        if not busy:  # what builds re-create: uv's unpacked wheels, the wheel links, uv's binary
            for path in (self.uv_cache, self.root / ".wheels", self.root / ".tools"):
                if path.exists():
                    _rmtree(path)
        return removed, busy

    def _sweep(self) -> None:
        """Remove what killed builds and removals left (``.building-*`` no process is writing, ``.stale-*``),
        and directories without a manifest (older envsnap versions)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.name.startswith(".stale-"):
                _rmtree(path)
            elif path.name.startswith(".building-"):
                key = path.name[len(".building-") :].rsplit("-", 1)[0]
                handle = self._lock_file(key, "build")
                try:
                    with contextlib.suppress(BlockingIOError):
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        _rmtree(path)
                finally:
                    handle.close()
            elif not path.name.startswith(".") and path.is_dir() and not (path / MANIFEST).exists():
                _rmtree(path)


def _rmtree(path: Path) -> None:
    def fix(func: Callable[..., object], target: str, _exc: object) -> None:
        # Byte code written by the replay's user may sit in directories without write permission for us.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o755)  # noqa: S103 - about to be removed
            func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix)
    else:
        shutil.rmtree(path, onerror=fix)


def raise_if_disk_full(text: str, where: Path) -> None:
    """A :class:`CacheFullError` naming ``where`` when ``text`` (an installer's output) says ENOSPC."""
    if is_disk_full(text):
        raise CacheFullError(
            f"no space left on the disk of {where} while building the replay venv (nothing of it was kept)",
            hint="free space (`envsnap cache prune --keep 1`), or move the cache with ENVSNAP_CACHE_DIR",
        )


def os_error_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
