"""Replay engines: ``docker`` (the only module that imports the docker SDK) and ``venv``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.replay.engines.base import Engine, EngineError, EngineUnavailableError, Exit, Mount, Prepared

__all__ = ["ENGINES", "Engine", "EngineError", "EngineUnavailableError", "Exit", "Mount", "Prepared", "get_engine"]

#: The engines by name, in the order the CLI lists them (the modules load only when one is asked for).
ENGINES = ("docker", "venv")


def __getattr__(name: str) -> Any:
    # The base module imports the replay plan: the CLI, which only needs ENGINES, must not pay for it.
    if name in ("Engine", "EngineError", "EngineUnavailableError", "Exit", "Mount", "Prepared"):
        from envsnap.replay.engines import base

        return getattr(base, name)
    raise AttributeError(f"module 'envsnap.replay.engines' has no attribute {name!r}")


def get_engine(name: str, **options: object) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    if name == "docker":
        from envsnap.replay.engines.docker import DockerEngine

        return DockerEngine(**options)  # type: ignore[arg-type]
    if name == "venv":
        from envsnap.replay.engines.venv import VenvEngine

        return VenvEngine(**options)  # type: ignore[arg-type]
    from envsnap.replay.engines.base import EngineError

    raise EngineError(f"unknown engine {name!r}", hint=f"use --engine {' or '.join(ENGINES)}")
