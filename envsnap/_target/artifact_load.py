"""Describe pickled models (joblib / pickle) from inside the TARGET interpreter; prints JSON on stdout.

Run as :func:`main` with ``PATH...`` in the target by :mod:`envsnap.capture.artifacts` (see
:mod:`envsnap._target`), never in envsnap's process: unpickling executes code and imports the user's heavy
libraries (scikit-learn, numpy), which must happen in the job's own interpreter, with the job's own
versions. Stdlib only at import time; runs on the target's Python (3.8+), so no newer syntax or APIs.

Output: ``{"loaded_by": {...}, "results": {PATH: {"metadata": {...}} | {"error": str, "missing_module": str|null}}}``.
Only plain JSON leaves this process: a snapshot never holds a pickle.
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
import sys
import warnings
from typing import Any

#: Fitted attributes worth comparing between training and serving (scalers, imputers, encoders, models).
FITTED_ATTRIBUTES = (
    "mean_", "scale_", "var_", "center_", "data_min_", "data_max_", "data_range_", "min_", "statistics_",
    "n_samples_seen_", "classes_", "categories_", "coef_", "intercept_", "n_iter_",
)  # fmt: skip
MAX_ELEMENTS = 10_000  # an attribute with more values is named in "omitted", not stored
MAX_DEPTH = 6
MAX_KEYS = 200
_SKIP = object()  # a parameter that is not a JSON scalar (an estimator, a callable, an array)


def _count(value: Any) -> int:
    if isinstance(value, list):
        return sum(_count(item) for item in value)
    return 1


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and Python values as JSON values; non-finite floats become null."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _scalar(value: Any) -> Any:
    """A JSON scalar for an estimator parameter, or the sentinel ``_SKIP`` for anything structured."""
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _SKIP


def _attr(obj: Any, name: str) -> Any:
    # Fitted attributes of sklearn objects may be properties that raise anything when unavailable.
    try:
        return getattr(obj, name)
    except Exception:  # noqa: BLE001 - sklearn's available_if properties raise AttributeError or worse
        return None


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__module__ + "." + cls.__qualname__


def describe(obj: Any, depth: int = 0) -> dict[str, Any]:
    """Class, parameters, feature names and fitted arrays of an estimator; steps of a pipeline."""
    node: dict[str, Any] = {"class": _class_name(obj)}
    if depth >= MAX_DEPTH:
        node["truncated"] = True
        return node
    if isinstance(obj, dict):
        keys = sorted(str(k) for k in obj)
        node["keys"] = keys[:MAX_KEYS]
        entries = {}
        for key, value in obj.items():
            if hasattr(value, "get_params"):
                entries[str(key)] = describe(value, depth + 1)
        if entries:
            node["entries"] = entries
        return node
    if not hasattr(obj, "get_params"):
        return node
    try:
        params = obj.get_params(deep=False)
    except Exception:  # noqa: BLE001 - third-party get_params may fail on a half-built object
        params = {}
    simple = {}
    for key, value in params.items():
        converted = _scalar(value)
        if converted is not _SKIP:
            simple[str(key)] = converted
    node["params"] = simple
    names = _attr(obj, "feature_names_in_")
    node["feature_names_in"] = [str(n) for n in names] if names is not None else None
    count = _attr(obj, "n_features_in_")
    node["n_features_in"] = int(count) if count is not None else None
    fitted, omitted = {}, []
    for name in FITTED_ATTRIBUTES:
        value = _attr(obj, name)
        if value is None:
            continue
        converted = _plain(value)
        if _count(converted) > MAX_ELEMENTS:
            omitted.append(name)
        else:
            fitted[name] = converted
    node["fitted"] = fitted
    if omitted:
        node["omitted"] = omitted
    steps = _attr(obj, "steps")
    if isinstance(steps, list):
        node["steps"] = [_child(step, depth) for step in steps if isinstance(step, tuple) and len(step) >= 2]
    transformers = _attr(obj, "transformers_")
    if transformers is None:
        transformers = _attr(obj, "transformers")
    if isinstance(transformers, list):
        node["transformers"] = [_child(item, depth) for item in transformers if isinstance(item, tuple)]
    return node


def _child(item: tuple[Any, ...], depth: int) -> dict[str, Any]:
    """A pipeline step ``(name, estimator)`` or a column transformer entry ``(name, estimator, columns)``."""
    child: dict[str, Any] = {"name": str(item[0])}
    estimator = item[1]
    if estimator is None or isinstance(estimator, str):  # "passthrough" / "drop"
        child["estimator"] = None
        child["special"] = estimator
    else:
        child["estimator"] = describe(estimator, depth + 1)
    if len(item) >= 3:
        columns = _plain(item[2])
        child["columns"] = columns if isinstance(columns, list) and len(columns) <= MAX_ELEMENTS else str(item[2])
    return child


def _load(path: str) -> Any:
    try:
        joblib = importlib.import_module("joblib")
    except ImportError:
        joblib = None
    if joblib is not None:
        return joblib.load(path)
    with open(path, "rb") as fh:
        if fh.read(1) != b"\x80":
            raise RuntimeError("this file is compressed by joblib, and joblib is not installed in this interpreter")
        fh.seek(0)
        return pickle.load(fh)  # noqa: S301 - the user's own artifact, named by them with --artifact


def _version(module: str) -> Any:
    loaded = sys.modules.get(module)
    return getattr(loaded, "__version__", None) if loaded is not None else None


def describe_file(path: str) -> dict[str, Any]:
    """Load one artifact and describe it, with the scikit-learn version it was pickled with."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = _load(path)
    pickled_with = None
    messages = []
    for item in caught:
        original = getattr(item.message, "original_sklearn_version", None)
        if original is not None and pickled_with is None:
            pickled_with = str(original)
        messages.append(f"{item.category.__name__}: {item.message}"[:500])
    described = describe(obj)
    sklearn_version = _version("sklearn")
    if pickled_with is None and sklearn_version is not None and _holds_sklearn(described):
        # sklearn warns (InconsistentVersionWarning) whenever the versions differ: silence means equal.
        pickled_with = str(sklearn_version)
    return {
        "sklearn_version_pickled": pickled_with,
        "warnings": sorted(set(messages))[:20],
        "object": described,
    }


def _holds_sklearn(node: Any) -> bool:
    if isinstance(node, dict):
        if str(node.get("class", "")).startswith("sklearn."):
            return True
        return any(_holds_sklearn(value) for value in node.values())
    if isinstance(node, list):
        return any(_holds_sklearn(value) for value in node)
    return False


def main(paths: list[str]) -> int:
    """Describe each path; print one JSON document on the real stdout."""
    real_stdout = sys.stdout
    # Code run by unpickling may print; it must not corrupt the JSON answer.
    sys.stdout = sys.stderr
    results: dict[str, Any] = {}
    for path in paths:
        try:
            results[path] = {"metadata": describe_file(path)}
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - one bad file must not hide the others
            missing = exc.name if isinstance(exc, ImportError) else None
            results[path] = {"error": (type(exc).__name__ + ": " + str(exc))[:2000], "missing_module": missing}
    loaded_by = {
        "python": sys.executable,
        "python_version": ".".join(str(part) for part in sys.version_info[:3]),
        "joblib": _version("joblib"),
        "sklearn": _version("sklearn"),
    }
    real_stdout.write(json.dumps({"loaded_by": loaded_by, "results": results}, allow_nan=False))
    real_stdout.flush()
    return 0
