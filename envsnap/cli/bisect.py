"""``envsnap bisect`` and ``envsnap shrink``: narrow a regression to its environment change, or its rows.

bisect exit codes: 0 a culprit was found, or GOOD and BAD recorded the same output (nothing to bisect);
1 no environment culprit (not an environment change, not reproduced, unresolved, out of replays, or GOOD
does not reproduce itself); 2 usage error; 3 a replay failed for infrastructure reasons (the reason is
printed; nothing is guessed).

shrink exit codes: 0 the minimal batch was written; 1 the failure does not reproduce in a replay (nothing
written); 2 usage error; 3 envsnap error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from envsnap.cli._common import EXIT_USAGE, cli_errors, err
from envsnap.replay.engines import ENGINES

if TYPE_CHECKING:
    from envsnap.bisect import BisectReport

__all__ = ["bisect", "shrink"]

_MARK = {"bad": "✗", "good": "✓", "unresolved": "?"}


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        err(f"envsnap: usage error: --engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        raise typer.Exit(EXIT_USAGE)


def _progress(quiet: bool, verbose: bool) -> Callable[[str, str], None]:
    def say(kind: str, message: str) -> None:
        if quiet or (kind == "replay" and not verbose):
            return
        prefix = {"step": "  ·", "result": "    ", "replay": "      "}.get(kind, "  ")
        sys.stderr.write(f"{prefix} {message}\n")
        sys.stderr.flush()

    return say


def _render_bisect(report: BisectReport) -> str:
    lines = [f"bisect {report.good} → {report.bad}: {report.status}", f"  {report.message}"]
    if report.steps:
        lines.append(f"steps ({report.replays} replays):")
        for step in report.steps:
            reused = "reused" if step.cached else "built"
            changes = ", ".join(step.changes) or "GOOD alone"
            lines.append(
                f"  {_MARK.get(step.outcome, ' ')} {step.index:>2} {step.phase:<5} {step.seconds:6.1f} s  {reused:<6}  "
                f"{changes}  → {step.outcome}: {step.detail}"
            )
    if report.culprit:
        lines.append("culprit:")
        lines += [f"  {c.describe()}" + (f"  ({c.note})" if c.note else "") for c in report.culprit]
    if report.repro:
        lines.append("reproduce it alone:")
        lines.append(f"  {report.repro}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


@cli_errors
def bisect(
    good: str = typer.Argument(..., metavar="GOOD", help="Snapshot of the good run (recorded with `envsnap run`)."),
    bad: str = typer.Argument(..., metavar="BAD", help="Snapshot of the bad run."),
    engine: str = typer.Option("docker", "--engine", "-e", help="docker (hardened container) or venv (local)."),
    base_image: str = typer.Option(None, "--base-image", envvar="ENVSNAP_BASE_IMAGE", help="Base image for docker."),
    stage: str = typer.Option(None, "--stage", help="Oracle: this stage diverges from GOOD's (default: any stage)."),
    rtol: float = typer.Option(0.0, "--rtol", min=0.0, help="Relative tolerance for numeric cells."),
    atol: float = typer.Option(0.0, "--atol", min=0.0, help="Absolute tolerance for numeric cells."),
    max_replays: int = typer.Option(64, "--max-replays", min=2, help="Stop after this many replays."),
    source: str = typer.Option(None, "--source", help="The pipeline's code (default: GOOD's recorded commit)."),
    repo: str = typer.Option(None, "--repo", help="A git clone that has GOOD's recorded commit."),
    timeout: float = typer.Option(None, "--timeout", min=1.0, help="Stop each replay's stages after this long."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    verbose_replay: bool = typer.Option(False, "--replay-log", help="Show each replay's own progress too."),
) -> None:
    """Find the environment change (packages, env/thread settings) that flips GOOD's output into BAD's."""
    from envsnap.bisect import bisect as run_bisect

    _check_engine(engine)
    report = run_bisect(
        good,
        bad,
        engine=engine,
        stage=stage,
        rtol=rtol,
        atol=atol,
        max_replays=max_replays,
        progress=_progress(quiet or as_json, verbose_replay),
        base_image=base_image,
        source=source,
        repo=repo,
        timeout=timeout,
    )
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_render_bisect(report))
    raise typer.Exit(report.exit_code)


@cli_errors
def shrink(
    snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot of the failing run (recorded with `envsnap run`)."),
    against: str = typer.Option(None, "--against", help="GOOD: the failure is a divergence from GOOD's runtime."),
    stage: str = typer.Option(None, "--stage", help="The stage whose failure must survive (default: the first)."),
    output: str = typer.Option(None, "--output", "-o", help="Where to write (default: SNAP.shrunk.envsnap)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    engine: str = typer.Option("docker", "--engine", "-e", help="docker (hardened container) or venv (local)."),
    base_image: str = typer.Option(None, "--base-image", envvar="ENVSNAP_BASE_IMAGE", help="Base image for docker."),
    rtol: float = typer.Option(0.0, "--rtol", min=0.0, help="Relative tolerance for numeric cells."),
    atol: float = typer.Option(0.0, "--atol", min=0.0, help="Absolute tolerance for numeric cells."),
    max_replays: int = typer.Option(200, "--max-replays", min=1, help="Stop after this many replays."),
    timeout: float = typer.Option(None, "--timeout", min=1.0, help="Stop each replay's stages after this long."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Find the smallest subset of the recorded input rows that still reproduces the failure."""
    from envsnap.shrink import shrink as run_shrink

    _check_engine(engine)
    report = run_shrink(
        snap,
        against=against,
        stage=stage,
        output=output,
        force=force,
        engine=engine,
        base_image=base_image,
        rtol=rtol,
        atol=atol,
        max_replays=max_replays,
        timeout=timeout,
        progress=_progress(quiet or as_json, False),
    )
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(report.render())
    raise typer.Exit(report.exit_code)
