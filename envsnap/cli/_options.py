"""Options and argument parsing shared by ``capture``, ``run`` and ``sample``: one definition each, so the
commands cannot drift apart in spelling, defaults or help."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from envsnap.capture.base import SampleOptions

# typer declares options as default values; sharing the OptionInfo objects between commands is how a
# definition is written once (B008 is about exactly this pattern).
OUTPUT = typer.Option(None, "--output", "-o", help="Where to write: *.envsnap = zip, else a directory.")
LABEL = typer.Option(None, "--label", help="A label stored in the manifest (e.g. 'nightly-good').")
ENV_ALLOW = typer.Option([], "--env-allow", help="Keep the value of matching env vars (glob; repeatable).")
NO_GIT = typer.Option(False, "--no-git", help="Do not record git state.")
FORCE = typer.Option(False, "--force", help="Replace an existing output.")
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the output path.")
INPUTS = typer.Option(
    [], "--input", "-i", help="Sample an input: NAME=PATH (parquet file/dir/dataset or CSV; repeatable)."
)
ROWS = typer.Option(None, "--rows", "-n", min=1, help="Rows to sample per input (default 1000).")
FRACTION = typer.Option(None, "--fraction", min=0.0, max=1.0, help="Sample this fraction instead.")
SEED = typer.Option(0, "--seed", help="Seed of the sample: same data, options and seed, same rows.")
METHOD = typer.Option("uniform", "--method", help="uniform (iid) or row-groups (fast, not iid).")
COLUMNS = typer.Option([], "--columns", help="Only these columns (comma-separated or repeated).")
MASK = typer.Option(
    [], "--mask", help="Replace this column's values with salted tokens before anything runs or is written."
)
RTOL = typer.Option(
    None, "--rtol", min=0.0, help="Relative tolerance for numeric cells (default: the config's [check], else 0)."
)
ATOL = typer.Option(
    None, "--atol", min=0.0, help="Absolute tolerance for numeric cells (default: the config's [check], else 0)."
)
ARTIFACTS = typer.Option([], "--artifact", help="Record a model/config file: hash, size, format metadata (repeatable).")
LOCKFILES = typer.Option(
    [],
    "--lockfile",
    metavar="PATH",
    help="Also record this lockfile (those at the repository root always are; repeatable).",
)
CONFIG_FILES = typer.Option(
    [], "--config-file", metavar="PATH_OR_GLOB", help="Record a config file, parsed and redacted (repeatable)."
)


def default_python() -> str | None:
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


# --- fleets (docs/fleet.md) --------------------------------------------------------------------------
RAY = typer.Option(
    None, "--ray", metavar="ADDRESS", help="Capture every node of the Ray cluster at HOST:PORT (or 'auto') as a fleet."
)
RAY_RUNTIME_ENV = typer.Option(
    [],
    "--ray-runtime-env",
    metavar="NAME=JSON",
    help="With --ray: also capture this runtime_env (JSON object or @file.json) on every node (repeatable).",
)
SPARK_MASTER = typer.Option(
    None, "--spark", metavar="MASTER", help="Capture every executor of a Spark application on MASTER as a fleet."
)
NODE_TIMEOUT = typer.Option(
    300.0, "--node-timeout", min=1.0, help="With --ray/--spark: seconds to wait for the node captures."
)


def parse_runtime_envs(specs: list[str]) -> dict[str, dict[str, object]]:
    """``NAME=JSON`` (or ``NAME=@file.json``) pairs of ``--ray-runtime-env``; malformed ones are usage errors."""
    import json

    out: dict[str, dict[str, object]] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise typer.BadParameter(f"{spec!r} is not NAME=JSON (e.g. --ray-runtime-env omp3='{{\"env_vars\": ...}}')")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise typer.BadParameter(f"runtime {name!r}: cannot read {value[1:]} ({exc.strerror})") from exc
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise typer.BadParameter(f"runtime {name!r}: not valid JSON ({exc})") from exc
        if not isinstance(parsed, dict):
            raise typer.BadParameter(f"runtime {name!r}: a runtime_env is a JSON object")
        if name in out:
            raise typer.BadParameter(f"runtime {name!r} is given twice")
        out[name] = parsed
    return out
