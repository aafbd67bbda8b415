"""Options and argument parsing shared by ``capture``, ``run`` and ``sample``: one definition each, so the
commands cannot drift apart in spelling, defaults or help.

:data:`CAPTURE_FLAGS` is the one table of the options that fill
:class:`~envsnap.capture.base.CaptureOptions`; :func:`with_capture_flags` puts them into a command and
:func:`capture_arguments` turns their parsed values into the keyword arguments of
:func:`envsnap.capture.capture` and :func:`envsnap.run_pipeline`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import operator
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import typer

if TYPE_CHECKING:
    from envsnap.capture.base import CaptureArguments, SampleOptions

__all__ = [
    "ATOL",
    "CAPTURE_FLAGS",
    "FLAGS",
    "FORCE",
    "NODE_TIMEOUT",
    "NO_GIT",
    "OUTPUT",
    "QUIET",
    "RAY",
    "RAY_RUNTIME_ENV",
    "RTOL",
    "SPARK_MASTER",
    "CaptureFlag",
    "capture_arguments",
    "default_python",
    "parse_inputs",
    "parse_runtime_envs",
    "sampling_options",
    "with_capture_flags",
]

F = TypeVar("F", bound=Callable[..., Any])

# typer declares options as default values; sharing the OptionInfo objects between commands is how a
# definition is written once (B008 is about exactly this pattern).
OUTPUT = typer.Option(None, "--output", "-o", help="Where to write: *.envsnap = zip, else a directory.")
NO_GIT = typer.Option(False, "--no-git", help="Do not record git state.")
FORCE = typer.Option(False, "--force", help="Replace an existing output.")
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the output path.")
RTOL = typer.Option(
    None, "--rtol", min=0.0, help="Relative tolerance for numeric cells (default: the config's \\[check], else 0)."
)
ATOL = typer.Option(
    None, "--atol", min=0.0, help="Absolute tolerance for numeric cells (default: the config's \\[check], else 0)."
)


@dataclass(frozen=True)
class CaptureFlag:
    """One command-line option that fills a capture option.

    ``name`` is the command's parameter, ``annotation`` the type typer parses, ``option`` the typer
    declaration (spelling, default, help) and ``fills`` the :class:`~envsnap.capture.base.CaptureOptions`
    field it fills, through ``convert`` when given. The sampling flags fill ``sampling`` together
    (:func:`sampling_options`).
    """

    name: str
    annotation: Any
    option: Any
    fills: str
    convert: Callable[[Any], Any] | None = None


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


#: The options of ``envsnap capture`` and ``envsnap run`` that fill the capture options, in help order.
#: ``cwd`` and ``argv`` are not options: the command line is run from a directory, and is the argv.
CAPTURE_FLAGS: tuple[CaptureFlag, ...] = (
    CaptureFlag(
        "python",
        str,
        typer.Option(None, "--python", help="Capture this interpreter (or venv directory) instead of envsnap's own."),
        "python",
    ),
    CaptureFlag(
        "inputs",
        list[str],
        typer.Option(
            [],
            "--input",
            "-i",
            help="Sample an input: NAME=PATH (parquet file/dir/dataset or CSV, local or s3://; repeatable).",
        ),
        "inputs",
        parse_inputs,
    ),
    CaptureFlag(
        "rows",
        int,
        typer.Option(None, "--rows", "-n", min=1, help="Rows to sample per input (default 1000)."),
        "sampling",
    ),
    CaptureFlag(
        "fraction",
        float,
        typer.Option(None, "--fraction", min=0.0, max=1.0, help="Sample this fraction instead."),
        "sampling",
    ),
    CaptureFlag(
        "seed",
        int,
        typer.Option(0, "--seed", help="Seed of the sample: same data, options and seed, same rows."),
        "sampling",
    ),
    CaptureFlag(
        "method",
        str,
        typer.Option("uniform", "--method", help="uniform (iid) or row-groups (fast, not iid)."),
        "sampling",
    ),
    CaptureFlag(
        "columns",
        list[str],
        typer.Option([], "--columns", help="Only these columns (comma-separated or repeated)."),
        "sampling",
    ),
    CaptureFlag(
        "mask",
        list[str],
        typer.Option(
            [], "--mask", help="Replace this column's values with salted tokens before anything runs or is written."
        ),
        "sampling",
    ),
    CaptureFlag(
        "artifacts",
        list[str],
        typer.Option([], "--artifact", help="Record a model/config file: hash, size, format metadata (repeatable)."),
        "artifacts",
    ),
    CaptureFlag(
        "lockfiles",
        list[str],
        typer.Option(
            [],
            "--lockfile",
            metavar="PATH",
            help="Also record this lockfile (those at the repository root always are; repeatable).",
        ),
        "lockfiles",
    ),
    CaptureFlag(
        "lockfile_kind",
        str,
        typer.Option(
            None,
            "--lockfile-kind",
            metavar="KIND",
            help="Read every lockfile named on the command line as this kind (requirements, uv.lock, "
            "poetry.lock, pylock, pipfile.lock, pyproject, conda-environment, conda-lock), not by its name.",
        ),
        "lockfile_kind",
    ),
    CaptureFlag(
        "config_files",
        list[str],
        typer.Option(
            [], "--config-file", metavar="PATH_OR_GLOB", help="Record a config file, parsed and redacted (repeatable)."
        ),
        "config_files",
    ),
    CaptureFlag(
        "label",
        str,
        typer.Option(None, "--label", help="A label stored in the manifest (e.g. 'nightly-good')."),
        "label",
    ),
    CaptureFlag(
        "env_allow",
        list[str],
        typer.Option([], "--env-allow", help="Keep the value of matching env vars (glob; repeatable)."),
        "env_allow",
    ),
    CaptureFlag("no_git", bool, NO_GIT, "git", operator.not_),
    CaptureFlag(
        "no_source",
        bool,
        typer.Option(
            False,
            "--no-source",
            help="Keep no text of the project's source files the job ran (the code map still names and hashes them).",
        ),
        "source",
        operator.not_,
    ),
    CaptureFlag(
        "reproducible",
        bool,
        typer.Option(False, "--reproducible", help="Omit timestamps and random ids: same state, same bytes."),
        "reproducible",
    ),
    CaptureFlag(
        "hashes",
        bool,
        typer.Option(False, "--hashes", help="Resolve --hash values for the lock from the index."),
        "hashes",
    ),
    CaptureFlag(
        "os_packages",
        bool,
        typer.Option(
            False, "--os-packages", help="Record the system's dpkg/apk/rpm packages (and list them in the SBOM)."
        ),
        "os_packages",
    ),
)

#: The default of the parameter that :func:`with_capture_flags` replaces with :data:`CAPTURE_FLAGS`.
FLAGS: Mapping[str, Any] = MappingProxyType({})


def with_capture_flags(*, skip: Collection[str] = (), helps: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Decorate a command: its parameter whose default is :data:`FLAGS` becomes the options of
    :data:`CAPTURE_FLAGS` (less ``skip``; ``helps`` replaces help texts by flag name), at that place in
    the help; the command receives their parsed values in that parameter, by flag name."""
    flags = [flag for flag in CAPTURE_FLAGS if flag.name not in skip]

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        (slot,) = [p.name for p in signature.parameters.values() if p.default is FLAGS]
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name != slot:
                parameters.append(parameter)
                continue
            for flag in flags:
                option = flag.option
                if helps and flag.name in helps:
                    option = copy.copy(option)
                    option.help = helps[flag.name]
                parameters.append(parameter.replace(name=flag.name, default=option, annotation=flag.annotation))

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[slot] = {flag.name: kwargs.pop(flag.name) for flag in flags}
            return command(*args, **kwargs)

        # typer reads the parameters from the signature and their types from the annotations.
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        wrapper.__annotations__["return"] = signature.return_annotation
        return cast(F, wrapper)

    return decorate


def capture_arguments(values: Mapping[str, Any]) -> CaptureArguments:
    """The parsed values of :data:`CAPTURE_FLAGS` (by flag name; absent flags keep the capture's
    defaults) as :func:`envsnap.capture.capture`'s keyword arguments; usage errors raise
    ``typer.BadParameter``."""
    arguments: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for flag in CAPTURE_FLAGS:
        if flag.name not in values:
            continue
        value = values[flag.name]
        if flag.fills == "sampling":
            sampling[flag.name] = value
        else:
            arguments[flag.fills] = flag.convert(value) if flag.convert is not None else value
    if sampling:
        arguments["sampling"] = sampling_options(**sampling)
    return cast("CaptureArguments", arguments)


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


def sampling_options(
    rows: int | None, fraction: float | None, seed: int, method: str, columns: list[str], mask: list[str]
) -> SampleOptions:
    """The sampling options of ``capture``, ``run`` and ``sample``, checked for usage errors."""
    from envsnap.capture.base import SampleOptions

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
