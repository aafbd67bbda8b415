"""``envsnap capture``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from envsnap.capture.base import SampleOptions
from envsnap.cli._common import EXIT_ERROR, cli_errors, err, human_size


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


def parse_inputs(specs: list[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs; a malformed or repeated name is a usage error (exit 2)."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"{spec!r} is not NAME=PATH (e.g. --input events=data/events.parquet)")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise typer.BadParameter(f"input name {name!r} must be letters, digits, '-' or '_'")
        if name in out:
            raise typer.BadParameter(f"input {name!r} is given twice")
        out[name] = path
    return out


def sampling_options(
    rows: int | None, fraction: float | None, seed: int, method: str, columns: list[str], mask: list[str]
) -> SampleOptions:
    """The sampling options of ``capture``, ``run`` and ``sample``, checked for usage errors."""
    if rows is not None and fraction is not None:
        raise typer.BadParameter("give --rows or --fraction, not both")
    if method not in ("uniform", "row-groups"):
        raise typer.BadParameter(f"--method must be 'uniform' or 'row-groups', not {method!r}")
    cols = tuple(c.strip() for spec in columns for c in spec.split(",") if c.strip()) or None
    return SampleOptions(
        rows=None if fraction is not None else (rows if rows is not None else 1000),
        fraction=fraction,
        seed=seed,
        method=method,
        columns=cols,
        mask=tuple(mask),
    )


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
    inputs: list[str] = typer.Option(  # noqa: B008
        [], "--input", "-i", help="Sample an input: NAME=PATH (parquet file/dir/dataset or CSV; repeatable)."
    ),
    rows: int = typer.Option(None, "--rows", "-n", min=1, help="Rows to sample per input (default 1000)."),
    fraction: float = typer.Option(None, "--fraction", min=0.0, max=1.0, help="Sample this fraction instead."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    method: str = typer.Option("uniform", "--method", help="uniform (iid) or row-groups (fast, not iid)."),
    columns: list[str] = typer.Option(  # noqa: B008
        [], "--columns", help="Only these columns (comma-separated or repeated)."
    ),
    mask: list[str] = typer.Option(  # noqa: B008
        [], "--mask", help="Replace this column's values with salted tokens before writing (repeatable)."
    ),
    artifacts: list[str] = typer.Option(  # noqa: B008
        [], "--artifact", help="Record a model/config file: hash, size, format metadata (repeatable)."
    ),
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
        inputs=parse_inputs(inputs),
        sampling=sampling_options(rows, fraction, seed, method, columns, mask),
        artifacts=artifacts,
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
    fail_on_requested(asked)


def fail_on_requested(errors: dict[str, str]) -> None:
    """Exit 3 (after the snapshot was written) when a requested input or artifact could not be recorded."""
    if errors:
        messages = [m.split(": ", 1)[1] if m.split(": ", 1)[0].endswith("Error") else m for m in errors.values()]
        err("envsnap: error: " + "; ".join(sorted(messages)) + " (the snapshot was written with what happened)")
        raise typer.Exit(EXIT_ERROR)
