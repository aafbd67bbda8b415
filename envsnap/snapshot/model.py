"""The opened :class:`Snapshot`: members read lazily, each hash-checked against the manifest before use."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from envsnap.errors import IntegrityError, NotFoundError, SnapshotError
from envsnap.snapshot.manifest import Manifest
from envsnap.snapshot.schema import validate_member

if TYPE_CHECKING:
    from pathlib import Path

    from envsnap.snapshot.stores import MemberStore

__all__ = ["SECTIONS", "Snapshot", "VerifyReport"]

#: Short section names accepted by ``show --section`` and :meth:`Snapshot.section`.
SECTIONS: Mapping[str, str] = MappingProxyType(
    {
        "python": "env/python.json",
        "packages": "env/packages.json",
        "lock": "env/requirements.lock",
        "sbom": "env/sbom.cdx.json",
        "system": "env/system.json",
        "native": "env/native.json",
        "os-packages": "env/os-packages.json",
        "gpu": "env/gpu.json",
        "threads": "env/threads.json",
        "envvars": "env/envvars.json",
        "container": "env/container.json",
        "git": "env/git.json",
        "git-patch": "env/git.patch",
        "job": "job/command.json",
        "job-files": "job/files.json",
        "code": "code/index.json",
        "inputs": "data/inputs.json",
        "pipeline": "pipeline/pipeline.json",
        "artifacts": "artifacts/index.json",
        "lockfiles": "project/lockfiles.json",
        "configs": "project/configs.json",
    }
)


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`Snapshot.verify`: every member checked, all good (errors raise)."""

    path: str
    members: int
    bytes: int
    fingerprint: str


class Snapshot:
    """An opened snapshot. Members are read lazily and each is hash-checked before it is parsed."""

    def __init__(self, manifest: Manifest, store: MemberStore, *, path: str) -> None:
        self.manifest = manifest
        self.path = path
        self._store = store
        self._json_cache: dict[str, Any] = {}

    # identity -------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the runtime contract (see :mod:`envsnap.snapshot.fingerprint`)."""
        return self.manifest.fingerprint

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def label(self) -> str | None:
        return self.manifest.label

    @property
    def kind(self) -> str:
        """What the snapshot records: ``pipeline`` (stages and intermediates, ``envsnap run``),
        ``command`` (a job run with ``envsnap run -- COMMAND``) or ``environment`` (a runtime only:
        ``capture``, ``on_failure``, the pytest plugin)."""
        if "pipeline/pipeline.json" in self:
            return "pipeline"
        if "job/command.json" in self:
            job = self.read_json("job/command.json")
            if isinstance(job, dict) and isinstance(job.get("command"), dict):
                return "command"
        return "environment"

    def members(self) -> list[str]:
        """Member paths in manifest order (sorted)."""
        return sorted(self.manifest.members)

    def __contains__(self, member: object) -> bool:
        return member in self.manifest.members

    # reading --------------------------------------------------------------------------------------
    def read_bytes(self, member: str) -> bytes:
        """The bytes of ``member``, checked against the manifest's size and sha256."""
        info = self.manifest.members.get(member)
        if info is None:
            raise NotFoundError(f"{self.path}: no member {member!r}; see `envsnap show {self.path}` for the list")
        data = self._store.read(member, info.size)
        if len(data) != info.size or hashlib.sha256(data).hexdigest() != info.sha256:
            raise IntegrityError(self.path, f"member {member} does not match its manifest hash (altered or corrupt)")
        return data

    def read_text(self, member: str) -> str:
        """A text member, decoded as UTF-8."""
        try:
            return self.read_bytes(member).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SnapshotError(self.path, f"member {member} is not UTF-8 text") from exc

    def read_json(self, member: str) -> Any:
        """A JSON member, hash-checked, parsed and validated against its shipped schema."""
        if member in self._json_cache:
            return self._json_cache[member]
        import json

        raw = self.read_bytes(member)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise SnapshotError(self.path, f"member {member} is not valid JSON") from exc
        validate_member(self.path, member, data)
        self._json_cache[member] = data
        return data

    def section(self, name: str) -> Any:
        """A member by short section name (``packages``) or full path; JSON parsed, text decoded."""
        member = SECTIONS.get(name, name)
        if member not in self.manifest.members:
            known = ", ".join(n for n, m in SECTIONS.items() if m in self.manifest.members)
            raise NotFoundError(f"{self.path}: no section {name!r}; this snapshot has: {known}")
        if member.endswith(".json"):
            return self.read_json(member)
        return self.read_text(member)

    def probe_error(self, name: str) -> str | None:
        """The error a probe recorded during capture, if it failed."""
        status = self.manifest.probes.get(name)
        return status.error if status is not None else None

    def open_member(self, member: str) -> BinaryIO:
        """A seekable binary file over ``member`` for random-access readers (parquet), NOT yet verified:
        check it with :meth:`check_member` (it may run concurrently, on its own handle) before trusting
        anything parsed from it. The caller closes the file."""
        info = self.manifest.members.get(member)
        if info is None:
            raise NotFoundError(f"{self.path}: no member {member!r}; see `envsnap show {self.path}` for the list")
        return self._store.open_seekable(member, info.size)

    def member_path(self, member: str) -> str | None:
        """The on-disk file of ``member`` in a directory snapshot (checked to be a regular file inside the
        snapshot), so that native readers (pyarrow) can open it themselves; None for zips and in-memory
        snapshots. Like :meth:`open_member`, NOT verified: use :meth:`check_member`."""
        if member not in self.manifest.members:
            raise NotFoundError(f"{self.path}: no member {member!r}; see `envsnap show {self.path}` for the list")
        return self._store.local_path(member)

    def check_member(self, member: str) -> None:
        """Stream-hash ``member`` and raise :class:`IntegrityError` unless it matches the manifest."""
        info = self.manifest.members.get(member)
        if info is None:
            raise NotFoundError(f"{self.path}: no member {member!r}; see `envsnap show {self.path}` for the list")
        digest, size = self._store.hash_member(member, info.size)
        if size != info.size or digest != info.sha256:
            raise IntegrityError(self.path, f"member {member} does not match its manifest hash (altered or corrupt)")

    def iter_member_bytes(self) -> Iterator[tuple[str, bytes]]:
        """Every member's verified bytes, in sorted order."""
        for member in self.members():
            yield member, self.read_bytes(member)

    def verify(self) -> VerifyReport:
        """Re-hash every member (streaming), validate every JSON member; raise on the first problem."""
        total = 0
        for member in self.members():
            info = self.manifest.members[member]
            digest, size = self._store.hash_member(member, info.size)
            if size != info.size or digest != info.sha256:
                raise IntegrityError(
                    self.path, f"member {member} does not match its manifest hash (altered or corrupt)"
                )
            total += size
            if member.endswith(".json"):
                self.read_json(member)
        return VerifyReport(
            path=self.path, members=len(self.manifest.members), bytes=total, fingerprint=self.fingerprint
        )

    def write(self, dest: str | os.PathLike[str], *, force: bool = False) -> Path | str:
        """Write this snapshot to ``dest`` (``*.envsnap`` = zip, else a directory), atomically."""
        from envsnap.snapshot.writer import write_snapshot

        members = {name: self.read_bytes(name) for name in self.members()}
        return write_snapshot(dest, self.manifest, members, force=force)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Snapshot {self.path} id={self.id} fingerprint={self.fingerprint[:19]}>"
