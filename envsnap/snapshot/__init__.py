"""The snapshot format ``envsnap/1``: model, safe verifying reader, atomic writer, fingerprint."""

from envsnap.snapshot.manifest import FORMAT, FORMAT_MINOR, Manifest, MemberInfo, ProbeStatus
from envsnap.snapshot.model import SECTIONS, Snapshot
from envsnap.snapshot.reader import open_snapshot

__all__ = ["FORMAT", "FORMAT_MINOR", "SECTIONS", "Manifest", "MemberInfo", "ProbeStatus", "Snapshot", "open_snapshot"]
