"""The snapshot format ``envsnap/1``: model, safe verifying reader, atomic writer, fingerprint."""

from envsnap.snapshot.model import FORMAT, FORMAT_MINOR, SECTIONS, Manifest, MemberInfo, ProbeStatus, Snapshot
from envsnap.snapshot.reader import open_snapshot

__all__ = ["FORMAT", "FORMAT_MINOR", "SECTIONS", "Manifest", "MemberInfo", "ProbeStatus", "Snapshot", "open_snapshot"]
