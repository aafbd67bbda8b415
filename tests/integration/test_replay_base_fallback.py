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


def test_an_emulated_plan_pulls_and_runs_for_the_captured_platform(docker_base: str) -> None:  # noqa: F811
    """On an arm64 host with qemu the plan runs linux/amd64: the engine passes that platform (here the
    engine's own, so the container runs natively and says x86_64)."""
    from envsnap.replay.engines.docker import hardened_options, run_platform

    support = EngineSupport("aarch64", frozenset({"x86_64"}), "binfmt_misc qemu-x86_64: /usr/bin/qemu-x86_64-static")
    plan = build_plan(capture(git=False), base_image=docker_base, support=support)
    assert run_platform(plan) == "linux/amd64" and hardened_options(plan)["platform"] == "linux/amd64"
    engine = DockerEngine()
    said: list[Any] = []
    assert engine.ensure_base(plan, lambda kind, message: said.append(message))
    code, tail = engine._run_container(
        docker_base,
        ["python3", "-c", "import platform; print(platform.machine())"],
        mounts=[],
        labels={"org.envsnap.test": "platform"},
        options=hardened_options(plan),
        progress=None,
    )
    assert (code, tail[-1:]) == (0, ["x86_64"])
