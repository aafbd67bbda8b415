"""Run the stages in this interpreter or in another one, and turn their outputs into intermediates.

:func:`run_stages_here` runs them in-process (:mod:`envsnap._target.runner`); :func:`run_stages_there`
runs them in a ``--python`` interpreter through the same runner, shipped there (:mod:`envsnap.pipeline.remote`).
Either way each output becomes an :class:`Intermediate` (parquet bytes, schema, column stats) right
after its stage returns. Nothing here captures the environment or writes a snapshot.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from envsnap._target import PACKAGE
from envsnap._target.runner import values as value_kinds
from envsnap._target.runner.measure import top_level_modules
from envsnap._target.runner.stages import run_stages
from envsnap.core.redact import scrub_data
from envsnap.pipeline.types import PipelineSpec
from envsnap.pipeline.values import arrow_of

__all__ = [
    "Intermediate",
    "StageRun",
    "intermediate_of",
    "record_intermediate",
    "run_stages_here",
    "run_stages_there",
    "schema_fields",
]


@dataclass(frozen=True)
class Intermediate:
    """One stage output, already serialised: parquet bytes, row count, schema and column stats."""

    parquet: bytes
    rows: int
    schema: list[dict[str, Any]]
    columns: list[dict[str, Any]]


@dataclass(frozen=True)
class StageRun:
    """The outcome of running the stages (before any snapshot exists).

    ``intermediates`` is keyed by member stem ``NN-LABEL`` (LABEL: the stage, or ``NAME.K`` for the
    elements of a returned tuple); a stage that returned None has none.
    """

    outcomes: list[dict[str, Any]]
    intermediates: dict[str, Intermediate]
    preloaded_modules: list[str]
    runner: dict[str, Any]


def schema_fields(schema: Any) -> list[dict[str, Any]]:
    """``[{name, type, nullable}]`` of a pyarrow schema."""
    return [{"name": f.name, "type": str(f.type), "nullable": bool(f.nullable)} for f in schema]


def intermediate_of(table: Any, parquet: bytes) -> Intermediate:
    """Serialise-side facts of one intermediate (``table`` is a pyarrow Table)."""
    from envsnap.core.column_stats import column_stats

    return Intermediate(parquet, table.num_rows, schema_fields(table.schema), column_stats(table))


def record_intermediate(table: Any) -> Intermediate:
    """Parquet bytes and stats of a pyarrow ``table``, the two computed side by side.

    Both are Arrow C++ work that releases the GIL, so the parquet write runs in a helper thread while
    the stats are computed here (the same column stats as the sampled inputs'). On a million-row
    intermediate that saves about a sixth of the wait on two cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    from envsnap.core.column_stats import column_stats

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="envsnap-parquet") as pool:
        parquet = pool.submit(_parquet_bytes, table)
        columns = column_stats(table)
        return Intermediate(parquet.result(), table.num_rows, schema_fields(table.schema), columns)


def _parquet_bytes(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def run_stages_here(
    pipeline: PipelineSpec,
    tables: Mapping[str, Any],
    *,
    kinds: Mapping[str, str] | None = None,
    cwd: str | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> StageRun:
    """Run the stages in this interpreter on ``tables`` (name -> pandas DataFrame or pyarrow Table).

    ``kinds`` (name -> ``pandas``/``arrow``) converts an input when a stage takes it; by default inputs
    reach the stages as they are.

    The pipeline's ``pythonpath`` is put in front of ``sys.path`` for the run (as ``python -m`` puts the
    working directory there) and taken out again afterwards.
    """
    from envsnap.pipeline.remote import make_workdir, stage_specs

    specs = stage_specs(pipeline, importable=False)
    intermediates: dict[str, Intermediate] = {}

    def sink(index: int, label: str, value: Any, kind: str, columns: list[str] | None) -> dict[str, Any]:
        facts = value_kinds.describe(value, kind, columns)
        if kind == "dict":
            facts["data"] = scrub_data(facts["data"])
        arrow = arrow_of(facts, value=value)
        intermediates[f"{index:02d}-{label}"] = record_intermediate(arrow)
        facts["rows"] = int(arrow.num_rows)
        return facts

    added = [p for p in pipeline.pythonpath if p not in sys.path]
    sys.path[:0] = added
    workdir = make_workdir()
    try:
        preloaded = sorted(top_level_modules(list(sys.modules)))
        outcomes = run_stages(
            specs,
            tables,
            sink,
            workdir=str(workdir),
            cwd=pipeline.root or cwd,
            pythonpath=pipeline.pythonpath,
            input_kinds=kinds,
            on_stage=on_stage,
        )
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
        shutil.rmtree(workdir, ignore_errors=True)
    runner = {"mode": "in-process", "python": sys.executable, "added_by_runner": []}
    return StageRun(outcomes, intermediates, preloaded, runner)


def run_stages_there(
    pipeline: PipelineSpec,
    python: str,
    tables: Mapping[str, Any],
    kinds: Mapping[str, str],
    *,
    cwd: str,
    environ: Mapping[str, str] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> StageRun:
    """Run the stages in another interpreter (``--python``) on pyarrow ``tables`` (it needs no pyarrow)."""
    import pyarrow.parquet as pq

    from envsnap.pipeline.remote import make_workdir, run_in_interpreter

    workdir = make_workdir()
    try:
        remote = run_in_interpreter(
            pipeline,
            python,
            tables,
            kinds,
            workdir=workdir,
            cwd=pipeline.root or cwd,
            environ=environ,
            on_stage=on_stage,
        )
        intermediates = {
            path.stem: intermediate_of(pq.read_table(path), path.read_bytes()) for path in remote.intermediates
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    runner = {
        "mode": "subprocess",
        "python": remote.python,
        "added_by_runner": [
            f"{PACKAGE} (the stage runner, stdlib only; its private directory is appended at the end of sys.path)"
        ]
        if remote.added_to_sys_path
        else [],
    }
    return StageRun(remote.outcomes, intermediates, remote.preloaded_modules, runner)
