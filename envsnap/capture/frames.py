"""An exception's traceback frames, placed: the project's code, a library (and its distribution), the stdlib.

The job bootstrap (:mod:`envsnap._target.jobhook`) records a raw exception in the job's interpreter:
``{type, message, traceback, frames: [{file, line, function}]}`` with absolute file names, innermost frame
last. :func:`enrich_exception` turns it into the stored record: message and traceback scrubbed, each frame
placed (``where``), project files relative to the project root, library files mapped to the distribution
that installed them (the ``RECORD`` of each ``*.dist-info``, ``top_level.txt`` for older installs; read only
for the site directories that hold a frame, once per directory state). :func:`same_failure` is the replay's
question: does the replayed failure match the recorded one?
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envsnap.core.redact import scrub_text

__all__ = [
    "WHERE",
    "enrich_exception",
    "innermost_project_frame",
    "same_failure",
    "stdlib_dirs_of",
]

#: The places a frame can be in.
WHERE = ("project", "library", "stdlib", "other")


def _normal(path: str) -> str:
    return os.path.normpath(path)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def stdlib_dirs_of(python: Mapping[str, Any] | None) -> list[str]:
    """The standard library directories of the interpreter a job report describes (its ``python``).

    The report names them (``stdlib_dirs``); a report without them gets ``BASE_PREFIX/lib/pythonX.Y``.
    """
    if not python:
        return []
    listed = python.get("stdlib_dirs")
    if isinstance(listed, list) and all(isinstance(d, str) for d in listed):
        return list(listed)
    base, version = python.get("base_prefix"), python.get("version")
    if isinstance(base, str) and isinstance(version, str) and version.count(".") >= 1:
        major_minor = ".".join(version.split(".")[:2])
        return [os.path.join(base, "lib", f"python{major_minor}")]
    return []


def _metadata_name(dist_info: Path) -> str:
    """The ``Name:`` header of a distribution's metadata, else the name in its directory's."""
    for member in ("METADATA", "PKG-INFO"):
        try:
            with (dist_info / member).open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        break
                    if line.lower().startswith("name:"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return dist_info.name.split("-", 1)[0].removesuffix(".dist-info").removesuffix(".egg-info")


@functools.lru_cache(maxsize=64)
def _site_index(site_dir: str, _state: int) -> tuple[dict[str, str], dict[str, str]]:
    """``({path relative to site_dir: distribution}, {top-level name: distribution})`` of one site directory.

    ``_state`` (the directory's mtime) keys the cache: an install or uninstall changes it.
    """
    files: dict[str, str] = {}
    top_level: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(site_dir), key=lambda e: e.name)
    except OSError:
        return files, top_level
    for entry in entries:
        if not entry.name.endswith((".dist-info", ".egg-info")) or not entry.is_dir():
            continue
        path = Path(entry.path)
        name = _metadata_name(path)
        try:
            with (path / "RECORD").open(encoding="utf-8", errors="replace", newline="") as handle:
                for row in csv.reader(handle):
                    if row and row[0]:
                        files.setdefault(_normal(row[0]).replace(os.sep, "/"), name)
        except (OSError, csv.Error):
            pass
        try:
            names = (path / "top_level.txt").read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            names = []
        for top in names:
            top_level.setdefault(top, name)
    return files, top_level


def _distribution(file: str, site_dir: str) -> str | None:
    """The distribution that installed ``file`` (inside ``site_dir``), or None when none says so."""
    try:
        state = os.stat(site_dir).st_mtime_ns
    except OSError:
        return None
    files, top_level = _site_index(site_dir, state)
    relative = os.path.relpath(file, site_dir).replace(os.sep, "/")
    if relative in files:
        return files[relative]
    top = relative.split("/", 1)[0]
    return top_level.get(top.split(".", 1)[0]) if top else None


def _place(
    file: str, root: str | None, site_dirs: Sequence[str], stdlib_dirs: Sequence[str]
) -> tuple[str, str, str | None]:
    """``(stored file, where, distribution)`` of one frame's file."""
    if file.startswith("<"):
        return file, ("stdlib" if file.startswith("<frozen ") else "other"), None
    path = _normal(file)
    for site_dir in site_dirs:
        if _inside(path, site_dir):
            return path, "library", _distribution(path, site_dir)
    if any(_inside(path, d) for d in stdlib_dirs):
        return path, "stdlib", None
    if root is None:
        return path, "project", None
    if _inside(path, root):
        return Path(os.path.relpath(path, root)).as_posix(), "project", None
    return path, "other", None


def enrich_exception(
    raw: Mapping[str, Any],
    *,
    root: str | None,
    site_dirs: Sequence[str],
    stdlib_dirs: Sequence[str],
) -> dict[str, Any]:
    """The stored exception record of a raw one (see the module docstring).

    ``{type, message, traceback, frames: [{file, line, function, where, distribution}]}``: ``where`` is
    ``"project"`` (inside ``root``; every file outside the libraries and the stdlib when ``root`` is None),
    ``"library"`` (inside one of ``site_dirs``, mapped to its distribution or None), ``"stdlib"`` or
    ``"other"``. A malformed frame is left out rather than failing the capture.
    """
    # The longest site directory first: a venv inside the project root holds library code.
    sites = sorted({_normal(d) for d in site_dirs if d}, key=len, reverse=True)
    stdlibs = [_normal(d) for d in stdlib_dirs if d]
    project = _normal(root) if root else None
    frames = []
    raw_frames = raw.get("frames")
    for frame in raw_frames if isinstance(raw_frames, list) else []:
        if not isinstance(frame, Mapping) or not isinstance(frame.get("file"), str):
            continue
        file, where, distribution = _place(frame["file"], project, sites, stdlibs)
        line = frame.get("line")
        frames.append(
            {
                "file": scrub_text(file),
                "line": line if isinstance(line, int) and not isinstance(line, bool) else 0,
                "function": str(frame.get("function") or "?"),
                "where": where,
                "distribution": distribution,
            }
        )
    return {
        "type": str(raw.get("type") or "Exception"),
        "message": scrub_text(str(raw.get("message") or "")),
        "traceback": scrub_text(str(raw.get("traceback") or "")),
        "frames": frames,
    }


def innermost_project_frame(exception: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The last (innermost) frame of an enriched exception that is the project's own code, or None."""
    frames = exception.get("frames")
    if not isinstance(frames, list):
        return None
    for frame in reversed(frames):
        if isinstance(frame, Mapping) and frame.get("where") == "project":
            return frame
    return None


def _at(frame: Mapping[str, Any]) -> str:
    return f"{frame.get('file')}:{frame.get('line')} in {frame.get('function')}"


def same_failure(recorded: Mapping[str, Any] | None, replayed: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a replay failed as the recorded run did, and a sentence saying why (or why not).

    The same failure is the same exception type raised in the same innermost project frame (file and
    function); a line that moved (the code above it changed) is still the same failure, and the sentence
    says so. Two runs without an exception are the same; one with and one without are not.
    """
    if recorded is None and replayed is None:
        return True, "neither run raised an exception"
    if recorded is None:
        return False, f"the replay raised {replayed.get('type') if replayed else '?'}; the recorded run raised nothing"
    if replayed is None:
        return False, f"the recorded run raised {recorded.get('type')}; the replay raised nothing"
    kind, other_kind = recorded.get("type"), replayed.get("type")
    if kind != other_kind:
        return False, f"a different exception: recorded {kind}, replayed {other_kind}"
    before, after = innermost_project_frame(recorded), innermost_project_frame(replayed)
    if before is None and after is None:
        return True, f"the same {kind} (no project frame in either traceback)"
    if before is None or after is None:
        which = "the recorded" if before is None else "the replayed"
        return False, f"the same {kind}, but {which} traceback has no project frame"
    if (before.get("file"), before.get("function")) != (after.get("file"), after.get("function")):
        return False, f"the same {kind} raised elsewhere: recorded at {_at(before)}, replayed at {_at(after)}"
    if before.get("line") != after.get("line"):
        return True, (
            f"the same {kind} in {before.get('file')} in {before.get('function')}; "
            f"the line moved from {before.get('line')} to {after.get('line')}"
        )
    return True, f"the same {kind} at {_at(before)}"
