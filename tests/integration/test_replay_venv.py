"""The venv engine (no containers) and the wheelhouse, for real: uv or pip from a hermetic wheel cache."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.replay_env import ENVSNAP, git_project, record, replay_python  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, replay_python: Path) -> Path:  # noqa: F811
    project = git_project(tmp_path_factory.mktemp("replay-venv-project") / "proj")
    return record(project, replay_python, project / "good.envsnap")


def envsnap(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENVSNAP, *map(str, args)], capture_output=True, text=True, env=env or dict(os.environ), check=False
    )


def test_venv_engine_reproduces_and_reuses(recorded: Path, tmp_path: Path) -> None:
    proc = envsnap("replay", recorded, "--engine", "venv", "--until", "summarize", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["status"] for s in doc["stages"]] == ["match", "match", "match", "skipped"]
    assert doc["engine"] == "venv" and doc["prepared"]["installer"] == "uv"
    # The same Python as the capture is on this host (pyenv or PATH): no Python difference at all.
    assert not [f for f in doc["fidelity"] if f["layer"] == "python"], doc["fidelity"]
    again = json.loads(envsnap("replay", recorded, "--engine", "venv", "--stage", "clean", "--json").stdout)
    assert again["prepared"]["built"] is False
    assert again["prepared"]["reference"] == doc["prepared"]["reference"]


def test_venv_engine_with_override(recorded: Path) -> None:
    proc = envsnap("replay", recorded, "--engine", "venv", "--until", "summarize", "--with", "pytz==2019.1")
    assert proc.returncode == 1, proc.stderr
    assert "first diverging stage: localize" in proc.stdout
    assert "✓  3 summarize" in proc.stdout


def test_tampered_wheel_fails_the_hash_check(recorded: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "ENVSNAP_CACHE_DIR": str(cache)}
    first = envsnap("export", recorded, "--dockerfile", tmp_path / "ctx1", env=env)
    assert first.returncode == 0, first.stderr
    blob = next((cache / "wheels" / "blobs").glob("*/pytz-*.whl"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    second = envsnap("export", recorded, "--dockerfile", tmp_path / "ctx2", env=env)
    assert second.returncode == 3
    assert "does not match its sha256" in second.stderr and "Traceback" not in second.stderr
    assert not (tmp_path / "ctx2").exists()  # nothing half-written


def test_dry_run_prints_the_plan(recorded: Path) -> None:
    proc = envsnap("replay", recorded, "--dry-run", "--base-image", "example.invalid/base:1", "--with", "pytz==2019.1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "base image   example.invalid/base:1  (--base-image)" in out
    assert "pytz==2019.1  (--with; recorded 2025.2)" in out
    assert "network none, read-only root" in out
    for stage in ("clean", "localize", "summarize", "hostile"):
        assert stage in out
    default = envsnap(
        "replay", recorded, "--dry-run", env={k: v for k, v in os.environ.items() if k != "ENVSNAP_BASE_IMAGE"}
    )
    assert "python:3.11" in default.stdout and "slim-bookworm" in default.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "nope"], "--stage 'nope': no such stage"),
        (["--with", "pytz"], "--with 'pytz' is not NAME==VERSION"),
        (["--set-env", "=x"], "--set-env '=x' is not KEY=VALUE"),
        (["--from", "summarize", "--until", "clean"], "comes after"),
        (["--engine", "podman"], "--engine must be one of"),
    ],
)
def test_bad_options_are_one_line(recorded: Path, args: list[str], message: str) -> None:
    proc = envsnap("replay", recorded, "--dry-run", *args)
    assert proc.returncode in (2, 3)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_capture_only_snapshot_names_the_ways_in(tmp_path: Path) -> None:
    snap = tmp_path / "plain.envsnap"
    made = envsnap("capture", "-o", snap, "--no-git")
    assert made.returncode == 0, made.stderr
    assert envsnap("replay", snap, "--dry-run").returncode == 0
    proc = envsnap("replay", snap)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--shell" in proc.stderr and "export --dockerfile" in proc.stderr and "-- COMMAND" in proc.stderr


def test_image_needs_the_docker_engine(recorded: Path) -> None:
    proc = envsnap("replay", recorded, "--engine", "venv", "--image")
    assert proc.returncode == 2, proc.stderr
    assert "--image builds a Docker image; it needs --engine docker" in proc.stderr and "Traceback" not in proc.stderr
