"""A fitted scikit-learn model, step by step: the plan (one stage per step) and the step function itself.

Shipped (stdlib only at import time, Python 3.8): it runs in the JOB's interpreter, where the model is
unpickled and applied with the job's own scikit-learn, never in envsnap's process. scikit-learn, joblib
and pandas are whatever the model itself imports; this module only duck-types them.

* :func:`main` (``MODEL METHOD INPUT``) loads the model (a joblib/pickle file, or ``module:attr``) and
  answers one JSON document: ``{"model": {...}, "stages": [...], "error": null | str}``. Each stage is
  ``{"name", "call", "params": {"model", "path", "method"}, "inputs": [...]}``; :func:`stages_of` builds
  the list, also for a live object in envsnap's process (``envsnap.integrations.sklearn.record``).
* :func:`step` is every stage's function: it loads the model once per process, finds the sub-estimator
  at ``path``, selects a ``ColumnTransformer`` branch's columns when the stage takes the transformer's
  input, applies ``transform`` (or the final ``method``) and tells the runner the estimator's fitted
  state and the output's column names (:mod:`.annotate`).

How a model becomes stages: every leaf step of a ``Pipeline`` is one stage; nested pipelines are
flattened with dotted names (``outer.inner``); a ``ColumnTransformer`` (or ``FeatureUnion``) named
``pre`` gives one stage per step of each branch (``pre.num.impute``, ``pre.num.scale``, ``pre.cat``),
each branch starting from the transformer's input, then the stage ``pre``: the transformer's whole
output, computed by the transformer itself, so that it is exactly what the next step received. The
final step applies the method (``predict``, ``predict_proba``, ``transform``). A lone estimator is one
stage, named after its class (``logisticregression``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

from .. import artifact_load
from . import annotate

#: What the final step may apply; every other step applies ``transform``.
METHODS = ("predict", "predict_proba", "transform")
#: The function every step stage calls, as the runner imports it in the job's interpreter.
STEP_CALL = "_envsnap_target.runner.sklearn_steps:step"
#: The ``model`` parameter of stages built from a live object (``record``): not loadable by :func:`step`.
IN_MEMORY = "<in memory>"

_MODULE_ATTR = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SKIPPED = ("drop", "passthrough")
# model string -> (file mtime or None, the loaded object): one load per process, reloaded if the file changes.
_MODELS: Dict[str, Tuple[Optional[float], Any]] = {}


class ModelError(Exception):
    """The model cannot be planned or applied: not loadable, not a fitted estimator, no such method."""


def is_module_attr(model: str) -> bool:
    """``pkg.module:attr`` (imported) rather than a file path (unpickled)."""
    return bool(_MODULE_ATTR.match(model)) and not os.path.exists(model)


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__module__ + "." + cls.__qualname__


def load(model: str) -> Any:
    """The object ``model`` names: a joblib/pickle file (loaded like ``--artifact``) or ``module:attr``."""
    if model.startswith(IN_MEMORY):
        raise ModelError(
            "this stage applied a live model passed to envsnap.integrations.sklearn.record; save it with "
            "joblib.dump and run `envsnap run --sklearn FILE` to record a model that can be replayed"
        )
    if is_module_attr(model):
        module_name, _, qualname = model.partition(":")
        cached = _MODELS.get(model)
        if cached is not None:
            return cached[1]
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        _MODELS[model] = (None, obj)
        return obj
    mtime = os.stat(model).st_mtime
    cached = _MODELS.get(model)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    with warnings.catch_warnings():
        # InconsistentVersionWarning and friends: artifact capture records them; a step is not the place.
        warnings.simplefilter("ignore")
        obj = artifact_load._load(model)
    _MODELS[model] = (mtime, obj)
    return obj


def _is_pipeline(obj: Any) -> bool:
    return isinstance(getattr(obj, "steps", None), list) and hasattr(obj, "named_steps")


def _branches(obj: Any) -> Optional[List[Tuple[str, Any, Any]]]:
    """``(name, estimator, columns)`` of a fitted ColumnTransformer (``columns`` None for a FeatureUnion)."""
    fitted = getattr(obj, "transformers_", None)
    if isinstance(fitted, list) and hasattr(obj, "get_params"):
        return [(str(item[0]), item[1], item[2]) for item in fitted if isinstance(item, tuple) and len(item) >= 3]
    union = getattr(obj, "transformer_list", None)
    if isinstance(union, list) and hasattr(obj, "get_params"):
        return [(str(item[0]), item[1], None) for item in union if isinstance(item, tuple) and len(item) >= 2]
    return None


def _skipped(estimator: Any) -> bool:
    return estimator is None or (isinstance(estimator, str) and estimator in _SKIPPED)


def _empty(columns: Any) -> bool:
    """A column selection that selects nothing (the transformer skips that branch): ``[]``, an all-False mask."""
    if hasattr(columns, "tolist") and not isinstance(columns, str):
        columns = columns.tolist()
    if isinstance(columns, (list, tuple)):
        return not columns or all(item is False for item in columns)
    return False


def _part(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "step"


def _is_estimator(obj: Any) -> bool:
    return hasattr(obj, "get_params") and (
        hasattr(obj, "transform") or hasattr(obj, "predict") or hasattr(obj, "fit_transform") or _is_pipeline(obj)
    )


def stages_of(model_obj: Any, *, model: str, method: str, input_name: str) -> List[Dict[str, Any]]:
    """The stage entries of a fitted model (see the module docstring); ``model`` is recorded in ``params``.

    Raises :class:`ModelError` when ``model_obj`` is not a fitted scikit-learn estimator or its final
    step has no ``method``.
    """
    if method not in METHODS:
        raise ModelError("method {!r} is not one of {}".format(method, ", ".join(METHODS)))
    if not _is_estimator(model_obj):
        raise ModelError("holds a {}, not a fitted scikit-learn Pipeline or estimator".format(_class_name(model_obj)))
    out: List[Dict[str, Any]] = []
    if _is_pipeline(model_obj):
        _walk_pipeline(model_obj, [], [], input_name, method, model, out)
    else:
        _walk(model_obj, [], [_part(type(model_obj).__name__.lower())], input_name, method, model, out)
    if not out:
        raise ModelError("is a Pipeline whose steps are all 'passthrough': there is nothing to apply")
    _check_fitted(model_obj)
    names: Dict[str, int] = {}
    for entry in out:  # two sanitised names may collide (``a b`` and ``a_b``): number the later ones
        base = entry["name"]
        names[base] = names.get(base, 0) + 1
        if names[base] > 1:
            entry["name"] = "{}-{}".format(base, names[base])
    return out


def _check_fitted(model_obj: Any) -> None:
    """Refuse an unfitted model, judged by its final estimator (a Pipeline answers for itself only in
    recent scikit-learn)."""
    final = model_obj
    while _is_pipeline(final):
        live = [item[1] for item in final.steps if not _skipped(item[1])]
        final = live[-1]
    try:
        validation = importlib.import_module("sklearn.utils.validation")
        exceptions = importlib.import_module("sklearn.exceptions")
    except ImportError:
        return
    try:
        validation.check_is_fitted(final)
    except exceptions.NotFittedError as exc:
        raise ModelError("holds a {} that is not fitted ({})".format(_class_name(model_obj), exc)) from exc
    except (TypeError, ValueError):  # not something check_is_fitted understands: its methods will tell
        return


def _walk_pipeline(
    pipe: Any, path: List[str], names: List[str], source: str, method: Optional[str], model: str, out: List[Any]
) -> str:
    live = [i for i, item in enumerate(pipe.steps) if not _skipped(item[1])]
    current = source
    for i in live:
        step_name, estimator = str(pipe.steps[i][0]), pipe.steps[i][1]
        final = method if i == live[-1] else None
        current = _walk(estimator, [*path, step_name], [*names, _part(step_name)], current, final, model, out)
    return current


def _walk(
    obj: Any, path: List[str], names: List[str], source: str, method: Optional[str], model: str, out: List[Any]
) -> str:
    """Append the stages of ``obj`` (input: the stage or input ``source``); return the stage holding its output."""
    if _is_pipeline(obj):
        return _walk_pipeline(obj, path, names, source, method, model, out)
    branches = _branches(obj)
    if branches is not None:
        for branch, estimator, columns in branches:
            if _skipped(estimator) or _empty(columns):
                continue
            _walk(estimator, [*path, branch], [*names, _part(branch)], source, None, model, out)
    applied = method or "transform"
    if not hasattr(obj, applied):
        raise ModelError(
            "step {!r} ({}) has no {}(); --method chooses what the final step applies ({})".format(
                ".".join(path) or type(obj).__name__, _class_name(obj), applied, ", ".join(METHODS)
            )
        )
    name = ".".join(names)
    out.append(
        {
            "name": name,
            "call": STEP_CALL,
            "params": {"model": model, "path": list(path), "method": method},
            "inputs": [source],
            "class": _class_name(obj),
        }
    )
    return name


def _resolve(root: Any, path: List[str]) -> Tuple[Any, List[Tuple[Any, str]], Any]:
    """The estimator at ``path``, the column selections ``[(column transformer, branch)]`` its input needs,
    and the pipeline up to and including it when it is a pipeline's step (else None).

    A branch's first step takes the transformer's input, so that branch's columns are selected first; a
    later step of a branch pipeline takes the previous step's output, already selected.
    """
    obj = root
    selections: List[Tuple[Any, str]] = []
    prefix = None
    for depth, name in enumerate(path):
        if _is_pipeline(obj):
            live = [str(item[0]) for item in obj.steps if not _skipped(item[1])]
            if name not in live:
                raise ModelError("the model has no step {!r}".format(".".join(path[: depth + 1])))
            if name != live[0]:
                selections = []
            position = [str(item[0]) for item in obj.steps].index(name)
            prefix = obj[: position + 1] if depth == len(path) - 1 else None
            obj = obj.named_steps[name]
            continue
        branches = _branches(obj)
        found = [item for item in branches or [] if item[0] == name]
        if not found:
            raise ModelError("the model has no step {!r}".format(".".join(path[: depth + 1])))
        if found[0][2] is not None:
            selections.append((obj, name))
        obj = found[0][1]
    return obj, selections, prefix


def _column_spec(transformer: Any, branch: str, X: Any) -> Any:
    for name, _estimator, columns in _branches(transformer) or []:
        if name == branch:
            return columns(X) if callable(columns) else columns
    raise ModelError("the column transformer has no branch {!r}".format(branch))


def _names_to_positions(names: List[str], transformer: Any) -> List[int]:
    known = getattr(transformer, "feature_names_in_", None)
    if known is None:
        raise ModelError("columns are selected by name but the input has no column names (fit on a DataFrame?)")
    order = {str(n): i for i, n in enumerate(known)}
    missing = [n for n in names if n not in order]
    if missing:
        raise ModelError("the input has no column {!r}".format(missing[0]))
    return [order[n] for n in names]


def select_columns(X: Any, transformer: Any, branch: str) -> Any:
    """The part of ``X`` that ``transformer`` hands its branch ``branch`` (names, indices, slices, masks)."""
    spec = _column_spec(transformer, branch, X)
    if hasattr(spec, "tolist") and not isinstance(spec, str):
        spec = spec.tolist()
    frame = hasattr(X, "iloc") and hasattr(X, "columns")
    by_name = isinstance(spec, str) or (isinstance(spec, list) and bool(spec) and isinstance(spec[0], str))
    if frame and by_name:
        return X[spec]
    if frame:
        return X.iloc[:, spec]
    if by_name:
        positions = _names_to_positions([spec] if isinstance(spec, str) else list(spec), transformer)
        spec = positions[0] if isinstance(spec, str) else positions
    return X[:, spec]


def fitted_state(estimator: Any) -> Dict[str, Any]:
    """What ``artifact_load.describe`` says of ``estimator``, its children named but not described again.

    A transformer's branches and a pipeline's steps are stages of their own, with their own fitted
    state: repeating it here would name the container as a second step whose state changed.
    """
    description = artifact_load.describe(estimator)
    for key in ("steps", "transformers"):
        for child in description.get(key) or []:
            inner = child.get("estimator")
            if isinstance(inner, dict):
                child["estimator"] = {"class": inner.get("class")}
    return description


def _feature_names(estimator: Any, method: Optional[str], prefix: Any) -> Optional[List[str]]:
    """The output's column names: a pipeline step's through the pipeline up to it, so that a scaler after
    an imputer names ``age`` rather than ``x0``; ``predict_proba``'s are the classes."""
    if method in (None, "transform"):
        for source in (prefix, estimator):
            try:
                if source is not None and hasattr(source, "get_feature_names_out"):
                    return [str(n) for n in source.get_feature_names_out()]
            except Exception:  # noqa: BLE001, S112 - a step that cannot name its output: try the next way
                continue
        return None
    try:
        if method == "predict_proba" and getattr(estimator, "classes_", None) is not None:
            return [str(c) for c in estimator.classes_]
    except Exception:  # noqa: BLE001 - names are a nicety; an estimator that cannot give them gets c0..cN
        return None
    return None


def step(*values: Any, model: str, path: List[str], method: Optional[str] = None, **named: Any) -> Any:
    """Apply the step at ``path`` of ``model`` to the stage's one input (positional or named, any name).

    ``method`` None applies ``transform``; the final step's stage names its method. Records the step's
    fitted state and the output's column names for the runner (:mod:`.annotate`).
    """
    return apply(load(model), path, method, values, named)


def apply(root: Any, path: List[str], method: Optional[str], values: Any, named: Dict[str, Any]) -> Any:
    """:func:`step` on a model already loaded (``root``); ``values``/``named`` hold the one input."""
    given = list(values) + list(named.values())
    if len(given) != 1:
        raise ModelError("a scikit-learn step takes one input, got {}".format(len(given)))
    X = given[0]
    estimator, selections, prefix = _resolve(root, list(path))
    for transformer, branch in selections:
        X = select_columns(X, transformer, branch)
    result = getattr(estimator, method or "transform")(X)
    annotate.set_fitted(fitted_state(estimator))
    names = _feature_names(estimator, method, prefix)
    if names is not None and len(getattr(result, "shape", ())) == 2 and result.shape[1] == len(names):
        annotate.set_columns(names)
    return result


def _version(module: str) -> Any:
    loaded = sys.modules.get(module)
    return getattr(loaded, "__version__", None) if loaded is not None else None


def plan(model: str, method: str = "predict", input_name: str = "X") -> Dict[str, Any]:
    """Load ``model`` here and answer ``{"model": {...}, "stages": [...], "error": None}`` (or the error)."""
    answer: Dict[str, Any] = {"model": None, "stages": [], "error": None, "missing_module": None}
    try:
        if not is_module_attr(model) and not os.path.isfile(model):
            raise ModelError("no such file (give a joblib/pickle file or module:attr)")
        try:
            obj = load(model)
        except ModelError:
            raise
        except (Exception, SystemExit) as exc:
            if isinstance(exc, ImportError):
                answer["missing_module"] = exc.name
            raise ModelError("cannot be loaded: {}: {}".format(type(exc).__name__, str(exc)[:500])) from exc
        answer["stages"] = stages_of(obj, model=model, method=method, input_name=input_name)
        answer["model"] = {"class": _class_name(obj), "sklearn": _version("sklearn"), "joblib": _version("joblib")}
    except ModelError as exc:
        answer["error"] = str(exc)
        answer["stages"] = []
    return answer


def main(argv: List[str]) -> int:
    """``MODEL [METHOD [INPUT]]``: print the plan (:func:`plan`) as one JSON document on the real stdout."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # code run by unpickling may print; it must not corrupt the answer
    method = argv[1] if len(argv) > 1 else "predict"
    input_name = argv[2] if len(argv) > 2 else "X"
    real_stdout.write(json.dumps(plan(argv[0], method, input_name), allow_nan=False))
    real_stdout.flush()
    return 0
