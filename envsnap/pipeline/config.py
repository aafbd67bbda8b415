"""Load a pipeline from ``envsnap.toml`` or from ``[tool.envsnap]`` in ``pyproject.toml``.

Both files have the same shape (in pyproject.toml everything sits under ``tool.envsnap``)::

    [pipeline]
    name = "churn"
    inputs = { events = "data/events.parquet" }   # default inputs; --input NAME=PATH overrides
    pythonpath = ["src"]                           # put in front of sys.path while stages run (default ".")
    accepts = "pandas"                             # file inputs reach the stages as pandas (arrow, polars, numpy)

    [[pipeline.stages]]
    name = "clean"
    call = "churn.clean:clean"                     # in-process: a value in, a value out
    params = { min_events = 3 }                    # keyword arguments: recorded, and diffed

    [[pipeline.stages]]
    name = "score"
    run = "python score.py {input} {output}"      # subprocess: parquet in, parquet out

Relative paths (inputs, pythonpath) are relative to the file's directory. Every error names the file
and the key at fault. Without ``--config`` the current directory and then its parents are searched: the
first directory with an ``envsnap.toml``, or a ``pyproject.toml`` that has ``[tool.envsnap.pipeline]``, wins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from envsnap.core.storage import is_remote
from envsnap.pipeline.model import Pipeline
from envsnap.pipeline.types import PipelineError, Stage

__all__ = ["find_config", "load_pipeline", "pipeline_from_dict"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "envsnap.toml"
PIPELINE_KEYS = frozenset({"name", "inputs", "pythonpath", "accepts", "stages"})
STAGE_KEYS = frozenset({"name", "call", "run", "inputs", "accepts", "params", "columns"})


def find_config(cwd: str | os.PathLike[str]) -> Path | None:
    """The config file that applies in ``cwd``: envsnap.toml, or a pyproject.toml with a pipeline, upwards."""
    start = Path(cwd).absolute()
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = _read_toml(pyproject)
            except PipelineError:
                continue  # a broken pyproject.toml that does not declare a pipeline is not ours to judge
            if isinstance(data.get("tool"), dict) and isinstance(data["tool"].get("envsnap"), dict):
                return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise PipelineError(str(path), f"cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(str(path), f"is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise PipelineError(str(path), "is not UTF-8 text") from exc


def load_pipeline(config: str | os.PathLike[str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Pipeline:
    """The pipeline declared in ``config`` (envsnap.toml or pyproject.toml), or found from ``cwd`` upwards.

    Raises :class:`PipelineError` naming the file and key when the file is missing, not TOML, has no
    pipeline, or declares one wrongly (unknown key, wrong type, stage with both ``call`` and ``run``, ...).
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    if config is not None:
        path = Path(config)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise PipelineError(str(config), "no such config file", hint="pass --config PATH of an envsnap.toml")
    else:
        found = find_config(base)
        if found is None:
            raise PipelineError(
                str(base),
                f"no pipeline found: no {CONFIG_NAME} and no pyproject.toml with [tool.envsnap.pipeline] here "
                "or in a parent directory",
                hint="pass --config FILE",
            )
        path = found
    path = path.absolute()
    data = _read_toml(path)
    prefix = ""
    if path.name == "pyproject.toml":
        tool = data.get("tool")
        data = tool.get("envsnap") if isinstance(tool, dict) else None  # type: ignore[assignment]
        prefix = "tool.envsnap."
        if not isinstance(data, dict):
            raise PipelineError(
                str(path), "has no [tool.envsnap] table", hint=f"declare the pipeline there or in {CONFIG_NAME}"
            )
    return pipeline_from_dict(data, source=str(path), base=path.parent, prefix=prefix)


def _expect(value: Any, kind: type | tuple[type, ...], what: str, source: str, key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PipelineError(source, f"must be {what}, not {type(value).__name__} {value!r}", key=key)
    return value


def _unknown(table: dict[str, Any], allowed: frozenset[str], source: str, key: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise PipelineError(
            source, f"unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}", key=f"{key}.{extra[0]}"
        )


def pipeline_from_dict(data: dict[str, Any], *, source: str, base: Path, prefix: str = "") -> Pipeline:
    """Build a :class:`Pipeline` from the parsed file (``data`` holds the ``pipeline`` table)."""
    table = data.get("pipeline")
    key = f"{prefix}pipeline"
    if table is None:
        raise PipelineError(source, f"has no [{key}] table", hint=f"declare [{key}] and [[{key}.stages]]")
    _expect(table, dict, "a table", source, key)
    _unknown(table, PIPELINE_KEYS, source, key)
    name = _expect(table.get("name", base.name or "pipeline"), str, "a string", source, f"{key}.name")

    inputs: dict[str, str] = {}
    raw_inputs = _expect(table.get("inputs", {}), dict, 'a table of name = "path"', source, f"{key}.inputs")
    for input_name, input_path in raw_inputs.items():
        _expect(input_path, str, "a path string", source, f"{key}.inputs.{input_name}")
        inputs[input_name] = input_path if is_remote(input_path) else str(base / input_path)

    raw_paths = _expect(table.get("pythonpath", ["."]), list, "a list of directories", source, f"{key}.pythonpath")
    pythonpath = []
    for i, entry in enumerate(raw_paths):
        _expect(entry, str, "a directory string", source, f"{key}.pythonpath[{i}]")
        pythonpath.append(str((base / entry).resolve()))

    accepts = _expect(
        table.get("accepts", "pandas"), str, "'pandas', 'arrow', 'polars' or 'numpy'", source, f"{key}.accepts"
    )
    pipeline = Pipeline(
        name,
        inputs=inputs,
        pythonpath=pythonpath,
        root=base,
        accepts=accepts,
        source=source,
        key_prefix=f"{key}.",
    )
    stages = _expect(table.get("stages", []), list, "an array of tables ([[pipeline.stages]])", source, f"{key}.stages")
    if not stages:
        raise PipelineError(source, "declares no stages", key=f"{key}.stages", hint=f"add [[{key}.stages]] tables")
    for i, raw in enumerate(stages):
        skey = f"{key}.stages[{i}]"
        _expect(raw, dict, "a table", source, skey)
        _unknown(raw, STAGE_KEYS, source, skey)
        if "name" not in raw:
            raise PipelineError(source, "a stage needs a name", key=f"{skey}.name")
        stage_inputs = raw.get("inputs")
        if stage_inputs is not None:
            _expect(stage_inputs, list, "a list of input or stage names", source, f"{skey}.inputs")
            for j, item in enumerate(stage_inputs):
                _expect(item, str, "a name string", source, f"{skey}.inputs[{j}]")
        stage = Stage(
            name=_expect(raw["name"], str, "a string", source, f"{skey}.name"),
            call=_expect(raw["call"], str, "a string 'package.module:function'", source, f"{skey}.call")
            if "call" in raw
            else None,
            run=_expect(raw["run"], str, "a command string", source, f"{skey}.run") if "run" in raw else None,
            inputs=tuple(stage_inputs) if stage_inputs is not None else None,
            accepts=_expect(raw["accepts"], str, "'pandas', 'arrow', 'polars' or 'numpy'", source, f"{skey}.accepts")
            if "accepts" in raw
            else None,
            params=_expect(raw["params"], dict, "a table of name = value", source, f"{skey}.params")
            if "params" in raw
            else None,
            columns=tuple(_expect(raw["columns"], list, "a list of column names", source, f"{skey}.columns"))
            if "columns" in raw
            else None,
        )
        pipeline.add(stage)
    return pipeline
