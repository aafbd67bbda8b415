"""What an engine does for a replay: build the runtime once, then run commands in it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from envsnap.errors import EnvsnapError
from envsnap.replay.plan import ReplayPlan

__all__ = [
    "BaseImageMissingError",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "Exit",
    "InstallError",
    "Mount",
    "Prepared",
    "Progress",
]

#: Progress callback: (kind, message); kinds are ``step`` (a phase), ``log`` (a build line) and ``note``.
Progress = Callable[[str, str], None]


class EngineError(EnvsnapError):
    """The engine failed for infrastructure reasons (not the pipeline's)."""


class EngineUnavailableError(EngineError):
    """No container engine is reachable."""


class InstallError(EngineError):
    """The locked set could not be installed in the runtime (a resolution or build failure of the set itself,
    e.g. a ``--with`` that conflicts): the plan's problem, not the infrastructure's."""


class BaseImageMissingError(EngineError, ValueError):
    """The base image is neither present locally nor pullable."""


@dataclass(frozen=True)
class Mount:
    """A host path made visible in the runtime at ``inner`` (read-only unless ``writable``)."""

    host: str
    inner: str
    writable: bool = False


@dataclass(frozen=True)
class Prepared:
    """A runtime ready to run commands: a tagged image or a venv directory."""

    engine: str
    reference: str
    python: str
    built: bool
    build_seconds: float
    installer: str
    digest: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: The image a container engine runs, when not ``reference`` (a mounted venv runs on the base image).
    image: str | None = None
    #: Mounts every run of this runtime gets (the cached venv read-only, its byte-code cache writable).
    mounts: tuple[Mount, ...] = ()
    #: Environment every run of this runtime gets, under the plan's (``PYTHONPYCACHEPREFIX``, ``PATH``, ...).
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Exit:
    """How a command in the runtime ended."""

    returncode: int
    output: str = ""
    oom_killed: bool = False
    timed_out: bool = False
    memory_limit: int | None = None


class Engine(ABC):
    """Builds the runtime for a plan and runs commands in it."""

    name: str = ""
    #: Whether paths inside the runtime differ from the host's (containers): mounts say where.
    isolates: bool = False

    @abstractmethod
    def prepare(self, plan: ReplayPlan, context: Path, progress: Progress) -> Prepared:
        """Build (or reuse) the runtime for ``plan``; ``context`` is a scratch directory for the build."""

    @abstractmethod
    def execute(
        self,
        prepared: Prepared,
        argv: list[str],
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        timeout: float | None = None,
    ) -> Exit:
        """Run ``argv`` in the runtime and wait for it."""

    def shell_command(
        self,
        prepared: Prepared,
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        command: list[str] | None = None,
        tty: bool = True,
    ) -> tuple[list[str], dict[str, str]]:
        """An interactive shell (or ``command``) in the runtime, as an argv (and its environment) for the CLI
        to run with the terminal's stdin/stdout/stderr; ``tty`` asks for a terminal in the runtime."""
        raise EngineError(f"the {self.name} engine has no --shell")
