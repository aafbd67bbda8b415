"""Where a replay's files live, on the host and in the runtime, and the job the stage runner reads.

A replay's private work directory holds ``runner/`` (envsnap's shipped code, :mod:`envsnap._target`:
the stdlib-only stage runner and the fidelity probe), ``job/`` (``job.json``
and the recorded inputs as parquet), ``out/`` (the new intermediates, ``report.json``, ``progress.log``)
and ``scratch/``. In a container they are mounted under ``/opt/envsnap`` (only ``out`` and ``scratch``
writable) and the pipeline's code at its recorded path; the venv engine uses the host paths as they are.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap._target import install
from envsnap.errors import EnvsnapError
from envsnap.replay.engines.base import Mount
from envsnap.replay.plan import PlannedStage, ReplayPlan
from envsnap.replay.source import SourceTree
from envsnap.snapshot.model import Snapshot

__all__ = ["JobError", "Layout", "copy_runner", "run_environment", "write_job"]


class JobError(EnvsnapError):
    """The snapshot lacks something the job needs (an input that was not sampled)."""


INNER = "/opt/envsnap"
#: Container paths the pipeline's code is never mounted over.
_RESERVED = (
    "/opt/venv",
    "/opt/envsnap",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/tmp",  # noqa: S108 - a path inside the container
)


def _inner_root(original: str) -> str:
    if (
        not original.startswith("/")
        or original == "/"
        or any(original == r or original.startswith(r + "/") for r in _RESERVED)
    ):
        return "/src"
    return original


@dataclass
class Layout:
    """Host directories of one replay and where the runtime sees them."""

    work: Path
    isolates: bool
    source: SourceTree | None
    src_inner: str = ""
    #: Mount the code writable (a private copy: a command replay writes its outputs into it).
    src_writable: bool = False
    #: Recorded inputs outside the code tree (host file -> the recorded absolute path), containers only.
    extra_files: dict[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("runner", "job", "out", "scratch"):
            (self.work / name).mkdir(parents=True, exist_ok=True)
        # The container user is not the host user: the two writable mounts must accept its writes.
        # They live inside a private 0700 directory, so nobody else on the host can reach them.
        os.chmod(self.work / "out", 0o777)  # noqa: S103
        os.chmod(self.work / "scratch", 0o777)  # noqa: S103
        if self.source is not None:
            self.src_inner = _inner_root(self.source.original) if self.isolates else str(self.source.host)

    def inner(self, name: str) -> str:
        return f"{INNER}/{name}" if self.isolates else str(self.work / name)

    def recorded(self, path: str) -> str:
        """A path as recorded at capture time, as the runtime sees it."""
        return path if self.source is None else self.source.map_path(path, self.src_inner)

    def mounts(self) -> list[Mount]:
        if not self.isolates:
            return []
        mounts = [
            Mount(str(self.work / "runner"), self.inner("runner")),
            Mount(str(self.work / "job"), self.inner("job")),
            Mount(str(self.work / "out"), self.inner("out"), writable=True),
            Mount(str(self.work / "scratch"), self.inner("scratch"), writable=True),
        ]
        if self.source is not None:
            mounts.append(Mount(str(self.source.host), self.src_inner, writable=self.src_writable))
        for host, inner in sorted((self.extra_files or {}).items()):
            mounts.append(Mount(host, inner))
        return mounts


def copy_runner(layout: Layout) -> None:
    """Install envsnap's shipped code (the stage runner, the fidelity probe) in ``runner/``, which the
    runtime sees at ``inner("runner")``."""
    install(layout.work / "runner")


#: Value kinds the runner rebuilds from a parquet file (``kind`` of a job input).
_PARQUET_KINDS = ("pandas", "arrow", "polars", "numpy")


#: Recorded values the runner rebuilds from their table form (``value`` facts beside them).
_REBUILT_KINDS = (*_PARQUET_KINDS, "series", "sparse", "records")


def _input_kind(snap: Snapshot, name: str, accepts: str) -> str:
    member = f"data/inputs/{name}.json"
    record = snap.read_json(member) if member in snap else {}
    kind = str((record.get("source") or {}).get("kind") or "")
    return kind if kind in _PARQUET_KINDS else accepts


def _value_file(
    snap: Snapshot, layout: Layout, stem: str, value: dict[str, Any], member: str | None, accepts: str
) -> dict[str, Any] | None:
    """One recorded value as a job input file (``job/STEM.parquet``, a dict's ``job/STEM.json``) and its
    kind; None for what cannot be rebuilt from its record (an estimator, a tuple as a whole, nothing kept)."""
    kind = str(value.get("kind") or "")
    if kind == "dict":
        dest = layout.work / "job" / f"{stem}.json"
        dest.write_text(json.dumps(value.get("data")), encoding="utf-8")
        return {"path": f"{layout.inner('job')}/{dest.name}", "kind": "dict"}
    if kind in ("none", "estimator", "tuple") or member is None:
        return None
    dest = layout.work / "job" / f"{stem}.parquet"
    with snap.open_member(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    spec: dict[str, Any] = {"path": f"{layout.inner('job')}/{dest.name}"}
    if kind in _REBUILT_KINDS:
        # The facts (dtype, shape, a Series' name ...) rebuild the value as it was, not just a table.
        spec.update(kind=kind, value=value)
    else:  # a record older than format minor 4 (or a command's table): the pipeline's kind
        spec["kind"] = accepts
    return spec


def _stand_ins(snap: Snapshot, stage: PlannedStage, layout: Layout, accepts: str) -> dict[str, dict[str, Any]]:
    """The job inputs standing in for a stage before ``--from``: its recorded value as a file and its kind,
    by name; for a tuple, each element by its label (``NAME.0``: a later stage may name one), the tuple
    itself not (the plan refused a stage that needs it)."""
    record = snap.read_json(stage.record) if stage.record else {}
    value = dict(record["value"]) if isinstance(record.get("value"), dict) else {}
    if not value and record.get("returned"):  # a record older than format minor 4
        value = {"kind": record["returned"]}
    out: dict[str, dict[str, Any]] = {}
    if value.get("kind") == "tuple":
        for element in value.get("elements") or ():
            facts = element.get("value") if isinstance(element, dict) else None
            if not isinstance(facts, dict):
                continue
            label = str(element.get("label"))
            member = element.get("parquet") if element.get("parquet") in snap else None
            stem = f"stage-{stage.index:02d}.{element.get('index')}"
            spec = _value_file(snap, layout, stem, facts, member, accepts)
            if spec is not None:
                out[label] = spec
        return out
    spec = _value_file(snap, layout, f"stage-{stage.index:02d}", value, stage.recorded_member, accepts)
    if spec is not None:
        out[stage.name] = spec
    return out


def _flows(snap: Snapshot, stage: PlannedStage) -> str | None:
    """The name of the value a kind none stage passed on (None: not recorded)."""
    value = snap.read_json(stage.record).get("value") if stage.record else None
    flows = value.get("flows") if isinstance(value, dict) else None
    return str(flows) if flows else None


def write_job(snap: Snapshot, plan: ReplayPlan, layout: Layout) -> dict[str, Any]:
    """Write ``job/job.json`` (and the files it names) for the stages ``plan`` runs; returns the job.

    Inputs are the recorded samples; for ``--from``, each stage before it stands in with its recorded value
    (a table, a numpy array or a dict, rebuilt as the kind it was); a stage that returned None stands in
    with what flowed on. The plan has already refused values that cannot be rebuilt (estimators, tuples).
    """
    pipeline = snap.read_json("pipeline/pipeline.json")
    accepts = str(pipeline.get("accepts") or "pandas")
    inputs: dict[str, dict[str, Any]] = {}
    index = snap.read_json("data/inputs.json").get("inputs") if "data/inputs.json" in snap else {}
    for name in plan.inputs:
        entry = (index or {}).get(name) or {}
        member = entry.get("parquet") or f"data/inputs/{name}.parquet"
        if member not in snap:
            raise JobError(
                f"{snap.path}: input {name!r} was not sampled ({entry.get('error') or 'no parquet member'})",
                hint="re-record the job with `envsnap run` so that its inputs are kept",
            )
        dest = layout.work / "job" / f"input-{name}.parquet"
        with snap.open_member(member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
        inputs[name] = {"path": f"{layout.inner('job')}/{dest.name}", "kind": _input_kind(snap, name, accepts)}
    previous = None
    by_index = {int(s["index"]): s for s in pipeline.get("stages") or []}
    for stage in plan.stages:
        if stage.action != "recorded":
            continue
        if stage.recorded_kind == "none":
            flows = _flows(snap, stage)
            if flows is not None and flows in inputs:
                inputs[stage.name] = inputs[flows]
            previous = flows if flows in inputs else previous
            continue
        inputs.update(_stand_ins(snap, stage, layout, accepts))
        previous = stage.name
    specs = []
    for stage in plan.run_stages:
        entry = by_index[stage.index]
        spec = {
            "name": entry["name"],
            "kind": entry.get("kind") or "call",
            "inputs": entry.get("inputs"),
            "accepts": entry.get("accepts"),
            "params": entry.get("params"),
            "columns": entry.get("columns"),
        }
        spec["run" if spec["kind"] == "run" else "call"] = entry.get("run") if spec["kind"] == "run" else entry["call"]
        specs.append(spec)
    root = plan.pipeline_root or (layout.source.original if layout.source is not None else "/")
    job = {
        "stages": specs,
        "inputs": inputs,
        "pythonpath": [layout.recorded(p) for p in plan.pythonpath] or [layout.recorded(root)],
        "out_dir": layout.inner("out"),
        "work_dir": layout.inner("scratch"),
        "cwd": layout.recorded(root),
        "start": plan.run_stages[0].index if plan.run_stages else 1,
        "previous": previous,
    }
    (layout.work / "job" / "job.json").write_text(json.dumps(job), encoding="utf-8")
    return job


def run_environment(plan: ReplayPlan, isolates: bool) -> dict[str, str]:
    """The environment the replayed stages see: the plan's, and what a read-only root needs."""
    env = dict(plan.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    if isolates:
        env["HOME"] = "/tmp"  # noqa: S108 - the container's tmpfs
    return env
