"""The snapshot model: the manifest as a frozen dataclass, and the opened :class:`Snapshot`."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from envsnap.errors import FormatVersionError, IntegrityError, NotFoundError, SnapshotError
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

if TYPE_CHECKING:
    from pathlib import Path

    from envsnap.snapshot.stores import MemberStore

FORMAT_MAJOR = 1
FORMAT_MINOR = 1
FORMAT = f"envsnap/{FORMAT_MAJOR}"
MANIFEST = "manifest.json"

_FORMAT_RE = re.compile(r"^envsnap/([0-9]{1,6})$")

#: Short section names accepted by ``show --section`` and :meth:`Snapshot.section`.
SECTIONS: Mapping[str, str] = MappingProxyType(
    {
        "python": "env/python.json",
        "packages": "env/packages.json",
        "lock": "env/requirements.lock",
        "sbom": "env/sbom.cdx.json",
        "system": "env/system.json",
        "native": "env/native.json",
        "gpu": "env/gpu.json",
        "threads": "env/threads.json",
        "envvars": "env/envvars.json",
        "container": "env/container.json",
        "git": "env/git.json",
        "git-patch": "env/git.patch",
        "job": "job/command.json",
        "inputs": "data/inputs.json",
        "pipeline": "pipeline/pipeline.json",
        "artifacts": "artifacts/index.json",
        "lockfiles": "project/lockfiles.json",
        "configs": "project/configs.json",
    }
)


class NewerMinorFormatWarning(UserWarning):
    """The snapshot was written by a newer envsnap of the same major format; unknown fields are ignored."""


@dataclass(frozen=True)
class MemberInfo:
    """What the manifest promises about one member."""

    sha256: str
    size: int


@dataclass(frozen=True)
class ProbeStatus:
    """How one probe ended during capture."""

    status: str
    error: str | None = None
    members: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.error is not None:
            out["error"] = self.error
        if self.members:
            out["members"] = list(self.members)
        return out


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: identity of the snapshot and the hash and size of every member."""

    format: str
    minor: int
    created_by: str
    created_at: str | None
    id: str
    label: str | None
    fingerprint: str
    members: Mapping[str, MemberInfo]
    probes: Mapping[str, ProbeStatus] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<manifest>") -> Manifest:
        """Build from parsed JSON: version gate first, then the schema, naming any bad field."""
        if not isinstance(data, dict):
            raise SnapshotError(source, "manifest.json is not a JSON object")
        fmt = data.get("format")
        match = _FORMAT_RE.match(fmt) if isinstance(fmt, str) else None
        if match is None:
            raise SnapshotError(source, f"manifest.json has no valid 'format' (got {fmt!r}); not an envsnap snapshot")
        major = int(match.group(1))
        if major != FORMAT_MAJOR:
            raise FormatVersionError(
                source,
                f"written in format {fmt}, this envsnap reads {FORMAT}",
                hint="upgrade envsnap (pip install -U envsnap-ml)" if major > FORMAT_MAJOR else "re-capture it",
            )
        validate_member(source, MANIFEST, data)
        if data["minor"] > FORMAT_MINOR:
            warnings.warn(
                f"{source}: written by a newer envsnap ({fmt}.{data['minor']}); fields it added are ignored",
                NewerMinorFormatWarning,
                stacklevel=2,
            )
        members = {name: MemberInfo(m["sha256"], m["size"]) for name, m in data["members"].items()}
        probes = {
            name: ProbeStatus(p["status"], p.get("error"), tuple(p.get("members", ())))
            for name, p in data["probes"].items()
        }
        return cls(
            format=str(fmt),
            minor=data["minor"],
            created_by=data["created_by"],
            created_at=data["created_at"],
            id=data["id"],
            label=data["label"],
            fingerprint=data["fingerprint"],
            members=members,
            probes=probes,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as written to ``manifest.json``, with its self-checksum (minor 1)."""
        data = self.to_dict_unsigned()
        data["checksum"] = manifest_checksum(data)
        return data

    def to_dict_unsigned(self) -> dict[str, Any]:
        """The JSON form without ``checksum``."""
        return {
            "format": self.format,
            "minor": self.minor,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "id": self.id,
            "label": self.label,
            "fingerprint": self.fingerprint,
            "members": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.members.items())},
            "probes": {k: v.to_dict() for k, v in sorted(self.probes.items())},
        }


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

    def write(self, dest: str | os.PathLike[str], *, force: bool = False) -> Path:
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


def manifest_checksum(data: Mapping[str, Any]) -> str:
    """``sha256:`` of the compact canonical manifest without its ``checksum`` field.

    The manifest hashes every member; this field is the manifest's own hash, so that a directory
    snapshot (which, unlike a zip, has no CRC around ``manifest.json``) detects a corrupted manifest too:
    a changed label, id or fingerprint.
    """
    body = {k: v for k, v in data.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(canonical.compact(body)).hexdigest()


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical bytes of a manifest."""
    return canonical.dumps(manifest.to_dict())
