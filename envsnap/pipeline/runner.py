"""``run_pipeline``: sample the inputs, run the stages, capture the environment, write ONE snapshot.

Order matters and is deliberate:

1. the data probe samples the inputs (``ctx.samples``);
2. the stages run on the samples — in this process, or in ``--python``'s interpreter through the runner
   script (:mod:`envsnap.pipeline.remote`) — each intermediate turned into parquet and stats right away;
3. then the environment probes run. In-process this means the native and threads probes see the BLAS and
   OpenMP pools the stages actually loaded, and ``job/command.json`` records the failing stage's
   exception;
4. the stage records map the modules each stage imported to distributions (``env/packages.json``).

A failing stage does not raise: it is recorded (error, traceback, the intermediates before it), the
snapshot is still written and :attr:`RunResult.exit_code` is 1. An input that cannot be sampled means no
stage runs; the snapshot records why and the exit code is 3.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap._target.runner.tables import table_kind, to_arrow
from envsnap.capture import build_snapshot, load_probes, run_probes
from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions, SampleOptions, paused_gc
from envsnap.core.redact import scrub_data, scrub_text
from envsnap.pipeline import records
from envsnap.pipeline.execution import StageRun, run_stages_here, run_stages_there
from envsnap.pipeline.types import PipelineError, PipelineSpec
from envsnap.snapshot import canonical
from envsnap.snapshot.manifest import ProbeStatus
from envsnap.snapshot.model import Snapshot

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_NOT_RUN = 3


@dataclass(frozen=True)
class StageResult:
    """How one stage ended: ``status`` ok / failed / not-run; ``error`` = {kind, type, message, traceback}."""

    index: int
    name: str
    kind: str
    status: str
    rows: int | None = None
    wall_time_s: float | None = None
    peak_memory_bytes: int | None = None
    error: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunResult:
    """The written (or in-memory) snapshot and how the run went."""

    snapshot: Snapshot
    pipeline: PipelineSpec
    stages: tuple[StageResult, ...]
    status: str  # ok | failed | not-run
    failed_stage: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        """0 ok, 1 a stage failed (the pipeline's failure, recorded), 3 nothing ran (inputs unusable)."""
        return {"ok": EXIT_OK, "failed": EXIT_STAGE_FAILED}.get(self.status, EXIT_NOT_RUN)


def _input_kind(pipeline: PipelineSpec, source: Any) -> str:
    """In-memory inputs keep their kind; inputs read from files arrive as ``pipeline.accepts`` says."""
    if isinstance(source, (str, os.PathLike)):
        return pipeline.accepts
    return table_kind(source) or "arrow"


def _encode(data: Any) -> bytes:
    return canonical.dumps(scrub_data(data))


def run_pipeline(
    pipeline: PipelineSpec,
    *,
    inputs: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    sampling: SampleOptions | None = None,
    label: str | None = None,
    reproducible: bool = False,
    force: bool = False,
    env_allow: Iterable[str] = (),
    git: bool = True,
    hashes: bool = False,
    artifacts: Iterable[str | os.PathLike[str]] = (),
    lockfiles: Iterable[str | os.PathLike[str]] = (),
    config_files: Iterable[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    argv: Iterable[str] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run ``pipeline`` on sampled ``inputs`` and capture everything into one snapshot.

    ``inputs`` (name -> path, pandas DataFrame or pyarrow Table) replace the pipeline's default inputs of
    the same name. With ``python`` the stages run in that interpreter (its own packages, nothing
    installed there) and its environment is what is captured. With ``output`` the snapshot is written
    there (``*.envsnap`` = zip). ``on_stage`` is called with each stage's outcome dict as it ends.

    Raises :class:`PipelineError` for a pipeline that cannot run as declared,
    :class:`~envsnap.errors.InterpreterError` for a bad ``python`` (or one without pyarrow) and
    :class:`~envsnap.errors.OutputError` for an unusable ``output``, all before any work. A failing
    stage or an unusable input is recorded and reported in the result instead.
    """
    sources = dict(pipeline.inputs)
    for name, source in (inputs or {}).items():
        if pipeline.inputs and name not in pipeline.inputs:
            raise PipelineError(
                pipeline.source,
                f"pipeline {pipeline.name!r} has no input {name!r} (its inputs: {', '.join(sorted(pipeline.inputs))})",
            )
        sources[name] = source
    pipeline.check_inputs(sources)
    if output is not None:
        from envsnap.snapshot.writer import check_destination

        check_destination(Path(output).absolute(), force)
    options = CaptureOptions.build(
        python=python,
        label=label,
        env_allow=env_allow,
        git=git,
        reproducible=reproducible,
        hashes=hashes,
        cwd=cwd,
        argv=argv,
        inputs=sources,
        sampling=sampling,
        artifacts=artifacts,
        lockfiles=lockfiles,
        config_files=config_files,
    )
    factory: Callable[[], target_mod.TargetRuntime]
    if options.python is not None:
        from envsnap.pipeline.remote import check_target, stage_specs

        stage_specs(pipeline, importable=True)  # refuse unimportable functions before any work
        inspected = target_mod.from_interpreter(options.python)
        check_target(options.python, inspected.distributions)
        factory = lambda: inspected  # noqa: E731
    else:
        factory = target_mod.in_process
    ctx = CaptureContext(options, factory)
    probes = load_probes()
    members, statuses = run_probes(ctx, [p for p in probes if p.name == "data"])

    input_names = list(sources)
    missing = [name for name in input_names if name not in ctx.samples]
    not_run: str | None = None
    if missing:
        why = statuses["data"].error if "data" in statuses and statuses["data"].error else "no sample was taken"
        not_run = f"input {missing[0]!r} could not be sampled, so no stage ran: {why}"
        run = StageRun([], {}, [], {"mode": "not-run", "python": None, "added_by_runner": []})
    elif options.python is not None:
        kinds = {name: _input_kind(pipeline, src) for name, src in sources.items()}
        run = run_stages_there(
            pipeline,
            options.python,
            {n: to_arrow(ctx.samples[n]) for n in input_names},
            kinds,
            cwd=options.cwd,
            environ=options.environ,
            on_stage=on_stage,
        )
    else:
        kinds = {name: _input_kind(pipeline, src) for name, src in sources.items()}
        tables = {n: ctx.samples[n] for n in input_names}
        run = run_stages_here(pipeline, tables, kinds=kinds, cwd=options.cwd, on_stage=on_stage)

    error = next((o["error"] for o in run.outcomes if o.get("error")), None)
    if error is not None:
        ctx.options = dataclasses.replace(
            options,
            failure={"type": error["type"], "message": error["message"], "traceback": error["traceback"] or ""},
        )
    with paused_gc():
        env_members, env_statuses = run_probes(ctx, [p for p in probes if p.name != "data"])
    members.update(env_members)
    statuses.update(env_statuses)

    mapping = records.distributions_by_module(ctx.results.get("packages"))
    received = records.received_inputs(pipeline, input_names)
    stage_members: list[str] = []
    results: list[StageResult] = []
    for outcome in run.outcomes:
        index = outcome["index"]
        stem = records.member_stem(index, outcome["name"])
        intermediate = run.intermediates.get(index)
        parquet_member = f"{stem}.parquet" if intermediate is not None else None
        if intermediate is not None and parquet_member is not None:
            members[parquet_member] = intermediate.parquet
            stage_members.append(parquet_member)
        record = records.stage_record(
            outcome,
            pipeline.stages[index - 1].to_dict(),
            received=received[index - 1],
            intermediate=intermediate,
            parquet_member=parquet_member,
            mapping=mapping,
            reproducible=reproducible,
        )
        members[f"{stem}.json"] = _encode(record)
        stage_members.append(f"{stem}.json")
        memory = outcome.get("memory") or {}
        results.append(
            StageResult(
                index=index,
                name=outcome["name"],
                kind=outcome["kind"],
                status=outcome["status"],
                rows=intermediate.rows if intermediate is not None else None,
                wall_time_s=outcome.get("wall_time_s"),
                peak_memory_bytes=memory.get("peak_rss_delta_bytes", memory.get("peak_rss_bytes")),
                error=outcome.get("error"),
            )
        )
    ran = {r.index for r in results}
    results.extend(
        StageResult(index=i, name=s.name, kind=s.kind, status="not-run")
        for i, s in enumerate(pipeline.stages, 1)
        if i not in ran
    )
    runner_facts = dict(run.runner)
    runner_facts["preloaded_distributions"] = records.distribution_names(run.preloaded_modules, mapping)
    document = records.pipeline_record(
        pipeline, input_names=input_names, outcomes=run.outcomes, not_run_reason=not_run, runner=runner_facts
    )
    members[records.PIPELINE_MEMBER] = _encode(document)
    stage_members.append(records.PIPELINE_MEMBER)
    statuses["pipeline"] = ProbeStatus(
        "ok" if document["status"] == "ok" else "error",
        None if document["status"] == "ok" else scrub_text(str(document["error"]))[:2000],
        tuple(sorted(stage_members)),
    )
    snap = build_snapshot(ctx, members, statuses)
    if output is not None:
        written = snap.write(output, force=force)
        snap.path = str(written)
    return RunResult(
        snapshot=snap,
        pipeline=pipeline,
        stages=tuple(results),
        status=document["status"],
        failed_stage=document["failed_stage"],
        error=scrub_text(document["error"]) if document["error"] else None,
    )
