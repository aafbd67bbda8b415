"""Run stages in order on named tables: the loop shared by the in-process runner and the runner script."""

from __future__ import annotations

import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from .command import CommandFailed, run_command
from .failures import error_record, import_target, missing_columns, type_name
from .measure import MemoryMeter, command_source_files, source_files, top_level_modules
from .tables import as_kind, columns_of, table_kind

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def run_stages(
    stages: list[dict[str, Any]],
    inputs: Mapping[str, Any],
    sink: Callable[[int, str, Any], int],
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
    None), ``accepts`` (None, ``pandas`` or ``arrow``) and, in-process only, ``func``. Each successful
    output is handed to ``sink(index, name, table)`` (which stores it, typically through
    :func:`to_arrow`, and returns its row count) right away, before the next stage could
    mutate it in place. ``input_kinds`` says which kind each of ``inputs`` reaches a stage as (converted
    when a stage takes it, so that a missing pandas is that stage's recorded failure). Returns one
    outcome dict per stage that ran. ``start`` numbers the first stage (a replay ``--from`` a later
    stage), ``previous`` names the table the first stage takes when ``inputs`` holds several (the
    recorded intermediate it starts from), and ``on_start(index, name)`` is called as each stage begins.
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
            "error": None,
        }
        outcomes.append(outcome)
        wanted = list(stage["inputs"]) if stage.get("inputs") is not None else [previous]
        received = {}
        try:
            for w in wanted:
                if w is not None:
                    received[w] = as_kind(tables[w], stage.get("accepts") or kinds.get(w))
        except Exception as exc:  # noqa: BLE001 - e.g. a pandas input where pandas is not installed
            target = stage.get("accepts") or kinds.get(str(w))
            outcome["error"] = error_record(
                name,
                "input",
                exc,
                f"stage {name!r}: cannot hand it {w!r} as {target}: {type_name(exc)}: {exc}"
                + (' (accepts = "arrow" passes pyarrow Tables instead)' if target == "pandas" else ""),
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
                result = as_kind(result, table_kind(flowing) if flowing is not None else None)
                outcome["returned"] = "parquet"
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
                    if stage.get("inputs") is None:
                        result = func(*received.values())
                    else:
                        result = func(**{k.replace("-", "_"): v for k, v in received.items()})
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing stage is recorded, not raised
                    missing = missing_columns(exc, list(received.values()))
                    message = f"stage {name!r} failed: {type_name(exc)}: {exc}"
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
                outcome["returned"] = table_kind(result)
                if outcome["returned"] is None:
                    outcome["error"] = error_record(
                        name,
                        "output",
                        None,
                        f"stage {name!r} returned {type(result).__module__}.{type(result).__qualname__}, "
                        "not a table (a pandas DataFrame or a pyarrow Table)",
                    )
        if outcome["error"] is None:
            try:
                outcome["rows"] = sink(index, name, result)
            except Exception as exc:  # noqa: BLE001 - a table that cannot become parquet is the stage's failure
                outcome["error"] = error_record(
                    name, "output", exc, f"stage {name!r} returned a table that cannot be stored as parquet: {exc}"
                )
        if outcome["error"] is None:
            outcome["status"] = "ok"
            tables[name] = result
            previous = name
        if on_stage is not None:
            on_stage(outcome)
        if outcome["error"] is not None:
            break
    return outcomes
