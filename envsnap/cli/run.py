"""``envsnap run``: run a job and capture everything into one snapshot.

Three forms:

* ``envsnap run [OPTIONS] -- COMMAND [ARGS]...`` runs any command unmodified (a script, ``python -m``,
  a console script, a shell script) as a child process with its own streams, captures the runtime of
  the interpreter it runs while it runs, and records argv, times, exit status, the stderr tail, the
  uncaught exception with its frames, and the files named with ``--input``/``--output``
  (:mod:`envsnap.capture.command_run`). Exit status: the command's own (a death by signal N:
  128 + N); 2 when the command cannot be run (nothing ran, nothing written).
* ``envsnap run [--config FILE]`` runs a pipeline's stages on sampled inputs. Exit status: 0 every
  stage ran; 1 a stage failed (the snapshot is written and records the failure); 2 usage or
  pipeline-definition error (nothing written); 3 an input could not be sampled (the snapshot is
  written, no stage ran) or any other envsnap error.
* ``envsnap run --sklearn MODEL --input NAME=PATH [--method M]`` runs a fitted scikit-learn model step by
  step, one stage per step, in the job's interpreter (:mod:`envsnap.integrations.sklearn`); the same
  statuses, and 3 for a model that cannot be loaded there or is not a fitted estimator.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from envsnap.cli import _options as opt
from envsnap.cli._common import EXIT_USAGE, State, cli_errors, err
from envsnap.cli._mlflow import MLFLOW, MLFLOW_RUN, log_to_mlflow
from envsnap.core.naming import human_size

if TYPE_CHECKING:
    from envsnap.pipeline.runner import RunResult

__all__ = ["run"]

#: ``--method`` values that choose how inputs are sampled (the others are ``MODEL_METHODS``).
SAMPLING_METHODS = ("uniform", "row-groups")

SNAPSHOT = typer.Option(
    None, "--snapshot", "-o", help="Where to write the snapshot: *.envsnap = zip, else a directory (created)."
)


def _value_summary(outcome: dict[str, Any]) -> str:
    """What a stage returned, in a few words: ``176 rows`` (a table), ``array 176x2 float64``, ``dict of 3
    keys``, ``tuple of 2``, ``returned nothing``."""
    value = outcome.get("value") or {}
    kind = value.get("kind")
    if kind == "none":
        return "returned nothing"
    if kind == "tuple":
        return f"tuple of {len(value.get('elements') or ())}"
    if kind == "numpy":
        return f"array {'x'.join(str(n) for n in value.get('shape') or ())} {value.get('dtype')}"
    if kind == "dict":
        data = value.get("data")
        return f"dict of {len(data)} keys" if isinstance(data, dict) else "dict"
    if kind == "estimator":
        return str((value.get("description") or {}).get("class") or "estimator").rsplit(".", 1)[-1]
    if kind == "sparse":
        return f"sparse {'x'.join(str(n) for n in value.get('shape') or ())}, {value.get('nnz')} stored"
    return f"{outcome.get('rows')} rows"


def _stage_line(outcome: dict[str, Any]) -> str:
    head = f"  {outcome['index']:02d} {outcome['name']:<20}"
    if outcome["status"] == "ok":
        wall = outcome.get("wall_time_s")
        memory = outcome.get("memory") or {}
        parts = [_value_summary(outcome)]
        if wall is not None:
            parts.append(f"{wall:.3f} s")
        if memory.get("peak_rss_delta_bytes") is not None:
            parts.append(f"peak +{human_size(memory['peak_rss_delta_bytes'])}")
        elif memory.get("peak_rss_bytes") is not None:
            parts.append(f"peak {human_size(memory['peak_rss_bytes'])}")
        return f"{head} ok      {', '.join(parts)}"
    error = outcome.get("error") or {}
    return f"{head} FAILED  {error.get('message', 'failed')}"


@cli_errors
@opt.with_capture_flags(
    skip=("hashes",),
    helps={
        "python": "Capture this interpreter (default: the one the command runs; stages: run them in it).",
        "inputs": "NAME=PATH: an input file of the job (whole up to 64 MiB, else sampled; s3:// sampled; repeatable).",
        "reproducible": "Omit timestamps, ids, timings and memory: same state, same bytes.",
        "method": "Sampling: uniform or row-groups; with --sklearn, what the final step applies: predict "
        "(default), predict_proba or transform.",
    },
)
def run(
    command: list[str] = typer.Argument(  # noqa: B008 - typer declares arguments this way
        None, metavar="-- COMMAND [ARGS]...", help="The job to run, unmodified (after --)."
    ),
    config: str = typer.Option(
        None, "--config", "-c", help="Stages: envsnap.toml or pyproject.toml (default: found from here upwards)."
    ),
    output: str = SNAPSHOT,
    job_outputs: list[str] = typer.Option(  # noqa: B008
        [], "--output", help="[NAME=]PATH: a file the command writes, recorded after it exits (repeatable)."
    ),
    on_failure: bool = typer.Option(False, "--on-failure", help="Write the snapshot only when the command fails."),
    sklearn: str = typer.Option(
        None,
        "--sklearn",
        metavar="PATH.joblib|MODULE:ATTR",
        help="A fitted scikit-learn Pipeline, run step by step on the one input in the job's Python (docs/sklearn.md).",
    ),
    flags: Mapping[str, Any] = opt.FLAGS,
    force: bool = opt.FORCE,
    quiet: bool = opt.QUIET,
    mlflow: bool = MLFLOW,
    mlflow_run: str = MLFLOW_RUN,
) -> None:
    """Run a command (after --) or a pipeline's stages; write one snapshot of its runtime and what happened."""
    to_mlflow = (mlflow, mlflow_run)
    dashdash = "--" in State.argv
    if sklearn is not None:
        if command or dashdash or config is not None or job_outputs or on_failure:
            err("envsnap: usage error: --sklearn runs a model's steps: no --config, command, --output or --on-failure")
            raise typer.Exit(EXIT_USAGE)
        _run_sklearn(sklearn, output, flags, force, quiet, to_mlflow)
        return
    if command or dashdash:
        if config is not None:
            err("envsnap: usage error: --config runs a pipeline's stages; a command after -- is run as it is: give one")
            raise typer.Exit(EXIT_USAGE)
        _run_command(command or [], output, job_outputs, on_failure, flags, force, quiet, to_mlflow)
        return
    if job_outputs or on_failure:
        err("envsnap: usage error: --output and --on-failure are for a command: envsnap run [OPTIONS] -- COMMAND")
        raise typer.Exit(EXIT_USAGE)
    from envsnap._target.runner.sklearn_steps import METHODS as MODEL_METHODS
    from envsnap.pipeline import load_pipeline
    from envsnap.pipeline.runner import run_pipeline

    if flags["method"] in MODEL_METHODS:
        err(f"envsnap: usage error: --method {flags['method']} goes with --sklearn MODEL (what its final step applies)")
        raise typer.Exit(EXIT_USAGE)

    pipeline = load_pipeline(config)
    python = _job_python(flags, quiet)
    if output is None:
        output = time.strftime(f"{pipeline.name}-%Y%m%dT%H%M%SZ.envsnap", time.gmtime())
    if not quiet:
        err(f"envsnap: pipeline {pipeline.name} ({len(pipeline.stages)} stages) from {pipeline.source}")
    result = run_pipeline(
        pipeline,
        output=output,
        force=force,
        on_stage=None if quiet else lambda outcome: err(_stage_line(outcome)),
        **opt.capture_arguments({**flags, "python": python}),
    )
    _report_run(result, quiet, to_mlflow)


def _job_python(flags: Mapping[str, Any], quiet: bool) -> str | None:
    """``--python``, else the active virtualenv's interpreter (said out loud), else None."""
    python: str | None = flags["python"]
    if python is None:
        python = opt.default_python()
        if python is not None and not quiet:
            err(f"envsnap: running in the active virtualenv {python} (VIRTUAL_ENV); pass --python to choose another")
    return python


def _run_sklearn(
    model: str,
    output: str | None,
    flags: Mapping[str, Any],
    force: bool,
    quiet: bool,
    to_mlflow: tuple[bool, str | None] = (False, None),
) -> None:
    """``--sklearn MODEL``: the model's steps as stages, planned and run in the job's interpreter.

    ``--method`` says what the final step applies; its values never overlap the sampling methods'.
    """
    from envsnap.integrations.sklearn import METHODS as MODEL_METHODS
    from envsnap.integrations.sklearn import run_model

    method = flags["method"] if flags["method"] in MODEL_METHODS else "predict"
    if flags["method"] not in (*MODEL_METHODS, *SAMPLING_METHODS):
        err(
            f"envsnap: usage error: --method {flags['method']!r} is not one of {', '.join(MODEL_METHODS)} "
            "(what the model's final step applies)"
        )
        raise typer.Exit(EXIT_USAGE)
    flags = {**flags, "method": flags["method"] if flags["method"] in SAMPLING_METHODS else "uniform"}
    python = _job_python(flags, quiet) or sys.executable
    if output is None:
        output = time.strftime("sklearn-%Y%m%dT%H%M%SZ.envsnap", time.gmtime())
    if not quiet:
        err(f"envsnap: scikit-learn model {model}, step by step in {python} (final step: {method})")
    result = run_model(
        model,
        method=method,
        output=output,
        force=force,
        on_stage=None if quiet else lambda outcome: err(_stage_line(outcome)),
        **opt.capture_arguments({**flags, "python": python}),
    )
    _report_run(result, quiet, to_mlflow)


def _report_run(result: RunResult, quiet: bool, to_mlflow: tuple[bool, str | None] = (False, None)) -> None:
    """The snapshot written and how the stages went (and logged to MLflow: ``--mlflow``); exit with the
    run's status."""
    pipeline = result.pipeline
    snap = result.snapshot
    if quiet:
        sys.stdout.write(f"{snap.path}\n")
    else:
        size = sum(m.size for m in snap.manifest.members.values())
        ok = sum(1 for s in result.stages if s.status == "ok")
        sys.stdout.write(
            f"wrote {snap.path}\n"
            f"  {len(snap.manifest.members)} members, {human_size(size)}, fingerprint {snap.fingerprint[:23]}…\n"
            f"  pipeline {pipeline.name}: {ok}/{len(result.stages)} stages ok\n"
        )
        for name, status in sorted(snap.manifest.probes.items()):
            if status.status == "error" and name != "pipeline":
                sys.stdout.write(f"  probe {name} failed: {status.error}\n")
    uri = log_to_mlflow(*to_mlflow, snap, failed=result.status != "ok")
    if uri:
        sys.stdout.write(f"{uri}\n" if quiet else f"  logged to MLflow: {uri}\n")
    if result.status == "failed" and not quiet:
        err(f"envsnap: stage {result.failed_stage} failed; the snapshot records its error and traceback")
    elif result.status == "failed":
        err(f"envsnap: {result.error}")
    elif result.status != "ok":
        err(f"envsnap: error: {result.error}; the snapshot records what was captured")
    raise typer.Exit(result.exit_code)


def _run_command(
    command: list[str],
    output: str | None,
    job_outputs: list[str],
    on_failure: bool,
    flags: Mapping[str, Any],
    force: bool,
    quiet: bool,
    to_mlflow: tuple[bool, str | None] = (False, None),
) -> None:
    from envsnap.capture.command_run import resolve_command, run_command
    from envsnap.errors import StorageError

    arguments = opt.capture_arguments(flags)
    resolved = resolve_command(command, flags["python"])  # a command that cannot run: one line, exit 2
    if not quiet and not resolved.is_python:
        shown = resolved.python or "envsnap's own interpreter (no python on PATH)"
        err(f"envsnap: {command[0]} is not a Python program; capturing the environment of {shown} (--python to choose)")
    result = run_command(
        command, output, force=force, on_failure_only=on_failure, outputs=job_outputs, nice=True, **arguments
    )
    record = result.record
    if result.path is not None:
        if quiet:
            sys.stdout.flush()
            err(result.path)
        else:
            status = record["exit_status"]
            what = f"killed by signal {result.signal}" if result.signal else f"exit status {status}"
            exception = (result.snapshot.section("job") or {}).get("exception") if result.snapshot else None
            if exception:
                first = (str(exception.get("message") or "").splitlines() or [""])[0]
                what += f", {exception.get('type')}: {first[:120]}"
            err(f"envsnap: {what} after {record['duration_s']:.1f} s; snapshot {result.path}")
    elif on_failure and not result.failed and result.capture_error is None and not quiet:
        err("envsnap: the command succeeded; no snapshot written (--on-failure)")
    if result.capture_error is not None:
        err(f"envsnap: error: {result.capture_error} (the command's exit status is passed through)")
    # --mlflow-run, else the job's own run when it was launched with MLFLOW_RUN_ID (mlflow resumes it), else a new one
    try:
        uri = log_to_mlflow(*to_mlflow, result.snapshot if result.path is not None else None, failed=result.failed)
    except StorageError as exc:
        err(f"envsnap: error: {exc} (the command's exit status is passed through)")
    else:
        if uri:
            err(uri if quiet else f"envsnap: logged to MLflow: {uri}")
    if State.own_process:
        # The snapshot is on disk and every message written: tearing down the interpreter (pyarrow,
        # numpy, the probes' modules) would add ~0.1 s to every job for nothing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_status)
    raise typer.Exit(result.exit_status)
