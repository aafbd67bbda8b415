"""Assemble a snapshot from encoded members: hashes, sizes, id and timestamps go into the manifest."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Mapping

from envsnap._version import __version__
from envsnap.snapshot.manifest import FORMAT, FORMAT_MINOR, Manifest, MemberInfo, ProbeStatus
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.stores import MemoryStore

__all__ = ["assemble_snapshot", "created_at", "snapshot_id"]


def created_at(reproducible: bool) -> str | None:
    """Now in UTC ISO form; ``SOURCE_DATE_EPOCH`` wins; None in reproducible mode."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
    if reproducible:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def snapshot_id(members: Mapping[str, bytes], reproducible: bool) -> str:
    """A random UUID, or in reproducible mode one derived from the members' content."""
    if not reproducible:
        return str(uuid.uuid4())
    digest = hashlib.sha256()
    for name in sorted(members):
        digest.update(name.encode() + b"\0" + hashlib.sha256(members[name]).digest())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


def assemble_snapshot(
    members: Mapping[str, bytes],
    *,
    fingerprint: str,
    label: str | None = None,
    probes: Mapping[str, ProbeStatus] | None = None,
    reproducible: bool = False,
) -> Snapshot:
    """An in-memory :class:`Snapshot` over ``members`` with a complete manifest."""
    manifest = Manifest(
        format=FORMAT,
        minor=FORMAT_MINOR,
        created_by=f"envsnap {__version__}",
        created_at=created_at(reproducible),
        id=snapshot_id(members, reproducible),
        label=label,
        fingerprint=fingerprint,
        members={
            name: MemberInfo(hashlib.sha256(data).hexdigest(), len(data)) for name, data in sorted(members.items())
        },
        probes=dict(probes or {}),
    )
    return Snapshot(manifest, MemoryStore(members), path="<memory>")
