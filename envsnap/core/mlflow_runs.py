"""MLflow runs as a snapshot location: the only module that imports mlflow (docs/mlflow.md).

``runs:/RUN_ID/envsnap`` names the artifact directory holding one snapshot; ``runs:/RUN_ID/path/x.envsnap``
names one snapshot artifact. Both are resolved through MLflow's own artifact API (``MLFLOW_TRACKING_URI``
and the store's own credentials), downloaded into a private temporary directory that lives until the
process exits, and opened there by the same verifying reader as any local snapshot.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from envsnap.errors import StorageError

__all__ = ["RUNS_PREFIX", "resolve_runs_uri"]

RUNS_PREFIX = "runs:/"
_SNAPSHOT_SUFFIXES = (".envsnap", ".zip")
_downloads: list[str] = []


def _cleanup() -> None:
    for path in _downloads:
        shutil.rmtree(path, ignore_errors=True)


def _mlflow_error(uri: str, exc: BaseException) -> StorageError:
    lines = str(exc).strip().splitlines()
    text = lines[0][:240] if lines else type(exc).__name__
    if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower():
        return StorageError(
            uri, f"no such MLflow run or artifact ({text})", hint="check the run id and MLFLOW_TRACKING_URI"
        )
    return StorageError(uri, f"MLflow cannot resolve it: {text}", hint="check MLFLOW_TRACKING_URI and the run id")


def _parse(uri: str) -> tuple[str, str]:
    rest = uri[len(RUNS_PREFIX) :].lstrip("/")
    run_id, _, artifact = rest.partition("/")
    if not run_id or not run_id.replace("-", "").isalnum():
        raise StorageError(
            uri, "malformed runs:/ URI", hint="write runs:/RUN_ID/envsnap or runs:/RUN_ID/path/x.envsnap"
        )
    return run_id, artifact.strip("/")


def _is_snapshot_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "manifest.json"))


def resolve_runs_uri(uri: str) -> str:
    """A local path of the one snapshot ``uri`` names (downloaded); :class:`StorageError` when the run has
    no snapshot there, or several."""
    _parse(uri)
    try:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise StorageError(uri, "mlflow is not installed", hint="pip install 'envsnap-ml[mlflow]'") from None
    if not _downloads:
        atexit.register(_cleanup)
    dest = tempfile.mkdtemp(prefix="envsnap-mlflow-")
    _downloads.append(dest)
    try:
        local = download_artifacts(artifact_uri=uri, dst_path=dest)
    except MlflowException as exc:
        raise _mlflow_error(uri, exc) from None
    except OSError as exc:
        raise StorageError(uri, f"cannot download the artifact: {exc}") from None
    if os.path.isfile(local) or _is_snapshot_dir(local):
        return local
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
            uri, f"the run has {len(found)} snapshots there ({names})", hint="name one: runs:/RUN_ID/envsnap/NAME"
        )
    return found[0]
