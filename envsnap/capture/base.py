"""The probe contract, the capture options and the registry.

A probe is a small class with a ``name``, the ``member`` it writes, and ``collect(ctx)`` returning
JSON-able data for that member (``str`` for text members). A probe that also writes side members returns
:class:`ProbeOutput`. Probes run in registry order, so a later probe (the SBOM) can read an earlier
one's result from ``ctx.results``. A probe that raises has its error recorded; capture goes on.

The capture options are declared once, as the fields of :class:`CaptureOptions`: each field's metadata
names the probe that owns it and how :meth:`CaptureOptions.build` turns the public API's loosely typed
argument into the stored value. The public keyword arguments (:class:`CaptureArguments`) and the
command line (``envsnap.cli._options.CAPTURE_FLAGS``) are held to these fields by
``tests/unit/test_capture_options.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from envsnap.capture.target import TargetRuntime

if TYPE_CHECKING:
    from typing import Unpack

__all__ = [
    "LOCKFILE_KINDS",
    "CaptureArguments",
    "CaptureContext",
    "CaptureOptions",
    "InputSpec",
    "Probe",
    "ProbeOutput",
    "SampleOptions",
    "argument_names",
    "paused_gc",
    "register",
    "registered",
]


@dataclass(frozen=True)
class SampleOptions:
    """How input batches are sampled (``--rows``/``--fraction``, ``--seed``, ``--method``, ...)."""

    rows: int | None = 1000
    fraction: float | None = None
    seed: int = 0
    method: str = "uniform"
    columns: tuple[str, ...] | None = None
    mask: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputSpec:
    """One named input: a path (parquet file, parquet directory/dataset, CSV) or an in-memory table."""

    name: str
    source: Any


def _paths(values: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    return tuple(os.fspath(value) for value in values)


#: The kinds ``--lockfile-kind`` accepts: the keys of ``lockfile_parsers.PARSERS`` (a test keeps them equal;
#: listed here because the parsers sit above this module).
LOCKFILE_KINDS = (
    "conda-environment",
    "conda-lock",
    "pipfile.lock",
    "poetry.lock",
    "pylock",
    "pyproject",
    "requirements",
    "uv.lock",
)


def _lockfile_kind(kind: str | None) -> str | None:
    from envsnap.errors import OptionError

    if kind is not None and kind not in LOCKFILE_KINDS:
        raise OptionError(f"unknown lockfile kind {kind!r}", hint=f"use one of: {', '.join(LOCKFILE_KINDS)}")
    return kind


def _inputs(inputs: Mapping[str, Any]) -> tuple[InputSpec, ...]:
    return tuple(InputSpec(str(name), source) for name, source in inputs.items())


def _option(
    owner: str | None,
    *,
    convert: Callable[[Any], Any] | None = None,
    none_is_default: bool = False,
    argument: bool = True,
) -> dict[str, Any]:
    """The metadata of one :class:`CaptureOptions` field.

    ``owner`` is the probe the option is for (None: the capture as a whole). ``convert`` turns the public
    API's argument into the stored value; with ``none_is_default`` an argument of None means the field's
    default. ``argument=False``: not a keyword of the public API (the capture itself sets it).
    """
    return {"owner": owner, "convert": convert, "none_is_default": none_is_default, "argument": argument}


class CaptureArguments(TypedDict, total=False):
    """The keyword arguments of :func:`envsnap.capture.capture` and :func:`envsnap.run_pipeline` that fill
    :class:`CaptureOptions`: one per field whose metadata says ``argument``, typed as the public API
    accepts them (paths, iterables, None for the default). See :meth:`CaptureOptions.build`."""

    python: str | os.PathLike[str] | None
    label: str | None
    env_allow: Iterable[str]
    git: bool
    reproducible: bool
    hashes: bool
    os_packages: bool
    cwd: str | os.PathLike[str] | None
    argv: Iterable[str] | None
    inputs: Mapping[str, Any] | None
    sampling: SampleOptions | None
    artifacts: Iterable[str | os.PathLike[str]]
    lockfiles: Iterable[str | os.PathLike[str]]
    lockfile_kind: str | None
    config_files: Iterable[str | os.PathLike[str]]
    source: bool


@dataclass(frozen=True)
class CaptureOptions:
    """What the user asked of a capture. Probes read the options they own (each field's ``owner``)."""

    #: ``--python``: the interpreter (or venv) whose environment is captured instead of this one.
    python: str | None = field(default=None, metadata=_option(None, convert=os.fspath, none_is_default=True))
    label: str | None = field(default=None, metadata=_option(None))
    env_allow: tuple[str, ...] = field(default=(), metadata=_option("envvars", convert=tuple))
    git: bool = field(default=True, metadata=_option("git"))
    reproducible: bool = field(default=False, metadata=_option(None))
    hashes: bool = field(default=False, metadata=_option("lock"))
    #: ``--os-packages``: record the dpkg/apk/rpm packages (env/os-packages.json, and in the SBOM). Off by
    #: default: ~850 packages cost ~30 ms of credential scanning, a sixth of a whole capture.
    os_packages: bool = field(default=False, metadata=_option("os_packages"))
    cwd: str = field(default_factory=os.getcwd, metadata=_option(None, convert=os.fspath, none_is_default=True))
    argv: tuple[str, ...] = field(
        default_factory=lambda: tuple(sys.argv), metadata=_option("job", convert=tuple, none_is_default=True)
    )
    #: Always this process's environment (a fleet node's context sets its worker's).
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), metadata=_option(None, argument=False))
    inputs: tuple[InputSpec, ...] = field(default=(), metadata=_option("data", convert=_inputs, none_is_default=True))
    sampling: SampleOptions = field(default_factory=SampleOptions, metadata=_option("data", none_is_default=True))
    artifacts: tuple[str, ...] = field(default=(), metadata=_option("artifacts", convert=_paths))
    #: ``--lockfile PATH`` and ``--config-file PATH_OR_GLOB`` (the lockfiles and configs probes).
    lockfiles: tuple[str, ...] = field(default=(), metadata=_option("lockfiles", convert=_paths))
    #: ``--lockfile-kind KIND``: read every ``--lockfile`` file as this kind, whatever its name and content.
    lockfile_kind: str | None = field(default=None, metadata=_option("lockfiles", convert=_lockfile_kind))
    config_files: tuple[str, ...] = field(default=(), metadata=_option("configs", convert=_paths))
    #: The failure being recorded (``on_failure``, a failing ``run``): {type, message, traceback}.
    failure: Mapping[str, Any] | None = field(default=None, metadata=_option("job", argument=False))
    #: ``envsnap run -- COMMAND``: the command's record (``job/command.json`` ``command``; see command_run).
    command: Mapping[str, Any] | None = field(default=None, metadata=_option("job", argument=False))
    #: ``envsnap run -- COMMAND``: its inputs, outputs and opened files (the job_files probe).
    job_files: tuple[Any, ...] = field(default=(), metadata=_option("job_files", argument=False))
    #: ``--no-source`` sets it False: the code map indexes the project's files but keeps none of their text.
    source: bool = field(default=True, metadata=_option("source_files"))
    #: A pipeline run: (stage name, the absolute source files it imported) per stage that ran.
    code_files: tuple[tuple[str, tuple[str, ...]], ...] = field(
        default=(), metadata=_option("source_files", argument=False)
    )

    @classmethod
    def build(cls, **arguments: Unpack[CaptureArguments]) -> CaptureOptions:
        """Options from the public API's loosely typed arguments, each converted as its field declares.

        Raises ``TypeError`` for a keyword that is not a capture argument, as a signature would.
        """
        declared = {f.name: f for f in dataclasses.fields(cls) if f.metadata["argument"]}
        values: dict[str, Any] = {}
        for name, value in arguments.items():
            spec = declared.get(name)
            if spec is None:
                raise TypeError(f"unexpected keyword argument {name!r} (capture arguments: {', '.join(declared)})")
            if value is None and spec.metadata["none_is_default"]:
                continue
            convert = spec.metadata["convert"]
            values[name] = value if convert is None else convert(value)
        return cls(**values)


def argument_names() -> tuple[str, ...]:
    """The :class:`CaptureOptions` fields that are keyword arguments of the public API, in field order."""
    return tuple(f.name for f in dataclasses.fields(CaptureOptions) if f.metadata["argument"])


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No garbage collection while envsnap captures. Inside a job that has imported numpy/pandas/
    scikit-learn the heap holds millions of objects, and a full collection triggered by capture's own
    small allocations costs ~50 ms; capture creates no reference cycles worth collecting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class ProbeOutput:
    """A probe result with side members (e.g. git writes ``env/git.json`` and ``env/git.patch``)."""

    data: Any
    extra: dict[str, Any] = field(default_factory=dict)


class CaptureContext:
    """Shared state of one capture: options, the target runtime (lazy) and earlier probe results."""

    def __init__(self, options: CaptureOptions, target_factory: Callable[[], TargetRuntime]) -> None:
        self.options = options
        self._target_factory = target_factory
        self.results: dict[str, Any] = {}
        #: Sampled input tables by name (filled by the data probe; the pipeline runner feeds them to stages).
        self.samples: dict[str, Any] = {}

    @cached_property
    def target(self) -> TargetRuntime:
        """The runtime being captured; inspected once, on first use."""
        return self._target_factory()

    def result(self, probe: str) -> Any:
        """Data of an earlier probe; raises ``LookupError`` when it failed or has not run."""
        if probe not in self.results:
            raise LookupError(f"the {probe} probe did not produce data")
        return self.results[probe]


class Probe(ABC):
    """One capture probe."""

    name: ClassVar[str]
    member: ClassVar[str]

    @abstractmethod
    def collect(self, ctx: CaptureContext) -> Any:
        """Gather this probe's data. Raise on failure; the caller records the error."""

    def enabled(self, ctx: CaptureContext) -> bool:
        """Whether the probe runs for these options (git is off with ``--no-git``)."""
        return True

    @classmethod  # noqa: B027 - an optional hook, deliberately empty by default
    def warm_up(cls) -> None:
        """Import what :meth:`collect` will need. Called while capture waits on another interpreter, so
        that the wait and the imports overlap; a no-op for most probes."""


_REGISTRY: dict[str, type[Probe]] = {}


def register(cls: type[Probe]) -> type[Probe]:
    """Class decorator: add a probe to the registry (registration order is run order)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two probes are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> list[type[Probe]]:
    """Registered probe classes in run order."""
    return list(_REGISTRY.values())
