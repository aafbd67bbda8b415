"""Snapshots as artifacts of MLflow runs (docs/mlflow.md).

::

    import mlflow
    from envsnap.capture import capture
    from envsnap.integrations.mlflow import log_snapshot

    with mlflow.start_run():
        snap = capture("run.envsnap", label="nightly")
        log_snapshot(snap)  # -> "runs:/<run id>/envsnap/run.envsnap"

The snapshot goes under ``artifact_path`` (``envsnap`` by default) of the run, and the run gets the tags
``envsnap.fingerprint``, ``envsnap.id``, ``envsnap.label`` (a labelled snapshot), ``envsnap.kind`` and
``envsnap.uri`` (the ``runs:/`` URI logged). Every envsnap command then reads it back as
``runs:/RUN_ID/envsnap``. mlflow itself is imported only by :mod:`envsnap.core.mlflow_runs`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from envsnap.core import mlflow_runs, storage
from envsnap.errors import StorageError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["TAGS", "TAG_PREFIX", "log_snapshot"]

TAG_PREFIX = mlflow_runs.TAG_PREFIX
TAGS = mlflow_runs.TAGS


def log_snapshot(
    snapshot_or_path: Snapshot | str | os.PathLike[str], artifact_path: str = "envsnap", run_id: str | None = None
) -> str:
    """Log a snapshot (a :class:`~envsnap.Snapshot`, a local path, an ``s3://`` or ``runs:/`` URI) as an
    artifact of ``run_id``, else of the active run (``mlflow.start_run()``, ``MLFLOW_RUN_ID``); return the
    ``runs:/`` URI of the logged artifact.

    Raises :class:`~envsnap.errors.StorageError` (one line) when there is no run to log to, the run does not
    exist, the tracking store cannot be reached or mlflow is not installed, and
    :class:`~envsnap.errors.SnapshotError` when the snapshot cannot be opened.
    """
    from envsnap.snapshot.model import Snapshot
    from envsnap.snapshot.reader import open_snapshot

    run = run_id or mlflow_runs.active_run_id()
    if not run:
        raise StorageError(
            "mlflow",
            "no active MLflow run to log the snapshot to",
            hint="call it inside `with mlflow.start_run():`, pass run_id=, or set MLFLOW_RUN_ID",
        )
    opened = None
    if isinstance(snapshot_or_path, Snapshot):
        snap = snapshot_or_path
    else:
        snap = opened = open_snapshot(snapshot_or_path)  # the verifying reader: a broken snapshot is refused
    try:
        tags = mlflow_runs.snapshot_tags(
            fingerprint=snap.fingerprint, snapshot_id=snap.id, label=snap.label, kind=snap.kind
        )
        location = os.fspath(snap.path)
        if location.startswith(mlflow_runs.RUNS_PREFIX):  # opened from a run: its downloaded copy
            location = mlflow_runs.resolve_runs_uri(location)
        if not storage.is_s3(location):
            return mlflow_runs.log_local_snapshot(location, run_id=run, artifact_path=artifact_path, tags=tags)
        with tempfile.TemporaryDirectory(prefix="envsnap-mlflow-") as tmp:
            local = os.path.join(tmp, storage.parse_s3(location).key.rsplit("/", 1)[-1] or "snapshot.envsnap")
            try:
                with storage.open_stream(location) as source, open(local, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            except OSError as exc:
                raise storage.translate(exc, location, "downloading the snapshot") from None
            return mlflow_runs.log_local_snapshot(local, run_id=run, artifact_path=artifact_path, tags=tags)
    finally:
        if opened is not None:
            opened.close()
