"""``envsnap cache list | prune --keep N | clear``: the replay venvs kept on this machine.

Exit codes: 0 done; 2 usage error (``--keep`` below 0); 3 the cache cannot be read or changed.
"""

from __future__ import annotations

import json
import sys
import time

import typer

from envsnap.cli._common import cli_errors
from envsnap.core.naming import human_size

__all__ = ["app"]

app = typer.Typer(
    name="cache",
    help="The replay venvs kept on this machine: list them, prune them, clear them.",
    no_args_is_help=True,
    add_completion=False,
)


def _ago(when: float) -> str:
    seconds = max(0.0, time.time() - when)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


@app.command("list")
@cli_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON.")) -> None:
    """Every cached replay venv: its key, engine, Python, size on disk and last use, most recent first."""
    from envsnap.replay.cache import VenvStore, parse_bound

    store = VenvStore()
    entries = store.entries()
    total = store.total_size()
    bound = parse_bound(_bound_text())
    if as_json:
        doc = {
            "root": str(store.root),
            "total_bytes": total,
            "bound": {"entries": bound.entries, "bytes": bound.size},
            "entries": [
                {
                    "key": e.key,
                    "engine": e.engine,
                    "python": e.python,
                    "bytes": e.size,
                    "last_used": e.last_used,
                    "created": e.created,
                }
                for e in entries
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    lines = [f"{store.root}: {len(entries)} venv(s), {human_size(total)} on disk (shared files counted once)"]
    lines.append(f"bound: {bound.describe()} (ENVSNAP_CACHE_MAX); least recently used evicted after a build")
    if entries:
        lines.append(f"  {'KEY':34} {'ENGINE':7} {'PYTHON':8} {'SIZE':>10}  LAST USED")
    for e in entries:
        lines.append(f"  {e.key:34} {e.engine:7} {e.python:8} {human_size(e.size):>10}  {_ago(e.last_used)}")
    if entries:
        lines.append("SIZE counts a venv's files once each, including those it shares with others (hard links)")
    sys.stdout.write("\n".join(lines) + "\n")


@app.command("prune")
@cli_errors
def prune(
    keep: int = typer.Option(..., "--keep", min=0, help="How many of the most recently used venvs to keep."),
) -> None:
    """Remove all but the KEEP most recently used venvs (a venv another envsnap is using stays)."""
    from envsnap.replay.cache import VenvStore

    store = VenvStore()
    removed = store.prune(keep)
    sys.stdout.write(
        f"removed {len(removed)} venv(s); {len(store.entries())} kept, {human_size(store.total_size())} on disk\n"
    )


@app.command("clear")
@cli_errors
def clear() -> None:
    """Remove every cached venv and uv's unpacked wheels (the downloaded wheels stay)."""
    from envsnap.replay.cache import VenvStore

    store = VenvStore()
    removed, busy = store.clear()
    tail = f"; {len(busy)} in use by another envsnap kept: {', '.join(busy)}" if busy else ""
    sys.stdout.write(f"removed {len(removed)} venv(s){tail}; {human_size(store.total_size())} left\n")


def _bound_text() -> str | None:
    import os

    return os.environ.get("ENVSNAP_CACHE_MAX") or os.environ.get("ENVSNAP_VENV_CACHE_MAX")
