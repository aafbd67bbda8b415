"""``envsnap diff``: compare two snapshots, or a snapshot with the environment now, a requirements file, or
(``--config-against-repo``) its captured config files with the repository at the recorded commit.

Exit codes: 0 (differences or not, unless ``--fail-on`` asks); 1 with ``--fail-on env|data|any`` when such
differences exist; 2 for a usage error; 3 for an unreadable snapshot (via :func:`cli_errors`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from envsnap.cli._common import (
    EXIT_DIFFERENT,
    EXIT_USAGE,
    FAIL_ON,
    cli_errors,
    err,
    terminal_width,
    use_color,
    write_output,
)

if TYPE_CHECKING:
    from envsnap.diff.model import SnapshotDiff

__all__ = ["diff"]


def _fails(result: SnapshotDiff, fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    env, data = result.env.changed, result.data.changed
    return {"env": env, "data": data, "any": env or data}[fail_on]


def _mapped(config_map: list[str]) -> dict[str, dict[str, str]]:
    """``--config-map`` items as the ``config_map`` keyword (none when not given)."""
    from envsnap.diff.config_pairing import parse_config_map

    return {"config_map": parse_config_map(config_map)} if config_map else {}


@cli_errors
def diff(
    a: str = typer.Argument(..., metavar="A", help="The good/old snapshot (directory or *.envsnap)."),
    b: str = typer.Argument(None, metavar="[B]", help="The bad/new snapshot."),
    current: bool = typer.Option(False, "--current", help="Compare A with the environment as it is now."),
    python: str = typer.Option(None, "--python", help="With --current: inspect this interpreter (or venv)."),
    requirements: str = typer.Option(
        None, "--requirements", "-r", metavar="FILE", help="Compare A's packages with a lock/requirements file."
    ),
    against_repo: bool = typer.Option(
        False, "--config-against-repo", help="Compare A's captured config files with the repository at its commit."
    ),
    repo: str = typer.Option(
        None, "--repo", metavar="DIR", help="With --config-against-repo: the clone to read (default: the recorded one)."
    ),
    rtol: float = typer.Option(0.0, "--rtol", min=0.0, help="Relative tolerance for numeric cells."),
    atol: float = typer.Option(0.0, "--atol", min=0.0, help="Absolute tolerance for numeric cells."),
    keys: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--key", metavar="COL", help="Match rows by these columns (repeatable)."
    ),
    max_rows: int = typer.Option(10, "--max-rows", min=0, help="Differing rows to show per table."),
    config_map: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [],
        "--config-map",
        metavar="A=B",
        help="Compare a's config file A with b's B, key by key, though their names differ (repeatable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON document (docs/diff-json.md)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print Markdown (CI job summary, PR comment)."),
    html: str = typer.Option(None, "--html", metavar="FILE", help="Also write a self-contained HTML report."),
    fail_on: str = typer.Option(None, "--fail-on", metavar="env|data|any", help="Exit 1 when such differences exist."),
    across_nodes: bool = typer.Option(
        False, "--across-nodes", help="A is a fleet: report which node groups differ from their runtime's majority."
    ),
) -> None:
    """Compare two snapshots: environment, data and the first diverging stage, with ranked suspects."""
    if config_map and (b is None or current or requirements is not None or against_repo or across_nodes):
        err("envsnap: usage error: --config-map pairs the config files of two snapshots: give A and B")
        raise typer.Exit(EXIT_USAGE)
    if across_nodes or (b is not None and not (current or requirements or against_repo)):
        from envsnap.cli.fleet import diff_fleet

        if diff_fleet(
            a,
            b,
            across_nodes=across_nodes,
            as_json=as_json,
            markdown=markdown,
            html=html,
            fail_on=fail_on,
            options={"rtol": rtol, "atol": atol, "keys": keys, "max_rows": max_rows, **_mapped(config_map)},
        ):
            return
    given = sum([b is not None, current, requirements is not None, against_repo])
    if given != 1:
        err("envsnap: usage error: give exactly one of B, --current or --requirements FILE (or --config-against-repo)")
        raise typer.Exit(EXIT_USAGE)
    if repo is not None and not against_repo:
        err("envsnap: usage error: --repo goes with --config-against-repo")
        raise typer.Exit(EXIT_USAGE)
    if as_json and markdown:
        err("envsnap: usage error: --json and --markdown both print to stdout; choose one")
        raise typer.Exit(EXIT_USAGE)
    if fail_on is not None and fail_on not in FAIL_ON:
        err(f"envsnap: usage error: --fail-on must be one of {', '.join(FAIL_ON)} (got {fail_on!r})")
        raise typer.Exit(EXIT_USAGE)
    if python is not None and not current:
        err("envsnap: usage error: --python goes with --current")
        raise typer.Exit(EXIT_USAGE)

    from envsnap.diff import compare

    if current:
        result = compare.diff_current(a, python=python)
    elif requirements is not None:
        result = compare.diff_requirements_file(a, requirements)
    elif against_repo:
        from envsnap.diff.config_repo import diff_config_against_repo

        result = diff_config_against_repo(a, repo=repo)
    else:
        result = compare.diff(a, b, rtol=rtol, atol=atol, keys=keys, max_rows=max_rows, **_mapped(config_map))

    from envsnap.diff.render import render

    if html is not None:
        where = write_output(html, render(result, "html").encode("utf-8"))
        err(f"wrote {where}")
    if as_json:
        sys.stdout.write(render(result, "json"))
    elif markdown:
        sys.stdout.write(render(result, "markdown"))
    else:
        sys.stdout.write(render(result, "text", color=use_color(), width=terminal_width()))
    sys.stdout.flush()
    if _fails(result, fail_on):
        raise typer.Exit(EXIT_DIFFERENT)
