"""What code running inside a stage tells the runner about the value it returns (stdlib only, shipped).

The scikit-learn step functions (:mod:`.sklearn_steps`) apply one fitted estimator per stage: the stage's
value is the transform output, and the estimator's fitted state (``mean_``, ``scale_``, ...) and the output's
column names (``get_feature_names_out``) travel beside it. They call :func:`set_fitted` and
:func:`set_columns` during the stage; the runner calls :func:`take` when the stage ends, which also clears
them, so nothing leaks into the next stage.
"""

from __future__ import annotations

from typing import Any

_NOTES: dict[str, Any] = {}


def set_fitted(description: dict[str, Any]) -> None:
    """Record the fitted state of the estimator this stage applied (``artifact_load.describe`` output)."""
    _NOTES["fitted"] = description


def set_columns(names: list[str]) -> None:
    """Name the columns of the 2-D array this stage returns."""
    _NOTES["columns"] = [str(n) for n in names]


def take() -> dict[str, Any]:
    """``{"fitted": ..., "columns": ...}`` set during the stage that just ended (None when unset); clears them."""
    notes = {"fitted": _NOTES.get("fitted"), "columns": _NOTES.get("columns")}
    _NOTES.clear()
    return notes
