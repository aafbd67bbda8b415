"""``project/lockfiles.json`` + ``project/lock/PATH``: the project's own lockfiles and manifests.

Found at the repository root (the git probe's root; the working directory without git) and in the working
directory when it is below the root — one directory listing each, never a recursive walk, so a project
without lockfiles costs well under a millisecond — plus ``requirements/`` at the root, every
``--lockfile PATH`` and ``lockfiles = [...]`` in the envsnap config's ``[capture]`` table. Kinds and
what is parsed: :mod:`envsnap.capture.lockfile_parsers`.

For each file: its path (relative to the root), kind, size, the parsed pins and requirements, and, when
the text scans clean of credentials (an index URL with a token keeps it out), its sha256 and a raw copy
under ``project/lock/`` at the same relative path. A file that cannot be read or parsed gets a one-line
``error`` and the others are recorded.

``disagreements`` lists where the captured environment (``env/packages.json``, and the Python version for
conda's ``python=``) disagrees with a lockfile: "uv.lock pins numpy 1.26.4; the job ran 2.2.6". Only
installed packages are compared (a lock lists every platform's and every group's packages); a pin whose
marker does not apply to the captured interpreter is not a disagreement.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.capture.configs import (
    MAX_CONFIG_BYTES,
    display_path,
    expand,
    git_root,
    project_settings,
    read_small_text,
    unique_member_names,
)
from envsnap.capture.lockfile_parsers import FORK_SEPARATOR, REQUIREMENTS_DIR_PATTERNS, ParsedLock, detect_kind
from envsnap.core.redact import scrub_text

MEMBER = "project/lockfiles.json"
RAW_PREFIX = "project/lock/"
MAX_LOCK_BYTES = MAX_CONFIG_BYTES
KNOWN_KINDS = (
    "requirements*.txt, *.in, pyproject.toml, poetry.lock, uv.lock, Pipfile.lock, environment.yml, "
    "conda-lock.yml, pylock.toml"
)


def discover(directory: str) -> list[str]:
    """Lockfiles directly in ``directory`` and in its ``requirements/`` folder (no deeper)."""
    found: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file() and detect_kind(entry.name) is not None:
                    found.append(entry.path)
                elif entry.name == "requirements" and entry.is_dir():
                    with os.scandir(entry.path) as inner:
                        found.extend(
                            e.path
                            for e in inner
                            if e.is_file()
                            and any(fnmatch.fnmatch(e.name.lower(), p) for p in REQUIREMENTS_DIR_PATTERNS)
                        )
    except OSError:
        return []
    return found


def installed_versions(ctx: CaptureContext) -> dict[str, str]:
    """Normalized name -> installed version from the packages probe, plus ``python`` from the python probe."""
    out: dict[str, str] = {}
    packages = ctx.results.get("packages")
    if isinstance(packages, Mapping):
        for dist in packages.get("distributions") or ():
            if isinstance(dist, Mapping) and dist.get("normalized_name") and dist.get("version"):
                out.setdefault(str(dist["normalized_name"]), str(dist["version"]))
    python = ctx.results.get("python")
    if isinstance(python, Mapping) and isinstance(python.get("version"), str):
        out.setdefault("python", python["version"])
    return out


def same_version(pinned: str, installed: str, prefix: bool) -> bool:
    """Whether ``installed`` is the pinned version (PEP 440 equality; ``prefix``: conda's ``=1.26``)."""
    if pinned == installed or (prefix and installed.startswith(pinned + ".")):
        return True
    from packaging.version import InvalidVersion, Version

    try:
        want, have = Version(pinned), Version(installed)
    except InvalidVersion:
        return False
    # PEP 440: ``==2.1.2`` matches ``2.1.2+cu121`` (a pin without a local label ignores the candidate's)
    return want == have or (not want.local and want == Version(have.public))


def _marker_applies(marker: str | None, environment: Mapping[str, Any] | None) -> bool:
    if not marker or not environment:
        return True
    return _evaluate(marker, tuple(sorted((str(k), str(v)) for k, v in environment.items())))


@functools.lru_cache(maxsize=1024)
def _evaluate(marker: str, environment: tuple[tuple[str, str], ...]) -> bool:
    """A marker against an environment; True when it cannot be evaluated (a check is never dropped
    silently). Cached: a lock repeats a few markers (``python_full_version < '3.11'``) over many entries."""
    from packaging.markers import Marker

    try:
        return bool(Marker(marker).evaluate(dict(environment)))
    except (ValueError, KeyError):  # InvalidMarker, UndefinedComparison, InvalidVersion; UndefinedEnvironmentName
        return True


def fits(specifier: str, installed: str) -> bool | None:
    """Whether ``installed`` meets a PEP 440 specifier; None when it is not one (Poetry's ``^1.2``)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(specifier).contains(installed, prereleases=True)
    except InvalidSpecifier:
        return None  # Poetry's ^1.2 / ~1.2 and other non-PEP 440 constraints: not judged


def assumed_note(environment: Mapping[str, Any]) -> str:
    """What the markers of a file were evaluated for: the interpreter, and no extras or groups."""
    python = environment.get("python_full_version", "?")
    where = f"{environment.get('sys_platform', '?')} {environment.get('platform_machine', '?')}"
    return f"markers evaluated for Python {python} on {where}; extras and dependency groups assumed not installed"


def applicable_versions(
    versions: list[str], conditions: Mapping[str, str], environment: Mapping[str, Any] | None
) -> list[str]:
    """The pinned ``versions`` of one name whose entry applies to ``environment``: a version without a
    condition always does; one whose marker cannot be evaluated is kept (never a silent skip of a check)."""
    return [v for v in versions if _marker_applies(conditions.get(v), environment)]


def disagreements(
    path: str, parsed: ParsedLock, installed: Mapping[str, str], environment: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Where ``installed`` disagrees with one lockfile's pins and requirements (module docstring): among
    several entries of one name only those whose markers apply are compared, and a name none of whose
    entries applies is skipped."""
    out: list[dict[str, Any]] = []
    for name, pinned in sorted(parsed.pins.items()):
        have = installed.get(name)
        if have is None:
            continue
        if FORK_SEPARATOR not in pinned and same_version(pinned, have, parsed.prefix_pins):
            continue  # one entry, and the job runs it: whatever its marker says, nothing disagrees
        conditions = parsed.pin_markers.get(name)
        if conditions is None and name in parsed.markers:
            conditions = dict.fromkeys(pinned.split(FORK_SEPARATOR), parsed.markers[name])
        versions = applicable_versions(pinned.split(FORK_SEPARATOR), conditions or {}, environment)
        if not versions or any(same_version(v, have, parsed.prefix_pins) for v in versions):
            continue
        message = f"{path} pins {name} {' or '.join(versions)}; the job ran {have}"
        shown = FORK_SEPARATOR.join(versions)
        out.append({"file": path, "name": name, "pinned": shown, "installed": have, "message": message})
    for name, specifier in sorted(parsed.requirements.items()):
        have = installed.get(name)
        if have is None or not specifier or specifier.startswith("@"):
            continue
        if fits(specifier, have) is not False or not _marker_applies(parsed.markers.get(name), environment):
            continue
        message = f"{path} requires {name}{specifier}; the job ran {have}"
        out.append({"file": path, "name": name, "pinned": specifier, "installed": have, "message": message})
    return out


def _entry(path: str, kind: str | None) -> dict[str, Any]:
    return {
        "path": path,
        "kind": kind,
        "size": None,
        "sha256": None,
        "raw_member": None,
        "pins": {},
        "requirements": {},
        "markers": {},
        "pin_markers": {},
        "sources": {},
        "hashes": {},
        "extras": {},
        "groups": {},
        "requires_python": None,
        "platforms": [],
        "notes": [],
        "error": None,
    }


def record_lockfile(
    resolved: str, shown: str, kind: str | None
) -> tuple[dict[str, Any], bytes | None, ParsedLock | None]:
    """One lockfile's entry, its raw bytes when they scan clean, and its parsed form (None on error)."""
    from envsnap.capture.lockfile_parsers import parse_lockfile, sniff_kind

    entry = _entry(shown, kind)
    try:
        raw, text = read_small_text(resolved, MAX_LOCK_BYTES)
    except ValueError as exc:
        entry["error"] = f"{shown}: {' '.join(str(exc).split())}"[:500]
        return entry, None, None
    entry["size"] = len(raw)
    if kind is None:  # a file named with --lockfile whose name says nothing: its content decides
        kind = entry["kind"] = sniff_kind(text) or detect_kind(os.path.basename(resolved), loose=True)
    if kind is None:
        entry["error"] = f"{shown}: neither its name nor its content is a known lockfile kind ({KNOWN_KINDS})"
        return entry, None, None
    try:
        parsed = parse_lockfile(kind, text)
    except ValueError as exc:
        entry["error"] = f"{shown}: {' '.join(str(exc).split())}"[:500]
        return entry, None, None
    entry.update(parsed.to_dict())
    if scrub_text(text) != text:
        entry["notes"] = [*entry["notes"], "raw copy not stored: it holds credentials (an index URL with a token?)"]
        return entry, None, parsed
    entry["sha256"] = hashlib.sha256(raw).hexdigest()
    return entry, raw, parsed


@register
class LockfilesProbe(Probe):
    """The project's lockfiles and manifests, parsed, and where the environment disagrees with them."""

    name = "lockfiles"
    member = MEMBER

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        cwd = os.path.realpath(ctx.options.cwd)
        root = git_root(ctx) or cwd
        settings = project_settings(cwd)
        candidates: list[tuple[str, str | None, bool, str | None]] = []  # (resolved, pattern, named, error)
        searched = [root] if cwd == root or not cwd.startswith(root + os.sep) else [root, cwd]
        for directory in searched:
            candidates.extend((os.path.realpath(p), None, False, None) for p in sorted(discover(directory)))
        for given, found, problem in expand([*ctx.options.lockfiles, *settings.lockfiles], cwd):
            candidates.append((found or given, given, True, problem))
        cli_named = {str(p) for p in ctx.options.lockfiles}  # --lockfile-kind applies to these only
        installed = installed_versions(ctx)
        environment = ctx.target.markers
        records: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        disagree: list[dict[str, Any]] = []
        for resolved, pattern, named, error in candidates:
            shown: str = display_path(resolved, root, cwd) if error is None else str(pattern)
            if shown in records:
                continue
            if error is not None:
                entry = _entry(shown, None)
                entry["error"] = f"{shown}: {error}"
                records[shown] = (entry, None)
                continue
            forced = ctx.options.lockfile_kind if named and pattern in cli_named else None
            kind = forced or detect_kind(os.path.basename(resolved))  # None: a named file's content decides
            entry, raw, parsed = record_lockfile(resolved, shown, kind)
            records[shown] = (entry, raw)
            if parsed is not None:
                disagree.extend(disagreements(shown, parsed, installed, environment))
                if (parsed.pin_markers or parsed.markers) and environment:
                    entry["notes"] = [*entry["notes"], assumed_note(environment)]
        ordered = sorted(records)
        names = unique_member_names(RAW_PREFIX, ordered)
        files: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        for shown, member in zip(ordered, names, strict=True):
            entry, raw = records[shown]
            if raw is not None:
                entry["raw_member"] = member
                extra[member] = raw
            files.append(entry)
        data = {
            "root_kind": "git" if git_root(ctx) else "cwd",
            "searched": [os.path.relpath(d, root).replace(os.sep, "/") for d in searched],
            "settings": settings.source,
            "settings_error": settings.error,
            "files": files,
            "disagreements": sorted(disagree, key=lambda d: (d["file"], d["name"], d["pinned"])),
        }
        return ProbeOutput(data, extra=extra)


__all__ = [
    "LockfilesProbe",
    "applicable_versions",
    "assumed_note",
    "disagreements",
    "discover",
    "fits",
    "installed_versions",
    "record_lockfile",
    "same_version",
]
