"""Run stages in order on named tables: the loop shared by the in-process runner and the runner script."""

from __future__ import annotations

import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from . import annotate, values
from .command import CommandFailed, run_command
from .failures import error_record, import_target, missing_columns, type_name
from .measure import MemoryMeter, command_source_files, source_files, top_level_modules
from .tables import columns_of

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def run_stages(
    stages: list[dict[str, Any]],
    inputs: Mapping[str, Any],
    sink: Callable[[int, str, Any, str, list[str] | None], dict[str, Any]],
    *,
    workdir: str,
    cwd: str | None = None,
    pythonpath: list[str] | None = None,
    input_kinds: Mapping[str, str] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
    start: int = 1,
    previous: str | None = None,
    on_start: Callable[[int, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``stages`` in order on ``inputs`` (name -> table); stop at the first failure.

    Each stage is a dict: ``name``, ``kind`` (``call``/``run``), ``call`` or ``run``, ``inputs`` (list or
    None), ``accepts`` (None, ``pandas``, ``arrow``, ``polars``, ``numpy``), ``params``, ``columns`` and,
    in-process only, ``func``. Each successful
    value (each element of a returned tuple, labelled ``NAME.K``) is handed to
    ``sink(index, label, value, kind, columns)`` (which records it, see :mod:`.values`, and returns its
    facts, ``rows`` among them) right away, before the next stage could mutate it in place. A stage gets
    its ``params`` as keyword arguments; a first stage with nothing to receive is a source stage, called
    with its params only; a stage that returns None lets the previous value flow on. ``input_kinds``
    says which kind each of ``inputs`` reaches a stage as (converted when a stage takes it, so that a
    missing pandas is that stage's recorded failure). Returns one outcome dict per stage that ran.
    ``start`` numbers the first stage (a replay ``--from`` a later stage), ``previous`` names the value
    the first stage takes when ``inputs`` holds several (the recorded intermediate it starts from), and
    ``on_start(index, name)`` is called as each stage begins.
    """
    tables: dict[str, Any] = dict(inputs)
    kinds = dict(input_kinds or {})
    if previous is None:
        previous = next(iter(tables)) if len(tables) == 1 else None
    meter = MemoryMeter()
    outcomes: list[dict[str, Any]] = []
    for index, stage in enumerate(stages, start):
        name = stage["name"]
        if on_start is not None:
            on_start(index, name)
        outcome: dict[str, Any] = {
            "index": index,
            "name": name,
            "kind": stage["kind"],
            "status": "failed",
            "returned": None,
            "rows": None,
            "load_time_s": None,
            "wall_time_s": None,
            "memory": None,
            "imported_modules": None,
            "imported_files": None,
            "command": None,
            "params": stage.get("params"),
            "value": None,
            "fitted": None,
            "error": None,
        }
        outcomes.append(outcome)
        wanted = list(stage["inputs"]) if stage.get("inputs") is not None else [previous]
        received = {}
        try:
            for w in wanted:
                if w is not None:
                    received[w] = _hand_over(tables[w], stage.get("accepts"), kinds.get(w))
        except Exception as exc:  # noqa: BLE001 - e.g. a pandas input where pandas is not installed
            target = stage.get("accepts") or kinds.get(str(w))
            outcome["error"] = error_record(
                name,
                "input",
                exc,
                f"stage {name!r}: cannot hand it {w!r} as {target}: {type_name(exc)}: {exc}"
                + (' (accepts = "arrow" or "polars" passes those instead)' if target == "pandas" else ""),
            )
            if on_stage is not None:
                on_stage(outcome)
            break
        if stage["kind"] == "run":
            try:
                outcome["imported_files"] = command_source_files(shlex.split(stage["run"]), cwd, pythonpath or [])
            except ValueError:
                outcome["imported_files"] = []
            try:
                result, facts = run_command(stage, f"{index:02d}-{name}", received, workdir, cwd, pythonpath or [])
                outcome.update(facts)
            except CommandFailed as exc:
                outcome.update(exc.facts)
                outcome["error"] = error_record(name, "command", None, f"stage {name!r}: {exc}")
            except (OSError, ValueError, LookupError) as exc:
                outcome["error"] = error_record(
                    name, "command", None, f"stage {name!r}: cannot run {stage['run']!r}: {exc}"
                )
            if outcome["error"] is None:
                # A command is kind-neutral: what flowed in keeps flowing (pandas stays pandas).
                flowing = next(iter(received.values()), None)
                flowing_kind = values.kind_of(flowing) if flowing is not None else None
                result = values.convert(result, flowing_kind if flowing_kind in values.ACCEPTS else None)
        else:
            before = set(sys.modules)
            started = time.perf_counter()
            func: Callable[..., Any] | None = stage.get("func")
            try:
                if func is None:
                    func = import_target(stage["call"])
            except Exception as exc:  # noqa: BLE001 - whatever the import raises is the user's, recorded
                outcome["imported_modules"] = sorted(top_level_modules(set(sys.modules) - before))
                outcome["imported_files"] = source_files(set(sys.modules) - before)
                outcome["load_time_s"] = time.perf_counter() - started
                outcome["error"] = error_record(
                    name, "import", exc, f"stage {name!r}: cannot import {stage['call']!r}: {type_name(exc)}: {exc}"
                )
            loaded = time.perf_counter()
            if func is not None and outcome["error"] is None:
                meter.start()
                try:
                    params = dict(stage.get("params") or {})
                    if stage.get("inputs") is None:
                        result = func(*received.values(), **params)
                    else:
                        result = func(**{keyword(k): v for k, v in received.items()}, **params)
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing stage is recorded, not raised
                    missing = missing_columns(exc, list(received.values()))
                    message = f"stage {name!r} failed: {type_name(exc)}: {exc}"
                    if not received and isinstance(exc, TypeError) and "required positional argument" in str(exc):
                        message += (
                            " (the pipeline has no inputs, so this first stage was called as a source stage with its"
                            " params only: give --input NAME=PATH, or let the stage load its own data)"
                        )
                    if missing:
                        message += (
                            f" (column {', '.join(map(repr, missing))} is not in the stage's input; "
                            f"its columns: {', '.join(sorted({c for t in received.values() for c in columns_of(t)}))})"
                        )
                    outcome["error"] = error_record(name, "exception", exc, message, missing_columns=missing)
                finally:
                    outcome["memory"] = meter.stop()
                    outcome["wall_time_s"] = time.perf_counter() - loaded
                    outcome["load_time_s"] = loaded - started
                    outcome["imported_modules"] = sorted(top_level_modules(set(sys.modules) - before))
                    # The project's own source the stage ran: what it imported, and the file of its
                    # function even when an earlier stage imported it first.
                    code = getattr(func, "__code__", None)
                    outcome["imported_files"] = source_files(
                        set(sys.modules) - before, [code.co_filename] if code is not None else []
                    )
        if outcome["error"] is None:
            result = _record(outcome, stage, index, result, sink, previous)
        if outcome["error"] is None:
            outcome["status"] = "ok"
            if outcome["returned"] == "none":
                # A side-effect stage: what flowed in flows on (a later stage naming it gets that value).
                if previous is not None:
                    tables[name] = tables[previous]
            else:
                tables[name] = result
                if outcome["returned"] == "tuple":
                    tables.update({f"{name}.{i}": item for i, item in enumerate(result)})
                previous = name
        if on_stage is not None:
            on_stage(outcome)
        if outcome["error"] is not None:
            break
    return outcomes


def _hand_over(value: Any, accepts: str | None, input_kind: str | None) -> Any:
    """``value`` as the stage's ``accepts``, else as the kind its input arrives as.

    The pipeline-wide kind of file inputs (``pandas`` unless configured) gives way where this interpreter
    has no pandas: a job whose venv holds polars gets the table as polars read it, not an ImportError.
    A stage's own ``accepts`` is never second-guessed.
    """
    if accepts is not None:
        return values.convert(value, accepts)
    try:
        return values.convert(value, input_kind)
    except ImportError:
        if input_kind != "pandas":
            raise
        return value


def keyword(name: str) -> str:
    """The keyword argument an input or earlier stage is passed as (``-`` and ``.`` become ``_``)."""
    return name.replace("-", "_").replace(".", "_")


def _record(
    outcome: dict[str, Any],
    stage: dict[str, Any],
    index: int,
    result: Any,
    sink: Callable[[int, str, Any, str, list[str] | None], dict[str, Any]],
    previous: str | None,
) -> Any:
    """Hand the stage's value (each element of a tuple) to ``sink``; return the value that flows on.

    Sets ``returned`` (the kind), ``value`` (the sink's facts) and ``rows`` of ``outcome``, or its error.
    """
    name = stage["name"]
    notes = annotate.take()
    outcome["fitted"] = notes["fitted"]
    columns = stage.get("columns") or notes["columns"]
    kind = "unknown"
    try:
        kind = values.kind_of(result)
        if kind == "none":
            outcome["value"] = {"kind": "none", "flows": previous}
        elif kind == "tuple":
            elements, settled = [], []
            for position, item in enumerate(result):
                item_kind = values.kind_of(item)
                if item_kind in ("none", "tuple"):
                    raise values.UnsupportedValue(
                        f"a tuple whose element {position} is {'None' if item_kind == 'none' else 'a tuple'}; "
                        "each element of a returned tuple is recorded on its own and must be a value"
                    )
                ready = values.settle(item, item_kind)
                facts = sink(index, f"{name}.{position}", ready, item_kind, None)
                elements.append(dict(facts, index=position, label=f"{name}.{position}"))
                settled.append(ready)
            result = list(settled) if isinstance(result, list) else tuple(settled)
            outcome["value"] = {"kind": "tuple", "elements": elements}
        else:
            result = values.settle(result, kind)
            outcome["value"] = sink(index, name, result, kind, columns)
            outcome["rows"] = outcome["value"].get("rows")
        outcome["returned"] = kind
    except values.UnsupportedValue as exc:
        outcome["error"] = error_record(name, "output", None, f"stage {name!r} returned {exc}")
    except Exception as exc:  # noqa: BLE001 - a value that cannot be recorded is the stage's failure
        outcome["error"] = error_record(
            name, "output", exc, f"stage {name!r} returned a {kind} value that cannot be recorded: {exc}"
        )
    return result
