"""Code that envsnap runs in other interpreters, and the one way it ships it there.

Every module of this package but this one is *shipped*: it runs in the job's Python (``--python``), in
a replay's container or venv, on Ray and Spark workers, where envsnap is not installed. So it imports the
standard library and its sibling modules only (relatively), parses as Python 3.8, and imports anything
else (pyarrow, pandas, joblib) lazily, from whatever the target has; ``tests/unit/test_target_code.py``
checks every file. In envsnap's own process the same modules are imported as ``envsnap._target.*``.

The shipped modules travel as one package, ``_envsnap_target``, in one of two forms:

* **files**, where the target shares a file system: :func:`install` copies them into a directory, and
  ``python -c BOOTSTRAP DIR MODULE ARGS...`` (:func:`command`) appends that directory at the END of
  ``sys.path``, so that it can never shadow one of the target's packages, and runs ``MODULE.main(ARGS)``.
  :class:`Launched` and :func:`run_json` do this in a private temporary directory (``--python`` inspection,
  the model loader); the stage runner is installed where the job's files go (``--python`` runs, replays,
  where the directory is mounted into the container);
* **sources**, where there is none (Ray and Spark workers): :func:`sources` hands their text to the
  fleet payload (:mod:`.payload`), which loads them as the same package on the worker.

A shipped program answers one JSON document, on stdout or in a file it is given. :func:`answer` checks
it the same way for every caller: the return code, then the JSON, then its types, each with its own error.

This module is the in-process side and is never shipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from envsnap.errors import EnvsnapError

#: The name of the shipped package in another interpreter (never ``envsnap``: it is not installed there).
PACKAGE = "_envsnap_target"
#: ``python -c BOOTSTRAP DIR MODULE ARGS...``: run ``PACKAGE.MODULE.main(ARGS)`` from a copy in ``DIR``.
BOOTSTRAP = (
    "import sys; sys.path.append(sys.argv[1]); from importlib import import_module; "
    f"sys.exit(import_module('{PACKAGE}.' + sys.argv[2]).main(sys.argv[3:]))"
)
_HERE = Path(__file__).resolve().parent
_INIT = '"""envsnap\'s code shipped into this interpreter: standard library only, never envsnap itself."""\n'
# Variables that would make the target load another standard library or run a user's start-up file.
_FOREIGN_VARIABLES = ("PYTHONHOME", "PYTHONSTARTUP")


class TargetError(EnvsnapError):
    """Code shipped into another interpreter could not run there, or did not answer as it should.

    ``what`` names the program (``"the interpreter inspection"``), ``python`` the interpreter and
    ``problem`` what went wrong.
    """

    def __init__(self, what: str, python: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.what = what
        self.python = python
        self.problem = problem

    def __str__(self) -> str:
        text = f"{self.what} in {self.python} {self.problem}"
        return f"{text}; {self.hint}" if self.hint else text


class TargetStartError(TargetError):
    """The interpreter could not be started at all (missing, not executable, not a program)."""


class TargetTimeoutError(TargetError):
    """The program did not answer in time; it was killed."""


class TargetExitError(TargetError):
    """The program exited with a non-zero status (first check); ``returncode`` and the last stderr line."""

    def __init__(self, what: str, python: str, returncode: int, last_line: str) -> None:
        detail = f": {last_line}" if last_line else ""
        super().__init__(what, python, f"exited {returncode}{detail}")
        self.returncode = returncode
        self.last_line = last_line


class TargetOutputError(TargetError):
    """The program exited 0 but its answer is not JSON (second check)."""


class TargetAnswerError(TargetError):
    """The answer is JSON but not the document expected: a missing key or a value of the wrong type (third)."""


def _shipped_files() -> dict[str, Path]:
    """Every shipped module (a dotted name under the package, ``"runner"`` for ``runner/__init__.py``) and its file."""
    files = {}
    for path in sorted(_HERE.rglob("*.py")):
        parts = path.relative_to(_HERE).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:  # the package's own __init__ is this module, the in-process side
            files[".".join(parts)] = path
    return files


def shipped_modules() -> list[str]:
    """Every shipped module as a dotted name under the package (``"host"``, ``"runner"``, ``"runner.main"``)."""
    return sorted(_shipped_files())


def source(module: str) -> str:
    """The text of one shipped module (``"host"``, ``"runner.main"``)."""
    files = _shipped_files()
    if module not in files:
        raise ValueError(f"{module!r} is not shipped code (known: {', '.join(sorted(files))})")
    return files[module].read_text(encoding="utf-8")


def sources(modules: Iterable[str]) -> dict[str, str]:
    """``{module: text}`` in the order given, which is the order a loader runs them in (dependencies first)."""
    return {module: source(module) for module in modules}


def install(directory: Path) -> Path:
    """Copy the shipped modules into ``directory`` as the package :data:`PACKAGE`; return ``directory``.

    Sources only: no byte code compiled for another interpreter travels with them.
    """
    package = directory / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_INIT, encoding="utf-8")
    for path in _shipped_files().values():
        destination = package / path.relative_to(_HERE)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    return directory


def command(python: str, directory: str, module: str, *args: str) -> list[str]:
    """The argv that runs ``module.main(args)`` in ``python`` from a copy :func:`install` made in ``directory``."""
    return [python, "-c", BOOTSTRAP, directory, module, *args]


def target_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without the variables that would break another interpreter."""
    source_env = os.environ if environ is None else environ
    return {k: v for k, v in source_env.items() if k not in _FOREIGN_VARIABLES}


def answer(
    what: str,
    python: str,
    returncode: int,
    output: str | bytes,
    expect: Mapping[str, type | tuple[type, ...]],
    *,
    stderr: str | bytes = b"",
) -> dict[str, Any]:
    """The JSON document a shipped program answered, checked: return code, then JSON, then types.

    ``output`` is its answer (stdout, or the file it wrote); ``expect`` maps each key the document must
    have to the type(s) of its value. Raises :class:`TargetExitError`, :class:`TargetOutputError` or
    :class:`TargetAnswerError`.
    """
    if returncode != 0:
        text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
        lines = [line for line in text.strip().splitlines() if line.strip()]
        raise TargetExitError(what, python, returncode, lines[-1][:300] if lines else "")
    try:
        document = json.loads(output)
    except ValueError as exc:
        raise TargetOutputError(what, python, "answered something that is not JSON") from exc
    if not isinstance(document, dict):
        raise TargetAnswerError(what, python, f"answered a JSON {type(document).__name__}, not an object")
    for key, kind in expect.items():
        if not isinstance(document.get(key), kind):
            got = type(document[key]).__name__ if key in document else "nothing"
            raise TargetAnswerError(what, python, f"answered an unexpected document ({got} for {key!r})")
    return document


class Launched:
    """A shipped program running in another interpreter from a private copy of the package.

    Started on construction; :meth:`wait` collects and checks its answer (stdout) and removes the copy.
    The caller does other work in between (capture imports its probes while the target answers).
    """

    def __init__(
        self,
        what: str,
        python: str,
        module: str,
        args: Sequence[str] = (),
        *,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.what = what
        self.python = python
        self._directory = Path(tempfile.mkdtemp(prefix="envsnap-target-"))
        env = target_environ(environ)
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            install(self._directory)
            self._proc = subprocess.Popen(
                command(python, str(self._directory), module, *args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
            )
        except OSError as exc:
            self.close()
            raise TargetStartError(what, python, f"cannot be run ({exc.strerror or exc})") from exc

    def wait(self, timeout: float, expect: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
        """The checked answer (see :func:`answer`); :class:`TargetTimeoutError` after ``timeout`` seconds."""
        try:
            stdout, stderr = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TargetTimeoutError(self.what, self.python, f"did not answer within {timeout:g} s") from exc
        finally:
            self.close()
        return answer(self.what, self.python, self._proc.returncode, stdout, expect, stderr=stderr)

    def close(self) -> None:
        """Stop the program if it still runs and remove the private copy."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        shutil.rmtree(self._directory, ignore_errors=True)


def run_json(
    what: str,
    python: str,
    module: str,
    args: Sequence[str] = (),
    *,
    expect: Mapping[str, type | tuple[type, ...]],
    timeout: float,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Run ``module.main(args)`` in ``python`` and return its checked JSON answer (:func:`answer`)."""
    return Launched(what, python, module, args, environ=environ, cwd=cwd).wait(timeout, expect)


def detached(module: str) -> dict[str, Any]:
    """The namespace of a self-contained shipped module, compiled under a name no other interpreter can import.

    Ray's and Spark's cloudpickle ship a function of it *by value* (its code, not an import of it), so the
    workers need no envsnap.
    """
    namespace: dict[str, Any] = {"__name__": f"{PACKAGE}_detached_{module}"}
    exec(compile(source(module), f"<{PACKAGE}.{module}>", "exec"), namespace)  # noqa: S102 - envsnap's own source
    return namespace
