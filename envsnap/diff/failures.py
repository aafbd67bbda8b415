"""How each side of a diff ended: the job's outcome, and the frames of the failure that ended it.

A snapshot records the uncaught exception of its job in ``job/command.json``: with placed ``frames``
(``envsnap run -- COMMAND``, ``capture --failure-record``: project/library/stdlib/other, a library frame's
distribution) or only as traceback text (a pipeline stage that raised; the stage record keeps the same
text). :func:`failure_of` reads either into :class:`Failure`, frames innermost first, a library frame named
by its path inside site-packages (``sklearn/utils/_param_validation.py``) and its distribution (from the
frame, else from the ``top_level`` names in ``env/packages.json``). The suspect ranking reads it;
:func:`diff_job` compares the two outcomes as the ``job`` section (one ``outcome`` row).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envsnap.core.naming import normalize_name
from envsnap.diff.env_common import SectionChanges
from envsnap.diff.env_members import Missing

if TYPE_CHECKING:
    from envsnap.diff.model import SectionDiff
    from envsnap.snapshot.model import Snapshot

__all__ = ["Failure", "FailureFrame", "diff_job", "failure_of", "outcome_text"]

_SITE = re.compile(r"/(?:site|dist)-packages/")
_STDLIB = re.compile(r"/lib/(?:pypy|python)\d+(?:\.\d+)?t?/")
_FRAME_LINE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+?)\s*$', re.MULTILINE)
# Chained exceptions: the last traceback in the text is the one that ended the job.
_CHAIN = re.compile(
    r"\n(?:The above exception was the direct cause of the following exception:|"
    r"During handling of the above exception, another exception occurred:)\n"
)
#: Frames of envsnap's own stage runner (shipped into the job's interpreter): not the job's code.
_RUNNER = re.compile(r"(?:^|/)envsnap[-_a-z0-9]*/(?:_target|runner)/|/envsnap_runner[^/]*/")


@dataclass(frozen=True)
class FailureFrame:
    """One frame: ``file`` as a reader knows it (project-relative, or the path inside site-packages)."""

    file: str
    line: int
    function: str
    where: str
    distribution: str | None = None

    @property
    def at(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Failure:
    """The exception that ended one side's job; ``frames`` innermost first; ``stage`` when a stage raised."""

    type: str
    message: str
    frames: tuple[FailureFrame, ...]
    stage: str | None = None

    @property
    def innermost_project(self) -> FailureFrame | None:
        return next((f for f in self.frames if f.where == "project"), None)


def _top_levels(snap: Snapshot) -> dict[str, str]:
    """Top-level import name -> normalized distribution name, from ``env/packages.json``."""
    if "env/packages.json" not in snap:
        return {}
    try:
        data = snap.read_json("env/packages.json")
    except Exception:  # noqa: BLE001 - without it, library frames keep only their path
        return {}
    out: dict[str, str] = {}
    for dist in data.get("distributions") or () if isinstance(data, Mapping) else ():
        name = dist.get("normalized_name") or dist.get("name")
        for top in dist.get("top_level") or ():
            if isinstance(top, str) and isinstance(name, str):
                out.setdefault(top, normalize_name(name))
    return out


def _library_path(file: str) -> str | None:
    """The part of ``file`` inside site-packages, or None when it is not there."""
    parts = _SITE.split(file.replace("\\", "/"))
    return parts[-1] if len(parts) > 1 else None


def _owner(inside: str, top_levels: Mapping[str, str]) -> str | None:
    top = inside.split("/", 1)[0].removesuffix(".py")
    return top_levels.get(top) or top_levels.get(top.split(".", 1)[0])


def _placed(frame: Mapping[str, Any], top_levels: Mapping[str, str], root: str | None) -> FailureFrame | None:
    file = frame.get("file")
    if not isinstance(file, str):
        return None
    line = frame.get("line")
    line = line if isinstance(line, int) and not isinstance(line, bool) else 0
    function = str(frame.get("function") or "?")
    where = frame.get("where")
    distribution = frame.get("distribution")
    inside = _library_path(file)
    if where is None:  # parsed from text: place it by its path
        if _RUNNER.search(file.replace("\\", "/")):
            return None
        if inside is not None:
            where = "library"
        elif file.startswith("<"):
            where = "stdlib" if file.startswith("<frozen ") else "other"
        elif _STDLIB.search(file.replace("\\", "/")):
            where = "stdlib"
        else:
            where = "project"
    if where == "project" and root and file.startswith(root.rstrip("/") + "/"):
        file = file[len(root.rstrip("/")) + 1 :]
    if where == "library" and inside is not None:
        distribution = distribution or _owner(inside, top_levels)
        file = inside
    name = normalize_name(distribution) if isinstance(distribution, str) and distribution else None
    return FailureFrame(file, line, function, str(where), name)


def _parse(text: str) -> list[dict[str, Any]]:
    """``[{file, line, function}]`` of the last traceback in ``text``, outermost first."""
    last = _CHAIN.split(text)[-1]
    return [
        {"file": m.group("file"), "line": int(m.group("line")), "function": m.group("function")}
        for m in _FRAME_LINE.finditer(last)
    ]


def _failed_stage(snap: Snapshot) -> tuple[str | None, str | None]:
    """(name, traceback text) of the first pipeline stage that raised, or (None, None)."""
    for member in sorted(m for m in snap.members() if m.startswith("pipeline/stages/") and m.endswith(".json")):
        try:
            record = snap.read_json(member)
        except Exception:  # noqa: BLE001, S112 - an unreadable stage record only costs its frames
            continue
        error = record.get("error") if isinstance(record, Mapping) else None
        if isinstance(error, Mapping):
            text = error.get("traceback")
            return str(record.get("name") or "?"), text if isinstance(text, str) else None
    return None, None


def _job(snap: Snapshot) -> Mapping[str, Any] | None:
    if "job/command.json" not in snap:
        return None
    try:
        data = snap.read_json("job/command.json")
    except Exception:  # noqa: BLE001 - the job section reports an unreadable member itself
        return None
    return data if isinstance(data, Mapping) else None


def failure_of(snap: Snapshot) -> Failure | None:
    """The failure that ended ``snap``'s job (see the module docstring), or None when it did not fail."""
    job = _job(snap)
    exception = job.get("exception") if job is not None else None
    stage, stage_text = _failed_stage(snap) if any(m.startswith("pipeline/") for m in snap.members()) else (None, None)
    if not isinstance(exception, Mapping) and stage_text is None:
        return None
    exception = exception if isinstance(exception, Mapping) else {}
    raw = exception.get("frames")
    if not isinstance(raw, list) or not raw:
        text = exception.get("traceback") or stage_text or ""
        raw = _parse(str(text))
    top_levels = _top_levels(snap) if any(isinstance(f, Mapping) and f.get("where") is None for f in raw) else {}
    if not top_levels and any(isinstance(f, Mapping) and not f.get("distribution") for f in raw):
        top_levels = _top_levels(snap)
    command = job.get("command") if job is not None else None
    root = command.get("root") if isinstance(command, Mapping) else job.get("cwd") if job is not None else None
    root = root if isinstance(root, str) else None
    frames = [f for f in (_placed(f, top_levels, root) for f in raw if isinstance(f, Mapping)) if f is not None]
    return Failure(
        type=str(exception.get("type") or "Exception"),
        message=str(exception.get("message") or ""),
        frames=tuple(reversed(frames)),
        stage=stage,
    )


# --- the job section ------------------------------------------------------------------------------------


def outcome_text(job: Mapping[str, Any] | None, failure: Failure | None) -> str | None:
    """``exit 0``, ``killed by signal 9 (exit 137)``, ``TypeError at job.py:7 in main (exit 1)``; None: unknown."""
    status = job.get("exit_status") if job is not None else None
    signum = job.get("signal") if job is not None else None
    exit_part = None
    if isinstance(signum, int) and signum:
        exit_part = f"killed by signal {signum}" + (f" (exit {status})" if isinstance(status, int) else "")
    elif isinstance(status, int):
        exit_part = f"exit {status}"
    if failure is None:
        return exit_part or ("no exception" if job is not None else None)
    where = failure.innermost_project or (failure.frames[0] if failure.frames else None)
    text = failure.type
    if failure.stage is not None:
        text += f" in stage `{failure.stage}`"
    if where is not None:
        text += f" at {where.at} in {where.function}"
    return f"{text} ({exit_part})" if exit_part else text


def _side(snap: Snapshot) -> str | None:
    return outcome_text(_job(snap), failure_of(snap))


def diff_job(a: Snapshot, b: Snapshot, data_a: Any, data_b: Any) -> SectionDiff:
    """The ``job`` section: one ``outcome`` row when the two jobs ended differently.

    A side without a job record (an environment-only capture) or whose outcome is unknown is not compared.
    """
    out = SectionChanges("job")
    if isinstance(data_a, Missing) or isinstance(data_b, Missing):
        return out.result()
    before, after = _side(a), _side(b)
    if before is None or after is None or before == after:
        return out.result()
    out.add("outcome", "changed", before, after, note=_sentence(before, after))
    return out.result()


def _failed(text: str) -> bool:
    return text not in ("exit 0", "no exception")


def _sentence(before: str, after: str) -> str:
    if _failed(after) and not _failed(before):
        return f"the job fails in b: {after}; a: {before}"
    if _failed(before) and not _failed(after):
        return f"the job no longer fails in b ({after}); a: {before}"
    return f"the job ends differently: a {before}; b {after}"
