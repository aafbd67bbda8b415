"""``envsnap capture``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from envsnap.cli._common import cli_errors, err, human_size


def _default_python() -> str | None:
    """An activated virtualenv that is not envsnap's own is what the user means to capture."""
    venv = os.environ.get("VIRTUAL_ENV")
    if not venv:
        return None
    try:
        if Path(venv).resolve() == Path(sys.prefix).resolve():
            return None
    except OSError:
        return None
    return venv


@cli_errors
def capture(
    output: str = typer.Option(None, "--output", "-o", help="Where to write: *.envsnap = zip, else a directory."),
    python: str = typer.Option(
        None, "--python", help="Capture this interpreter (or venv directory) instead of envsnap's own."
    ),
    label: str = typer.Option(None, "--label", help="A label stored in the manifest (e.g. 'nightly-good')."),
    env_allow: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--env-allow", help="Keep the value of matching env vars (glob; repeatable)."
    ),
    no_git: bool = typer.Option(False, "--no-git", help="Do not record git state."),
    reproducible: bool = typer.Option(
        False, "--reproducible", help="Omit timestamps and random ids: same state, same bytes."
    ),
    hashes: bool = typer.Option(False, "--hashes", help="Resolve --hash values for the lock from the index."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the output path."),
) -> None:
    """Capture the runtime contract of a Python environment into a snapshot."""
    from envsnap.capture import capture as do_capture

    if python is None:
        python = _default_python()
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
    )
    if quiet:
        sys.stdout.write(f"{snap.path}\n")
        return
    size = sum(m.size for m in snap.manifest.members.values())
    failed = {n: s.error for n, s in snap.manifest.probes.items() if s.status == "error"}
    sys.stdout.write(
        f"wrote {snap.path}\n"
        f"  {len(snap.manifest.members)} members, {human_size(size)}, fingerprint {snap.fingerprint[:23]}…\n"
    )
    for name, message in sorted(failed.items()):
        sys.stdout.write(f"  probe {name} failed: {message}\n")
