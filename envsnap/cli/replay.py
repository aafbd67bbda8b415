"""``envsnap replay``: rebuild a snapshot's runtime and rerun its job there, comparing what it produced.

Exit codes: 0 every replayed intermediate matches the recording; 1 a stage diverged or failed (the
report names the first); 2 usage error (an environment-only snapshot replayed without ``--shell`` or
``-- COMMAND``); 3 envsnap error (no engine — try ``--engine venv`` —, a missing base image, a package
with no wheel for the target, an unreadable snapshot). ``replay SNAP -- COMMAND`` exits with the
command's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import typer

from envsnap.cli._common import EXIT_USAGE, cli_errors, err
from envsnap.replay.engines import ENGINES

__all__ = ["replay"]


def _progress(quiet: bool, verbose_build: bool) -> Callable[[str, str], None]:
    def say(kind: str, message: str) -> None:
        if quiet:
            return
        if kind == "log" and not verbose_build:
            if message.lstrip().startswith(("Installed", "Prepared", "envsnap:")):  # the install's summary lines
                sys.stderr.write(f"    {message.strip()}\n")
            return
        sys.stderr.write(f"  {'·' if kind == 'step' else ' '} {message}\n")
        sys.stderr.flush()

    return say


def _run_attached(argv: list[str], env: dict[str, str], cwd: str | None) -> int:
    """Run ``argv`` on this terminal (stdin, stdout, stderr inherited); its exit status in the shell's form."""
    from envsnap.errors import EnvsnapError

    try:
        code = subprocess.call(argv, env={**os.environ, **env}, cwd=cwd)
    except OSError as exc:
        message = f"cannot run {argv[0]}: {exc.strerror or exc}"
        raise EnvsnapError(message, hint="is it installed in the replay?") from None
    return 128 - code if code < 0 else code


@cli_errors
def replay(
    snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot (`envsnap run`, `envsnap capture`, on_failure)."),
    command: list[str] = typer.Argument(  # noqa: B008
        None,
        metavar="[-- COMMAND [ARGS]...]",
        help="Run this command in the rebuilt runtime instead (stdin/stdout/stderr and exit status pass through).",
    ),
    engine: str = typer.Option("docker", "--engine", "-e", help="docker (hardened container) or venv (local)."),
    base_image: str = typer.Option(
        None,
        "--base-image",
        envvar="ENVSNAP_BASE_IMAGE",
        help="Base image (default: the captured image digest, else python:X.Y.Z-slim-bookworm).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
    with_: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--with", help="What-if: install NAME==VERSION instead (repeatable)."
    ),
    set_env: list[str] = typer.Option(  # noqa: B008
        [], "--set-env", help="What-if: set KEY=VALUE in the replay (repeatable)."
    ),
    stage: str = typer.Option(None, "--stage", help="Replay only this stage (from the recorded input to it)."),
    until: str = typer.Option(None, "--until", help="Stop after this stage."),
    from_: str = typer.Option(None, "--from", help="Start at this stage, from the recorded intermediate before it."),
    shell: bool = typer.Option(False, "--shell", help="Open a shell in the replayed runtime instead."),
    match_resources: bool = typer.Option(
        True, "--match-resources/--no-match-resources", help="Mirror the captured CPU/memory limits."
    ),
    source: str = typer.Option(None, "--source", help="The pipeline's code (default: the recorded commit)."),
    repo: str = typer.Option(None, "--repo", help="A git clone that has the recorded commit."),
    rtol: float = typer.Option(0.0, "--rtol", min=0.0, help="Relative tolerance for numeric cells."),
    atol: float = typer.Option(0.0, "--atol", min=0.0, help="Absolute tolerance for numeric cells."),
    fidelity: bool = typer.Option(True, "--fidelity/--no-fidelity", help="Inspect the replayed runtime."),
    timeout: float = typer.Option(None, "--timeout", min=1.0, help="Stop the stages after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    keep: str = typer.Option(None, "--keep", help="Copy the replay's work directory (job, outputs) here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    build_log: bool = typer.Option(False, "--build-log", help="Stream the whole image build log."),
    image: bool = typer.Option(
        False, "--image", help="docker: build a self-contained image (to share) instead of mounting a cached venv."
    ),
) -> None:
    """Rebuild the captured runtime and rerun the recorded job there: a pipeline stage by stage, comparing every
    intermediate, or a command, comparing how it ended and what it wrote (reproduced: 0, diverged: 1)."""
    from envsnap.replay import execute as execute_mod
    from envsnap.replay.engines import get_engine
    from envsnap.replay.plan import build_plan
    from envsnap.replay.platforms import local_support
    from envsnap.replay.render import plan_json, render_plan, render_report, report_json
    from envsnap.snapshot.reader import open_snapshot

    if engine not in ENGINES:
        err(f"envsnap: usage error: --engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        raise typer.Exit(EXIT_USAGE)
    if stage is not None and (until is not None or from_ is not None):
        err("envsnap: usage error: --stage replaces --until/--from; give one or the other")
        raise typer.Exit(EXIT_USAGE)
    if command and shell:
        err("envsnap: usage error: --shell opens a shell, `-- COMMAND` runs a command; give one or the other")
        raise typer.Exit(EXIT_USAGE)
    say = _progress(quiet or as_json, build_log)
    with open_snapshot(snap) as snapshot:
        plan = build_plan(
            snapshot,
            base_image=base_image,
            with_packages=with_,
            set_env=set_env,
            stage=stage,
            until=until,
            from_stage=from_,
            match_resources=match_resources,
            shell=shell,
            support=local_support(engine),
        )
        if dry_run:
            sys.stdout.write(plan_json(plan) if as_json else render_plan(plan, engine=engine))
            return
        if plan.mode == "environment" and not (shell or command):
            err(
                f"envsnap: usage error: {snap} records an environment, not a job to rerun (no pipeline, no command): "
                f"open it with `envsnap replay {snap} --shell`, build it by hand with "
                f"`envsnap export --dockerfile DIR {snap}`, or run a command in it with "
                f"`envsnap replay {snap} -- COMMAND...`"
            )
            raise typer.Exit(EXIT_USAGE)
        if image and engine != "docker":
            err("envsnap: usage error: --image builds a Docker image; it needs --engine docker")
            raise typer.Exit(EXIT_USAGE)
        runner = get_engine(engine, image=True) if image else get_engine(engine)
        if shell or command:
            code = execute_mod.shell(
                snapshot,
                plan,
                runner,
                _run_attached,
                command=list(command) if command else None,
                tty=sys.stdin.isatty() and sys.stdout.isatty(),
                source=source,
                repo=repo,
                progress=say,
            )
            raise typer.Exit(code)
        report = execute_mod.execute(
            snapshot,
            plan,
            runner,
            source=source,
            repo=repo,
            rtol=rtol,
            atol=atol,
            fidelity=fidelity,
            timeout=timeout,
            progress=say,
            keep=keep,
        )
    sys.stdout.write(report_json(report) if as_json else render_report(report))
    raise typer.Exit(report.exit_code)
