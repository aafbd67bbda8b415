"""The pipeline's types: :class:`Stage`, :class:`PipelineSpec` (stages under a name), :class:`PipelineError`.

Every module of :mod:`envsnap.pipeline` reads these; :class:`envsnap.pipeline.model.Pipeline`, what users
build, is a :class:`PipelineSpec` that can also run itself.

A stage is either a ``call`` (``"pkg.module:function"``, run in-process: a table in, a table out) or a
``run`` (a command line, run as a subprocess with parquet in and out), or, for pipelines declared in
Python, a function registered with the :meth:`PipelineSpec.stage` decorator. Names are restricted to
what can safely become a member name (``pipeline/stages/NN-NAME.parquet``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from envsnap.errors import EnvsnapError

__all__ = ["TABLE_KINDS", "PipelineError", "PipelineSpec", "Stage", "callable_path"]

F = TypeVar("F", bound=Callable[..., Any])

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Stage names may hold dots (``pre.num.scale``: the flattened steps of a scikit-learn Pipeline).
STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?=[A-Za-z0-9_-])){0,127}$")
CALL_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
#: What a stage may ask to receive: ``None`` keeps the kind the previous stage returned.
TABLE_KINDS = ("pandas", "arrow", "polars", "numpy")


class PipelineError(EnvsnapError, ValueError):
    """A pipeline definition is invalid (bad stage, unknown input, unreadable config file).

    ``source`` names where the definition came from (a config file, or ``Pipeline 'name'``) and ``key``
    the offending key, so that the message points at the line to fix. Exit status 2: nothing ran.
    """

    exit_code = 2

    def __init__(self, source: str, problem: str, *, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.source = source
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        where = f"{self.source}: {self.key}: " if self.key else f"{self.source}: "
        return where + (f"{self.problem}; {self.hint}" if self.hint else self.problem)


@dataclass(frozen=True)
class Stage:
    """One stage. Exactly one of ``call``, ``run`` or ``func`` is set.

    ``inputs`` names what the stage receives as keyword arguments: pipeline inputs or earlier stages
    (``-`` in a name becomes ``_`` in the keyword). Without it the stage gets one positional table: the
    previous stage's output, or for the first stage the only pipeline input. ``accepts`` converts what
    the stage receives to ``"pandas"`` or ``"arrow"``; by default a stage gets the kind the previous
    stage returned (the first stage: a pandas DataFrame for an in-memory DataFrame input, else Arrow).
    """

    name: str
    call: str | None = None
    run: str | None = None
    inputs: tuple[str, ...] | None = None
    accepts: str | None = None
    func: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    params: Mapping[str, Any] | None = None
    columns: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        """``"call"`` for in-process stages (``call`` or a decorated function), ``"run"`` for commands."""
        return "run" if self.run is not None else "call"

    @property
    def target(self) -> str:
        """``pkg.mod:function`` of a call stage (also of a decorated function), the command of a run stage."""
        if self.run is not None:
            return self.run
        if self.call is not None:
            return self.call
        return callable_path(self.func)

    def validate(self, source: str, key: str) -> None:
        """Raise :class:`PipelineError` naming ``source`` and ``key`` when the stage is malformed."""
        if not STAGE_NAME_RE.match(self.name):
            raise PipelineError(
                source,
                f"stage name {self.name!r} must be 1-128 letters, digits, '-', '_' or inner '.' (it names the "
                "intermediate)",
                key=key,
            )
        given = [k for k, v in (("call", self.call), ("run", self.run), ("function", self.func)) if v is not None]
        if len(given) != 1:
            raise PipelineError(
                source,
                f"stage {self.name!r} needs exactly one of 'call' or 'run' (got {', '.join(given) or 'neither'})",
                key=key,
            )
        if self.call is not None and not CALL_RE.match(self.call):
            raise PipelineError(
                source, f"stage {self.name!r}: call {self.call!r} is not 'package.module:function'", key=f"{key}.call"
            )
        if self.run is not None and ("{output}" not in self.run or not self.run.strip()):
            raise PipelineError(
                source,
                f"stage {self.name!r}: run {self.run!r} must contain {{output}} (the parquet file it writes)",
                key=f"{key}.run",
            )
        if self.accepts is not None and self.accepts not in TABLE_KINDS:
            raise PipelineError(
                source,
                f"stage {self.name!r}: accepts must be one of {', '.join(TABLE_KINDS)}, not {self.accepts!r}",
                key=f"{key}.accepts",
            )
        for name in self.inputs or ():
            if not STAGE_NAME_RE.match(name):
                raise PipelineError(source, f"stage {self.name!r}: bad input name {name!r}", key=f"{key}.inputs")
        if self.params is not None:
            if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
                raise PipelineError(
                    source, f"stage {self.name!r}: params must be a table of name = value", key=f"{key}.params"
                )
            for param, value in self.params.items():
                if not param.isidentifier():
                    raise PipelineError(
                        source, f"stage {self.name!r}: param {param!r} is not a Python name", key=f"{key}.params"
                    )
                problem = _not_json(value)
                if problem:
                    raise PipelineError(
                        source,
                        f"stage {self.name!r}: param {param!r} {problem}",
                        key=f"{key}.params.{param}",
                        hint="params are recorded and diffed: use numbers, strings, booleans, lists and tables",
                    )
        if self.columns is not None and not all(isinstance(c, str) for c in self.columns):
            raise PipelineError(source, f"stage {self.name!r}: columns must be a list of names", key=f"{key}.columns")

    def to_dict(self) -> dict[str, Any]:
        """The stage as recorded in ``pipeline/pipeline.json``."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.run is not None:
            out["run"] = self.run
        else:
            out["call"] = self.target
        out["inputs"] = list(self.inputs) if self.inputs is not None else None
        out["accepts"] = self.accepts
        if self.params is not None:  # minor 4; left out when unset, as older snapshots have it
            out["params"] = dict(self.params)
        if self.columns is not None:
            out["columns"] = list(self.columns)
        return out


def _not_json(value: Any) -> str | None:
    """Why ``value`` is not a plain JSON value (None when it is)."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value}, which JSON cannot hold"
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_not_json, value) if p), None)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "has a table with a key that is not a string"
        return next((p for p in map(_not_json, value.values()) if p), None)
    return f"is a {type(value).__module__}.{type(value).__qualname__}, not a JSON value"


def callable_path(func: Callable[..., Any] | None) -> str:
    """``module:qualname`` of a function (``<locals>`` stays in: such a function cannot be imported)."""
    if func is None:
        return ""
    module = getattr(func, "__module__", None) or "<unknown>"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}:{qualname}"


class PipelineSpec:
    """An ordered list of stages under a name, with default inputs (name -> path or in-memory table).

    Inputs read from files reach the first stage as pandas DataFrames (``accepts="arrow"``: as pyarrow
    Tables); in-memory inputs keep their kind; after that each stage gets what the previous one returned.
    Build an :class:`envsnap.pipeline.Pipeline` (this, plus :meth:`~envsnap.pipeline.Pipeline.run`).
    """

    def __init__(
        self,
        name: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        stages: Iterable[Stage] = (),
        pythonpath: Iterable[str | os.PathLike[str]] = (),
        root: str | os.PathLike[str] | None = None,
        accepts: str = "pandas",
        source: str | None = None,
        key_prefix: str = "",
    ) -> None:
        #: Where the definition came from and the key path of the pipeline table there (error messages).
        self.source = source or f"pipeline {name!r}"
        self.key_prefix = key_prefix
        if not NAME_RE.match(name):
            raise PipelineError(self.source, f"pipeline name {name!r} must be 1-64 letters, digits, '-' or '_'")
        self.name = name
        self.inputs: dict[str, Any] = dict(inputs or {})
        for input_name in self.inputs:
            if not NAME_RE.match(input_name):
                raise PipelineError(self.source, f"input name {input_name!r} must be letters, digits, '-' or '_'")
        #: Directories put in front of ``sys.path`` while the stages run (the project's own code).
        self.pythonpath: list[str] = [os.fspath(p) for p in pythonpath]
        if accepts not in TABLE_KINDS:
            raise PipelineError(
                self.source,
                f"accepts must be one of {', '.join(TABLE_KINDS)}, not {accepts!r}",
                key=f"{key_prefix}accepts",
            )
        #: The table kind that inputs read from files reach the stages as (in-memory inputs keep theirs).
        self.accepts = accepts
        #: Where ``run`` commands run (the config file's directory); None: the caller's working directory.
        self.root: str | None = os.fspath(root) if root is not None else None
        self.stages: list[Stage] = []
        for stage in stages:
            self.add(stage)

    def add(self, stage: Stage) -> Stage:
        """Append ``stage``; raise :class:`PipelineError` if it is malformed or its name is taken."""
        key = f"{self.key_prefix}stages[{len(self.stages)}]"
        stage.validate(self.source, key)
        if any(s.name == stage.name for s in self.stages):
            raise PipelineError(self.source, f"two stages are named {stage.name!r}", key=key)
        self.stages.append(stage)
        return stage

    @overload
    def stage(self, func: F, /) -> F: ...

    @overload
    def stage(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        inputs: Iterable[str] | None = None,
        accepts: str | None = None,
        params: Mapping[str, Any] | None = None,
        columns: Iterable[str] | None = None,
    ) -> Callable[[F], F]: ...

    def stage(
        self,
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        inputs: Iterable[str] | None = None,
        accepts: str | None = None,
        params: Mapping[str, Any] | None = None,
        columns: Iterable[str] | None = None,
    ) -> F | Callable[[F], F]:
        """Decorator: register a function as the next stage (``@pipeline.stage()`` or ``@pipeline.stage``).

        The function is returned unchanged, so it stays callable and testable on its own.
        """

        def register(fn: F) -> F:
            self.add(
                Stage(
                    name=name or fn.__name__.lstrip("_") or "stage",
                    inputs=tuple(inputs) if inputs is not None else None,
                    accepts=accepts,
                    func=fn,
                    params=dict(params) if params is not None else None,
                    columns=tuple(columns) if columns is not None else None,
                )
            )
            return fn

        if func is not None:
            return register(func)
        return register

    def check_inputs(self, names: Iterable[str]) -> None:
        """Raise :class:`PipelineError` when a stage cannot tell what it receives from ``names``."""
        available = list(names)
        if not self.stages:
            raise PipelineError(self.source, f"pipeline {self.name!r} has no stages", hint="add [[pipeline.stages]]")
        seen = set(available)
        for index, stage in enumerate(self.stages):
            if stage.inputs is None and index == 0 and len(available) > 1:
                raise PipelineError(
                    self.source,
                    f"the first stage {stage.name!r} must say which inputs it takes: the pipeline has "
                    f"{len(available)} ({', '.join(sorted(available))})",
                    key=f"{self.key_prefix}stages[{index}].inputs",
                    hint='declare inputs = ["a", "b"]; they are passed as keyword arguments',
                )
            for wanted in stage.inputs or ():
                if wanted not in seen and wanted.rpartition(".")[0] not in seen:
                    raise PipelineError(
                        self.source,
                        f"stage {stage.name!r} takes {wanted!r}, which is neither an input nor an earlier stage "
                        f"(known: {', '.join(sorted(seen))})",
                        key=f"{self.key_prefix}stages[{index}].inputs",
                    )
            seen.add(stage.name)

    def to_dict(self) -> dict[str, Any]:
        """Name and stage definitions in order, as recorded in ``pipeline/pipeline.json``."""
        return {"name": self.name, "accepts": self.accepts, "stages": [s.to_dict() for s in self.stages]}

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}: {' -> '.join(s.name for s in self.stages) or 'no stages'}>"
