"""The runtime being captured: envsnap's own interpreter, or another one given with ``--python``.

Another interpreter is inspected by running :mod:`envsnap.capture._inspect` in it as ``python -c``;
its return code, then its JSON, then the types are checked, each with its own error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from envsnap.capture import _inspect
from envsnap.capture.numpy_config import numpy_build_config
from envsnap.errors import InterpreterError

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
    facts = _inspect.inspect()
    numpy_mod = sys.modules.get("numpy")
    numpy_cfg: dict[str, Any] | None
    if numpy_mod is not None:
        numpy_cfg = _inspect.config_of_loaded_numpy(numpy_mod)
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


@lru_cache(maxsize=1)
def _snippet_source() -> str:
    return Path(_inspect.__file__).read_text(encoding="utf-8")


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


class PendingInspection:
    """The snippet running in another interpreter. Capture starts it first and does its own start-up
    work (importing probes, cyclonedx) while the target answers, then calls :meth:`wait`."""

    def __init__(self, python: str | os.PathLike[str]) -> None:
        self.python = str(python)
        exe = resolve_interpreter(python)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONSTARTUP")}
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            self._proc = subprocess.Popen(
                [exe, "-c", _snippet_source()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise InterpreterError(self.python, f"cannot be run ({exc.strerror or exc})") from exc

    def wait(self) -> TargetRuntime:
        """The inspected runtime; raises :class:`InterpreterError` when the target is not a usable Python."""
        python = self.python
        try:
            stdout, stderr = self._proc.communicate(timeout=INSPECT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self._proc.kill()
            self._proc.communicate()
            raise InterpreterError(python, f"did not answer within {INSPECT_TIMEOUT_S} s") from exc
        if self._proc.returncode != 0:
            last = (stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            raise InterpreterError(python, f"is not a usable Python (exit {self._proc.returncode}: {last[:200]})")
        try:
            facts = json.loads(stdout)
        except ValueError as exc:
            raise InterpreterError(python, "printed something that is not JSON; is it a Python ≥ 3.8?") from exc
        if (
            not isinstance(facts, dict)
            or not isinstance(facts.get("python"), dict)
            or not isinstance(facts.get("distributions"), list)
            or not isinstance(facts.get("site_dirs"), list)
            or not isinstance(facts.get("markers"), dict)
        ):
            raise InterpreterError(python, "answered with an unexpected document; is it CPython or PyPy ≥ 3.8?")
        return TargetRuntime(
            in_process=False,
            python=facts["python"],
            markers=facts["markers"],
            site_dirs=facts["site_dirs"],
            distributions=facts["distributions"],
            numpy=numpy_build_config(str(d) for d in facts["site_dirs"]),
        )


def from_interpreter(python: str | os.PathLike[str]) -> TargetRuntime:
    """Inspect another interpreter by running the stdlib-only snippet in it (nothing of it is imported)."""
    return PendingInspection(python).wait()
