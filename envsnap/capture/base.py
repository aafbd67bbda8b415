"""The probe contract and the registry.

A probe is a small class with a ``name``, the ``member`` it writes, and ``collect(ctx)`` returning
JSON-able data for that member (``str`` for text members). A probe that also writes side members returns
:class:`ProbeOutput`. Probes run in registry order, so a later probe (the SBOM) can read an earlier
one's result from ``ctx.results``. A probe that raises has its error recorded; capture goes on.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from envsnap.capture.target import TargetRuntime


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


@dataclass(frozen=True)
class CaptureOptions:
    """What the user asked of a capture. Probes read the options they own."""

    python: str | None = None
    label: str | None = None
    env_allow: tuple[str, ...] = ()
    git: bool = True
    reproducible: bool = False
    hashes: bool = False
    cwd: str = field(default_factory=os.getcwd)
    argv: tuple[str, ...] = field(default_factory=lambda: tuple(sys.argv))
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    inputs: tuple[InputSpec, ...] = ()
    sampling: SampleOptions = field(default_factory=SampleOptions)
    artifacts: tuple[str, ...] = ()
    #: ``--lockfile PATH`` and ``--config-file PATH_OR_GLOB`` (the lockfiles and configs probes).
    lockfiles: tuple[str, ...] = ()
    config_files: tuple[str, ...] = ()
    #: The failure being recorded (``on_failure``, a failing ``run``): {type, message, traceback}.
    failure: Mapping[str, Any] | None = None

    @classmethod
    def build(
        cls,
        *,
        python: str | os.PathLike[str] | None = None,
        label: str | None = None,
        env_allow: Iterable[str] = (),
        git: bool = True,
        reproducible: bool = False,
        hashes: bool = False,
        cwd: str | os.PathLike[str] | None = None,
        argv: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        sampling: SampleOptions | None = None,
        artifacts: Iterable[str | os.PathLike[str]] = (),
        failure: Mapping[str, Any] | None = None,
        lockfiles: Iterable[str | os.PathLike[str]] = (),
        config_files: Iterable[str | os.PathLike[str]] = (),
    ) -> CaptureOptions:
        """Options from the public API's loosely typed arguments (paths, iterables, None for defaults)."""
        return cls(
            python=os.fspath(python) if python is not None else None,
            label=label,
            env_allow=tuple(env_allow),
            git=git,
            reproducible=reproducible,
            hashes=hashes,
            cwd=os.fspath(cwd) if cwd is not None else os.getcwd(),
            argv=tuple(argv) if argv is not None else tuple(sys.argv),
            inputs=tuple(InputSpec(str(name), source) for name, source in (inputs or {}).items()),
            sampling=sampling if sampling is not None else SampleOptions(),
            artifacts=tuple(os.fspath(a) for a in artifacts),
            failure=failure,
            lockfiles=tuple(os.fspath(p) for p in lockfiles),
            config_files=tuple(os.fspath(p) for p in config_files),
        )


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
