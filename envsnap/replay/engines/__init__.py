"""Replay engines: ``docker`` (the only module that imports the docker SDK) and ``venv``."""

from __future__ import annotations

from envsnap.replay.engines.base import Engine, EngineError, EngineUnavailableError, Exit, Mount, Prepared

__all__ = ["Engine", "EngineError", "EngineUnavailableError", "Exit", "Mount", "Prepared", "get_engine"]


def get_engine(name: str, **options: object) -> Engine:
    """The engine called ``name`` (``docker`` or ``venv``)."""
    if name == "docker":
        from envsnap.replay.engines.docker import DockerEngine

        return DockerEngine(**options)  # type: ignore[arg-type]
    if name == "venv":
        from envsnap.replay.engines.venv import VenvEngine

        return VenvEngine(**options)  # type: ignore[arg-type]
    raise EngineError(f"unknown engine {name!r}", hint="use --engine docker or --engine venv")
