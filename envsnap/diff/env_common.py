"""Building blocks of the environment differ: a per-section change collector and safe nested reads.

Members are schema-validated when read, but optional sub-documents (``numpy_config``, ``pools``, a GPU
that is absent) are null or missing by design; every read here tolerates that and compares ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

from envsnap.diff.model import Change, SectionDiff

__all__ = ["SectionChanges", "describe_list_change", "get", "list_change_note"]


def get(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"``, or None as soon as a level is missing or not a mapping."""
    current = data
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


class SectionChanges:
    """Collects the changes of one section in a stable order, plus notes on what could not be compared."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.changes: list[Change] = []
        self.notes: list[str] = []

    def add(
        self,
        key: str,
        kind: str,
        before: Any = None,
        after: Any = None,
        *,
        note: str | None = None,
        redacted: bool = False,
        value_changed: bool | None = None,
    ) -> None:
        """Record one change as is."""
        self.changes.append(Change(self.section, key, kind, before, after, redacted, value_changed, note))

    def field(self, key: str, before: Any, after: Any, *, note: str | None = None) -> None:
        """A scalar (or list) fact of the section: a ``changed`` record when the two sides differ."""
        if before != after:
            self.add(key, "changed", before, after, note=note)

    def fields(self, a: Any, b: Any, paths: Iterable[str], *, prefix: str = "") -> None:
        """:meth:`field` for each dotted ``path`` read from both sides."""
        for path in paths:
            self.field(prefix + path, get(a, path), get(b, path))

    def attributes(self, a: Any, b: Any, paths: Iterable[str]) -> None:
        """:meth:`field` for each dotted attribute ``path`` of two typed sections, keyed by the path.

        Typed sections (:mod:`envsnap.snapshot.sections`) name their fields after the member's keys, so the
        key is also the member's key path; a misspelt path raises instead of comparing two Nones.
        """
        for path in paths:
            read = attrgetter(path)
            self.field(path, read(a), read(b))

    def keyed(self, prefix: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> None:
        """Entries of a mapping added, removed or changed, keyed ``prefix + name``."""
        a = a or {}
        b = b or {}
        for name in sorted(set(a) | set(b)):
            if name not in b:
                self.add(prefix + name, "removed", a[name], None)
            elif name not in a:
                self.add(prefix + name, "added", None, b[name])
            elif a[name] != b[name]:
                self.add(prefix + name, "changed", a[name], b[name])

    def result(self, note: str | None = None) -> SectionDiff:
        """The frozen :class:`SectionDiff`, with every note joined."""
        notes = [*([note] if note else []), *self.notes]
        return SectionDiff(self.section, tuple(self.changes), "; ".join(notes) if notes else None)


def list_change_note(before: list[Any], after: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Items added, removed and moved between two ordered lists (moved: common items whose rank changed)."""
    after_set = set(after)
    before_set = set(before)
    added = [x for x in after if x not in before_set]
    removed = [x for x in before if x not in after_set]
    common_before = [x for x in before if x in after_set]
    common_after = [x for x in after if x in before_set]
    moved: list[Any] = []
    if common_before != common_after:
        import difflib

        # The longest common subsequence stayed in order; whatever is outside it moved.
        matcher = difflib.SequenceMatcher(a=common_before, b=common_after, autojunk=False)
        kept = {i for block in matcher.get_matching_blocks() for i in range(block.a, block.a + block.size)}
        moved = [x for i, x in enumerate(common_before) if i not in kept]
    return added, removed, moved


def describe_list_change(before: list[Any], after: list[Any]) -> str:
    """``added: a, b; removed: c; moved: d`` for two ordered lists."""
    added, removed, moved = list_change_note(before, after)
    parts = []
    for label, items in (("added", added), ("removed", removed), ("moved", moved)):
        if items:
            parts.append(f"{label}: {', '.join(map(str, items))}")
    return "; ".join(parts) or "same items"
