"""A replay on the captured image: by digest, with the captured interpreter, installing only what it lacks."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from envsnap.replay.dockerfile import (
    INSTALLED_SNIPPET,
    MISSING_SCRIPT,
    image_delta,
    image_env,
    install_script,
    python_in_image,
    render,
)
from envsnap.replay.plan import Package, ReplayPlan
from envsnap.replay.wheelhouse import Wheel, Wheelhouse

REF = "127.0.0.1:5000/job@sha256:" + "f6" * 32


def _plan(**changes: object) -> ReplayPlan:
    plan = ReplayPlan(
        snapshot="snap.envsnap",
        snapshot_id="id",
        label=None,
        fingerprint="sha256:" + "0" * 64,
        python_version="3.11.2",
        python_implementation="cpython",
        platform="linux-x86_64",
        glibc="2.36",
        base_image=REF,
        base_image_source="the captured image digest",
        packages=(Package("pip", "23.0.1"), Package("six", "1.16.0"), Package("Typing_Extensions", "4.12.2")),
        excluded=(),
        env={},
        env_not_applied={},
        cpus=None,
        memory_bytes=None,
        match_resources=True,
        stages=(),
        inputs=(),
        pipeline_root=None,
        pythonpath=(),
        image_python="/opt/venv/bin/python",
    )
    return dataclasses.replace(plan, **changes)


def test_the_image_that_has_every_pin_gets_nothing_installed() -> None:
    installed = {"pip": "23.0.1", "six": "1.16.0", "typing-extensions": "4.12.2", "wheel": "0.45.1"}
    delta, note = image_delta(_plan(), installed)
    assert delta.packages == () and delta.image_python == "/opt/venv/bin/python"
    assert note == "the captured image has all 3 pinned package(s) for /opt/venv/bin/python: nothing installed"
    assert python_in_image(delta) == "/opt/venv/bin/python"


def test_only_the_missing_and_different_pins_are_installed() -> None:
    delta, note = image_delta(_plan(), {"pip": "23.0.1", "six": "1.17.0"})
    assert [p.pin for p in delta.packages] == ["six==1.16.0", "Typing_Extensions==4.12.2"]
    assert "has 1 of the 3 pinned package(s)" in note and "installing only the 2 it lacks" in note
    assert delta.image_key("uv") != _plan().image_key("uv")


def test_without_the_interpreter_in_the_image_every_pin_goes_into_the_venv() -> None:
    delta, note = image_delta(_plan(), None)
    assert delta.image_python is None and len(delta.packages) == 3
    assert python_in_image(delta) == "/opt/venv/bin/python" and "is not in" in note
    assert image_env(delta)["PATH"].startswith("/opt/venv/bin:/usr/local/sbin")


def test_a_plan_on_another_base_is_left_alone() -> None:
    plan = _plan(image_python=None, base_image="python:3.11-slim", base_image_source="--base-image")
    assert image_delta(plan, {}) == (plan, "")
    # the captured interpreter is part of what goes into an image: another one gives another tag
    assert plan.image_key("uv") != _plan(base_image="python:3.11-slim").image_key("uv")


def test_the_dockerfile_builds_from_the_digest_in_one_stage() -> None:
    wheelhouse = Wheelhouse(
        Path("wheels"), (Wheel("six==1.16.0", "six-1.16.0-py2.py3-none-any.whl", "ab"),), None, 0, 0
    )
    text = render(_plan(), wheelhouse)
    assert f"FROM {REF}\n" in text and text.count("FROM ") == 1
    assert "ENV PATH=/opt/venv/bin:$PATH " in text
    script = install_script(wheelhouse, "/opt/venv/bin/python")
    assert "PY='/opt/venv/bin/python'" in script and '"$PY" -m pip install' in script
    assert 'missing.py" "$CTX/requirements.txt"' in script and "python3 -m venv" not in script


def test_the_image_snippets_answer(tmp_path: Path) -> None:
    """The two programs the captured interpreter runs, run here by this interpreter."""
    have = json.loads(subprocess.run([sys.executable, "-c", INSTALLED_SNIPPET], capture_output=True, check=True).stdout)
    assert have["pytest"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"pytest=={have['pytest']} --hash=sha256:aa\n"
        "PyTest==0.0.1 --hash=sha256:bb\n"
        "no-such-dist==1.0 --hash=sha256:cc\n"
    )
    (tmp_path / "missing.py").write_text(MISSING_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "missing.py"), str(requirements)], capture_output=True, text=True, check=True
    ).stdout
    assert out == "PyTest==0.0.1 --hash=sha256:bb\nno-such-dist==1.0 --hash=sha256:cc\n"


def test_the_dry_run_says_the_image_interpreter_is_used() -> None:
    from envsnap.replay.render import render_plan

    text = render_plan(_plan())
    assert f"  base image   {REF}  (the captured image digest)\n" in text
    assert "on the captured image: /opt/venv/bin/python is used; pins it already has are not installed" in text
    assert "on the captured image" not in render_plan(_plan(), engine="venv")
