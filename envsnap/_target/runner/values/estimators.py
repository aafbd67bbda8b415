"""Fitted estimators (anything with a ``fit`` method and fitted ``*_`` attributes: scikit-learn, XGBoost's
and LightGBM's sklearn API, your own): recorded as an artifact record — class, parameters, feature names and
fitted attributes, as ``capture --artifact`` records a model file — and, for comparing, as ONE row with a
column per fitted attribute (``mean_``, ``scale_``, ...) and per parameter (``params.C``). The estimator
itself flows on to the next stage; a recorded one cannot be rebuilt (no pickle is ever stored)."""

from __future__ import annotations

import json
from typing import Any

from ... import artifact_load
from . import metrics

KIND = "estimator"


def _fitted_names(value: Any) -> list[str]:
    try:
        names = vars(value)
    except TypeError:
        return []
    return [n for n in names if n.endswith("_") and not n.startswith("_") and not n.endswith("__")]


def matches(value: Any) -> bool:
    return callable(getattr(value, "fit", None)) and bool(_fitted_names(value))


def _simple(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "tolist"):
        return getattr(dtype, "kind", "O") != "O" or all(isinstance(v, str) for v in value.ravel().tolist())
    if isinstance(value, (list, tuple)):
        return all(_simple(v) for v in value)
    return False


def description(value: Any) -> dict[str, Any]:
    """``artifact_load.describe`` plus every other simple fitted ``*_`` attribute the object has."""
    node = artifact_load.describe(value)
    fitted = node.setdefault("fitted", {})
    omitted = node.setdefault("omitted", [])
    for name in sorted(_fitted_names(value)):
        if name in fitted or name in omitted or name in ("feature_names_in_", "n_features_in_"):
            continue
        item = getattr(value, name, None)
        if not _simple(item):
            continue
        converted = artifact_load._plain(item)
        if artifact_load._count(converted) > artifact_load.MAX_ELEMENTS:
            omitted.append(name)
        else:
            fitted[name] = converted
    if not omitted:
        node.pop("omitted")
    return node


def describe(value: Any, columns: list[str] | None) -> dict[str, Any]:
    return {"rows": 1, "description": description(value)}


def row_of(node: dict[str, Any]) -> dict[str, Any]:
    """The comparable row of a description: class, ``params.NAME``, feature names and fitted attributes."""
    row: dict[str, Any] = {"class": node.get("class")}
    for key, item in sorted((node.get("params") or {}).items()):
        row[f"params.{key}"] = json.dumps(item)
    if node.get("feature_names_in") is not None:
        row["feature_names_in_"] = json.dumps(node["feature_names_in"])
    for key, item in sorted((node.get("fitted") or {}).items()):
        row[key] = item if isinstance(item, (int, float)) and not isinstance(item, bool) else json.dumps(item)
    return row


def table_of(node: dict[str, Any]) -> Any:
    """The one-row Arrow table of a description."""
    return metrics.one_row(row_of(node))


def to_arrow(value: Any, columns: list[str] | None) -> Any:
    return table_of(description(value))


def write(value: Any, stem: str, columns: list[str] | None) -> tuple[str, str]:
    return metrics.write_json(stem, description(value))


def from_file(path: str, form: str, facts: dict[str, Any]) -> Any:
    return table_of(metrics.load_json(path))


def from_arrow(table: Any, facts: dict[str, Any]) -> Any:
    raise TypeError("a fitted estimator cannot be rebuilt from its record (envsnap never stores a pickle)")


def accept(value: Any) -> Any:
    raise TypeError("a stage cannot ask for its input as an estimator")
