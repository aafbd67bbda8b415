"""The docker engine answers whether a base image can be pulled, and the replay falls back on its answer."""

from __future__ import annotations

import dataclasses
from typing import Any

from envsnap.capture import capture
from envsnap.replay.engines.docker import DockerEngine
from envsnap.replay.execute import resolved_base
from envsnap.replay.plan import build_plan
from envsnap.replay.platforms import EngineSupport
from tests.integration.replay_env import docker_base  # noqa: F401

MISSING = "127.0.0.1:5000/envsnap-no-such-image:3.11.7-slim-bookworm"


def test_a_base_the_registry_does_not_have_falls_back_to_one_it_has(docker_base: str) -> None:  # noqa: F811
    engine = DockerEngine()
    assert engine.base_unavailable(docker_base) is None
    why = engine.base_unavailable(MISSING)
    assert why is not None and "manifest unknown" in why
    plan = build_plan(capture(git=False), support=EngineSupport("x86_64"))
    plan = dataclasses.replace(plan, base_image=MISSING, base_candidates=(MISSING, docker_base))
    said: list[Any] = []
    resolved = resolved_base(plan, engine, lambda kind, message: said.append((kind, message)))
    assert resolved.base_image == docker_base
    assert resolved.base_fallback == f"fell back to {docker_base}: {MISSING} cannot be pulled ({why})"
    assert said == [("note", f"base image: {resolved.base_fallback}")]
    # A plan on a given base (--base-image) asks nothing.
    given = dataclasses.replace(plan, base_image=docker_base, base_candidates=())
    assert resolved_base(given, engine, lambda kind, message: said.append(message)) is given
