"""``envsnap check`` (the CI regression gate) and ``envsnap baseline update``.

Exit codes of ``check``: 0 every stage within tolerance (an environment change is reported, not failed);
1 a regression (or, with ``--fail-on-env``, a changed runtime fingerprint); 2 usage error; 3 envsnap
error: the baseline or the pipeline cannot serve (one line on stderr). With ``--git-bisect`` every error
exits 125 instead, so that ``git bisect run`` skips a commit it cannot judge rather than calling it bad.
``baseline update`` exits 0 when the new baseline is written, 3 (nothing written) otherwise.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from envsnap.cli import _options as opt
from envsnap.cli._common import EXIT_ERROR, EXIT_USAGE, State, cli_errors, err, write_output
from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.check import CheckReport

__all__ = ["baseline_app", "check", "update"]

#: ``--config-file`` of ``check`` and ``baseline update``: those the baseline recorded are recorded anyway.
CONFIG_FILES = typer.Option(
    [],
    "--config-file",
    metavar="PATH_OR_GLOB",
    help="Also record this config file (those the baseline recorded are recorded again; repeatable).",
)

#: ``git bisect run``: "this commit cannot be tested".
EXIT_BISECT_SKIP = 125
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"

baseline_app = typer.Typer(
    name="baseline",
    help="Manage the baseline snapshot that `envsnap check` compares with.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str, code: int) -> NoReturn:
    err(f"envsnap: error: {message}")
    summary = os.environ.get(SUMMARY_VARIABLE)
    if summary:
        _append(summary, f"## ⚠️ envsnap check could not run\n\n{message}\n")
    raise typer.Exit(code)


def _append(path: str, text: str) -> None:
    """Add to the job summary; a summary that cannot be written must not change the check's outcome."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        err(f"envsnap: warning: cannot append to ${SUMMARY_VARIABLE} ({exc})")


def _guarded(run: Callable[[], Any], code: int) -> Any:
    """Run ``run``; any envsnap error (or bug) becomes one line and ``code``."""
    try:
        return run()
    except typer.Exit:
        raise
    except EnvsnapError as exc:
        if State.verbose:
            traceback.print_exc()
        _fail(str(exc), code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, documented exit code
        if State.verbose:
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (a bug: rerun with -v and report it)", code)


def _publish(report: CheckReport, *, as_json: bool, markdown: bool, junit: str | None, quiet: bool) -> None:
    from envsnap.check.render import render_json, render_junit, render_markdown, render_text

    if junit is not None:
        where = write_output(junit, render_junit(report))
        if not quiet:
            err(f"wrote {where}")
    summary = os.environ.get(SUMMARY_VARIABLE)
    if summary:
        _append(summary, render_markdown(report))
    if as_json:
        sys.stdout.write(render_json(report))
    elif markdown:
        sys.stdout.write(render_markdown(report))
    elif quiet:
        sys.stdout.write(("PASSED" if report.passed else "FAILED") + f" — {report.verdict}\n")
    else:
        sys.stdout.write(render_text(report))
    sys.stdout.flush()


@cli_errors
def check(
    baseline: str = typer.Argument(..., metavar="BASELINE", help="The baseline snapshot (made by `envsnap run`)."),
    config: str = typer.Option(
        None, "--config", "-c", help="envsnap.toml or pyproject.toml (default: found from here upwards)."
    ),
    python: str = typer.Option(
        None, "--python", help="Run the stages in this interpreter (or venv); nothing is installed there."
    ),
    rtol: float = opt.RTOL,
    atol: float = opt.ATOL,
    stages: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--stage", "-s", metavar="STAGE", help="Gate on this stage only (repeatable); later stages do not run."
    ),
    ignore_added_columns: bool = typer.Option(
        None,
        "--ignore-added-columns/--no-ignore-added-columns",
        help="A column the current run adds is not a regression (default: the config's, else no).",
    ),
    fail_on_env: bool = typer.Option(False, "--fail-on-env", help="Also fail when the runtime fingerprint changed."),
    git_bisect: bool = typer.Option(
        False, "--git-bisect", help="Exit codes for `git bisect run`: 0 good, 1 bad, 125 skip (any error)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report (docs/ci.md)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown summary."),
    junit: str = typer.Option(None, "--junit", metavar="FILE", help="Write JUnit XML: one testcase per stage."),
    output: str = typer.Option(
        None, "--output", "-o", help="Also write this run's snapshot (e.g. to upload from a failing CI job)."
    ),
    force: bool = opt.FORCE,
    no_git: bool = opt.NO_GIT,
    config_files: list[str] = CONFIG_FILES,
    max_rows: int = typer.Option(10, "--max-rows", min=0, help="Differing rows to keep per stage."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the verdict line."),
) -> None:
    """Rerun the pipeline on a baseline's recorded inputs and fail on drift beyond tolerance (CI gate)."""
    error_code = EXIT_BISECT_SKIP if git_bisect else EXIT_ERROR
    if as_json and markdown:
        err("envsnap: usage error: --json and --markdown both print to stdout; choose one")
        raise typer.Exit(EXIT_BISECT_SKIP if git_bisect else EXIT_USAGE)
    if python is None:
        python = opt.default_python()
        if python is not None and not quiet and not as_json:
            err(f"envsnap: running in the active virtualenv {python} (VIRTUAL_ENV); pass --python to choose another")

    def run() -> CheckReport:
        from envsnap.check import check as run_check

        return run_check(
            baseline,
            config=config,
            python=python,
            rtol=rtol,
            atol=atol,
            ignore_added_columns=ignore_added_columns,
            stages=stages,
            fail_on_env=fail_on_env,
            output=output,
            force=force,
            git=not no_git,
            max_rows=max_rows,
            config_files=config_files,
        )

    report: CheckReport = _guarded(run, error_code)
    _guarded(lambda: _publish(report, as_json=as_json, markdown=markdown, junit=junit, quiet=quiet), error_code)
    raise typer.Exit(report.exit_code)


@baseline_app.command("update")
@cli_errors
def update(
    baseline: str = typer.Argument(..., metavar="BASELINE", help="The baseline snapshot to refresh."),
    reason: str = typer.Option(..., "--reason", "-m", help="Why the outputs are expected to change (recorded)."),
    config: str = typer.Option(
        None, "--config", "-c", help="envsnap.toml or pyproject.toml (default: found from here upwards)."
    ),
    python: str = typer.Option(None, "--python", help="Run the stages in this interpreter (or venv)."),
    output: str = typer.Option(
        None, "--output", "-o", help="Write the new baseline here instead of replacing BASELINE."
    ),
    no_git: bool = opt.NO_GIT,
    config_files: list[str] = CONFIG_FILES,
) -> None:
    """Rerun the pipeline on the baseline's recorded inputs and replace the baseline (who, when, why in its label)."""
    if python is None:
        python = opt.default_python()

    def run() -> Any:
        from envsnap.check import update_baseline

        return update_baseline(
            baseline,
            reason=reason,
            config=config,
            python=python,
            output=output,
            git=not no_git,
            config_files=config_files,
        )

    snap = _guarded(run, EXIT_ERROR)
    sys.stdout.write(f"wrote {snap.path}\n  label: {snap.label}\n  fingerprint {snap.fingerprint[:23]}…\n")
