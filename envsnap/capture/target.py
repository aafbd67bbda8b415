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
    """Inspect envsnap's own interpreter. numpy's config is read only if numpy is already imported."""
    facts = _inspect.inspect(with_numpy=False)
    numpy_mod = sys.modules.get("numpy")
    numpy_cfg = _inspect.config_of_loaded_numpy(numpy_mod) if numpy_mod is not None else None
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


def from_interpreter(python: str | os.PathLike[str], *, with_numpy: bool = True) -> TargetRuntime:
    """Inspect another interpreter by running the stdlib-only snippet in it."""
    exe = resolve_interpreter(python)
    argv = [exe, "-c", _snippet_source()]
    if with_numpy:
        argv.append("--numpy")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        proc = subprocess.run(
            argv, capture_output=True, timeout=INSPECT_TIMEOUT_S, env=env, check=False, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise InterpreterError(str(python), f"cannot be run ({exc.strerror or exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise InterpreterError(str(python), f"did not answer within {INSPECT_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(str(python), f"is not a usable Python (exit {proc.returncode}: {last[:200]})")
    try:
        facts = json.loads(proc.stdout)
    except ValueError as exc:
        raise InterpreterError(str(python), "printed something that is not JSON; is it a Python ≥ 3.8?") from exc
    if (
        not isinstance(facts, dict)
        or not isinstance(facts.get("python"), dict)
        or not isinstance(facts.get("distributions"), list)
        or not isinstance(facts.get("site_dirs"), list)
        or not isinstance(facts.get("markers"), dict)
    ):
        raise InterpreterError(str(python), "answered with an unexpected document; is it CPython or PyPy ≥ 3.8?")
    return TargetRuntime(
        in_process=False,
        python=facts["python"],
        markers=facts["markers"],
        site_dirs=facts["site_dirs"],
        distributions=facts["distributions"],
        numpy=facts.get("numpy"),
    )
