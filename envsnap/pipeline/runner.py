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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envsnap._target.runner import values as value_kinds
from envsnap._target.runner.tables import to_arrow
from envsnap.capture import CaptureSteps, capture_snapshot
from envsnap.capture.base import CaptureArguments, CaptureContext, CaptureOptions
from envsnap.core.redact import scrub_data, scrub_text
from envsnap.pipeline import records
from envsnap.pipeline.execution import StageRun, run_stages_here, run_stages_there
from envsnap.pipeline.types import PipelineError, PipelineSpec
from envsnap.snapshot import canonical
from envsnap.snapshot.manifest import ProbeStatus
from envsnap.snapshot.model import Snapshot

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["EXIT_NOT_RUN", "EXIT_OK", "EXIT_STAGE_FAILED", "RunResult", "StageResult", "run_pipeline"]

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
        """0 ok, 1 a stage failed (the pipeline's failure, recorded), 3 nothing ran (inputs unusable) or a
        stage returned a value envsnap cannot record (a generator, an object array: bad input, not the job's
        failure)."""
        if self.status == "failed" and any(
            s.status == "failed" and (s.error or {}).get("kind") == "output" for s in self.stages
        ):
            return EXIT_NOT_RUN
        return {"ok": EXIT_OK, "failed": EXIT_STAGE_FAILED}.get(self.status, EXIT_NOT_RUN)


def _input_kind(pipeline: PipelineSpec, source: Any) -> str:
    """In-memory inputs keep their kind; inputs read from files arrive as ``pipeline.accepts`` says."""
    if isinstance(source, (str, os.PathLike)):
        return pipeline.accepts
    try:
        kind = value_kinds.kind_of(source)
    except value_kinds.UnsupportedValue:
        return "arrow"
    return kind if kind in value_kinds.ACCEPTS else "arrow"


def _encode(data: Any) -> bytes:
    return canonical.dumps(scrub_data(data))


class _PipelineSteps(CaptureSteps):
    """The pipeline's part of the capture: the stages run between the data probe and the others."""

    first = ("data",)

    def __init__(
        self,
        pipeline: PipelineSpec,
        sources: Mapping[str, Any],
        on_stage: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.pipeline = pipeline
        self.sources = dict(sources)
        self.on_stage = on_stage
        self.run = StageRun([], {}, [], {"mode": "not-run", "python": None, "added_by_runner": []})
        self.not_run: str | None = None
        self.results: list[StageResult] = []
        self.document: dict[str, Any] = {}

    def prepare(self, options: CaptureOptions) -> None:
        if options.python is not None:
            from envsnap.pipeline.remote import stage_specs

            stage_specs(self.pipeline, importable=True)  # refuse unimportable functions before any work

    def between(self, ctx: CaptureContext, statuses: Mapping[str, ProbeStatus]) -> None:
        options = ctx.options
        pipeline = self.pipeline
        missing = [name for name in self.sources if name not in ctx.samples]
        if missing:
            why = statuses["data"].error if "data" in statuses and statuses["data"].error else "no sample was taken"
            self.not_run = f"input {missing[0]!r} could not be sampled, so no stage ran: {why}"
            return
        kinds = {name: _input_kind(pipeline, src) for name, src in self.sources.items()}
        if options.python is not None:
            self.run = run_stages_there(
                pipeline,
                options.python,
                {n: to_arrow(ctx.samples[n]) for n in self.sources},
                kinds,
                cwd=options.cwd,
                environ=options.environ,
                on_stage=self.on_stage,
            )
        else:
            tables = {n: ctx.samples[n] for n in self.sources}
            self.run = run_stages_here(pipeline, tables, kinds=kinds, cwd=options.cwd, on_stage=self.on_stage)
        code_files = tuple(
            (str(o["name"]), tuple(o.get("imported_files") or ())) for o in self.run.outcomes if o.get("imported_files")
        )
        options = dataclasses.replace(options, code_files=code_files)
        error = next((o["error"] for o in self.run.outcomes if o.get("error")), None)
        if error is not None:
            options = dataclasses.replace(
                options,
                failure={"type": error["type"], "message": error["message"], "traceback": error["traceback"] or ""},
            )
        ctx.options = options

    def extra_members(self, ctx: CaptureContext) -> tuple[dict[str, bytes], dict[str, ProbeStatus]]:
        """The stage records, their intermediates and ``pipeline.json``."""
        pipeline, run = self.pipeline, self.run
        input_names = list(self.sources)
        mapping = records.distributions_by_module(ctx.results.get("packages"))
        received = records.received_inputs(pipeline, input_names)
        code = records.CodeFiles.of(ctx.results.get("source_files"), ctx.results.get("git"), ctx.options.code_files)
        members: dict[str, bytes] = {}
        stage_members: list[str] = []
        for stem, intermediate in run.intermediates.items():
            members[f"{records.STAGES_DIR}/{stem}.parquet"] = intermediate.parquet
            stage_members.append(f"{records.STAGES_DIR}/{stem}.parquet")
        for outcome in run.outcomes:
            index = outcome["index"]
            stem = records.member_stem(index, outcome["name"])
            record = records.stage_record(
                outcome,
                pipeline.stages[index - 1].to_dict(),
                received=received[index - 1],
                intermediates=run.intermediates,
                mapping=mapping,
                reproducible=ctx.options.reproducible,
                files=code.of_stage(outcome),
            )
            kept = run.intermediates.get(f"{index:02d}-{outcome['name']}")
            members[f"{stem}.json"] = _encode(record)
            stage_members.append(f"{stem}.json")
            memory = outcome.get("memory") or {}
            self.results.append(
                StageResult(
                    index=index,
                    name=outcome["name"],
                    kind=outcome["kind"],
                    status=outcome["status"],
                    rows=kept.rows if kept is not None else None,
                    wall_time_s=outcome.get("wall_time_s"),
                    peak_memory_bytes=memory.get("peak_rss_delta_bytes", memory.get("peak_rss_bytes")),
                    error=outcome.get("error"),
                )
            )
        ran = {r.index for r in self.results}
        self.results.extend(
            StageResult(index=i, name=s.name, kind=s.kind, status="not-run")
            for i, s in enumerate(pipeline.stages, 1)
            if i not in ran
        )
        runner_facts = dict(run.runner)
        runner_facts["preloaded_distributions"] = records.distribution_names(run.preloaded_modules, mapping)
        document = records.pipeline_record(
            pipeline, input_names=input_names, outcomes=run.outcomes, not_run_reason=self.not_run, runner=runner_facts
        )
        self.document = document
        members[records.PIPELINE_MEMBER] = _encode(document)
        stage_members.append(records.PIPELINE_MEMBER)
        status = ProbeStatus(
            "ok" if document["status"] == "ok" else "error",
            None if document["status"] == "ok" else scrub_text(str(document["error"]))[:2000],
            tuple(sorted(stage_members)),
        )
        return members, {"pipeline": status}


def run_pipeline(
    pipeline: PipelineSpec,
    *,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
    **arguments: Unpack[CaptureArguments],
) -> RunResult:
    """Run ``pipeline`` on sampled ``inputs`` and capture everything into one snapshot.

    ``inputs`` (name -> path, pandas DataFrame or pyarrow Table) replace the pipeline's default inputs of
    the same name. With ``python`` the stages run in that interpreter (its own packages, nothing
    installed there) and its environment is what is captured. With ``output`` the snapshot is written
    there (``*.envsnap`` = zip). ``on_stage`` is called with each stage's outcome dict as it ends. The
    other keyword arguments are those of :func:`envsnap.capture.capture`
    (:class:`~envsnap.capture.base.CaptureArguments`).

    Raises :class:`PipelineError` for a pipeline that cannot run as declared,
    :class:`~envsnap.errors.InterpreterError` for a bad ``python`` (or one without pyarrow) and
    :class:`~envsnap.errors.OutputError` for an unusable ``output``, all before any work. A failing
    stage or an unusable input is recorded and reported in the result instead.
    """
    sources = dict(pipeline.inputs)
    for name, source in (arguments.get("inputs") or {}).items():
        if pipeline.inputs and name not in pipeline.inputs:
            raise PipelineError(
                pipeline.source,
                f"pipeline {pipeline.name!r} has no input {name!r} (its inputs: {', '.join(sorted(pipeline.inputs))})",
            )
        sources[name] = source
    pipeline.check_inputs(sources)
    arguments["inputs"] = sources
    steps = _PipelineSteps(pipeline, sources, on_stage)
    snap = capture_snapshot(CaptureOptions.build(**arguments), output, force=force, steps=steps)
    document = steps.document
    return RunResult(
        snapshot=snap,
        pipeline=pipeline,
        stages=tuple(steps.results),
        status=document["status"],
        failed_stage=document["failed_stage"],
        error=scrub_text(document["error"]) if document["error"] else None,
    )
