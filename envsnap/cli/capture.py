"""``envsnap capture``."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from envsnap.cli import _options as opt
from envsnap.cli._common import EXIT_ERROR, cli_errors, err
from envsnap.cli._mlflow import MLFLOW, MLFLOW_RUN, log_to_mlflow
from envsnap.core.naming import human_size

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["FAILURE_RECORD", "capture", "fail_on_requested", "project_lines"]

FAILURE_RECORD = typer.Option(
    None,
    "--failure-record",
    metavar="FILE",
    help="Record the failure in this JSON file (written by envsnap-hook: type, message, traceback, frames) "
    "as the snapshot's exception.",
)


@cli_errors
@opt.with_capture_flags()
def capture(
    output: str = opt.OUTPUT,
    flags: Mapping[str, Any] = opt.FLAGS,
    force: bool = opt.FORCE,
    quiet: bool = opt.QUIET,
    ray: str = opt.RAY,
    ray_runtime_envs: list[str] = opt.RAY_RUNTIME_ENV,
    spark: str = opt.SPARK_MASTER,
    node_timeout: float = opt.NODE_TIMEOUT,
    failure_record: str = FAILURE_RECORD,
    mlflow: bool = MLFLOW,
    mlflow_run: str = MLFLOW_RUN,
) -> None:
    """Capture the runtime contract of a Python environment into a snapshot."""
    from envsnap.capture import capture as do_capture

    if ray is not None or spark is not None or ray_runtime_envs:
        if failure_record is not None:
            raise typer.BadParameter("--failure-record records one job's failure: it cannot go with --ray/--spark")
        if mlflow or mlflow_run:
            raise typer.BadParameter("--mlflow logs one job's snapshot: it cannot go with --ray/--spark")
        from envsnap.cli.fleet import capture_fleet

        capture_fleet(
            ray=ray,
            spark=spark,
            runtime_envs=opt.parse_runtime_envs(ray_runtime_envs),
            output=output,
            label=flags["label"],
            env_allow=flags["env_allow"],
            git=not flags["no_git"],
            reproducible=flags["reproducible"],
            force=force,
            quiet=quiet,
            timeout=node_timeout,
            local_only=[
                flags["python"],
                *flags["inputs"],
                *flags["artifacts"],
                *flags["lockfiles"],
                *flags["config_files"],
            ],
        )
        return

    python = flags["python"]
    if python is None:
        python = opt.default_python()
        if python is not None and not quiet:
            err(f"envsnap: capturing the active virtualenv {python} (VIRTUAL_ENV); pass --python to choose another")
    if output is None:
        output = time.strftime("envsnap-%Y%m%dT%H%M%SZ.envsnap", time.gmtime())
    arguments = opt.capture_arguments({**flags, "python": python})
    if failure_record is not None:
        from envsnap.capture.failure_record import capture_failure_record, read_failure_record

        snap = capture_failure_record(output, read_failure_record(failure_record), force=force, **arguments)
    else:
        snap = do_capture(output, force=force, **arguments)
    # Inputs and artifacts are what the user asked for by name: the snapshot is written with what
    # happened, but a failure to record one of them is an error, not a footnote.
    asked = {n: s.error for n, s in snap.manifest.probes.items() if n in ("data", "artifacts") and s.error}
    if quiet:
        sys.stdout.write(f"{snap.path}\n")
        uri = log_to_mlflow(mlflow, mlflow_run, snap)
        if uri:
            sys.stdout.write(f"{uri}\n")
        fail_on_requested(asked)
        return
    size = sum(m.size for m in snap.manifest.members.values())
    failed = {n: s.error for n, s in snap.manifest.probes.items() if s.status == "error"}
    sys.stdout.write(
        f"wrote {snap.path}\n"
        f"  {len(snap.manifest.members)} members, {human_size(size)}, fingerprint {snap.fingerprint[:23]}…\n"
    )
    for name, message in sorted(failed.items()):
        if name not in asked:
            sys.stdout.write(f"  probe {name} failed: {message}\n")
    for line in project_lines(snap):
        sys.stdout.write(f"  {line}\n")
    uri = log_to_mlflow(mlflow, mlflow_run, snap)
    if uri:
        sys.stdout.write(f"logged to MLflow: {uri}\n")
    fail_on_requested(asked)


def project_lines(snap: Snapshot) -> list[str]:
    """Where the environment disagrees with the project's lockfiles, and the lockfiles and config files
    that could not be recorded (each one line naming the file)."""
    from envsnap.snapshot.summary import lockfile_problems

    lines: list[str] = []
    for member, prefix in (("project/lockfiles.json", "lockfile"), ("project/configs.json", "config")):
        data = snap.section(member) if member in snap else None
        if not isinstance(data, dict):
            continue
        if prefix == "lockfile":  # parse errors first, then the first disagreements
            lines += lockfile_problems(data)
        else:
            lines += [f"{prefix} {f['error']}" for f in data.get("files") or () if f.get("error")]
        if data.get("settings_error"):
            lines.append(f"envsnap config: {data['settings_error']}")
    return list(dict.fromkeys(lines))


def fail_on_requested(errors: dict[str, str]) -> None:
    """Exit 3 (after the snapshot was written) when a requested input or artifact could not be recorded."""
    if errors:
        messages = [m.split(": ", 1)[1] if m.split(": ", 1)[0].endswith("Error") else m for m in errors.values()]
        err("envsnap: error: " + "; ".join(sorted(messages)) + " (the snapshot was written with what happened)")
        raise typer.Exit(EXIT_ERROR)
