"""Run pipeline stages: the code shared by the in-process runner and the ``--python`` runner script.

This module is stdlib-only at import time and imports pyarrow (and pandas, when a stage needs it)
lazily, from whichever interpreter runs it. It never imports envsnap: for ``--python`` it is copied to a
private directory as ``_envsnap_stage_runner.py``, that directory is appended at the END of the target's
``sys.path`` (so it never shadows the target's packages), and :func:`main` runs the job described by a
JSON file, writing each intermediate as parquet and a JSON report. It must run on the oldest Python a
target may have (3.8): no ``match``, no ``str.removeprefix``, no runtime-evaluated ``X | Y`` types.

Per stage it measures the wall time, the peak resident memory of the process while the stage ran, and
the top-level modules imported while it ran (importing a ``call`` target counts: that is where a stage's
``import pandas`` happens).

Peak memory is the resident set (RSS) high-water mark: on Linux the mark is reset just before the stage
(``echo 5 > /proc/self/clear_refs``) and read back after it (``VmHWM``), which is exact and costs two
small file operations. tracemalloc would be wrong here: it only sees allocations made through Python's
allocator (not pyarrow's memory pool, numpy's large buffers or BLAS workspaces) and slows allocation-
heavy code several-fold. Where the mark cannot be reset, a thread samples the RSS every 2 ms (it can
miss shorter spikes; the record says which method was used). ``run`` stages report their child's own
``ru_maxrss`` from ``wait4``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

RUNNER_MODULE = "_envsnap_stage_runner"
OUTPUT_TAIL = 4000
_PLACEHOLDER = re.compile(r"\{(input|output|python)(?::([A-Za-z0-9][A-Za-z0-9_-]*))?\}")
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_DTYPE = re.compile(r"""dtype=['"][^'"]*['"]""")
_TABLE_LIBRARY_FILE = re.compile(r"(^|[/\\])(pandas|pyarrow)[/\\]")


# ---------------------------------------------------------------------------------------------------
# tables


def table_kind(obj: Any) -> str | None:
    """``"pandas"`` for a DataFrame, ``"arrow"`` for a pyarrow Table/RecordBatch, else None (not a table).

    Looked up in ``sys.modules`` so that checking never imports a library the stage did not use.
    """
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        return "pandas"
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(obj, (pa.Table, pa.RecordBatch)):
        return "arrow"
    return None


def to_arrow(obj: Any) -> Any:
    """A pyarrow Table for a DataFrame, Table or RecordBatch (a pandas index is kept as pandas does)."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    return pa.Table.from_pandas(obj)


def as_kind(table: Any, kind: str | None) -> Any:
    """``table`` converted to ``kind`` (``"pandas"``/``"arrow"``); unchanged when it already is, or no kind."""
    current = table_kind(table)
    if kind is None or current == kind:
        return table
    if kind == "pandas":
        return to_arrow(table).to_pandas()
    return to_arrow(table)


def columns_of(table: Any) -> list[str]:
    """Column names of a table of either kind."""
    if table_kind(table) == "pandas":
        return [str(c) for c in table.columns]
    return [str(c) for c in getattr(table, "column_names", [])]


# ---------------------------------------------------------------------------------------------------
# measurements


def _statm_rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _vmhwm() -> int | None:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class MemoryMeter:
    """Peak RSS of this process between :meth:`start` and :meth:`stop` (see the module docstring)."""

    def __init__(self) -> None:
        self.method = "vmhwm-reset" if _reset_hwm() and _vmhwm() is not None else "sampled"
        if self.method == "sampled" and _statm_rss() is None:
            self.method = "unavailable"
        self._start = 0
        self._peak = 0
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop_event.wait(0.002):
            rss = _statm_rss() or 0
            self._peak = max(self._peak, rss)

    def start(self) -> None:
        """Mark the start of the measured window."""
        self._start = _statm_rss() or 0
        self._peak = self._start
        if self.method == "vmhwm-reset":
            _reset_hwm()
        elif self.method == "sampled":
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._sample, name="envsnap-rss", daemon=True)
            self._thread.start()

    def stop(self) -> dict[str, Any]:
        """``{method, peak_rss_bytes, peak_rss_delta_bytes}`` of the window (None where unavailable)."""
        if self.method == "vmhwm-reset":
            self._peak = max(self._peak, _vmhwm() or 0)
        elif self.method == "sampled" and self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._peak = max(self._peak, _statm_rss() or 0)
        if self.method == "unavailable":
            return {"method": self.method, "peak_rss_bytes": None, "peak_rss_delta_bytes": None}
        return {
            "method": self.method,
            "peak_rss_bytes": self._peak,
            "peak_rss_delta_bytes": max(0, self._peak - self._start),
        }


def top_level_modules(names: Any) -> set[str]:
    """The top-level packages that the modules ``names`` belong to.

    Usually the first dotted component. But compiled extensions often register a flat name
    (scipy's ``_csparsetools`` lives in ``scipy/sparse/``): a module whose file sits inside another
    top-level package's directory on ``sys.path`` is counted as that package. Modules created at run time
    (no file, not a package; e.g. Cython's shared ``_cython_3_x`` module) belong to whoever imported them
    and are left out.
    """
    roots = sorted({os.path.join(os.path.abspath(p or os.curdir), "") for p in sys.path}, key=len, reverse=True)
    found = set()
    for name in names:
        top = name.partition(".")[0]
        if top != name:
            found.add(top)
            continue
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            if getattr(module, "__path__", None) is not None or name in sys.builtin_module_names:
                found.add(top)  # a namespace package, or a builtin (the host drops the stdlib)
            continue
        path = os.path.abspath(path)
        owner = top
        for root in roots:
            if path.startswith(root):
                first = path[len(root) :].split(os.sep, 1)[0]
                owner = first.split(".", 1)[0] if os.sep not in path[len(root) :] else first
                break
        found.add(owner)
    return found


# ---------------------------------------------------------------------------------------------------
# errors


def import_target(target: str) -> Callable[..., Any]:
    """The callable named ``package.module:qualified.name``."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _type_name(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return name[len("builtins.") :] if name.startswith("builtins.") else name


def _user_traceback(exc: BaseException) -> str:
    """The traceback without this module's own frames at its top (the runner is not the user's code)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _raised_by_table_library(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _TABLE_LIBRARY_FILE.search(tb.tb_frame.f_code.co_filename) is not None


def missing_columns(exc: BaseException, tables: list[Any]) -> list[str]:
    """Columns a ``KeyError`` names that none of the stage's input tables has (pandas and pyarrow forms).

    Only a KeyError raised inside pandas or pyarrow indexing counts: the same exception raised by the
    stage's own code (a dict lookup, a custom error) says nothing about columns.
    """
    if not isinstance(exc, KeyError) or len(exc.args) != 1 or not isinstance(exc.args[0], str) or not tables:
        return []
    if not _raised_by_table_library(exc):
        return []
    key = exc.args[0]
    known = {c for t in tables for c in columns_of(t)}
    candidates = [key] if key in known else _QUOTED.findall(_DTYPE.sub("", key)) or [key]
    return sorted({c for c in candidates if c not in known})


def error_record(stage: str, kind: str, exc: BaseException | None, message: str, **extra: Any) -> dict[str, Any]:
    """``{kind, type, message, traceback, ...}``: what went wrong in ``stage`` (scrubbed by the caller)."""
    record: dict[str, Any] = {
        "kind": kind,
        "type": _type_name(exc) if exc is not None else "envsnap.StageError",
        "message": message,
        "traceback": _user_traceback(exc) if exc is not None else "",
    }
    record.update(extra)
    return record


# ---------------------------------------------------------------------------------------------------
# stages


def _substitute(token: str, values: Mapping[str, str], named: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        what, name = match.group(1), match.group(2)
        if what == "input" and name is not None:
            if name not in named:
                raise LookupError(f"{{input:{name}}} is not one of the stage's inputs ({', '.join(sorted(named))})")
            return named[name]
        if what == "input" and "input" not in values:
            raise LookupError("{input} is ambiguous: the stage takes several inputs; use {input:NAME}")
        return values[what]

    return _PLACEHOLDER.sub(replace, token)


def _run_command(
    stage: Mapping[str, Any],
    prefix: str,
    tables: Mapping[str, Any],
    workdir: str,
    cwd: str | None,
    pythonpath: list[str],
) -> tuple[Any, dict[str, Any]]:
    """Run a ``run`` stage: inputs written as parquet, the command run (no shell), its output read back.

    The pipeline's ``pythonpath`` goes in front of ``PYTHONPATH``, so that a ``python -m project.tool``
    command imports the same project code as the ``call`` stages.
    """
    import pyarrow.parquet as pq

    named = {}
    for name, table in tables.items():
        path = os.path.join(workdir, f"{prefix}.in.{name}.parquet")
        pq.write_table(to_arrow(table), path)
        named[name] = path
    output = os.path.join(workdir, f"{prefix}.out.parquet")
    values = {"output": output, "python": sys.executable}
    if len(named) == 1:
        values["input"] = next(iter(named.values()))
    argv = [_substitute(token, values, named) for token in shlex.split(stage["run"])]
    if argv and argv[0] in ("python", "python3"):
        # "python" in a stage means the pipeline's interpreter (the --python target), not whatever PATH has.
        argv[0] = sys.executable
    out_log = os.path.join(workdir, f"{prefix}.stdout")
    err_log = os.path.join(workdir, f"{prefix}.stderr")
    with open(out_log, "wb") as out, open(err_log, "wb") as err:
        start = time.perf_counter()
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [env.get("PYTHONPATH")])])
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        max_rss: int | None = None
        if hasattr(os, "wait4"):
            # wait4 hands back this child's own rusage: its peak RSS, not the maximum over all children.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = _exit_code(status)
            max_rss = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
        else:  # pragma: no cover - Windows
            proc.wait()
        wall = time.perf_counter() - start
    facts: dict[str, Any] = {
        "wall_time_s": wall,
        "memory": {"method": "child-maxrss", "peak_rss_bytes": max_rss, "peak_rss_delta_bytes": None},
        "command": {
            "argv": [a.replace(workdir, "<tmp>") for a in argv],
            "returncode": proc.returncode,
            "stdout_tail": _tail(out_log),
            "stderr_tail": _tail(err_log),
        },
    }
    if proc.returncode != 0:
        last = (facts["command"]["stderr_tail"].strip().splitlines() or ["no output on stderr"])[-1]
        raise _CommandFailed(f"command exited {proc.returncode}: {last[:300]}", facts)
    if not os.path.isfile(output):
        raise _CommandFailed("command exited 0 but did not write its {output} parquet file", facts)
    try:
        result = pq.read_table(output)
    except Exception as exc:  # any reader error means the same: not a parquet table
        raise _CommandFailed(f"its {{output}} is not a readable parquet file ({exc})", facts) from exc
    return result, facts


def _exit_code(status: int) -> int:
    """``os.waitstatus_to_exitcode`` (Python 3.9+), spelled out for older targets."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _CommandFailed(Exception):
    def __init__(self, message: str, facts: dict[str, Any]) -> None:
        super().__init__(message)
        self.facts = facts


def _tail(path: str) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - OUTPUT_TAIL))
        return fh.read().decode("utf-8", "replace")


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
) -> list[dict[str, Any]]:
    """Run ``stages`` in order on ``inputs`` (name -> table); stop at the first failure.

    Each stage is a dict: ``name``, ``kind`` (``call``/``run``), ``call`` or ``run``, ``inputs`` (list or
    None), ``accepts`` (None, ``pandas`` or ``arrow``) and, in-process only, ``func``. Each successful
    output is handed to ``sink(index, name, table)`` (which stores it, typically through
    :func:`to_arrow`, and returns its row count) right away, before the next stage could
    mutate it in place. ``input_kinds`` says which kind each of ``inputs`` reaches a stage as (converted
    when a stage takes it, so that a missing pandas is that stage's recorded failure). Returns one
    outcome dict per stage that ran.
    """
    tables: dict[str, Any] = dict(inputs)
    kinds = dict(input_kinds or {})
    previous = next(iter(tables)) if len(tables) == 1 else None
    meter = MemoryMeter()
    outcomes: list[dict[str, Any]] = []
    for index, stage in enumerate(stages, 1):
        name = stage["name"]
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
                f"stage {name!r}: cannot hand it {w!r} as {target}: {_type_name(exc)}: {exc}"
                + (' (accepts = "arrow" passes pyarrow Tables instead)' if target == "pandas" else ""),
            )
            if on_stage is not None:
                on_stage(outcome)
            break
        if stage["kind"] == "run":
            try:
                result, facts = _run_command(stage, f"{index:02d}-{name}", received, workdir, cwd, pythonpath or [])
                outcome.update(facts)
            except _CommandFailed as exc:
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
                outcome["load_time_s"] = time.perf_counter() - started
                outcome["error"] = error_record(
                    name, "import", exc, f"stage {name!r}: cannot import {stage['call']!r}: {_type_name(exc)}: {exc}"
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
                    message = f"stage {name!r} failed: {_type_name(exc)}: {exc}"
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


# ---------------------------------------------------------------------------------------------------
# the --python runner script


def main(argv: list[str]) -> int:
    """Run the job in ``argv[0]`` (JSON: stages, inputs, kinds, pythonpath, out_dir); write report.json."""
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    out_dir = job["out_dir"]
    report: dict[str, Any] = {
        "python": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "added_to_sys_path": [p for p in sys.path if os.path.isfile(os.path.join(p, RUNNER_MODULE + ".py"))],
        "fatal": None,
        "preloaded_modules": [],
        "stages": [],
    }
    try:
        for entry in reversed(job["pythonpath"]):
            sys.path.insert(0, entry)
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            report["fatal"] = {
                "type": "MissingPyarrow",
                "message": f"{sys.executable} cannot import pyarrow ({exc}); the stage runner needs it to read and "
                "write the parquet intermediates: install pyarrow in that environment",
            }
            return _write_report(out_dir, report)
        inputs = {name: pq.read_table(spec["path"]) for name, spec in job["inputs"].items()}
        input_kinds = {name: spec["kind"] for name, spec in job["inputs"].items()}

        def sink(index: int, name: str, table: Any) -> int:
            arrow = to_arrow(table)
            pq.write_table(arrow, os.path.join(out_dir, f"{index:02d}-{name}.parquet"))
            return int(arrow.num_rows)

        report["preloaded_modules"] = sorted(top_level_modules(list(sys.modules)))
        report["stages"] = run_stages(
            job["stages"],
            inputs,
            sink,
            workdir=job["work_dir"],
            cwd=job.get("cwd"),
            pythonpath=job["pythonpath"],
            input_kinds=input_kinds,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the host, which turns it into an error
        report["fatal"] = {"type": _type_name(exc), "message": str(exc), "traceback": traceback.format_exc()}
    return _write_report(out_dir, report)


def _write_report(out_dir: str, report: dict[str, Any]) -> int:
    tmp = os.path.join(out_dir, "report.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, default=str)
    os.replace(tmp, os.path.join(out_dir, "report.json"))
    return 0
