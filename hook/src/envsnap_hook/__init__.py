"""``envsnap_hook.on_failure(dir)``: when an exception escapes, hand the failure to envsnap, then re-raise it.

::

    with envsnap_hook.on_failure("snapshots/", inputs={"batch": "data/batch.parquet"}):
        run_batch()

    @envsnap_hook.on_failure("snapshots/", inputs={"batch": lambda: current_batch})
    def run_batch(): ...

The same semantics as ``envsnap.on_failure``, without envsnap in the job's environment: this package is
standard library only. Only an exception escaping the block or the function is captured (not
``KeyboardInterrupt``, ``GeneratorExit``, or ``SystemExit`` with status 0/None). The hook writes the
exception (type, message, traceback, frames) to a temporary JSON file and runs the envsnap found at
``$ENVSNAP_BIN``, else ``envsnap`` on ``PATH``::

    envsnap capture --python <this interpreter> --failure-record FILE -o DIR/envsnap-<time>-<type>.envsnap --quiet

Inputs that are paths become ``--input NAME=PATH``; an in-memory table (pandas, polars, Arrow) is written to
a temporary parquet file when pyarrow is importable in the job, else it is recorded as a failed input with
the reason; an ``inputs=`` callable that raises is a failed input too. Then the ORIGINAL exception
propagates unchanged: a capture that fails (no envsnap found, envsnap failed) is an
:class:`EnvsnapHookWarning` and, on Python 3.11+, a note on the exception (as is the snapshot's path).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from types import TracebackType
from typing import Any, Callable, Iterable, Literal, Mapping, TypeVar

__all__ = [
    "CAPTURED_ATTR",
    "ENVSNAP_BIN",
    "EnvsnapHookWarning",
    "__version__",
    "find_envsnap",
    "is_failure",
    "on_failure",
    "raw_exception",
    "record_failure",
]

#: envsnap's version: the two are released together.
__version__ = "0.1.0"

#: The variable naming the envsnap executable to run (else ``envsnap`` on PATH).
ENVSNAP_BIN = "ENVSNAP_BIN"
#: Set on an exception once a snapshot of it is written: the same attribute as ``envsnap.on_failure``'s, so a
#: failure is captured once whichever hooks (and however many) see it.
CAPTURED_ATTR = "__envsnap_snapshot__"
#: The formatted traceback keeps its last 64 KiB, the frames their innermost 200 (as envsnap's job bootstrap).
MAX_TRACEBACK = 65536
MAX_FRAMES = 200
#: How long envsnap may take to capture (seconds).
TIMEOUT_S = 600.0
INSTALL_HINT = "install envsnap outside the job's environment (pipx install envsnap-ml) or set ENVSNAP_BIN"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
F = TypeVar("F", bound=Callable[..., Any])


class EnvsnapHookWarning(UserWarning):
    """Handing a failure to envsnap did not work; the user's own exception is unaffected."""


def is_failure(exc: BaseException) -> bool:
    """Whether ``exc`` escaping a job is a failure worth a snapshot."""
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        return False
    if isinstance(exc, SystemExit):
        return exc.code not in (0, None)
    return True


def _type_name(kind: type) -> str:
    module = str(getattr(kind, "__module__", None) or "")
    name = str(getattr(kind, "__qualname__", None) or getattr(kind, "__name__", "?"))
    return name if module in ("builtins", "") else module + "." + name


def _frame_file(filename: str) -> str:
    if not filename or filename.startswith("<"):
        return filename or "<unknown>"
    return os.path.abspath(filename)


def raw_exception(exc: BaseException) -> dict[str, Any]:
    """``{type, message, traceback (last 64 KiB), frames: [{file, line, function}] (innermost last)}``: the
    record envsnap's job bootstrap writes, which ``envsnap capture --failure-record`` reads."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not cost the record
        message = "<unprintable " + _type_name(type(exc)) + ">"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # noqa: BLE001
        text = ""
    frames = [
        {"file": _frame_file(entry.filename), "line": entry.lineno or 0, "function": entry.name}
        for entry in traceback.extract_tb(exc.__traceback__)[-MAX_FRAMES:]
    ]
    return {"type": _type_name(type(exc)), "message": message, "traceback": text[-MAX_TRACEBACK:], "frames": frames}


def find_envsnap() -> str | None:
    """The envsnap executable: ``$ENVSNAP_BIN`` (a path or a command name), else ``envsnap`` on PATH."""
    named = os.environ.get(ENVSNAP_BIN)
    if named:
        found = shutil.which(named)
        return found if found else None
    return shutil.which("envsnap")


def snapshot_name(exc: BaseException, when: float | None = None, tag: str | None = None) -> str:
    """``envsnap-20260101T120000.123456Z-ValueError.envsnap`` (``tag`` replaces the exception type)."""
    now = time.time() if when is None else when
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    what = _UNSAFE.sub("_", tag if tag is not None else type(exc).__qualname__).strip("_.")[:100] or "failure"
    return "envsnap-" + stamp + "-" + what + ".envsnap"


def _free_path(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    stem = name[: -len(".envsnap")]
    counter = 2
    while os.path.exists(path):
        path = os.path.join(directory, f"{stem}-{counter}.envsnap")
        counter += 1
    return path


def _arrow_table(source: Any) -> Any:
    """An in-memory table as a pyarrow Table (pyarrow imported here, only when the job has it)."""
    import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]  # the job's own, when it has one

    kind = type(source)
    package = kind.__module__.split(".")[0]
    if package == "pandas" and kind.__name__ == "DataFrame":
        return pa.Table.from_pandas(source, preserve_index=type(source.index).__name__ != "RangeIndex")
    if package == "polars" and kind.__name__ == "LazyFrame":
        source = source.collect()
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        return source
    if hasattr(source, "__arrow_c_stream__"):
        return pa.table(source)
    if hasattr(source, "to_arrow"):  # polars before the Arrow C stream export
        return source.to_arrow()
    raise TypeError("unsupported input of type " + kind.__name__ + " (give a path, a DataFrame or an Arrow table)")


def _input_arguments(inputs: Mapping[str, Any], scratch: str) -> tuple[list[str], dict[str, str]]:
    """(``--input NAME=PATH`` arguments, failed inputs by name with the reason)."""
    arguments: list[str] = []
    failed: dict[str, str] = {}
    for name, source in inputs.items():
        try:
            value = source() if callable(source) else source
        except Exception as exc:  # noqa: BLE001 - the user's callable may raise anything; it is recorded
            failed[name] = "the inputs= callable raised " + type(exc).__name__ + ": " + str(exc)
            continue
        if isinstance(value, (str, os.PathLike)):
            arguments += ["--input", name + "=" + os.path.abspath(os.fspath(value))]
            continue
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            failed[name] = (
                "an in-memory " + type(value).__name__ + " cannot be handed to envsnap without pyarrow in the job's "
                "environment; give the input as a path"
            )
            continue
        try:
            path = os.path.join(scratch, f"input-{len(arguments)}.parquet")
            pq.write_table(_arrow_table(value), path)
        except Exception as exc:  # noqa: BLE001 - a table that cannot be written is a failed input, not a crash
            failed[name] = "cannot write the " + type(value).__name__ + " as parquet: " + type(exc).__name__
            failed[name] += ": " + str(exc)
            continue
        arguments += ["--input", name + "=" + path]
    return arguments, failed


def _note(exc: BaseException, text: str) -> None:
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        with contextlib.suppress(Exception):
            add_note(text)


def _warn(exc: BaseException, message: str) -> None:
    warnings.warn(message, EnvsnapHookWarning, stacklevel=4)
    _note(exc, message)


def capture_failure(
    exc: BaseException,
    directory: str,
    envsnap: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    config_files: Iterable[str] = (),
    label: str | None = None,
    env_allow: Iterable[str] = (),
    tag: str | None = None,
) -> tuple[str | None, str]:
    """Run ``envsnap capture`` for ``exc``; (the snapshot's path or None, envsnap's last stderr line)."""
    os.makedirs(directory, exist_ok=True)
    output = _free_path(os.path.abspath(directory), snapshot_name(exc, tag=tag))
    scratch = tempfile.mkdtemp(prefix="envsnap-hook-")
    try:
        input_args, failed = _input_arguments(inputs or {}, scratch)
        record = raw_exception(exc)
        record["argv"] = [str(a) for a in sys.argv]
        if failed:
            record["inputs_failed"] = failed
        record_path = os.path.join(scratch, "failure.json")
        with open(record_path, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        command = [envsnap, "capture", "--python", sys.executable, "--failure-record", record_path]
        command += ["-o", output, "--quiet", *input_args]
        for pattern in config_files:
            command += ["--config-file", os.fspath(pattern)]
        for pattern in env_allow:
            command += ["--env-allow", pattern]
        if label is not None:
            command += ["--label", label]
        proc = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    # Exit 3 with a snapshot: an input could not be recorded, and the snapshot says which.
    return (output if os.path.exists(output) else None), (lines[-1] if lines else f"exit {proc.returncode}")


def record_failure(exc: BaseException, directory: str, **options: Any) -> str | None:
    """Hand ``exc`` to envsnap unless it is not a failure or was captured already; never raise (warn)."""
    if not is_failure(exc) or getattr(exc, CAPTURED_ATTR, None) is not None:
        return None
    envsnap = find_envsnap()
    if envsnap is None:
        named = os.environ.get(ENVSNAP_BIN)
        where = (ENVSNAP_BIN + "=" + named + " is not an executable") if named else "no envsnap on PATH"
        _warn(exc, "envsnap-hook: this failure was not captured: " + where + "; " + INSTALL_HINT)
        return None
    try:
        path, last = capture_failure(exc, directory, envsnap, **options)
    except Exception as capture_exc:  # noqa: BLE001 - the user's exception must come out, not ours
        _warn(
            exc, "envsnap-hook: could not capture this failure: " + type(capture_exc).__name__ + ": " + str(capture_exc)
        )
        return None
    if path is None:
        _warn(exc, "envsnap-hook: could not capture this failure: " + envsnap + " capture: " + last)
        return None
    with contextlib.suppress(Exception):  # e.g. an exception class with __slots__
        setattr(exc, CAPTURED_ATTR, path)
    _note(exc, "envsnap: snapshot of this failure: " + path)
    return path


class on_failure:
    """Context manager and decorator: hand a failure to envsnap when an exception escapes, then re-raise it.

    ``inputs`` (name -> path, DataFrame, Arrow table, or a callable returning one), ``config_files`` (paths
    or globs), ``label`` and ``env_allow`` are passed to ``envsnap capture``. After a captured failure,
    :attr:`path` is where the snapshot was written.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        inputs: Mapping[str, Any] | None = None,
        config_files: Iterable[str | os.PathLike[str]] = (),
        label: str | None = None,
        env_allow: Iterable[str] = (),
    ) -> None:
        self.directory = os.fspath(directory)
        self._options: dict[str, Any] = {
            "inputs": dict(inputs or {}),
            "config_files": tuple(os.fspath(p) for p in config_files),
            "label": label,
            "env_allow": tuple(env_allow),
        }
        self.path: str | None = None

    def __enter__(self) -> on_failure:
        return self

    def __exit__(
        self,
        exc_type: type | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None:
            self.path = record_failure(exc, self.directory, **self._options)
        return False  # never swallow: the original exception propagates with its traceback

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or async): a failure escaping any call is captured, then re-raised."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    self.path = record_failure(exc, self.directory, **self._options) or self.path
                    raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                self.path = record_failure(exc, self.directory, **self._options) or self.path
                raise

        return wrapper  # type: ignore[return-value]
