"""The ``envsnap`` command line: a thin typer app. Commands parse options, call the library, render.

Exit codes: 0 ok; 1 differences found / replay diverged (when asked to fail on them); 2 usage error;
3 envsnap error (bad snapshot, bad --python, unwritable output, ...).
"""

from __future__ import annotations

import sys

import typer

from envsnap._version import __version__
from envsnap.cli import bisect as bisect_cmd
from envsnap.cli import cache as cache_cmd
from envsnap.cli import capture as capture_cmd
from envsnap.cli import check as check_cmd
from envsnap.cli import diff as diff_cmd
from envsnap.cli import inspect as inspect_cmd
from envsnap.cli import replay as replay_cmd
from envsnap.cli import run as run_cmd
from envsnap.cli import sample as sample_cmd
from envsnap.cli._common import State

__all__ = ["app", "main"]

app = typer.Typer(
    name="envsnap",
    help="Capture, verify and export a reproducible snapshot of a job's runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"envsnap {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    State.verbose = verbose


app.command("capture")(capture_cmd.capture)
app.command("show")(inspect_cmd.show)
app.command("verify")(inspect_cmd.verify)
app.command("export")(inspect_cmd.export)
app.command("run", context_settings={"allow_interspersed_args": False})(run_cmd.run)
app.command("sample")(sample_cmd.sample)
app.command("diff")(diff_cmd.diff)
app.command("replay")(replay_cmd.replay)
app.command("bisect")(bisect_cmd.bisect)
app.command("shrink")(bisect_cmd.shrink)
app.command("check")(check_cmd.check)
app.add_typer(check_cmd.baseline_app, name="baseline")
app.add_typer(cache_cmd.app, name="cache")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    State.argv = tuple(sys.argv[1:] if argv is None else argv)
    State.own_process = argv is None
    try:
        app(args=argv, prog_name="envsnap")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    return 0
