"""Replay of command snapshots (`envsnap run -- CMD`), for real, on both engines: the recorded script rerun
at the recorded root with its recorded input in place; a failure reproduced (exit 0) or not (exit 1), a
success with the same output reproduced, another package version that changes the output diverging.
And a stage pipeline that fails as recorded is reproduced too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.replay_env import ENVSNAP, docker_base, git_project, record, replay_python  # noqa: F401

pytestmark = pytest.mark.slow

JOB = '''"""A job that validates its input and writes a summary (the test's command)."""
import csv
import os
import sys

import pytz


def load(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def validate(rows):
    bad = [r for r in rows if float(r["amount"]) < 0]
    if bad:
        raise ValueError(f"{len(bad)} row(s) with a negative amount")


def main(strict):
    rows = load("data/in.csv")
    if os.environ.get("JOB_MODE") == "other":
        raise KeyError("a code path the recording did not take")
    if strict:
        validate(rows)
    os.makedirs("out", exist_ok=True)
    total = sum(float(r["amount"]) for r in rows)
    with open("out/result.csv", "w") as fh:
        fh.write("rows,total,pytz\\n")
        fh.write(f"{len(rows)},{total},{pytz.__version__}\\n")


if __name__ == "__main__":
    main("--strict" in sys.argv)
'''


def envsnap(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOB_MODE"}
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replay-command") / "job"
    root.mkdir()
    (root / "job.py").write_text(JOB)
    (root / ".gitignore").write_text("data/\nout/\n*.envsnap\n")
    (root / "data").mkdir()
    (root / "data" / "in.csv").write_text("id,amount\n1,3.5\n2,-1.0\n3,10.25\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for argv in (["git", "init", "-q"], ["git", "add", "job.py", ".gitignore"], ["git", "commit", "-qm", "job"]):
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)
    return root


def run_job(project: Path, python: Path, name: str, *args: str) -> Path:
    out = project / f"{name}.envsnap"
    proc = envsnap(
        "run", "-o", out, "--input", "in=data/in.csv", "--output", "out/result.csv", "--", python, "job.py", *args,
        cwd=project,
    )  # fmt: skip
    assert proc.returncode == (1 if "--strict" in args else 0), proc.stderr
    assert out.exists(), proc.stderr
    return out


@pytest.fixture(scope="module")
def failing(project: Path, replay_python: Path) -> Path:  # noqa: F811
    snap = run_job(project, replay_python, "failing", "--strict")
    (project / "data" / "in.csv").write_text("id,amount\n1,0\n")  # the replay must use the recorded input
    return snap


@pytest.fixture(scope="module")
def succeeding(project: Path, replay_python: Path, failing: Path) -> Path:  # noqa: F811
    (project / "data" / "in.csv").write_text("id,amount\n1,3.5\n2,-1.0\n3,10.25\n")
    snap = run_job(project, replay_python, "ok")
    (project / "out" / "result.csv").unlink()
    return snap


@pytest.fixture(params=["venv", "docker"])
def engine(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "venv":
        return ["--engine", "venv"]
    return ["--engine", "docker", "--base-image", request.getfixturevalue("docker_base")]


def replay(snap: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    text = envsnap("replay", snap, "--no-fidelity", *args)
    doc = envsnap("replay", snap, "--no-fidelity", "--json", "-q", *args)
    assert doc.returncode == text.returncode, doc.stderr
    return text, json.loads(doc.stdout)


def test_failing_script_is_reproduced(failing: Path, engine: list[str]) -> None:
    text, doc = replay(failing, *engine)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "reproduced: the same failure: the same ValueError at job.py" in text.stdout
    assert "in validate" in text.stdout
    assert text.stdout.count("ValueError: 1 row(s) with a negative amount") == 2  # both traceback tails
    assert doc["verdict"] == "reproduced" and doc["exit_code"] == 0
    assert "ValueError" in doc["recorded_traceback"] and "ValueError" in doc["replayed_traceback"]
    assert doc["command"]["recorded_exit_status"] == doc["command"]["replayed_exit_status"] == 1
    assert [s["name"] for s in doc["stages"]] == ["command"]


def test_a_changed_failure_diverges(failing: Path, engine: list[str]) -> None:
    text, doc = replay(failing, *engine, "--set-env", "JOB_MODE=other")
    assert text.returncode == 1, text.stdout + text.stderr
    assert "diverged: a different failure: a different exception: recorded ValueError, replayed KeyError" in text.stdout
    assert doc["verdict"] == "diverged" and doc["first_diverging_stage"] == "command"
    assert "KeyError" in doc["replayed_traceback"] and "ValueError" in doc["recorded_traceback"]


def test_a_successful_job_with_the_same_output_is_reproduced(succeeding: Path, engine: list[str]) -> None:
    text, doc = replay(succeeding, *engine)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "reproduced: the same success (exit status 0), 1 output(s) the same" in text.stdout
    (output,) = doc["command"]["outputs"]
    assert (output["name"], output["path"], output["status"]) == ("result", "out/result.csv", "identical")


def test_another_version_changes_the_output_and_diverges(succeeding: Path, engine: list[str]) -> None:
    text, doc = replay(succeeding, *engine, "--with", "pytz==2019.1")
    assert text.returncode == 1, text.stdout + text.stderr
    assert "diverged: outputs differ: result" in text.stdout
    (output,) = doc["command"]["outputs"]
    assert output["status"] == "different"
    pytz = [c for c in output["table"]["columns"] if c["status"] == "different"]
    assert [c["column"] for c in pytz] == ["pytz"]


def test_failed_where_it_succeeded_diverges(succeeding: Path) -> None:
    text, doc = replay(succeeding, "--engine", "venv", "--set-env", "JOB_MODE=other")
    assert text.returncode == 1, text.stdout + text.stderr
    assert "diverged: failed where it succeeded: exit status 1" in text.stdout
    assert doc["recorded_traceback"] == "" and "KeyError" in doc["replayed_traceback"]


def test_dry_run_shows_the_command(failing: Path) -> None:
    proc = envsnap("replay", failing, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "command      " in proc.stdout and "job.py --strict" in proc.stdout
    stage = envsnap("replay", failing, "--stage", "clean")
    assert stage.returncode == 3 and "no pipeline stages" in stage.stderr


def test_pipeline_failing_as_recorded_is_reproduced(tmp_path: Path, replay_python: Path) -> None:  # noqa: F811
    project = git_project(tmp_path / "proj")
    os.environ["HOSTILE"] = "raise"
    try:
        snap = project / "raise.envsnap"
        config = project / "envsnap.toml"
        proc = subprocess.run(
            [*ENVSNAP, "run", "--config", config, "--python", replay_python, "-o", snap, "--env-allow", "HOSTILE"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert snap.exists(), proc.stderr
    finally:
        del os.environ["HOSTILE"]
    same = envsnap("replay", snap, "--engine", "venv", "--no-fidelity")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "reproduced: stage hostile failed as in the recording" in same.stdout
    doc = json.loads(envsnap("replay", snap, "--engine", "venv", "--no-fidelity", "--json").stdout)
    assert doc["verdict"] == "reproduced" and doc["first_diverging_stage"] is None
    other = envsnap("replay", snap, "--engine", "venv", "--no-fidelity", "--set-env", "HOSTILE=other")
    assert other.returncode == 1 and "first diverging stage: hostile" in other.stdout
