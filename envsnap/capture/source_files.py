"""``code/index.json`` + ``code/files/PATH``: the project's own source files the job ran (the code map).

Which files:

* a pipeline run: every ``.py`` file of the project that a stage imported while it ran, and the file of
  each stage's function (the runner records them: :func:`envsnap._target.runner.measure.source_files`);
* ``envsnap run -- COMMAND``: the script it ran (``python job.py``, ``python -m pkg.job``), the job's
  ``.py`` files it read (``job/command.json`` ``command.files.read``; a ``__pycache__/*.pyc`` counts as
  its source) and the project frames of its exception;
* any other capture that records a failure: the project frames of its traceback.

"The project" is the git repository's root (``env/git.json``), else the command's root, else the
directory that holds the files. Files outside it are not the project's.

Each file is indexed with its path relative to the root, its sha256 and size, whether git tracks it,
the stages that imported it and why it is there (``imported``, ``entry`` — the script a command ran —,
``read``, ``traceback``). Its text is kept
as ``code/files/PATH`` (redacted like every string, so the stored text can differ from the hashed file)
while the texts stay within :data:`SOURCE_BUDGET` bytes in all; ``--no-source`` keeps none. A file that is
binary, not UTF-8, alone larger than the budget, unreadable or whose name cannot be a member is named
with the reason (``not_stored``) and only hashed: ``diff`` then falls back to the clone or the hashes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.core.redact import scrub_text

__all__ = [
    "CODE_DIR",
    "CODE_INDEX",
    "SOURCE_BUDGET",
    "SourceFilesProbe",
    "code_index",
    "project_root",
    "relative_files",
]

CODE_INDEX = "code/index.json"
CODE_DIR = "code/files"
#: The stored texts together stay within this many bytes (the index always lists every file).
SOURCE_BUDGET = 256 * 1024
#: At most this many files are indexed (a job that reads a whole source tree).
MAX_FILES = 2000
_BINARY_PROBE = 8192


def project_root(
    git: Any, command: Mapping[str, Any] | None, files: Iterable[str], cwd: str | None = None
) -> str | None:
    """The git root, else the command's root, else ``cwd`` when it holds every file, else the deepest
    directory holding every file."""
    if isinstance(git, Mapping) and git.get("present", True) and isinstance(git.get("root"), str):
        return os.path.normpath(str(git["root"]))
    if command is not None and isinstance(command.get("root_abs"), str):
        return os.path.normpath(str(command["root_abs"]))
    paths = [os.path.dirname(os.path.abspath(f)) for f in files]
    if not paths:
        return None
    if cwd is not None and all(_inside(p, os.path.normpath(cwd)) for p in paths):
        return os.path.normpath(cwd)
    try:
        return os.path.commonpath(paths)
    except ValueError:
        return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def relative_files(files: Iterable[str], root: str | None) -> dict[str, str]:
    """Absolute path -> path relative to ``root`` (``/``-separated) for the files inside ``root``."""
    out: dict[str, str] = {}
    if root is None:
        return out
    for path in files:
        absolute = os.path.normpath(os.path.abspath(path))
        if _inside(absolute, root) and absolute != root:
            out[absolute] = os.path.relpath(absolute, root).replace(os.sep, "/")
    return out


def _source_of(path: str) -> str:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py``; other paths unchanged."""
    directory, base = os.path.split(path)
    if base.endswith(".pyc") and os.path.basename(directory) == "__pycache__":
        return os.path.join(os.path.dirname(directory), base.split(".", 1)[0] + ".py")
    return path


def _tracked(relative: str, git: Any) -> bool | None:
    if not isinstance(git, Mapping) or not git.get("present", True) or "untracked" not in git:
        return None
    for entry in git.get("untracked") or ():
        if relative == entry or (entry.endswith("/") and relative.startswith(entry)):
            return False
    return None if git.get("untracked_truncated") else True


def _member_name_ok(relative: str) -> bool:
    parts = relative.split("/")
    return (
        len(relative) <= 900
        and not any(part in ("", ".", "..") for part in parts)
        and not any(ord(c) < 32 or c == "\\" for c in relative)
    )


def _read(path: str) -> tuple[bytes | None, str | None]:
    try:
        with open(path, "rb") as fh:
            return fh.read(), None
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or type(exc).__name__}"


def code_index(
    wanted: Mapping[str, Mapping[str, Any]],
    *,
    root: str,
    origin: str,
    git: Any = None,
    keep_text: bool = True,
    budget: int = SOURCE_BUDGET,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The index and the stored texts (member -> text) of ``wanted``: relative path -> ``{stages, why}``.

    Files are stored in the order of the stages that imported them (then by path) until the budget is
    spent: the first stage's code first, since that is where a divergence starts.
    """
    order = sorted(wanted, key=lambda p: (min(wanted[p].get("order") or [1 << 30]), p))[:MAX_FILES]
    entries = []
    texts: dict[str, str] = {}
    folded: set[str] = set()
    spent = 0
    for relative in order:
        facts = wanted[relative]
        raw, problem = _read(os.path.join(root, relative))
        entry: dict[str, Any] = {
            "path": scrub_text(relative),
            "sha256": hashlib.sha256(raw).hexdigest() if raw is not None else None,
            "size": len(raw) if raw is not None else None,
            "tracked": _tracked(relative, git),
            "stages": sorted(set(facts.get("stages") or ())),
            "why": sorted(set(facts.get("why") or ())),
            "member": None,
            "not_stored": problem,
        }
        entries.append(entry)
        if raw is None:
            continue
        if b"\x00" in raw[:_BINARY_PROBE]:
            entry["not_stored"] = "binary"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            entry["not_stored"] = f"not UTF-8 (byte {exc.start})"
            continue
        if len(raw) > budget:
            entry["not_stored"] = f"huge: {len(raw)} bytes, more than the {budget}-byte budget"
            continue
        if not keep_text:
            entry["not_stored"] = "--no-source"
            continue
        member = f"{CODE_DIR}/{relative}"
        if not _member_name_ok(relative) or scrub_text(relative) != relative or member.casefold() in folded:
            entry["not_stored"] = "its name cannot be a snapshot member"
            continue
        if spent + len(raw) > budget:
            entry["not_stored"] = f"the {budget}-byte budget was spent on earlier files"
            continue
        spent += len(raw)
        folded.add(member.casefold())
        texts[member] = text
        entry["member"] = member
    index = {
        "origin": origin,
        "root": scrub_text(root),
        "budget_bytes": budget,
        "stored_bytes": spent,
        "keep_text": keep_text,
        "files": entries,
        "truncated": len(wanted) > len(order),
    }
    return index, texts


def _entry_files(command: Mapping[str, Any], root: str) -> list[str]:
    """The file a Python command ran (``python job.py``, ``python -m pkg.job``), relative to ``root``."""
    argv = [str(a) for a in command.get("argv") or ()]
    if not command.get("is_python") or len(argv) < 2:
        return []
    cwd = command.get("cwd") or "."
    base = os.path.join(root, cwd) if not os.path.isabs(cwd) else cwd
    candidates = []
    for index, arg in enumerate(argv[1:], 1):
        if arg == "-m" and index + 1 < len(argv):
            module = argv[index + 1].replace(".", os.sep)
            candidates += [os.path.join(base, module + ".py"), os.path.join(base, module, "__main__.py")]
            break
        if arg.endswith(".py"):
            candidates.append(arg if os.path.isabs(arg) else os.path.join(base, arg))
            break
        if not arg.startswith("-"):
            break
    found = relative_files([c for c in candidates if os.path.isfile(c)], root)
    return sorted(found.values())[:1]


def _wanted(ctx: CaptureContext, root: str | None) -> dict[str, dict[str, Any]]:
    """Relative path -> ``{stages, why, order}`` of what this capture asks to index."""
    options = ctx.options
    wanted: dict[str, dict[str, Any]] = {}

    def add(relative: str, why: str, stage: str | None = None, order: int | None = None) -> None:
        facts = wanted.setdefault(relative, {"stages": set(), "why": set(), "order": []})
        facts["why"].add(why)
        if stage is not None:
            facts["stages"].add(stage)
        if order is not None:
            facts["order"].append(order)

    for index, (stage, files) in enumerate(options.code_files):
        for absolute, relative in relative_files(files, root).items():
            if absolute.endswith(".py"):
                add(relative, "imported", stage, index)
    command = options.command
    if command is not None and root is not None:
        for entry in _entry_files(command, root):
            add(entry, "entry")
        read = (command.get("files") or {}).get("read") or ()
        sources = [_source_of(os.path.join(root, p)) for p in read if isinstance(p, str)]
        for absolute, relative in relative_files(sources, root).items():
            if absolute.endswith(".py") and os.path.isfile(absolute):
                add(relative, "read")
    failure = options.failure or {}
    for frame in failure.get("frames") or ():
        if isinstance(frame, Mapping) and frame.get("where") == "project" and isinstance(frame.get("file"), str):
            file = str(frame["file"])
            if root is not None and not os.path.isabs(file) and os.path.isfile(os.path.join(root, file)):
                add(os.path.normpath(file).replace(os.sep, "/"), "traceback")
    return wanted


@register
class SourceFilesProbe(Probe):
    """The project's source files the stages imported or the job read (see the module docstring)."""

    name = "source_files"
    member = CODE_INDEX

    def enabled(self, ctx: CaptureContext) -> bool:
        options = ctx.options
        frames = (options.failure or {}).get("frames") or ()
        return bool(options.code_files) or options.command is not None or bool(frames)

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        options = ctx.options
        git = ctx.results.get("git")
        every = [f for _, files in options.code_files for f in files]
        root = project_root(git, options.command, every, options.cwd)
        wanted = _wanted(ctx, root)
        origin = "pipeline" if options.code_files else "command" if options.command is not None else "traceback"
        index, texts = code_index(wanted, root=root or "", origin=origin, git=git, keep_text=options.source)
        return ProbeOutput(index, dict(texts))
