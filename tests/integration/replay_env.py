"""Fixtures for the replay tests: a real Docker engine with a base image, and a recorded pipeline.

``make test`` runs ``scripts/docker-setup.sh`` first (engine, local registry, base image by digest) and
sets ``ENVSNAP_REQUIRE_DOCKER=1``: then a missing engine FAILS the docker tests instead of skipping
them, so CI never passes with the replay untested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import make_venv, pip_install, run

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "replay_project"
ENVSNAP = [sys.executable, "-m", "envsnap"]
PINS = ("pyarrow==20.0.0", "pytz==2025.2")


def base_image() -> str | None:
    """The base image reference ``scripts/docker-setup.sh`` wrote, or ``$ENVSNAP_BASE_IMAGE``."""
    explicit = os.environ.get("ENVSNAP_BASE_IMAGE")
    if explicit:
        return explicit
    recorded = ROOT / ".cache" / "docker" / "base-image"
    return recorded.read_text().strip() if recorded.is_file() else None


def docker_ready() -> str | None:
    """Why docker replays cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info: {exc}"
    if proc.returncode != 0:
        return "no Docker engine answers (run scripts/docker-setup.sh)"
    if base_image() is None:
        return "no base image configured (run scripts/docker-setup.sh)"
    return None


@pytest.fixture(scope="session")
def docker_base() -> str:
    """The base image; skips (or fails, under ``make test``) when docker replays cannot run."""
    why = docker_ready()
    if why is not None:
        if os.environ.get("ENVSNAP_REQUIRE_DOCKER") == "1":
            pytest.fail(f"docker replays are required here (ENVSNAP_REQUIRE_DOCKER=1) but: {why}")
        pytest.skip(why)
    image = base_image()
    assert image is not None
    return image


@pytest.fixture(scope="session")
def replay_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with the test pipeline's two dependencies, pinned."""
    python = make_venv(tmp_path_factory.mktemp("replay-venv") / "venv")
    pip_install(python, *PINS)
    return python


def make_events(path: Path) -> None:
    """Events with UTC times across the southern summer (when pytz 2019.1 still has Brazil on DST)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    start = dt.datetime(2024, 10, 20)
    rows = 240
    ts = [start + dt.timedelta(hours=7 * i + (i % 5)) for i in range(rows)]
    kind = [("buy", "sell", "hold")[i % 3] for i in range(rows)]
    amount = [float((i * 37) % 101 - 5) for i in range(rows)]
    pq.write_table(pa.table({"ts": pa.array(ts, pa.timestamp("us")), "kind": kind, "amount": amount}), path)


def git_project(dest: Path) -> Path:
    """The test pipeline committed in a fresh git repository (its data untracked, as in real projects)."""
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__"))
    make_events(dest / "events.parquet")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for argv in (["git", "init", "-q"], ["git", "add", "stages.py", "envsnap.toml"], ["git", "commit", "-qm", "p"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def record(project: Path, python: Path, out: Path, *extra: str) -> Path:
    """``envsnap run`` of the test pipeline in ``python``; returns the snapshot."""
    config = project / "envsnap.toml"
    run([*ENVSNAP, "run", "--config", config, "--python", python, "-o", out, "--force", *extra], cwd=project)
    return out
