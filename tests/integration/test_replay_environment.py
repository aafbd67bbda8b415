"""Replay of environment-only snapshots (`envsnap capture`, on_failure, the pytest plugin): no pipeline, no
command. Alone, `replay SNAP` names the three ways in; `-- COMMAND` and `--shell` run in the rebuilt runtime
with stdin, stdout, stderr and the exit status passed through; `export --dockerfile` writes the context.
Both engines, for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.replay_env import ENVSNAP, docker_base, replay_python  # noqa: F401

pytestmark = pytest.mark.slow

PROGRAM = "import sys, pytz; print(sys.stdin.read().upper().strip(), pytz.__version__); sys.exit(7)"


def envsnap(*args: str | Path, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENVSNAP, *map(str, args)], input=stdin, capture_output=True, text=True, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory, replay_python: Path) -> Path:  # noqa: F811
    snap = tmp_path_factory.mktemp("replay-environment") / "env.envsnap"
    made = envsnap("capture", "--python", replay_python, "--no-git", "-o", snap)
    assert made.returncode == 0, made.stderr
    return snap


def test_alone_it_names_the_three_options_in_one_line(environment: Path) -> None:
    proc = envsnap("replay", environment, "--engine", "venv")
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert "--shell" in line and "envsnap export --dockerfile DIR" in line and "-- COMMAND..." in line
    assert "Traceback" not in proc.stderr


def test_dry_run_and_stage_options(environment: Path) -> None:
    plan = envsnap("replay", environment, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "pytz==2025.2" in plan.stdout and "job          none recorded" in plan.stdout
    stage = envsnap("replay", environment, "--stage", "x", "--", "true")
    assert stage.returncode == 3 and "no pipeline stages" in stage.stderr
    assert len(stage.stderr.strip().splitlines()) == 1
    both = envsnap("replay", environment, "--shell", "--", "true")
    assert both.returncode == 2 and "give one or the other" in both.stderr


def test_venv_engine_runs_a_command_with_stdio_and_exit_status(environment: Path, tmp_path: Path) -> None:
    proc = envsnap(
        "replay", environment, "--engine", "venv", "--", "python", "-c", PROGRAM, stdin="hello", cwd=tmp_path
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == "HELLO 2025.2"
    which = envsnap(
        "replay", environment, "-q", "--engine", "venv", "--", "python", "-c", "import sys; print(sys.prefix)"
    )
    assert which.returncode == 0 and "/venvs/" in which.stdout  # the cached replay venv, not the caller's
    assert which.stderr == ""  # -q: nothing but the command's own output


def test_venv_engine_shell_reads_stdin(environment: Path) -> None:
    env = {**os.environ, "SHELL": "/bin/sh"}
    proc = subprocess.run(
        [*ENVSNAP, "replay", str(environment), "--engine", "venv", "--shell"],
        input='python -c "import pytz; print(pytz.__version__)"\nexit 4\n',
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout.strip() == "2025.2"


def test_export_dockerfile_of_an_environment_snapshot(environment: Path, tmp_path: Path) -> None:
    proc = envsnap("export", environment, "--dockerfile", tmp_path / "ctx", "--base-image", "example.invalid/b:1")
    assert proc.returncode == 0, proc.stderr
    assert "FROM example.invalid/b:1" in (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "pytz==2025.2" in (tmp_path / "ctx" / "requirements.txt").read_text()


def test_docker_engine_runs_a_command_without_network(environment: Path, docker_base: str) -> None:  # noqa: F811
    proc = envsnap("replay", environment, "--base-image", docker_base, "--", "python", "-c", PROGRAM, stdin="hi")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == "HI 2025.2"
    probe = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 53), 3)\n"
    probe += "except OSError:\n    raise SystemExit(9)"
    offline = envsnap("replay", environment, "-q", "--base-image", docker_base, "--", "python", "-c", probe)
    assert offline.returncode == 9, offline.stderr  # --network none
    cwd = envsnap("replay", environment, "-q", "--base-image", docker_base, "--", "pwd")
    assert cwd.returncode == 0 and cwd.stdout.strip() == "/tmp"  # no code recorded: the writable tmpfs


def test_docker_engine_shell_reads_stdin(environment: Path, docker_base: str) -> None:  # noqa: F811
    script = 'python -c "import pytz; print(pytz.__version__)"\nid -u\nexit 5\n'
    proc = envsnap("replay", environment, "--base-image", docker_base, "--shell", stdin=script)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout.split() == ["2025.2", "65532"]
