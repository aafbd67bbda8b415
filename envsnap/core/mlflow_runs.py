"""MLflow runs as a snapshot location: the only module that imports mlflow (docs/mlflow.md).

``runs:/RUN_ID/envsnap`` names the artifact directory holding one snapshot; ``runs:/RUN_ID/path/x.envsnap``
names one snapshot artifact. Both are resolved through MLflow's own artifact API (``MLFLOW_TRACKING_URI``
and the store's own credentials), downloaded into a private temporary directory that lives until the
process exits, and opened there by the same verifying reader as any local snapshot.

Logging goes the other way: :func:`log_local_snapshot` uploads a local snapshot (a directory as a
directory artifact, a zip as one file) and sets the ``envsnap.*`` run tags (:data:`TAGS`).

Every call into mlflow runs inside :func:`_session`: mlflow's INFO logging and warnings are silenced (the
CLI prints one line), a refusing tracking server is retried twice rather than seven times with backoff
(unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` says otherwise), and any mlflow failure becomes one
:class:`StorageError` line, credentials scrubbed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from envsnap.errors import StorageError

__all__ = [
    "RUNS_PREFIX",
    "TAGS",
    "TAG_PREFIX",
    "active_run_id",
    "check_run",
    "end_run",
    "log_local_snapshot",
    "resolve_runs_uri",
    "runs_uri",
    "snapshot_tags",
    "start_run",
]

RUNS_PREFIX = "runs:/"
#: Every run tag envsnap sets starts with this.
TAG_PREFIX = "envsnap."
#: The run tags set by :func:`log_local_snapshot` (``label`` only for a labelled snapshot).
TAGS = ("fingerprint", "id", "label", "kind", "uri")
_TAG_MAX = 5000  # MLflow's limit for a tag value is 8000 characters on every backend
_SNAPSHOT_SUFFIXES = (".envsnap", ".zip")
_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_QUIET_LOGGERS = ("mlflow", "alembic", "urllib3")
_downloads: list[str] = []


def _cleanup() -> None:
    for path in _downloads:
        shutil.rmtree(path, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _tracking_uri(mlflow: Any) -> str:
    try:
        return str(mlflow.get_tracking_uri())
    except Exception:  # noqa: BLE001 - only used to word a message
        return "the MLflow tracking store"


def _translate(where: str, exc: BaseException, mlflow: Any) -> StorageError:
    """One line for an mlflow failure: a refusing server, a missing run, anything else."""
    text = _first_line(exc)
    tracking = _tracking_uri(mlflow)
    lowered = text.lower()
    if any(s in lowered for s in ("max retries exceeded", "connection refused", "failed to establish", "timed out")):
        return StorageError(
            where,
            f"cannot reach the MLflow tracking server {tracking}",
            hint="check MLFLOW_TRACKING_URI and that it runs",
        )
    if "resource_does_not_exist" in lowered or ("run" in lowered and "not found" in lowered):
        return StorageError(
            where,
            f"no such MLflow run at {tracking}",
            hint="check the run id (mlflow runs list) and MLFLOW_TRACKING_URI",
        )
    if any(s in lowered for s in ("401", "403", "unauthorized", "forbidden", "permission denied")):
        return StorageError(
            where,
            f"the MLflow tracking server {tracking} refused the credentials",
            hint="check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD",
        )
    return StorageError(where, f"MLflow failed: {text}", hint="check MLFLOW_TRACKING_URI and the run id")


@contextlib.contextmanager
def _session(where: str, *, need_tracking: bool = True, creates: bool = False) -> Iterator[Any]:
    """Import mlflow, quieten it, and turn its failures into one :class:`StorageError` about ``where``.
    ``creates``: the call starts a run, which may create a ``sqlite:///`` store (any other call refuses a
    missing database file rather than have mlflow create an empty one)."""
    try:
        with warnings.catch_warnings():  # its import may warn about its own dependencies: not the user's concern
            warnings.simplefilter("ignore")
            import mlflow as module
    except ImportError:
        raise StorageError(where, "mlflow is not installed", hint="pip install 'envsnap-ml[mlflow]'") from None
    mlflow: Any = module  # mlflow's own annotations are partial
    if need_tracking and not mlflow.is_tracking_uri_set():
        raise StorageError(
            where,
            "MLFLOW_TRACKING_URI is not set",
            hint="export MLFLOW_TRACKING_URI=<the tracking server, or sqlite:///path/mlflow.db>",
        )
    if mlflow.is_tracking_uri_set() and not creates:  # else the default store: only a run active in this process
        _check_sqlite(where, mlflow)
    loggers = {name: logging.getLogger(name) for name in _QUIET_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    added = {name: value for name, value in _RETRY_DEFAULTS.items() if name not in os.environ}
    os.environ.update(added)
    try:
        for logger in loggers.values():
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield mlflow
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - mlflow, its stores and their drivers raise anything; one line
        raise _translate(where, exc, mlflow) from None
    finally:
        for name in added:
            os.environ.pop(name, None)
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def _check_sqlite(where: str, mlflow: Any) -> None:
    """A ``sqlite:///`` tracking URI naming no file: mlflow would create an empty database; say so instead."""
    uri = _tracking_uri(mlflow)
    if not uri.startswith("sqlite:///"):
        return
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if path and path != ":memory:" and not os.path.exists(path):
        raise StorageError(
            where,
            f"no MLflow database at {path} (MLFLOW_TRACKING_URI={uri})",
            hint="check MLFLOW_TRACKING_URI; mlflow creates the database with the first run logged there",
        )


def _parse(uri: str) -> tuple[str, str]:
    rest = uri[len(RUNS_PREFIX) :].lstrip("/")
    run_id, _, artifact = rest.partition("/")
    if not run_id or not run_id.replace("-", "").isalnum():
        raise StorageError(
            uri, "malformed runs:/ URI", hint="write runs:/RUN_ID/envsnap or runs:/RUN_ID/path/x.envsnap"
        )
    return run_id, artifact.strip("/")


def runs_uri(run_id: str, artifact: str) -> str:
    """``runs:/RUN_ID/ARTIFACT``."""
    return f"{RUNS_PREFIX}{run_id}/{artifact.strip('/')}".rstrip("/")


def _is_snapshot_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "manifest.json"))


def resolve_runs_uri(uri: str) -> str:
    """A local path of the one snapshot ``uri`` names (downloaded); :class:`StorageError` when the run does
    not exist, has no snapshot there, or several, or the tracking store cannot be reached."""
    run_id, artifact = _parse(uri)
    with _session(uri) as mlflow:
        client = mlflow.MlflowClient()
        client.get_run(run_id)  # a missing run or a refusing server: told apart from a missing artifact
        if not _downloads:
            atexit.register(_cleanup)
        dest = tempfile.mkdtemp(prefix="envsnap-mlflow-")
        _downloads.append(dest)
        try:
            local = client.download_artifacts(run_id, artifact, dest)
        except Exception:  # noqa: BLE001 - the run exists: what is missing is the artifact
            raise StorageError(
                uri,
                f"the run has no artifact {artifact or '(root)'!r}",
                hint=f"list its artifacts: mlflow artifacts list --run-id {run_id}",
            ) from None
    if os.path.isfile(local) or _is_snapshot_dir(local):
        return str(local)
    if not os.path.isdir(local):
        raise StorageError(uri, "the run has no artifact there", hint="list the run's artifacts in the MLflow UI")
    found = sorted(
        entry.path
        for entry in os.scandir(local)
        if (entry.is_file() and entry.name.endswith(_SNAPSHOT_SUFFIXES))
        or (entry.is_dir() and _is_snapshot_dir(entry.path))
    )
    if not found:
        raise StorageError(uri, "the run has no envsnap snapshot there", hint="log one with `envsnap capture --mlflow`")
    if len(found) > 1:
        names = ", ".join(os.path.basename(p) for p in found[:4])
        raise StorageError(
            uri,
            f"the run has {len(found)} snapshots there ({names})",
            hint=f"name one: {runs_uri(run_id, artifact)}/{os.path.basename(found[0])}",
        )
    return str(found[0])


def active_run_id() -> str | None:
    """The run to log to when none is named: mlflow's active run in this process (``mlflow.start_run()``),
    else ``MLFLOW_RUN_ID`` (which mlflow itself resumes). mlflow is not imported when nothing imported it:
    then no run can be active."""
    if "mlflow" in sys.modules:
        with contextlib.suppress(Exception):
            run = sys.modules["mlflow"].active_run()
            if run is not None:
                return str(run.info.run_id)
    return os.environ.get("MLFLOW_RUN_ID") or None


def _active_here(mlflow: Any, run_id: str) -> bool:
    run = mlflow.active_run()
    return run is not None and run.info.run_id == run_id


def check_run(run_id: str) -> None:
    """:class:`StorageError` unless ``run_id`` exists in the tracking store (and the store answers)."""
    with _session(runs_uri(run_id, "")) as mlflow:
        mlflow.MlflowClient().get_run(run_id)


def start_run(name: str | None = None) -> str:
    """A new run, in ``MLFLOW_EXPERIMENT_ID``, else ``MLFLOW_EXPERIMENT_NAME`` (created when missing), else
    the default experiment; its id."""
    with _session("mlflow", creates=True) as mlflow:
        client = mlflow.MlflowClient()
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not experiment_id and experiment_name:
            found = client.get_experiment_by_name(experiment_name)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment_name)
        run = client.create_run(experiment_id or "0", run_name=name)
        return str(run.info.run_id)


def end_run(run_id: str, *, failed: bool = False) -> None:
    """Mark a run envsnap started as finished (or failed), unless something else ended it already."""
    with _session(runs_uri(run_id, "")) as mlflow:
        client = mlflow.MlflowClient()
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def snapshot_tags(*, fingerprint: str, snapshot_id: str, label: str | None, kind: str) -> dict[str, str]:
    """The ``envsnap.*`` run tags of a snapshot (the ``uri`` tag is added when it is logged)."""
    tags = {"fingerprint": fingerprint, "id": snapshot_id, "label": label or "", "kind": kind}
    return {TAG_PREFIX + name: value[:_TAG_MAX] for name, value in tags.items() if value}


def log_local_snapshot(path: str, *, run_id: str, artifact_path: str, tags: Mapping[str, str]) -> str:
    """Upload the snapshot at local ``path`` to ``run_id`` under ``artifact_path`` (a directory snapshot as
    a directory artifact named like it, a zip as one file) and set ``tags`` plus ``envsnap.uri``; return
    the ``runs:/`` URI of what was logged."""
    name = os.path.basename(os.path.normpath(path))
    folder = artifact_path.strip("/")
    if any(part in ("..", ".") for part in folder.split("/")):
        raise StorageError(artifact_path, "an artifact path cannot contain '.' or '..'", hint="use e.g. envsnap")
    target = f"{folder}/{name}" if folder else name
    uri = runs_uri(run_id, target)
    with _session(uri, need_tracking=False) as mlflow:
        if not _active_here(mlflow, run_id) and not mlflow.is_tracking_uri_set():
            raise StorageError(  # checked first: a client of mlflow's default store creates ./mlflow.db
                uri,
                "MLFLOW_TRACKING_URI is not set",
                hint="export MLFLOW_TRACKING_URI=<the tracking server, or sqlite:///path/mlflow.db>",
            )
        client = mlflow.MlflowClient()
        client.get_run(run_id)
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, target)
        else:
            client.log_artifact(run_id, path, folder or None)
        from mlflow.entities import RunTag

        all_tags = {**tags, TAG_PREFIX + "uri": uri}
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in sorted(all_tags.items())])
    return uri
