"""``envsnap.on_failure(dir)``: capture a snapshot when an exception escapes, then re-raise it.

::

    with envsnap.on_failure("snapshots/"):
        run_batch()

    @envsnap.on_failure("snapshots/", inputs={"batch": lambda: current_batch})
    def run_batch(): ...

Only an exception escaping the block or the function triggers a capture; success captures nothing.
``KeyboardInterrupt`` (someone stopped the job), ``GeneratorExit`` and ``SystemExit`` with status 0 or
None are not failures and capture nothing; ``SystemExit`` with another status is a failure. The snapshot
is written to ``<dir>/envsnap-<UTC time>-<exception type>.envsnap`` and its ``job/command.json`` records
the exception and traceback. Then the ORIGINAL exception propagates, with its own traceback: a failure
of the capture itself never replaces it; it is reported as an :class:`EnvsnapCaptureWarning` and, on
Python 3.11+, as a note on the user's exception (so is the path of the snapshot that was written).
An exception already captured by an inner ``on_failure`` is not captured again by an outer one.

``mlflow=True`` also logs the snapshot to the active MLflow run (``mlflow.start_run()`` or
``MLFLOW_RUN_ID``; docs/mlflow.md); a failure to log is a warning too, never the user's exception.

An ``inputs=`` value may be a callable, called at failure time; one that raises is recorded as a failed
input (``data/inputs.json`` names it and says why) and the snapshot is still written.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from typing import Unpack

    from envsnap.capture.base import CaptureArguments

__all__ = [
    "CAPTURED_ATTR",
    "EnvsnapCaptureWarning",
    "capture_failure",
    "is_failure",
    "log_failure_to_mlflow",
    "on_failure",
    "record_failure",
    "resolve_input",
    "snapshot_name",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Set on an exception once a snapshot of it is written (nested on_failure / the pytest plugin skip it).
CAPTURED_ATTR = "__envsnap_snapshot__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class EnvsnapCaptureWarning(UserWarning):
    """Capturing a failure did not work; the user's own exception is unaffected."""


def is_failure(exc: BaseException) -> bool:
    """Whether ``exc`` escaping a job is a failure worth a snapshot (see the module docstring)."""
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        return False
    if isinstance(exc, SystemExit):
        return exc.code not in (0, None)
    return True


def snapshot_name(exc: BaseException, when: float | None = None, *, tag: str | None = None) -> str:
    """``envsnap-20260101T120000.123456Z-ValueError.envsnap`` (``tag`` replaces the exception type)."""
    now = time.time() if when is None else when
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    what = _UNSAFE.sub("_", tag if tag is not None else type(exc).__qualname__).strip("_.")[:100] or "failure"
    return f"envsnap-{stamp}-{what}.envsnap"


def _free_path(directory: Path, name: str) -> Path:
    path = directory / name
    stem = name.removesuffix(".envsnap")
    counter = 2
    while path.exists():
        path = directory / f"{stem}-{counter}.envsnap"
        counter += 1
    return path


def capture_failure(
    exc: BaseException,
    directory: str | os.PathLike[str],
    *,
    tag: str | None = None,
    **arguments: Unpack[CaptureArguments],
) -> Path:
    """Capture this interpreter with ``exc`` recorded as the failure; return the snapshot's path.

    ``arguments`` are :func:`envsnap.capture.capture`'s. Input values may be callables, called now: what
    to sample is often only known at failure time; one that raises becomes a failed input.
    """
    from envsnap.capture import capture
    from envsnap.capture.job import exception_record

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    inputs = arguments.get("inputs")
    if inputs:
        arguments["inputs"] = {name: resolve_input(source) for name, source in inputs.items()}
    snap = capture(_free_path(folder, snapshot_name(exc, tag=tag)), failure=exception_record(exc), **arguments)
    return Path(snap.path)


def resolve_input(source: Any) -> Any:
    """An input's value: a callable is called now; one that raises gives an
    :class:`~envsnap.capture.sample.UnavailableInput` saying why (the capture records it as failed)."""
    if not callable(source):
        return source
    try:
        return source()
    except Exception as exc:  # noqa: BLE001 - the user's callable may raise anything; it is recorded
        from envsnap.capture.sample import UnavailableInput
        from envsnap.core.redact import scrub_text

        name = getattr(source, "__qualname__", None) or type(source).__name__
        return UnavailableInput(scrub_text(f"the inputs= callable raised {type(exc).__name__}: {exc}"), f"<{name}()>")


def _note(exc: BaseException, text: str) -> None:
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        with contextlib.suppress(Exception):
            add_note(text)


def record_failure(exc: BaseException, directory: str | os.PathLike[str], **options: Any) -> Path | None:
    """Capture ``exc`` unless it is not a failure or was captured already; never raise (warn instead)."""
    if not is_failure(exc) or getattr(exc, CAPTURED_ATTR, None) is not None:
        return None
    try:
        path = capture_failure(exc, directory, **options)
    except Exception as capture_exc:  # noqa: BLE001 - the user's exception must come out, not ours
        message = f"envsnap: could not capture this failure: {type(capture_exc).__name__}: {capture_exc}"
        warnings.warn(message, EnvsnapCaptureWarning, stacklevel=3)
        _note(exc, message)
        return None
    with contextlib.suppress(Exception):  # e.g. an exception class with __slots__
        setattr(exc, CAPTURED_ATTR, str(path))
    _note(exc, f"envsnap: snapshot of this failure: {path}")
    return path


def log_failure_to_mlflow(exc: BaseException, path: str | os.PathLike[str]) -> str | None:
    """Log the failure's snapshot at ``path`` to the active MLflow run; its ``runs:/`` URI, or None after a
    warning (the user's exception must come out, not ours)."""
    try:
        from envsnap.core import mlflow_runs
        from envsnap.errors import StorageError
        from envsnap.snapshot.reader import open_snapshot

        run = mlflow_runs.active_run_id()
        if run is None:
            raise StorageError(
                "mlflow", "no active MLflow run", hint="start one (mlflow.start_run()) or set MLFLOW_RUN_ID"
            )
        with open_snapshot(path) as snap:
            tags = mlflow_runs.snapshot_tags(
                fingerprint=snap.fingerprint, snapshot_id=snap.id, label=snap.label, kind=snap.kind
            )
        uri = mlflow_runs.log_local_snapshot(os.fspath(path), run_id=run, artifact_path="envsnap", tags=tags)
    except Exception as log_exc:  # noqa: BLE001 - the user's exception must come out, not ours
        message = f"envsnap: could not log this failure's snapshot to MLflow: {log_exc}"
        warnings.warn(message, EnvsnapCaptureWarning, stacklevel=3)
        _note(exc, message)
        return None
    _note(exc, f"envsnap: snapshot logged to MLflow: {uri}")
    return uri


class on_failure:  # lower case: it reads like a function, `with envsnap.on_failure(dir):`
    """Context manager and decorator: capture a snapshot when an exception escapes, then re-raise it.

    ``label``, ``inputs`` (name -> path, pandas or polars DataFrame/LazyFrame, Arrow table, or a callable
    returning one), ``artifacts``, ``config_files`` (paths or globs, parsed and redacted like
    ``--config-file``), ``env_allow`` and ``git`` are passed to the capture. After a captured failure,
    :attr:`path` is where the snapshot was written. ``mlflow=True`` logs it to the active MLflow run too
    (:attr:`mlflow_uri`: its ``runs:/`` URI).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        label: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        artifacts: Iterable[str | os.PathLike[str]] = (),
        config_files: Iterable[str | os.PathLike[str]] = (),
        env_allow: Iterable[str] = (),
        git: bool = True,
        mlflow: bool = False,
    ) -> None:
        self.directory = os.fspath(directory)
        self.mlflow = mlflow
        self.mlflow_uri: str | None = None
        self._options: dict[str, Any] = {
            "label": label,
            "inputs": dict(inputs or {}),
            "artifacts": tuple(artifacts),
            "config_files": tuple(config_files),
            "env_allow": tuple(env_allow),
            "git": git,
        }
        self.path: Path | None = None

    def _record(self, exc: BaseException) -> None:
        path = record_failure(exc, self.directory, **self._options)
        if path is not None:
            self.path = path
            if self.mlflow:
                self.mlflow_uri = log_failure_to_mlflow(exc, path) or self.mlflow_uri

    def __enter__(self) -> on_failure:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is not None:
            self.path = None
            self._record(exc)
        return False  # never swallow: the original exception propagates with its traceback

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or async): a failure escaping any call is captured, then re-raised."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    self._record(exc)
                    raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                self._record(exc)
                raise

        return wrapper  # type: ignore[return-value]
