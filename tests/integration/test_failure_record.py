"""``envsnap capture --failure-record FILE``: a raw exception recorded elsewhere becomes the snapshot's,
enriched (project / library / stdlib frames); a bad file is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import envsnap
from envsnap.cli import app

runner = CliRunner()

_GIT = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main"]

# A job whose failure passes through the project, the stdlib (json) and a library (pyarrow's Python code).
_JOB = """
import json, sys, traceback
import pyarrow.parquet as pq

def load(path):
    return pq.read_table(path)

def main():
    try:
        load("/nonexistent/batch-42.parquet")
    except Exception as exc:
        tb = exc.__traceback__
        frames = [{"file": f.filename, "line": f.lineno, "function": f.name} for f in traceback.extract_tb(tb)]
        kind = type(exc)
        record = {
            "type": kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}",
            "message": str(exc) + " token=ghp_" + "B" * 36,
            "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
            "frames": frames,
            "argv": sys.argv,
        }
        with open(sys.argv[1], "w") as fh:
            json.dump(record, fh)

main()
"""


def _one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "score.py").write_text(_JOB, encoding="utf-8")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "job"]):
        subprocess.run([*_GIT, *args], cwd=root, check=True, capture_output=True)
    return root


def test_a_recorded_failure_becomes_the_snapshots_exception(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "failure.json"
    subprocess.run([sys.executable, "jobs/score.py", str(record)], cwd=project, check=True)
    raw: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
    assert raw["type"] == "FileNotFoundError"
    monkeypatch.chdir(project)
    out = tmp_path / "snaps" / "failed.envsnap"
    result = runner.invoke(app, ["capture", "--failure-record", str(record), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    snap = envsnap.load(out)
    snap.verify()
    job = snap.section("job")
    assert job["argv"][0] == "jobs/score.py", "the job's argv, not envsnap's"
    exception = job["exception"]
    assert exception["type"] == "FileNotFoundError"
    assert "batch-42.parquet" in exception["message"]
    assert "B" * 36 not in json.dumps(exception), "message and traceback are scrubbed"
    frames = exception["frames"]
    project_frames = [f for f in frames if f["where"] == "project"]
    assert [f["function"] for f in project_frames] == ["main", "load"]
    assert {f["file"] for f in project_frames} == {"jobs/score.py"}, "project files are relative to the git root"
    library = [f for f in frames if f["where"] == "library"]
    assert library and {f["distribution"] for f in library} == {"pyarrow"}
    assert frames[-1]["where"] in ("library", "stdlib"), "innermost last"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read it"),
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object was expected, not list"),
        ('{"type": "E", "message": "m"}', "'traceback' must be a string"),
        ('{"type": "E", "message": "m", "traceback": "t", "frames": {}}', "'frames' must be a list"),
        (
            '{"type": "E", "message": "m", "traceback": "t",'
            ' "frames": [{"file": "a.py", "line": "3", "function": "f"}]}',
            "'frames[0].line' must be an integer",
        ),
        ('{"type": "E", "message": "m", "traceback": "t", "argv": "python job.py"}', "'argv' must be a list"),
        ('{"type": "E", "message": "m", "traceback": "t", "inputs_failed": ["batch"]}', "'inputs_failed' must map"),
    ],
)
def test_a_bad_record_is_one_line_and_exit_2(tmp_path: Path, content: str | None, problem: str) -> None:
    record = tmp_path / "failure.json"
    if content is not None:
        record.write_text(content, encoding="utf-8")
    out = tmp_path / "never.envsnap"
    result = runner.invoke(app, ["capture", "--failure-record", str(record), "-o", str(out), "--no-git"])
    line = _one_line(result, 2)
    assert f"--failure-record {record}: {problem}" in line
    assert not out.exists(), "nothing is written for a bad record"
