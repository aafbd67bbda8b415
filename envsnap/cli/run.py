"""``envsnap run``: run a pipeline on sampled inputs and capture everything into one snapshot.

Exit status: 0 every stage ran; 1 a stage failed (the snapshot is written and records the failure);
2 usage or pipeline-definition error (nothing written); 3 an input could not be sampled (the snapshot is
written, no stage ran) or any other envsnap error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import typer

from envsnap.cli import _options as opt
from envsnap.cli._common import cli_errors, err, human_size

__all__ = ["run"]


def _stage_line(outcome: dict[str, Any]) -> str:
    head = f"  {outcome['index']:02d} {outcome['name']:<20}"
    if outcome["status"] == "ok":
        wall = outcome.get("wall_time_s")
        memory = outcome.get("memory") or {}
        parts = [f"{outcome.get('rows')} rows"]
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
        "python": "Run the stages in this interpreter (or venv); nothing is installed there.",
        "inputs": "NAME=PATH: sample this input instead of the configured one (repeatable).",
        "reproducible": "Omit timestamps, ids, timings and memory: same state, same bytes.",
    },
)
def run(
    config: str = typer.Option(
        None, "--config", "-c", help="envsnap.toml or pyproject.toml (default: found from here upwards)."
    ),
    output: str = opt.OUTPUT,
    flags: Mapping[str, Any] = opt.FLAGS,
    force: bool = opt.FORCE,
    quiet: bool = opt.QUIET,
) -> None:
    """Run a pipeline's stages on sampled inputs; write one snapshot with every intermediate."""
    from envsnap.pipeline import load_pipeline
    from envsnap.pipeline.runner import run_pipeline

    pipeline = load_pipeline(config)
    python = flags["python"]
    if python is None:
        python = opt.default_python()
        if python is not None and not quiet:
            err(f"envsnap: running in the active virtualenv {python} (VIRTUAL_ENV); pass --python to choose another")
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
    if result.status == "failed" and not quiet:
        err(f"envsnap: stage {result.failed_stage} failed; the snapshot records its error and traceback")
    elif result.status == "failed":
        err(f"envsnap: {result.error}")
    elif result.status != "ok":
        err(f"envsnap: error: {result.error}; the snapshot records what was captured")
    raise typer.Exit(result.exit_code)
