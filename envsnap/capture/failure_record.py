"""``envsnap capture --failure-record FILE``: a failure recorded in another interpreter, captured here.

A hook that lives in the job's own environment (the ``envsnap-hook`` distribution, stdlib only) cannot
capture the environment itself; it writes the raw exception of the job to a JSON file and runs the envsnap
installed elsewhere: ``envsnap capture --python <the job's python> --failure-record FILE``. The file holds
the job bootstrap's raw exception record (:mod:`envsnap.capture.frames`)::

    {"type": "module.Qualname", "message": str, "traceback": str,
     "frames": [{"file": absolute path, "line": int, "function": str}, ...],   # innermost last
     "argv": [str, ...],                                                     # optional: the job's argv
     "inputs_failed": {name: reason}}        # optional: inputs the hook could not hand over, recorded as failed

:func:`read_failure_record` checks it (a bad file is one :class:`~envsnap.errors.OptionError` line, exit 2);
:func:`capture_failure_record` captures with it as ``job/command.json``'s exception, enriched like a failing
``envsnap run`` job's: message and traceback scrubbed, each frame placed (project relative to the git root,
else the working directory; library frames with their distribution, from the captured interpreter's site
directories; stdlib).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envsnap.capture import CaptureSteps, capture_snapshot
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.errors import OptionError

if TYPE_CHECKING:
    from typing import Unpack

    from envsnap.capture.base import CaptureArguments
    from envsnap.snapshot.manifest import ProbeStatus
    from envsnap.snapshot.model import Snapshot

__all__ = ["FailureRecordSteps", "capture_failure_record", "read_failure_record"]

_TEXT_KEYS = ("type", "message", "traceback")
_FRAME_KEYS = {"file": str, "line": int, "function": str}


def _bad(path: str, problem: str) -> OptionError:
    return OptionError(
        f"--failure-record {path}: {problem}",
        hint="give the JSON file an envsnap hook wrote ({type, message, traceback, frames})",
    )


def read_failure_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw exception record in ``path``, checked; raises :class:`OptionError` naming what is wrong."""
    shown = os.fspath(path)
    try:
        with open(shown, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise _bad(shown, f"cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _bad(shown, "not UTF-8 text") from None
    except ValueError as exc:
        raise _bad(shown, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _bad(shown, f"a JSON object was expected, not {type(data).__name__}")
    for key in _TEXT_KEYS:
        if not isinstance(data.get(key), str):
            raise _bad(shown, f"'{key}' must be a string")
    if not data["type"]:
        raise _bad(shown, "'type' is empty")
    frames = data.get("frames", [])
    if not isinstance(frames, list):
        raise _bad(shown, "'frames' must be a list")
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise _bad(shown, f"'frames[{index}]' must be an object")
        for key, kind in _FRAME_KEYS.items():
            value = frame.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise _bad(shown, f"'frames[{index}].{key}' must be {'an integer' if kind is int else 'a string'}")
    argv = data.get("argv")
    if argv is not None and not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        raise _bad(shown, "'argv' must be a list of strings")
    failed = data.get("inputs_failed", {})
    if not (isinstance(failed, dict) and all(isinstance(v, str) for v in failed.values())):
        raise _bad(shown, "'inputs_failed' must map input names to reasons")
    return data


class FailureRecordSteps(CaptureSteps):
    """Enrich the raw exception once the git probe has found the project root and the target is known."""

    first = ("git",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def between(self, ctx: CaptureContext, statuses: Mapping[str, ProbeStatus]) -> None:
        from envsnap.capture.frames import enrich_exception, stdlib_dirs_of

        git = ctx.results.get("git")
        root = git.get("root") if isinstance(git, Mapping) and git.get("present") else None
        target = ctx.target
        failure = enrich_exception(
            self.raw,
            root=root if isinstance(root, str) else ctx.options.cwd,
            site_dirs=[str(d) for d in target.site_dirs],
            stdlib_dirs=stdlib_dirs_of(target.python),
        )
        ctx.options = dataclasses.replace(ctx.options, failure=failure)


def capture_failure_record(
    output: str | os.PathLike[str] | None,
    raw: Mapping[str, Any],
    *,
    force: bool = False,
    **arguments: Unpack[CaptureArguments],
) -> Snapshot:
    """Capture (``python``, as :func:`envsnap.capture.capture` does) with ``raw`` as the failure.

    ``raw`` is a record :func:`read_failure_record` accepted; its ``argv`` (when given) is the job's, and
    is recorded unless ``argv`` is passed; its ``inputs_failed`` are recorded as failed inputs beside
    ``inputs``.
    """
    from envsnap.capture.sample import UnavailableInput

    if "argv" not in arguments and isinstance(raw.get("argv"), list):
        arguments["argv"] = list(raw["argv"])
    failed = raw.get("inputs_failed") or {}
    if failed:
        inputs = dict(arguments.get("inputs") or {})
        for name, reason in failed.items():
            inputs.setdefault(str(name), UnavailableInput(str(reason), "<in the job>"))
        arguments["inputs"] = inputs
    options = CaptureOptions.build(**arguments)
    return capture_snapshot(options, output, force=force, steps=FailureRecordSteps(raw))
