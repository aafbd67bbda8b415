"""Live comparisons: a snapshot against the environment as it is now, or against a requirements file.

``current_snapshot()`` is an in-memory capture (git off) to hand to :func:`envsnap.diff.env.diff_env`.
``diff_requirements(a, text, source=...)`` compares the packages of snapshot ``a`` with a pip-tools style
lock or requirements file. Direction: **a = the snapshot (before), b = the file (after)**, so ``added``
is a requirement of the file that is not installed in the snapshot, ``removed`` a distribution installed in
the snapshot that the file does not list (the file is read as the complete set, as ``pip-sync`` reads it),
and ``upgraded`` a pin higher than the installed version.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsnap.core.lock_text import logical_lines
from envsnap.core.naming import normalize_name
from envsnap.diff.env_packages import package_deltas, packages_section
from envsnap.diff.model import Change, EnvDiff, SectionDiff

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
#: Options that pull in another file: not followed (the text is all this function is given).
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")


def current_snapshot(python: str | None = None) -> Snapshot:
    """An in-memory capture of the environment now (of ``python`` when given), without git."""
    from envsnap.capture import capture

    return capture(python=python, git=False)


@dataclass(frozen=True)
class FileRequirement:
    """One requirement line of a requirements file, reduced to what the comparison needs."""

    name: str | None
    line: str
    pinned: str | None = None
    specifier: str | None = None
    url: str | None = None
    editable: bool = False


def parse_requirements(text: str, markers: Mapping[str, Any] | None = None) -> tuple[list[FileRequirement], list[str]]:
    """Requirements of a pip requirements/lock file, and notes on what was skipped or not understood.

    Options lines (``--index-url``, ``--hash`` continuations) are ignored; ``-r``/``-c`` are not followed;
    a requirement whose marker is false for ``markers`` (the snapshot's PEP 508 environment) is skipped.
    """
    from packaging.markers import InvalidMarker
    from packaging.requirements import InvalidRequirement, Requirement

    out: list[FileRequirement] = []
    notes: list[str] = []
    skipped_markers = 0
    for _, line in logical_lines(text):
        words = line.split()
        if words[0] in ("-e", "--editable") or words[0].startswith("--editable="):
            url = line.split("=", 1)[1] if words[0].startswith("--editable=") else " ".join(words[1:])
            egg = _EGG.search(url)
            out.append(FileRequirement(normalize_name(egg.group(1)) if egg else None, line, url=url, editable=True))
            continue
        if words[0] in _INCLUDES or words[0].startswith(tuple(f"{o}=" for o in _INCLUDES)):
            notes.append(f"not followed: {line}")
            continue
        if line.startswith("-"):
            continue  # --index-url, --extra-index-url, --find-links, --pre, ...: not requirements
        spec = " ".join(w for w in words if not w.startswith("--"))  # drop per-requirement --hash=...
        if "://" in spec and " @ " not in spec and not re.match(r"^[A-Za-z0-9._-]+\s*@", spec):
            egg = _EGG.search(spec)  # pip's bare URL form (git+https://...#egg=name)
            out.append(FileRequirement(normalize_name(egg.group(1)) if egg else None, line, url=spec))
            continue
        try:
            req = Requirement(spec)
        except (InvalidRequirement, InvalidMarker):
            notes.append(f"not understood: {line}")
            continue
        if req.marker is not None and markers is not None and not req.marker.evaluate(dict(markers)):
            skipped_markers += 1
            continue
        name = normalize_name(req.name)
        if req.url:
            out.append(FileRequirement(name, line, url=req.url))
            continue
        specs = list(req.specifier)
        exact = [s for s in specs if s.operator in ("==", "===") and not s.version.endswith(".*")]
        if len(specs) == 1 and exact:
            out.append(FileRequirement(name, line, pinned=exact[0].version))
        else:
            out.append(FileRequirement(name, line, specifier=str(req.specifier) or None))
    if skipped_markers:
        notes.append(f"{skipped_markers} requirement(s) skipped: their markers do not match the snapshot's Python")
    return out, notes


def _installed_url(dist: Mapping[str, Any]) -> str | None:
    """Where a distribution was installed from: its PEP 610 URL, or for a ``setup.py develop`` install (an
    egg-info in the project, no direct_url) the project directory."""
    direct = dist.get("direct_url")
    url = direct.get("url") if isinstance(direct, Mapping) else None
    if not url and dist.get("location_kind") == "editable" and dist.get("location"):
        url = Path(str(dist["location"])).as_uri()
    return url.rstrip("/") if isinstance(url, str) else None


def _loose_change(req: FileRequirement, dist: Mapping[str, Any] | None) -> Change:
    """A requirement that is not an exact pin: say whether what is installed satisfies it."""
    want = req.specifier or "any version"
    if dist is None:
        return Change("packages", req.name or req.line, "added", None, None, note=f"not pinned: {want}; not installed")
    installed = str(dist.get("version"))
    verdict = "any version satisfies it"
    if req.specifier:
        from packaging.specifiers import SpecifierSet

        fits = SpecifierSet(req.specifier).contains(installed, prereleases=True)
        verdict = f"installed {installed} {'satisfies' if fits else 'does not satisfy'} it"
    return Change("packages", req.name or req.line, "changed", installed, None, note=f"not pinned: {want}; {verdict}")


def _url_change(req: FileRequirement, dist: Mapping[str, Any] | None) -> Change | None:
    what = "editable" if req.editable else "direct reference"
    if req.name is None:
        return Change("packages", req.line, "added", None, req.url, note=f"{what} without a project name: cannot match")
    if dist is None:
        return Change("packages", req.name, "added", None, req.url, note=f"{what}; not installed")
    if _installed_url(dist) == (req.url or "").rstrip("/"):
        return None
    note = f"{what} {req.url}; installed {dist.get('version')} ({dist.get('location_kind')})"
    return Change("packages", req.name, "changed", dist.get("version"), req.url, note=note)


def diff_requirements(a: Snapshot, requirements_text: str, *, source: str) -> EnvDiff:
    """Compare the packages of snapshot ``a`` (before) with a requirements/lock file (after).

    Returns an :class:`EnvDiff` with only the ``packages`` section: exact pins give :class:`PackageDelta`
    records (with the step level); unpinned, URL and editable requirements give a Change with a note.
    ``source`` names the file in the section note. A snapshot without a readable packages member gives a
    section with a note and no changes.
    """
    from envsnap.diff.env_members import load_section

    packages = load_section(a, "packages")
    if not isinstance(packages, Mapping):
        return EnvDiff((SectionDiff("packages", note=f"cannot compare with {source}: {packages.reason}"),))
    python = load_section(a, "python")
    markers = python.get("markers") if isinstance(python, Mapping) else None
    requirements, notes = parse_requirements(requirements_text, markers if isinstance(markers, Mapping) else None)

    installed: dict[str, Mapping[str, Any]] = {
        str(d.get("normalized_name")): d for d in packages.get("distributions") or ()
    }
    # `-e file:///src/proj` names no project (pip-tools writes editables this way): it is the installed
    # distribution whose PEP 610 direct_url points at the same place.
    by_url = {url: name for name, d in installed.items() if (url := _installed_url(d))}
    requirements = [
        dataclasses.replace(r, name=by_url[r.url.rstrip("/")])
        if r.name is None and r.url is not None and r.url.rstrip("/") in by_url
        else r
        for r in requirements
    ]
    # Exact pins compare like two package lists: the file's side is a synthetic distribution list.
    pinned = [
        {"normalized_name": r.name, "version": r.pinned, "installer": None, "location_kind": None}
        for r in requirements
        if r.name is not None and r.pinned is not None
    ]
    pinned_names = {p["normalized_name"] for p in pinned}
    listed = {r.name for r in requirements if r.name is not None}
    # Installer and location kind are unknown on the file's side: compare versions only.
    comparable = [
        {**d, "installer": None, "location_kind": None, "direct_url": None}
        for name, d in installed.items()
        if name in pinned_names or name not in listed
    ]
    deltas, delta_notes = package_deltas(comparable, pinned)
    section = packages_section(deltas, delta_notes)
    extra: list[Change] = []
    for req in requirements:
        if req.pinned is not None and req.name is not None:
            continue
        dist = installed.get(req.name) if req.name else None
        change = _url_change(req, dist) if req.url is not None else _loose_change(req, dist)
        if change is not None:
            extra.append(change)
    changes = tuple(sorted((*section.changes, *extra), key=lambda c: (c.key, c.kind)))
    removed = sum(1 for d in deltas if d.change == "removed")
    header = f"a = snapshot, b = {source}"
    if removed:
        header += f"; {removed} installed distribution(s) not listed in the file count as removed"
    note = "; ".join([header, *notes])
    return EnvDiff((SectionDiff("packages", changes, note),), tuple(deltas), False)


__all__ = ["FileRequirement", "current_snapshot", "diff_requirements", "parse_requirements"]
