"""``manifest.json``: the format version and the hash and size of every member, as frozen dataclasses.

Both the opened :class:`~envsnap.snapshot.model.Snapshot` and the atomic writer need the manifest; it lives
here, below both of them, so that neither imports the other to reach it.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envsnap.errors import FormatVersionError, SnapshotError
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

__all__ = [
    "FORMAT",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "MANIFEST",
    "Manifest",
    "MemberInfo",
    "NewerMinorFormatWarning",
    "ProbeStatus",
    "manifest_bytes",
    "manifest_checksum",
]

FORMAT_MAJOR = 1
FORMAT_MINOR = 4
FORMAT = f"envsnap/{FORMAT_MAJOR}"
MANIFEST = "manifest.json"

_FORMAT_RE = re.compile(r"^envsnap/([0-9]{1,6})$")


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
