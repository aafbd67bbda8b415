"""``envsnap capture``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from envsnap.cli import _options as opt
from envsnap.cli._common import EXIT_ERROR, cli_errors, err, human_size

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot


@cli_errors
def capture(
    output: str = opt.OUTPUT,
    python: str = typer.Option(
        None, "--python", help="Capture this interpreter (or venv directory) instead of envsnap's own."
    ),
    label: str = opt.LABEL,
    env_allow: list[str] = opt.ENV_ALLOW,
    no_git: bool = opt.NO_GIT,
    reproducible: bool = typer.Option(
        False, "--reproducible", help="Omit timestamps and random ids: same state, same bytes."
    ),
    hashes: bool = typer.Option(False, "--hashes", help="Resolve --hash values for the lock from the index."),
    force: bool = opt.FORCE,
    quiet: bool = opt.QUIET,
    inputs: list[str] = opt.INPUTS,
    rows: int = opt.ROWS,
    fraction: float = opt.FRACTION,
    seed: int = opt.SEED,
    method: str = opt.METHOD,
    columns: list[str] = opt.COLUMNS,
    mask: list[str] = opt.MASK,
    artifacts: list[str] = opt.ARTIFACTS,
    lockfiles: list[str] = opt.LOCKFILES,
    config_files: list[str] = opt.CONFIG_FILES,
    ray: str = opt.RAY,
    ray_runtime_envs: list[str] = opt.RAY_RUNTIME_ENV,
    spark: str = opt.SPARK_MASTER,
    node_timeout: float = opt.NODE_TIMEOUT,
) -> None:
    """Capture the runtime contract of a Python environment into a snapshot."""
    from envsnap.capture import capture as do_capture

    if ray is not None or spark is not None or ray_runtime_envs:
        from envsnap.cli.fleet import capture_fleet

        capture_fleet(
            ray=ray,
            spark=spark,
            runtime_envs=opt.parse_runtime_envs(ray_runtime_envs),
            output=output,
            label=label,
            env_allow=env_allow,
            git=not no_git,
            reproducible=reproducible,
            force=force,
            quiet=quiet,
            timeout=node_timeout,
            local_only=[python, *inputs, *artifacts, *lockfiles, *config_files],
        )
        return

    if python is None:
        python = opt.default_python()
        if python is not None and not quiet:
            err(f"envsnap: capturing the active virtualenv {python} (VIRTUAL_ENV); pass --python to choose another")
    if output is None:
        output = time.strftime("envsnap-%Y%m%dT%H%M%SZ.envsnap", time.gmtime())
    snap = do_capture(
        output,
        python=python,
        label=label,
        env_allow=env_allow,
        git=not no_git,
        reproducible=reproducible,
        hashes=hashes,
        force=force,
        inputs=opt.parse_inputs(inputs),
        sampling=opt.sampling_options(rows, fraction, seed, method, columns, mask),
        artifacts=artifacts,
        lockfiles=lockfiles,
        config_files=config_files,
    )
    # Inputs and artifacts are what the user asked for by name: the snapshot is written with what
    # happened, but a failure to record one of them is an error, not a footnote.
    asked = {n: s.error for n, s in snap.manifest.probes.items() if n in ("data", "artifacts") and s.error}
    if quiet:
        sys.stdout.write(f"{snap.path}\n")
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
    fail_on_requested(asked)


def project_lines(snap: Snapshot) -> list[str]:
    """Where the environment disagrees with the project's lockfiles, and the lockfiles and config files
    that could not be recorded (each one line naming the file)."""
    lines: list[str] = []
    for member, prefix in (("project/lockfiles.json", "lockfile"), ("project/configs.json", "config")):
        data = snap.section(member) if member in snap else None
        if not isinstance(data, dict):
            continue
        lines += [str(d["message"]) for d in data.get("disagreements") or ()]
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
