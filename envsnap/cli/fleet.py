"""``envsnap capture --ray ADDRESS`` / ``--spark MASTER``: a fleet snapshot (docs/fleet.md).

Exit codes: 0 when every node group was captured; 3 for an unreachable cluster (nothing written) and
for a partial fleet (written, with the missing node groups listed); 2 for usage errors.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from envsnap.cli._common import EXIT_ERROR, EXIT_USAGE, FAIL_ON, err, terminal_width, use_color
from envsnap.core.naming import human_size

__all__ = ["capture_fleet", "diff_fleet"]


def capture_fleet(
    *,
    ray: str | None,
    spark: str | None,
    runtime_envs: dict[str, dict[str, Any]],
    output: str | None,
    label: str | None,
    env_allow: list[str],
    git: bool,
    reproducible: bool,
    force: bool,
    quiet: bool,
    timeout: float,
    local_only: list[Any],
) -> None:
    """Capture the fleet, print what was written, exit 3 when node groups are missing."""
    if ray is not None and spark is not None:
        err("envsnap: usage error: give --ray ADDRESS or --spark MASTER, not both")
        raise typer.Exit(EXIT_USAGE)
    if runtime_envs and ray is None:
        err("envsnap: usage error: --ray-runtime-env goes with --ray")
        raise typer.Exit(EXIT_USAGE)
    if any(local_only):
        err("envsnap: usage error: --python, --input, --artifact, --lockfile and --config-file do not go with a fleet")
        raise typer.Exit(EXIT_USAGE)
    if output is None:
        output = time.strftime("envsnap-fleet-%Y%m%dT%H%M%SZ.envsnap", time.gmtime())
    common: dict[str, Any] = {
        "label": label,
        "env_allow": env_allow,
        "git": git,
        "reproducible": reproducible,
        "force": force,
    }
    if ray is not None:
        from envsnap.integrations.ray import capture_cluster

        snap = capture_cluster(ray, output, runtime_envs=runtime_envs, timeout=timeout, **common)
    else:
        from envsnap.integrations.spark import capture_master

        snap = capture_master(str(spark), output, timeout=timeout, **common)
    from envsnap.snapshot.fleet import read_fleet

    fleet = read_fleet(snap)
    if quiet:
        sys.stdout.write(f"{snap.path}\n")
    else:
        size = sum(m.size for m in snap.manifest.members.values())
        ok = sum(1 for n in fleet.nodes if n.status == "ok")
        engine = f"{fleet.engine} {fleet.engine_version or ''}".rstrip()
        sys.stdout.write(
            f"wrote {snap.path}\n  fleet: {engine}, {ok} of {len(fleet.nodes)} node groups captured, "
            f"{len(snap.manifest.members)} members, {human_size(size)}\n"
        )
        for node in fleet.nodes:
            state = "ok" if node.status == "ok" else f"MISSING: {node.error}"
            sys.stdout.write(f"  {node.key} ({node.hostname or '?'}, runtime {node.runtime}): {state}\n")
    if fleet.missing:
        err(
            f"envsnap: error: {len(fleet.missing)} of {len(fleet.nodes)} node groups could not be captured "
            f"({', '.join(fleet.missing)}); the fleet was written with them listed as missing"
        )
        raise typer.Exit(EXIT_ERROR)


def _both_fleets(a: str, b: str) -> bool:
    """Whether A and B are both fleet snapshots (any error is left to the normal diff to report)."""
    from envsnap.errors import EnvsnapError
    from envsnap.snapshot.fleet import is_fleet
    from envsnap.snapshot.reader import open_snapshot

    try:
        with open_snapshot(a) as snap_a, open_snapshot(b) as snap_b:
            return is_fleet(snap_a) and is_fleet(snap_b)
    except EnvsnapError:
        return False


def diff_fleet(
    a: str,
    b: str | None,
    *,
    across_nodes: bool,
    as_json: bool,
    markdown: bool,
    html: str | None,
    fail_on: str | None,
    options: dict[str, Any],
) -> bool:
    """``diff FLEET --across-nodes`` and ``diff FLEET_A FLEET_B``; False when this is not a fleet diff."""
    from envsnap.diff import fleet as fleet_diff
    from envsnap.diff.fleet_render import comparison_text, skew_text, to_json

    if fail_on is not None and fail_on not in FAIL_ON:
        return False  # the normal path reports the usage error
    if across_nodes:
        if b is not None:
            err("envsnap: usage error: --across-nodes compares the nodes of one fleet: give only A")
            raise typer.Exit(EXIT_USAGE)
        if markdown or html:
            err("envsnap: usage error: --across-nodes prints text or --json (no --markdown, no --html)")
            raise typer.Exit(EXIT_USAGE)
        skew = fleet_diff.across_nodes(a)
        sys.stdout.write(to_json(skew.to_dict()) if as_json else skew_text(skew))
        sys.stdout.flush()
        if fail_on in ("env", "any") and skew.skewed:
            raise typer.Exit(1)
        return True
    if b is None or not _both_fleets(a, b):
        return False
    from envsnap.cli._common import write_output
    from envsnap.diff.render import render

    comparison = fleet_diff.compare_fleets(a, b, **options)
    if html is not None:
        where = write_output(html, render(comparison.driver, "html").encode("utf-8"))
        err(f"wrote {where} (the drivers only; node groups are in the text and --json output)")
    if as_json:
        sys.stdout.write(to_json(comparison.to_dict()))
    elif markdown:
        fleet_part = comparison_text(comparison, "").lstrip("\n")
        sys.stdout.write(
            render(comparison.driver, "markdown") + "\n## Fleet node groups\n\n```\n" + fleet_part + "```\n"
        )
    else:
        driver_text = render(comparison.driver, "text", color=use_color(), width=terminal_width())
        sys.stdout.write(comparison_text(comparison, driver_text))
    sys.stdout.flush()
    driver = comparison.driver
    failing = {"env": driver.env.changed or comparison.changed, "data": driver.data.changed}
    failing["any"] = failing["env"] or failing["data"]
    if fail_on is not None and failing[fail_on]:
        raise typer.Exit(1)
    return True
