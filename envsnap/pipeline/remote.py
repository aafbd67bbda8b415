"""``--python``: run the stages in another interpreter without installing anything there.

The runner (:mod:`envsnap._target.runner`: stdlib + the target's own pyarrow) is shipped the one way
envsnap ships code (:mod:`envsnap._target`): installed into a private temporary directory as part of the
package ``_envsnap_target`` and started with ``python -c`` and a bootstrap that APPENDS that directory to
the end of ``sys.path`` — so the runner can never shadow one of the target's packages — and runs the job.
``python -c`` puts the working directory first on ``sys.path``, as running the job by hand would; the
pipeline's ``pythonpath`` goes in front of it. The sampled inputs travel as parquet files; intermediates
and a JSON report come back the same way, the report checked like every answer of shipped code. The
report lists what the runner added to ``sys.path`` (its own directory, nothing else).

The target needs nothing of envsnap's: the runner writes each value with whatever library produced it
(pyarrow when the target has it, polars frames with polars, numpy arrays as ``.npy``, a pandas frame
without pyarrow as one ``.npy`` per column), and :func:`envsnap.pipeline.values.normalize` turns them into
parquet here. Lending the target envsnap's own pyarrow would put every package of envsnap's environment
on the target's path, so the snapshot would describe an environment that never existed; it is never done.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap._target import TargetError, answer, command, install, target_environ
from envsnap.core.redact import scrub_data
from envsnap.errors import EnvsnapError, InterpreterError
from envsnap.pipeline.types import PipelineError, PipelineSpec
from envsnap.pipeline.values import normalize

__all__ = [
    "RUNNER_MAIN",
    "RemoteRun",
    "RunnerError",
    "make_workdir",
    "run_in_interpreter",
    "stage_specs",
]

#: The shipped module that runs a job, and what its report must hold.
RUNNER_MAIN = "runner.main"
REPORT_KEYS: dict[str, type | tuple[type, ...]] = {"stages": list}


class RunnerError(EnvsnapError):
    """The stage runner in the other interpreter could not run the job (not a stage failure)."""


@dataclass(frozen=True)
class RemoteRun:
    """What came back from the target: per-stage outcomes, their intermediates, and the runner's facts."""

    outcomes: list[dict[str, Any]]
    intermediates: list[Path]
    preloaded_modules: list[str]
    added_to_sys_path: list[str]
    python: str


def stage_specs(pipeline: PipelineSpec, *, importable: bool) -> list[dict[str, Any]]:
    """The stages as plain dicts for the runner; ``importable`` refuses functions it could not import."""
    specs = []
    for index, stage in enumerate(pipeline.stages):
        spec: dict[str, Any] = {
            "name": stage.name,
            "kind": stage.kind,
            "inputs": list(stage.inputs) if stage.inputs is not None else None,
            "accepts": stage.accepts,
            "params": dict(stage.params) if stage.params is not None else None,
            "columns": list(stage.columns) if stage.columns is not None else None,
        }
        if stage.run is not None:
            spec["run"] = stage.run
        else:
            spec["call"] = stage.target
            if importable and stage.func is not None:
                module, _, qualname = stage.target.partition(":")
                if module == "__main__" or "<locals>" in qualname:
                    raise PipelineError(
                        pipeline.source,
                        f"stage {stage.name!r} is {stage.target}, which another interpreter cannot import",
                        key=f"stages[{index}]",
                        hint="define it at module level in an importable module, or drop --python",
                    )
            elif stage.func is not None:
                spec["func"] = stage.func
        specs.append(spec)
    return specs


def run_in_interpreter(
    pipeline: PipelineSpec,
    python: str,
    tables: Mapping[str, Any],
    kinds: Mapping[str, str],
    *,
    workdir: Path,
    cwd: str,
    environ: Mapping[str, str] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> RemoteRun:
    """Run ``pipeline`` on ``tables`` (name -> pyarrow Table) in ``python``; files go under ``workdir``."""
    import pyarrow.parquet as pq

    from envsnap.capture.target import resolve_interpreter

    exe = resolve_interpreter(python)
    runner_dir = workdir / "runner"
    out_dir = workdir / "out"
    scratch = workdir / "scratch"
    for d in (runner_dir, out_dir, scratch):
        d.mkdir()
    install(runner_dir)
    inputs = {}
    for name, table in tables.items():
        path = workdir / f"input-{name}.parquet"
        pq.write_table(table, path)
        inputs[name] = {"path": str(path), "kind": kinds.get(name, "arrow")}
    job = {
        "stages": stage_specs(pipeline, importable=True),
        "inputs": inputs,
        "pythonpath": list(pipeline.pythonpath),
        "out_dir": str(out_dir),
        "work_dir": str(scratch),
        "cwd": cwd,
    }
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    try:
        # stdout/stderr are inherited: what the stages print shows up as it would in-process.
        proc = subprocess.run(
            command(exe, str(runner_dir), RUNNER_MAIN, str(job_path)),
            cwd=cwd,
            env=target_environ(environ),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError as exc:
        raise InterpreterError(python, f"cannot be run ({exc.strerror or exc})") from exc
    report_path = out_dir / "report.json"
    written = report_path.read_text(encoding="utf-8") if report_path.is_file() else ""
    try:
        report = answer("the stage runner", python, proc.returncode, written, REPORT_KEYS)
    except TargetError as exc:
        raise RunnerError(f"{exc} (its output is above)", hint="check that it is a working Python >= 3.8") from exc
    fatal = report.get("fatal")
    if fatal:
        raise RunnerError(f"the stage runner in {python} failed: {fatal.get('type')}: {fatal.get('message')}")
    outcomes: list[dict[str, Any]] = report["stages"]
    if on_stage is not None:
        for outcome in outcomes:
            on_stage(outcome)
    intermediates = [output.path for outcome in outcomes for output in normalize(out_dir, outcome, scrub_data)]
    return RemoteRun(
        outcomes=outcomes,
        intermediates=intermediates,
        preloaded_modules=list(report.get("preloaded_modules") or []),
        added_to_sys_path=[str(runner_dir)] if report.get("added_to_sys_path") else [],
        python=str(report.get("python") or exe),
    )


def make_workdir() -> Path:
    """A private temporary directory (0700) for one run; the caller removes it."""
    return Path(tempfile.mkdtemp(prefix="envsnap-run-"))
