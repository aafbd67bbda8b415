"""scikit-learn: record a fitted ``Pipeline`` step by step, one stage per step (docs/sklearn.md).

Two ways in, one plan. :mod:`envsnap._target.runner.sklearn_steps` (shipped, stdlib only) walks a fitted
model into stages: every leaf step of a ``Pipeline`` is a stage, nested pipelines and ``ColumnTransformer``
branches flattened with dotted names (``pre.num.impute``, ``pre.num.scale``, ``pre.cat.onehot``, then
``pre``, the transformer's whole output), the final step applying ``method``. Each stage records the
step's output as an intermediate and the step's fitted attributes (``mean_``, ``scale_``,
``categories_``, ``coef_``, ...) as the stage record's ``fitted``.

* :func:`run_model` (``envsnap run --sklearn MODEL``): the model is a joblib/pickle file or
  ``module:attr``. It is loaded, planned and applied only in the job's interpreter (``python``, else
  this one, always in a subprocess): envsnap's process never unpickles it.
* :func:`record`: the model is a live object in this process (the user's own), so its steps run here.

This module imports no scikit-learn: the model's own methods are all it calls.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from envsnap._target import TargetError, run_json
from envsnap._target.runner import sklearn_steps
from envsnap.errors import EnvsnapError
from envsnap.pipeline.model import Pipeline
from envsnap.pipeline.runner import RunResult, run_pipeline
from envsnap.pipeline.types import Stage

if TYPE_CHECKING:
    from typing import Unpack

    from envsnap.capture.base import CaptureArguments

__all__ = ["DEFAULT_INPUT", "METHODS", "SklearnModelError", "model_pipeline", "plan_model", "record", "run_model"]

#: What the final step may apply (``--method``); the other steps apply ``transform``.
METHODS = sklearn_steps.METHODS
#: The input's name when none is given (``record``'s ``X``).
DEFAULT_INPUT = "X"
PLAN_TIMEOUT_S = 120.0
_PLAN_ANSWER: dict[str, type | tuple[type, ...]] = {"stages": list}


class SklearnModelError(EnvsnapError, ValueError):
    """The model cannot be recorded step by step: missing, not loadable in the job's interpreter, not a
    fitted scikit-learn estimator, or its final step lacks the method. Exit status 3."""

    def __init__(self, model: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.model = model
        self.problem = problem

    def __str__(self) -> str:
        text = f"scikit-learn model {self.model}: {self.problem}"
        return f"{text}; {self.hint}" if self.hint else text


def _check_method(model: str, method: str) -> None:
    if method not in METHODS:
        raise SklearnModelError(model, f"method {method!r} is not one of {', '.join(METHODS)}")


def plan_model(
    model: str,
    *,
    python: str | os.PathLike[str] | None = None,
    method: str = "predict",
    input_name: str = DEFAULT_INPUT,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The stage entries of ``model`` (a file or ``module:attr``), planned in ``python`` (default: this one).

    The model is loaded in a subprocess of that interpreter, never here. Raises
    :class:`SklearnModelError` for a model that cannot be loaded or applied there.
    """
    from envsnap.capture.target import resolve_interpreter

    _check_method(model, method)
    where = os.fspath(cwd) if cwd is not None else os.getcwd()
    if not sklearn_steps.is_module_attr(model) and not os.path.isfile(os.path.join(where, model)):
        raise SklearnModelError(model, "no such file", hint="give a joblib/pickle file or module:attr")
    exe = resolve_interpreter(python if python is not None else sys.executable)
    try:
        answer = run_json(
            "the scikit-learn step planner",
            exe,
            "runner.sklearn_steps",
            [model, method, input_name],
            expect=_PLAN_ANSWER,
            timeout=PLAN_TIMEOUT_S,
            environ=environ,
            cwd=where,
        )
    except TargetError as exc:
        raise SklearnModelError(model, str(exc)) from exc
    if answer.get("error"):
        missing = answer.get("missing_module")
        hint = (
            f"{exe} cannot import {missing!r}: install the packages the model was pickled with there, "
            "or pass --python with the job's interpreter"
            if missing
            else None
        )
        raise SklearnModelError(model, f"{answer['error']} (in {exe})" if missing else str(answer["error"]), hint=hint)
    entries = list(answer["stages"])
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("call"), str)
            and isinstance(entry.get("inputs"), list)
            and isinstance(entry.get("params"), dict)
        ):
            raise SklearnModelError(model, f"the scikit-learn step planner in {exe} answered an unexpected plan")
    return entries


def _stages(entries: list[dict[str, Any]], func: Callable[..., Any] | None = None) -> list[Stage]:
    return [
        Stage(
            name=entry["name"],
            call=None if func is not None else entry["call"],
            func=func,
            inputs=tuple(entry["inputs"]),
            params=dict(entry["params"]),
        )
        for entry in entries
    ]


def model_pipeline(
    model: str,
    *,
    python: str | os.PathLike[str] | None = None,
    method: str = "predict",
    input_name: str = DEFAULT_INPUT,
    name: str = "sklearn",
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Pipeline:
    """A :class:`~envsnap.pipeline.Pipeline` of ``model``'s steps, each a call of the shipped step function."""
    entries = plan_model(model, python=python, method=method, input_name=input_name, cwd=cwd, environ=environ)
    return Pipeline(name, stages=_stages(entries), root=cwd, source=f"scikit-learn model {model}")


def run_model(
    model: str,
    *,
    method: str = "predict",
    name: str = "sklearn",
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
    **arguments: Unpack[CaptureArguments],
) -> RunResult:
    """Run ``model`` step by step on its one input and capture everything into one snapshot.

    ``model`` is a joblib/pickle file or ``module:attr``; ``inputs`` must name exactly one input (the
    ``X`` the model is applied to). The stages always run in a subprocess of ``python`` (default: this
    interpreter), where the model is loaded. The other keyword arguments are those of
    :func:`envsnap.pipeline.run_pipeline`.
    """
    inputs = dict(arguments.get("inputs") or {})
    if len(inputs) != 1:
        raise SklearnModelError(
            model,
            f"needs exactly one input, the X it is applied to (got {len(inputs)})",
            hint="give --input NAME=PATH once",
        )
    python = arguments.get("python") or sys.executable
    cwd = arguments.get("cwd")
    pipeline = model_pipeline(model, python=python, method=method, input_name=next(iter(inputs)), name=name, cwd=cwd)
    arguments["python"] = python
    return run_pipeline(pipeline, output=output, force=force, on_stage=on_stage, **arguments)


def record(
    pipeline: Any,
    X: Any,
    *,
    output: str | os.PathLike[str] | None = None,
    method: str = "predict",
    name: str = "sklearn",
    input_name: str = DEFAULT_INPUT,
    force: bool = False,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
    **arguments: Unpack[CaptureArguments],
) -> RunResult:
    """Apply a fitted ``pipeline`` (a live object) to ``X`` step by step in this process; one snapshot.

    One stage per step (see the module docstring); each records the step's output and fitted state.
    ``method`` is what the final step applies (``predict``, ``predict_proba``, ``transform``). The other
    keyword arguments are those of :func:`envsnap.pipeline.run_pipeline`, except ``inputs`` (``X`` is the
    one input, named ``input_name``) and ``python`` (the object lives here: use :func:`run_model` on a
    saved model to run it in another interpreter).
    """
    label = f"{sklearn_steps.IN_MEMORY} {type(pipeline).__module__}.{type(pipeline).__qualname__}"
    _check_method(label, method)
    if arguments.get("python") is not None or arguments.get("inputs") is not None:
        raise SklearnModelError(
            label,
            "record() applies a live object in this process with X as its one input",
            hint="drop python= and inputs=, or save the model (joblib.dump) and use run_model or envsnap run --sklearn",
        )
    try:
        entries = sklearn_steps.stages_of(pipeline, model=label, method=method, input_name=input_name)
    except sklearn_steps.ModelError as exc:
        raise SklearnModelError(label, str(exc)) from exc
    stages = _stages(entries, _LiveStep(pipeline))
    arguments["inputs"] = {input_name: X}
    return run_pipeline(Pipeline(name, stages=stages), output=output, force=force, on_stage=on_stage, **arguments)


class _LiveStep:
    """The shipped step function applied to a live object instead of a loaded file.

    Recorded as the function a saved model's stages call, which it is (on the object in hand). A callable
    object rather than a closure: it has no ``__code__``, so envsnap's own file is never taken for the
    project's code that a stage ran.
    """

    def __init__(self, model_obj: Any) -> None:
        self._model = model_obj
        module, _, name = sklearn_steps.STEP_CALL.partition(":")
        self.__module__ = module
        self.__qualname__ = name
        self.__name__ = name

    def __call__(self, *values: Any, model: str, path: list[str], method: str | None = None, **named: Any) -> Any:
        del model  # the label recorded in params; the object is the one bound here
        return sklearn_steps.apply(self._model, path, method, values, named)
