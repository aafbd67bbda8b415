"""``--mlflow`` / ``--mlflow-run RUN_ID`` of ``envsnap capture`` and ``envsnap run`` (docs/mlflow.md).

After the snapshot is written it is logged to ``--mlflow-run``, else to ``MLFLOW_RUN_ID`` (the run a job
launched with that variable resumes), else to a new run started for it in ``MLFLOW_EXPERIMENT_ID`` /
``MLFLOW_EXPERIMENT_NAME`` (mlflow's own variables; the default experiment otherwise), named after the
snapshot and ended at once (FAILED when the job failed). mlflow is imported only then: a capture of the
running interpreter never sees it loaded.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import typer

from envsnap.errors import StorageError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["MLFLOW", "MLFLOW_RUN", "log_to_mlflow"]

MLFLOW = typer.Option(
    False,
    "--mlflow",
    help="Log the snapshot to an MLflow run: --mlflow-run, else MLFLOW_RUN_ID, else a new run "
    "(MLFLOW_TRACKING_URI; docs/mlflow.md).",
)
MLFLOW_RUN = typer.Option(
    None, "--mlflow-run", metavar="RUN_ID", help="Log the snapshot to this MLflow run (implies --mlflow)."
)


def log_to_mlflow(
    enabled: bool, run_id: str | None, snapshot: Snapshot | str | os.PathLike[str] | None, *, failed: bool = False
) -> str | None:
    """Log ``snapshot`` when ``--mlflow``/``--mlflow-run`` asked for it; the ``runs:/`` URI, or None when not
    asked (or no snapshot was written). A failure is a :class:`StorageError` saying the snapshot was written."""
    if (not enabled and not run_id) or snapshot is None:
        return None
    from envsnap.core import mlflow_runs
    from envsnap.integrations.mlflow import log_snapshot

    where = snapshot.path if not isinstance(snapshot, (str, os.PathLike)) else os.fspath(snapshot)
    run = run_id or os.environ.get("MLFLOW_RUN_ID") or None
    started = False
    try:
        if run is None:
            name = os.path.basename(os.path.normpath(os.fspath(where))).removesuffix(".envsnap")
            run = mlflow_runs.start_run(f"envsnap {name}")
            started = True
        uri = log_snapshot(snapshot, run_id=run)
        if started:
            mlflow_runs.end_run(run, failed=failed)
    except StorageError as exc:
        if started and run is not None:
            with contextlib.suppress(StorageError):
                mlflow_runs.end_run(run, failed=True)
        exc.hint = (
            f"{exc.hint}; the snapshot was written: {where}" if exc.hint else f"the snapshot was written: {where}"
        )
        raise
    return uri
