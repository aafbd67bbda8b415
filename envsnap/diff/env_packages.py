"""Package and lock differences: PEP 440 step sizes, installer/location changes, lock hashes.

The step of a version change is read from the release segments (``major.minor.patch``, missing parts count
as 0): the first differing segment names it, a change beyond the third segment or only in pre/post/dev
parts is a ``patch``, a change only in the ``+local`` label is ``local``, and anything that is not PEP 440
on either side is ``other``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from envsnap.diff.env_common import SectionChanges
from envsnap.diff.model import PackageDelta, SectionDiff

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["diff_lock", "diff_packages", "package_deltas", "packages_section", "parse_version", "version_step"]

_LEVEL_NAMES = ("major", "minor", "patch")


def parse_version(text: str | None) -> Version | None:
    """A PEP 440 version, or None when ``text`` is not one."""
    if text is None:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def version_step(before: str, after: str) -> tuple[str, str]:
    """``(change, level)`` between two version strings that differ.

    change is upgraded | downgraded | changed (not comparable: a non-PEP 440 version); level as in the
    module docstring.
    """
    old, new = parse_version(before), parse_version(after)
    if old is None or new is None:
        return "changed", "other"
    change = "upgraded" if new > old else "downgraded" if new < old else "changed"
    if old.epoch != new.epoch:
        return change, "major"
    width = max(len(old.release), len(new.release), 3)
    old_release = old.release + (0,) * (width - len(old.release))
    new_release = new.release + (0,) * (width - len(new.release))
    for index, (x, y) in enumerate(zip(old_release, new_release, strict=True)):
        if x != y:
            return change, _LEVEL_NAMES[min(index, 2)]
    if (old.pre, old.post, old.dev) != (new.pre, new.post, new.dev):
        return change, "patch"
    if old.local != new.local:
        return "changed", "local"  # +cpu vs +cu121: PEP 440 orders local labels, but neither is "newer"
    return change, "other"  # equal under PEP 440 but spelled differently ("1.0" vs "1.0.0")


def _by_name(distributions: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    # The packages probe already keeps only the first distribution of a name on sys.path.
    return {str(d.get("normalized_name") or d.get("name")): d for d in distributions}


def _commit(dist: Mapping[str, Any]) -> str | None:
    direct = dist.get("direct_url")
    if isinstance(direct, Mapping):
        commit = direct.get("commit_id")
        return commit if isinstance(commit, str) else None
    return None


def _pair(before: Any, after: Any) -> tuple[str | None, str | None] | None:
    return (before, after) if before != after else None


def _delta_note(delta: PackageDelta, commit: tuple[str | None, str | None] | None) -> str | None:
    parts = []
    if delta.change in ("upgraded", "downgraded"):
        parts.append(f"{delta.level} {delta.change[:-1]}")
    elif delta.change == "changed" and delta.level == "other" and delta.before != delta.after:
        parts.append("version not comparable (not PEP 440)")
    if delta.installer is not None:
        parts.append(f"installer {delta.installer[0]} → {delta.installer[1]}")
    if delta.location_kind is not None:
        parts.append(f"location {delta.location_kind[0]} → {delta.location_kind[1]}")
    if commit is not None:
        parts.append(f"vcs commit {(commit[0] or '?')[:12]} → {(commit[1] or '?')[:12]}")
    return "; ".join(parts) or None


def package_deltas(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> tuple[list[PackageDelta], list[str | None]]:
    """Every distribution that differs, sorted by name, with the note each Change should carry."""
    a, b = _by_name(before), _by_name(after)
    deltas: list[PackageDelta] = []
    notes: list[str | None] = []
    for name in sorted(set(a) | set(b)):
        old, new = a.get(name), b.get(name)
        if new is None or old is None:
            if old is not None:
                deltas.append(PackageDelta(name, "removed", str(old.get("version")), None))
            elif new is not None:
                deltas.append(PackageDelta(name, "added", None, str(new.get("version"))))
            notes.append(None)
            continue
        v_old, v_new = str(old.get("version")), str(new.get("version"))
        change, level = ("changed", None) if v_old == v_new else version_step(v_old, v_new)
        parsed_old, parsed_new = parse_version(v_old), parse_version(v_new)
        if level == "other" and parsed_old is not None and parsed_old == parsed_new:
            change, level = "changed", None  # "1.0" vs "1.0.0": the same release
        installer = _pair(old.get("installer"), new.get("installer"))
        location = _pair(old.get("location_kind"), new.get("location_kind"))
        commit = _pair(_commit(old), _commit(new))
        if level is None and installer is None and location is None and commit is None:
            continue
        delta = PackageDelta(name, change, v_old, v_new, level, installer, location)
        deltas.append(delta)
        notes.append(_delta_note(delta, commit))
    return deltas, notes


def packages_section(deltas: list[PackageDelta], notes: list[str | None], *, note: str | None = None) -> SectionDiff:
    """One Change per delta in the ``packages`` section: key = name, before/after = versions."""
    out = SectionChanges("packages")
    for delta, text in zip(deltas, notes, strict=True):
        kind = delta.change if delta.change in ("added", "removed") else "changed"
        out.add(delta.name, kind, delta.before, delta.after, note=text)
    return out.result(note)


def diff_packages(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[SectionDiff, tuple[PackageDelta, ...]]:
    """Compare two ``env/packages.json`` documents."""
    deltas, notes = package_deltas(a.get("distributions") or (), b.get("distributions") or ())
    return packages_section(deltas, notes), tuple(deltas)


def diff_lock(a: str, b: str) -> SectionDiff:
    """Pin and hash changes per requirement between two ``env/requirements.lock`` texts.

    ``--hash`` options and ``# hash known locally:`` / ``# hash from the index:`` notes both count: a lock
    keeps hashes as comments unless every requirement has one. A requirement whose hashes did not change
    (or that has none) is still a change when its pin or URL moved, was added or removed: ``before`` and
    ``after`` are then the versions. The suspects leave out the lines of packages the deltas already show.
    """
    from envsnap.core.lock_text import parse_lock

    out = SectionChanges("lock")
    old = {r.name or r.line: r for r in parse_lock(a)}
    new = {r.name or r.line: r for r in parse_lock(b)}
    for name in sorted(set(old) | set(new)):
        before = sorted(set(old[name].hashes) | set(old[name].noted_hashes)) if name in old else []
        after = sorted(set(new[name].hashes) | set(new[name].noted_hashes)) if name in new else []
        if before == after:
            # No hashes (or the same ones): the pin itself still tells, so the section never reads as
            # unchanged while pins moved.
            pin_a = old[name].version if name in old else None
            pin_b = new[name].version if name in new else None
            if name not in new:
                out.add(name, "removed", pin_a, None, note="requirement removed")
            elif name not in old:
                out.add(name, "added", None, pin_b, note="requirement added")
            elif pin_a != pin_b or old[name].url != new[name].url:
                out.add(name, "changed", pin_a, pin_b, note="pin changed" if pin_a != pin_b else "URL changed")
            continue
        if name not in new:
            out.add(name, "removed", before, None, note="requirement and its hashes removed")
        elif name not in old:
            out.add(name, "added", None, after, note="requirement and its hashes added")
        else:
            gone, came = set(before) - set(after), set(after) - set(before)
            text = f"{len(came)} hash(es) added, {len(gone)} removed"
            if old[name].version != new[name].version:
                text += f"; version {old[name].version} → {new[name].version}"
            out.add(name, "changed", before, after, note=text)
    mode_a = any(r.hashes for r in old.values())
    mode_b = any(r.hashes for r in new.values())
    if mode_a != mode_b:
        out.field("hash_mode", mode_a, mode_b, note="--hash options (pip's hash-checking mode) on one side only")
    return out.result()
