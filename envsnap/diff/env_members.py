"""Reading one side of an environment section: a snapshot's member, or why there is none.

Shared by the environment differs (:mod:`envsnap.diff.env` and the artifacts, configs and lockfiles
differs it calls) and by the live diff, so that each reads a member the same way: hash-checked, parsed
and schema-validated, with a failed probe or an unreadable member turned into a :class:`Missing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envsnap.errors import EnvsnapError, IntegrityError, UnsafeArchiveError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["Missing", "load_section", "read_member"]


class Missing:
    """Why a section could not be read from one snapshot."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def read_member(snap: Snapshot, member: str, *, validate: bool) -> Any:
    """A hash-checked member: text decoded, JSON parsed (and schema-validated when ``validate``)."""
    if not member.endswith(".json"):
        return snap.read_text(member)
    if validate:
        return snap.read_json(member)
    import json

    raw = snap.read_bytes(member)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return snap.read_json(member)  # raises the reader's own "not valid JSON" error


def load_section(snap: Snapshot, name: str, *, validate: bool = True) -> Any:
    """The parsed member of section ``name``, or a :class:`Missing` saying why there is none."""
    from envsnap.snapshot.model import SECTIONS

    member = SECTIONS[name]
    if member not in snap:
        probe = "artifacts" if name == "artifacts" else name
        status = snap.manifest.probes.get(probe)
        if status is not None and status.status == "error":
            return Missing(f"the {probe} probe failed: {status.error}")
        if status is not None and status.status == "skipped":
            return Missing("not captured (skipped)")
        return Missing("not in the snapshot")
    try:
        data = read_member(snap, member, validate=validate)
    except (IntegrityError, UnsafeArchiveError):
        raise  # an altered or unsafe snapshot is an error (exit 3), never a note on a section
    except EnvsnapError as exc:
        return Missing(f"unreadable: {exc}")
    if isinstance(data, dict) and set(data) == {"error"}:
        error = data["error"] if isinstance(data["error"], dict) else {}
        return Missing(f"the probe failed: {error.get('message') or error.get('type') or 'unknown error'}")
    return data
