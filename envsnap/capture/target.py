"""The runtime being captured: envsnap's own interpreter, or another one given with ``--python``.

Another interpreter is inspected by running :mod:`envsnap._target.interpreter` in it, shipped the one
way envsnap ships code (:mod:`envsnap._target`): its return code, then its JSON, then the types are
checked, each with its own error, and any of them means that ``--python`` is not a usable Python.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap._target import Launched, TargetError, interpreter
from envsnap.capture.numpy_config import numpy_build_config
from envsnap.errors import InterpreterError

__all__ = ["PendingInspection", "TargetRuntime", "from_interpreter", "in_process", "resolve_interpreter"]

INSPECT_TIMEOUT_S = 60


@dataclass(frozen=True)
class TargetRuntime:
    """Facts about the interpreter whose environment is captured."""

    in_process: bool
    python: dict[str, Any]
    markers: dict[str, str]
    site_dirs: list[str]
    distributions: list[dict[str, Any]]
    numpy: dict[str, Any] | None

    @property
    def executable(self) -> str:
        return str(self.python.get("executable") or "")


def in_process() -> TargetRuntime:
    """Inspect envsnap's own interpreter.

    numpy's build configuration comes from numpy itself when the job already imported it (that adds the
    SIMD extensions found at run time), else from its ``__config__.py``, never by importing it.
    """
    facts = interpreter.inspect()
    numpy_mod = sys.modules.get("numpy")
    numpy_cfg: dict[str, Any] | None
    if numpy_mod is not None:
        numpy_cfg = interpreter.config_of_loaded_numpy(numpy_mod)
    else:
        numpy_cfg = numpy_build_config(facts["site_dirs"])
    return TargetRuntime(
        in_process=True,
        python=facts["python"],
        markers=facts["markers"],
        site_dirs=facts["site_dirs"],
        distributions=facts["distributions"],
        numpy=numpy_cfg,
    )


def resolve_interpreter(python: str | os.PathLike[str]) -> str:
    """Turn ``--python`` (an executable, or a venv directory) into an executable path, or raise."""
    path = Path(python).expanduser()
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "bin" / "python3", path / "Scripts" / "python.exe"):
            if candidate.exists():
                return str(candidate)
        raise InterpreterError(str(python), "is a directory without bin/python")
    if not path.exists():
        raise InterpreterError(str(python), "does not exist")
    if not os.access(path, os.X_OK):
        raise InterpreterError(str(python), "is not executable")
    # A venv's bin/python is a symlink to the base interpreter; keep the link so that the venv is used.
    return str(path.absolute())


#: What the inspection must answer: a JSON object with these keys, of these types.
_ANSWER = {"python": dict, "distributions": list, "site_dirs": list, "markers": dict}


class PendingInspection:
    """The inspection running in another interpreter. Capture starts it first and does its own start-up
    work (importing probes, cyclonedx) while the target answers, then calls :meth:`wait`."""

    def __init__(self, python: str | os.PathLike[str]) -> None:
        self.python = str(python)
        exe = resolve_interpreter(python)
        try:
            self._running = Launched("the interpreter inspection", exe, "interpreter")
        except TargetError as exc:
            raise InterpreterError(self.python, exc.problem) from exc

    def wait(self) -> TargetRuntime:
        """The inspected runtime; raises :class:`InterpreterError` when the target is not a usable Python."""
        try:
            facts = self._running.wait(INSPECT_TIMEOUT_S, _ANSWER)
        except TargetError as exc:
            raise InterpreterError(self.python, f"is not a usable Python ≥ 3.8 (it {exc.problem})") from exc
        return TargetRuntime(
            in_process=False,
            python=facts["python"],
            markers=facts["markers"],
            site_dirs=facts["site_dirs"],
            distributions=facts["distributions"],
            numpy=numpy_build_config(str(d) for d in facts["site_dirs"]),
        )


def from_interpreter(python: str | os.PathLike[str]) -> TargetRuntime:
    """Inspect another interpreter by running the stdlib-only inspection in it (nothing of it is imported)."""
    return PendingInspection(python).wait()
