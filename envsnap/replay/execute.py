"""Run a :class:`ReplayPlan`: build the runtime, rerun the stages in it, compare every intermediate.

The stages run in the replayed runtime through the same stdlib-only stage runner as ``envsnap run
--python``, shipped the same way (:mod:`envsnap._target`): its package is installed into a private
directory, mounted in the container, that is APPENDED to the end of ``sys.path``
(so it never shadows a captured package; the report lists it as the one thing added), the recorded
inputs (and, for ``--from``, the recorded intermediates before it) go in as parquet files on read-only
mounts, and the intermediates come back on the only writable mount. Each one is compared with the
recorded member (same sha256 → identical without decoding; else the streaming table differ).

A run the kernel killed at the mirrored memory limit, a stage that tried to reach the network (replays
have none), and a timeout are named as such; anything else that stops the runner is an infrastructure
error, raised, never guessed at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envsnap._target import TargetError, command
from envsnap.diff.model import TableDiff
from envsnap.errors import EnvsnapError
from envsnap.pipeline.remote import RUNNER_MAIN
from envsnap.replay import fidelity as fidelity_mod
from envsnap.replay.command import CommandReplay, place_code, run_command_stage
from envsnap.replay.engines.base import Engine, Exit, Prepared
from envsnap.replay.layout import Layout, copy_runner, run_environment, write_job
from envsnap.replay.plan import PlannedStage, ReplayPlan, resolve_base
from envsnap.replay.source import SourceTree, prepare_source
from envsnap.snapshot.model import Snapshot

__all__ = ["NORMALIZED", "Progress", "ReplayError", "ReplayReport", "StageReplay", "execute", "resolved_base", "shell"]

_NETWORK = re.compile(
    r"gaierror|Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"NewConnectionError|ConnectionError|URLError|No route to host|Connection refused|"
    r"Failed to establish a new connection|getaddrinfo",
    re.IGNORECASE,
)


#: ``out/`` file listing each replayed stage's outputs in recorded form (one JSON line per stage):
#: ``{"index", "name", "outputs": [{"label", "file", "value"}]}``.
NORMALIZED = "outputs.jsonl"


class ReplayError(EnvsnapError):
    """The replay could not run for infrastructure reasons (the runner never reported)."""


@dataclass(frozen=True)
class StageReplay:
    """One stage of the replay: what happened and how its intermediate compares with the recording.

    ``status``: ``match`` (identical, equal or within tolerance), ``diverged`` (the intermediate
    differs), ``failed`` (the stage raised, or was killed: ``failure`` says ``exception``, ``network``,
    ``oom``, ``timeout`` or ``not-recorded``), ``not-run`` (after a failure), ``recorded`` (stood in for
    by the recorded intermediate, ``--from``) or ``skipped`` (outside ``--stage``/``--until``).
    """

    index: int
    name: str
    status: str
    #: The compare of the stage's output (for several outputs, the first that diverged, else the first).
    table: TableDiff | None = None
    rows: int | None = None
    wall_time_s: float | None = None
    failure: str | None = None
    error: str | None = None
    #: Failed in the replay as in the recording (the same exception type): a reproduced failure.
    as_recorded: bool = False
    #: Every output compared, one per tuple element (``NAME.0``, ``NAME.1``, ...); empty for kind none.
    outputs: tuple[TableDiff, ...] = ()
    #: What the stage returned in the replay (pandas, numpy, dict, tuple, none, ...), when the runner said.
    returned: str | None = None


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did and found."""

    plan: ReplayPlan
    engine: str
    prepared: Prepared
    source: str
    source_notes: tuple[str, ...]
    stages: tuple[StageReplay, ...]
    added_to_sys_path: tuple[str, ...]
    fidelity: tuple[fidelity_mod.Difference, ...] | None
    seconds_to_first_stage: float | None
    seconds_total: float
    output_tail: str = ""
    notes: tuple[str, ...] = field(default=())
    #: A command snapshot's replay (its one stage is "command").
    command: CommandReplay | None = None

    @property
    def first_diverging_stage(self) -> str | None:
        return next((s.name for s in self.stages if s.status in ("diverged", "failed") and not s.as_recorded), None)

    @property
    def verdict(self) -> str:
        """``reproduced`` (every intermediate matches, or the job failed the same way) or ``diverged``."""
        return "diverged" if self.diverged else "reproduced"

    @property
    def diverged(self) -> bool:
        return self.first_diverging_stage is not None

    @property
    def exit_code(self) -> int:
        return 1 if self.diverged else 0


Progress = Callable[[str, str], None]


def _quiet(_kind: str, _message: str) -> None:
    return None


def _compare(snap: Snapshot, member: str, label: str, produced: Path, rtol: float, atol: float) -> TableDiff:
    from envsnap.core.hashing import hash_file
    from envsnap.diff.tables import diff_parquet

    if snap.manifest.members[member].sha256 == hash_file(str(produced))[0]:
        return TableDiff(name=label, status="identical", note="same sha256 as the recorded intermediate")
    with snap.open_member(member) as recorded:
        return diff_parquet(recorded, str(produced), name=label, rtol=rtol, atol=atol)


def _recorded_kinds(snap: Snapshot, stage: PlannedStage) -> dict[str, str]:
    """Output label -> the kind the recording says it was (the stage's own, and each tuple element's)."""
    record = snap.read_json(stage.record) if stage.record else {}
    value = record.get("value") if isinstance(record.get("value"), dict) else None
    if value is None:
        return {}
    kinds = {stage.name: str(value.get("kind"))}
    for element in value.get("elements") or () if value.get("kind") == "tuple" else ():
        inner = element.get("value") if isinstance(element, dict) else None
        if isinstance(inner, dict) and inner.get("kind"):
            kinds[str(element.get("label"))] = str(inner["kind"])
    return kinds


@dataclass(frozen=True)
class _Produced:
    """What a replayed stage returned: its kind (None when the runner did not say) and its outputs."""

    kind: str | None
    #: label -> (the parquet file, or None when the output has no table form; its kind)
    outputs: dict[str, tuple[Path | None, str | None]]


def _produced(layout: Layout, stage: PlannedStage, outcome: dict[str, Any]) -> _Produced:
    """Normalize what the runner wrote for ``stage`` (any form: parquet, npy, columns, json) to
    ``out/NN-LABEL.parquet`` files, and say what came back."""
    from envsnap.core.redact import scrub_data
    from envsnap.pipeline.values import normalize

    out = layout.work / "out"
    value = outcome.get("value")
    if not isinstance(value, dict):  # a runner killed later: only what it had written, as parquet
        path = out / f"{stage.index:02d}-{stage.name}.parquet"
        return _Produced(None, {stage.name: (path, None)} if path.is_file() else {})
    produced: dict[str, tuple[Path | None, str | None]] = {}
    listed = []
    # A dict's data is redacted as the capture redacted it, so that the same value compares equal.
    for output in normalize(out, outcome, scrub_data):
        kind = output.value.get("kind") if isinstance(output.value, dict) else None
        produced[output.label] = (output.path, str(kind) if kind else None)
        listed.append({"label": output.label, "file": output.path.name, "value": output.value})
    # What each stage returned, in its recorded form: read by shrink to rewrite the stage records.
    with (out / NORMALIZED).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"index": stage.index, "name": stage.name, "outputs": listed}, default=str) + "\n")
    return _Produced(str(value.get("kind") or "") or None, produced)


def _compare_outputs(
    snap: Snapshot, stage: PlannedStage, produced: _Produced, rtol: float, atol: float
) -> tuple[tuple[TableDiff, ...], str | None]:
    """Each recorded output against the replayed one with the same label; and why the stage diverged when
    it is not about the values (another kind returned, an output missing on one side)."""
    recorded_kinds = _recorded_kinds(snap, stage)
    recorded = dict(stage.recorded_outputs)
    if stage.recorded_kind is not None and produced.kind is not None and stage.recorded_kind != produced.kind:
        return (), f"returned {produced.kind}, recorded {stage.recorded_kind}"
    tables: list[TableDiff] = []
    reason = None
    for label in [*recorded, *(k for k in produced.outputs if k not in recorded)]:
        member = recorded.get(label)
        path, kind = produced.outputs.get(label, (None, None))
        was = recorded_kinds.get(label)
        if was is not None and kind is not None and was != kind:
            tables.append(TableDiff(name=label, status="different", note=f"returned {kind}, recorded {was}"))
            reason = reason or f"{label} returned {kind}, recorded {was}"
        elif member is None:
            tables.append(TableDiff(name=label, status="incomparable", note="the recording has no such output"))
            reason = reason or f"{label}: not in the recording"
        elif path is None or not path.is_file():
            tables.append(TableDiff(name=label, status="incomparable", note="the replay did not produce it"))
            reason = reason or f"{label}: not produced in the replay"
        else:
            tables.append(_compare(snap, member, label, path, rtol, atol))
    return tuple(tables), reason


def _failure_kind(error: dict[str, Any] | None) -> str:
    text = f"{(error or {}).get('type')} {(error or {}).get('message')} {(error or {}).get('traceback') or ''}"
    return "network" if _NETWORK.search(text) else "exception"


def _stage_results(
    snap: Snapshot,
    plan: ReplayPlan,
    layout: Layout,
    report: dict[str, Any] | None,
    exit_: Exit,
    rtol: float,
    atol: float,
) -> list[StageReplay]:
    outcomes = {int(o["index"]): o for o in (report or {}).get("stages") or []}
    started = _progress(layout)
    results: list[StageReplay] = []
    stopped = False
    for stage in plan.stages:
        if stage.action == "recorded":
            results.append(StageReplay(stage.index, stage.name, "recorded"))
            continue
        if stage.action == "skip":
            results.append(StageReplay(stage.index, stage.name, "skipped"))
            continue
        outcome = outcomes.get(stage.index)
        written = layout.work / "out" / f"{stage.index:02d}-{stage.name}.parquet"
        if outcome is None and report is None and written.is_file() and started and started[-1]["index"] != stage.index:
            # The runner was killed later (memory, timeout) and never wrote its report, but this stage
            # finished: its intermediate was written before the next stage began. Compare it.
            outcome = {"status": "ok", "rows": None, "wall_time_s": None}
        if outcome is None:
            if not stopped and report is None and started and started[-1]["index"] == stage.index:
                stopped = True
                if exit_.oom_killed:
                    limit = f" of {exit_.memory_limit} bytes" if exit_.memory_limit else ""
                    results.append(
                        StageReplay(
                            stage.index,
                            stage.name,
                            "failed",
                            failure="oom",
                            error=f"out of memory: killed at the mirrored memory limit{limit}",
                        )
                    )
                    continue
                if exit_.timed_out:
                    results.append(StageReplay(stage.index, stage.name, "failed", failure="timeout", error="timed out"))
                    continue
            results.append(StageReplay(stage.index, stage.name, "not-run"))
            continue
        if outcome["status"] != "ok":
            error = outcome.get("error") or {}
            kind = _failure_kind(error)
            message = str(error.get("message") or "failed")
            if kind == "network":
                message = (
                    f"network isolation: the stage tried to reach the network, which replays do not have ({message})"
                )
            recorded_type = _recorded_error_type(snap, stage)
            same = recorded_type is not None and recorded_type == error.get("type")
            if same:
                message = f"failed as recorded ({recorded_type}): {message}"
            results.append(
                StageReplay(stage.index, stage.name, "failed", failure=kind, error=message, as_recorded=same)
            )
            continue
        if stage.recorded_status != "ok":
            results.append(
                StageReplay(
                    stage.index,
                    stage.name,
                    "failed",
                    rows=outcome.get("rows"),
                    failure="not-recorded",
                    error=f"ran here, but it {stage.recorded_status} in the recording",
                )
            )
            continue
        produced = _produced(layout, stage, outcome)
        if not stage.recorded_outputs and stage.recorded_kind != "none":
            results.append(
                StageReplay(
                    stage.index,
                    stage.name,
                    "diverged",
                    rows=outcome.get("rows"),
                    failure="not-recorded",
                    error="ran here, but the recording kept no output of it",
                    returned=produced.kind,
                )
            )
            continue
        tables, reason = _compare_outputs(snap, stage, produced, rtol, atol)
        diverged = reason is not None or any(t.diverged for t in tables)
        results.append(
            StageReplay(
                stage.index,
                stage.name,
                "diverged" if diverged else "match",
                table=next((t for t in tables if t.diverged), tables[0] if tables else None),
                rows=outcome.get("rows"),
                wall_time_s=outcome.get("wall_time_s"),
                error=reason,
                outputs=tables,
                returned=produced.kind,
            )
        )
    return results


def _recorded_error_type(snap: Snapshot, stage: PlannedStage) -> str | None:
    """The exception type the stage failed with in the recording (None: it did not fail, or no record)."""
    if stage.recorded_status != "failed":
        return None
    pipeline = snap.read_json("pipeline/pipeline.json")
    entry = next((s for s in pipeline.get("stages") or [] if s.get("index") == stage.index), None)
    record = (entry or {}).get("record")
    if not record or record not in snap:
        return None
    error = snap.read_json(record).get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return str(kind) if kind else None


def _progress(layout: Layout) -> list[dict[str, Any]]:
    path = layout.work / "out" / "progress.log"
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def resolved_base(plan: ReplayPlan, engine: Engine, say: Progress) -> ReplayPlan:
    """The plan on the first official base candidate the engine can pull, when the engine can tell
    (``base_unavailable(ref)``: why a reference cannot be pulled, or None); the fallback is said."""
    unavailable = getattr(engine, "base_unavailable", None)
    if not plan.base_candidates or not callable(unavailable):
        return plan
    resolved = resolve_base(plan, unavailable)
    if resolved.base_fallback:
        say("note", f"base image: {resolved.base_fallback}")
    return resolved


def execute(
    snap: Snapshot,
    plan: ReplayPlan,
    engine: Engine,
    *,
    source: str | None = None,
    repo: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    fidelity: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
    keep: str | None = None,
) -> ReplayReport:
    """Build the runtime for ``plan`` with ``engine``, rerun its stages, compare, and check fidelity."""
    say = progress or _quiet
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="envsnap-replay-"))
    try:
        say("step", f"plan: {len(plan.packages)} packages, Python {plan.python_version}, base {plan.base_image}")
        if plan.mode == "environment":
            raise ReplayError(
                f"{plan.snapshot}: the snapshot records an environment, not a job to rerun (no pipeline, no command)",
                hint="use --shell, `envsnap export --dockerfile DIR SNAP` or `envsnap replay SNAP -- COMMAND...`",
            )
        tree = prepare_source(snap, work, source=source, repo=repo)
        say("step", f"source: {tree.how}")
        if plan.mode == "command":
            tree = place_code(tree, work)
        plan = resolved_base(plan, engine, say)
        prepared = engine.prepare(plan, work / "context", say)
        layout = Layout(work, engine.isolates, tree, src_writable=plan.mode == "command")
        copy_runner(layout)
        env = run_environment(plan, engine.isolates)
        replayed_command: CommandReplay | None = None
        report: dict[str, Any] | None
        if plan.mode == "command":
            replayed_command, exit_ = run_command_stage(
                snap, plan, engine, prepared, layout, rtol=rtol, atol=atol, timeout=timeout, say=say
            )
            report = None
        else:
            job = write_job(snap, plan, layout)
            names = ", ".join(s.name for s in plan.run_stages) or "none"
            say("step", f"running stages in the replay: {names}")
            argv = command(prepared.python, layout.inner("runner"), RUNNER_MAIN, f"{layout.inner('job')}/job.json")
            exit_ = engine.execute(
                prepared, argv, plan=plan, mounts=layout.mounts(), cwd=job["cwd"], env=env, timeout=timeout
            )
            report_path = work / "out" / "report.json"
            report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
        mounts = layout.mounts()
        if report is not None and report.get("fatal"):
            fatal = report["fatal"]
            raise ReplayError(f"the stage runner in the replay failed: {fatal.get('type')}: {fatal.get('message')}")
        if report is None and replayed_command is None and not (exit_.oom_killed or exit_.timed_out):
            last = [ln for ln in exit_.output.splitlines() if ln.strip()][-1:] or ["no output"]
            raise ReplayError(
                f"the replay exited {exit_.returncode} without a report: {last[0][:300]}",
                hint="rerun with --keep DIR to inspect the job, or --shell to look around",
            )
        progress_lines = _progress(layout)
        first = progress_lines[0]["started_at"] - started if progress_lines else None
        if replayed_command is not None:
            stages = [_command_stage(replayed_command)]
            first = None
        else:
            stages = _stage_results(snap, plan, layout, report, exit_, rtol, atol)
        differences = None
        if fidelity:
            say("step", "fidelity: inspecting the replayed runtime from inside")
            probe = engine.execute(
                prepared,
                fidelity_mod.probe_command(prepared.python, layout.inner("runner"), layout.inner("out"), plan.env),
                plan=plan,
                mounts=mounts,
                cwd="/" if engine.isolates else str(work),
                env=env,
                timeout=120,
            )
            try:
                facts = fidelity_mod.read_facts(
                    prepared.python, probe.returncode, probe.output, work / "out" / fidelity_mod.FACTS_FILE
                )
            except TargetError as exc:
                raise ReplayError(f"{exc} (in the replay)") from exc
            differences = tuple(fidelity_mod.differences(snap, plan, facts, engine=engine.name))
        added = (f"{layout.inner('runner')} (the envsnap stage runner, stdlib only, appended to sys.path)",)
        if replayed_command is not None:
            boot = f"{layout.inner('runner')}/envsnap-jobhook"
            added = (f"{boot} (the envsnap job bootstrap, first on PYTHONPATH; it takes itself off sys.path)",)
        if keep:
            shutil.copytree(work, keep, dirs_exist_ok=True)
        return ReplayReport(
            plan=plan,
            engine=engine.name,
            prepared=prepared,
            source=tree.how,
            source_notes=tree.notes,
            stages=tuple(stages),
            added_to_sys_path=added if (report or {}).get("added_to_sys_path") or report is None else (),
            command=replayed_command,
            fidelity=differences,
            seconds_to_first_stage=first,
            seconds_total=time.time() - started,
            output_tail=exit_.output,
            notes=prepared.notes
            + fidelity_mod.supply_notes(snap, plan, tree, placed=tuple((layout.extra_files or {}).values()))
            + (replayed_command.notes if replayed_command is not None else ()),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _command_stage(replayed: CommandReplay) -> StageReplay:
    ok = replayed.verdict == "reproduced"
    return StageReplay(
        1,
        "command",
        "match" if ok else ("failed" if replayed.failure or replayed.replayed_exit_status else "diverged"),
        wall_time_s=replayed.duration_s,
        failure=None if ok else ("timeout" if replayed.failure == "timed out" else "oom" if replayed.failure else None),
        error=replayed.reason,
        as_recorded=ok and replayed.replayed_exit_status != 0,
    )


def _code_tree(snap: Snapshot, plan: ReplayPlan, work: Path, source: str | None, repo: str | None) -> SourceTree | None:
    """The job's code for the replay; for an environment-only snapshot none is needed: without a recorded git
    commit (and no ``--source``) the runtime runs without the code."""
    if plan.mode != "environment" or source is not None:
        return prepare_source(snap, work, source=source, repo=repo)
    git = snap.section("git") if "env/git.json" in snap else {}
    if not (isinstance(git, dict) and git.get("present") and git.get("commit") and git.get("root")):
        return None
    return prepare_source(snap, work, repo=repo)


def _recorded_cwd(snap: Snapshot) -> str | None:
    job = snap.read_json("job/command.json") if "job/command.json" in snap else {}
    cwd = job.get("cwd") if isinstance(job, dict) else None
    return cwd if isinstance(cwd, str) and cwd.startswith("/") else None


def shell(
    snap: Snapshot,
    plan: ReplayPlan,
    engine: Engine,
    run: Callable[[list[str], dict[str, str], str | None], int],
    *,
    command: list[str] | None = None,
    tty: bool = True,
    source: str | None = None,
    repo: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Prepare the replay as :func:`execute` does, then hand an interactive shell in it (or ``command``)
    to ``run(argv, env, cwd)``, whose exit status is returned.

    For a pipeline the job (inputs, runner, ``job.json``) is in place, so ``python -c "..."`` or the runner
    can be started by hand; ``run`` is the caller's (the CLI runs it on the terminal, stdin,
    stdout and stderr passed through). An environment-only snapshot has no job: the working directory is
    the recorded one inside the recorded code when there is code, else ``/tmp`` (containers) or the
    caller's (venv).
    """
    say = progress or _quiet
    work = Path(tempfile.mkdtemp(prefix="envsnap-replay-"))
    try:
        tree = _code_tree(snap, plan, work, source, repo)
        if tree is not None:
            say("step", f"source: {tree.how}")
        plan = resolved_base(plan, engine, say)
        prepared = engine.prepare(plan, work / "context", say)
        layout = Layout(work, engine.isolates, tree)
        copy_runner(layout)
        env = run_environment(plan, engine.isolates)
        if plan.mode == "pipeline":
            job = write_job(snap, plan, layout)
            cwd = job["cwd"]
            env["ENVSNAP_REPLAY_JOB"] = f"{layout.inner('job')}/job.json"
            where = f"; the job is at {env['ENVSNAP_REPLAY_JOB']}"
        else:
            recorded = _recorded_cwd(snap) if plan.mode == "environment" else None
            root = plan.pipeline_root or (tree.original if tree is not None else None)
            if tree is not None:
                inside = recorded is not None and root is not None and tree.map_path(recorded) != recorded
                cwd = layout.recorded(recorded if inside and recorded is not None else (root or tree.original))
            else:
                cwd = "/tmp" if engine.isolates else os.getcwd()  # noqa: S108 - the container's tmpfs
            where = f"; working directory {cwd}"
        argv, shell_env = engine.shell_command(
            prepared, plan=plan, mounts=layout.mounts(), cwd=cwd, env=env, command=command, tty=tty
        )
        what = "shell" if command is None else "command"
        say("step", f"{what} in {prepared.reference}{where}")
        # A container's working directory is in its argv; the venv engine runs here, in ``cwd``.
        return run(argv, shell_env, None if engine.isolates else cwd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
