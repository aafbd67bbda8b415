"""The command replay's pure parts: the verdict from two runs, and the argv rerun in the replayed runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsnap.replay.command import OutputReplay, _argv, _verdict, tail
from envsnap.replay.engines.base import Prepared
from envsnap.replay.layout import Layout
from envsnap.replay.source import SourceTree


def exc(kind: str, file: str = "job.py", function: str = "main", line: int = 3) -> dict[str, Any]:
    frame = {"file": file, "line": line, "function": function, "where": "project", "distribution": None}
    return {"type": kind, "message": "m", "traceback": "tb", "frames": [frame]}


@pytest.mark.parametrize(
    ("recorded", "replayed", "rec_exc", "rep_exc", "outputs", "verdict", "words"),
    [
        (0, 0, None, None, [OutputReplay("r", "r.csv", "identical")], "reproduced", "1 output(s) the same"),
        (0, 0, None, None, [OutputReplay("r", "r.csv", "different")], "diverged", "outputs differ: r"),
        (0, 0, None, None, [OutputReplay("r", "r.csv", "absent")], "reproduced", "the same success (exit status 0)"),
        (0, 1, None, exc("KeyError"), [], "diverged", "failed where it succeeded: exit status 1"),
        (1, 0, exc("KeyError"), None, [], "diverged", "succeeded where it failed"),
        (1, 1, exc("ValueError"), exc("ValueError", line=9), [], "reproduced", "the line moved from 3 to 9"),
        (1, 1, exc("ValueError"), exc("KeyError"), [], "diverged", "recorded ValueError, replayed KeyError"),
        (1, 1, exc("ValueError"), exc("ValueError", function="other"), [], "diverged", "raised elsewhere"),
        (3, 3, None, None, [], "reproduced", "the same failure: exit status 3"),
        (3, 2, None, None, [], "diverged", "exit status 3 recorded, 2 replayed"),
        (None, 0, None, None, [], "diverged", "no exit status"),
    ],
)
def test_verdict(
    recorded: int | None,
    replayed: int,
    rec_exc: dict[str, Any] | None,
    rep_exc: dict[str, Any] | None,
    outputs: list[OutputReplay],
    verdict: str,
    words: str,
) -> None:
    got, reason = _verdict(recorded, replayed, rec_exc, rep_exc, outputs)
    assert got == verdict and words in reason, reason


@pytest.mark.parametrize(
    ("argv", "source", "is_python", "expected"),
    [
        (["/home/u/venv/bin/python", "job.py", "--x"], "argv", True, ["/opt/venv/bin/python", "job.py", "--x"]),
        (["python3", "-m", "pkg"], "argv", True, ["/opt/venv/bin/python", "-m", "pkg"]),
        (["./tool.py", "a"], "shebang", True, ["/opt/venv/bin/python", "./tool.py", "a"]),
        (["pytest", "-x"], "shebang", True, ["pytest", "-x"]),
        (["/home/u/venv/bin/pytest", "-x"], "shebang", True, ["pytest", "-x"]),
        (["bash", "/proj/run.sh"], "PATH", False, ["bash", "/proj/run.sh"]),
        (["/usr/bin/make", "all"], "PATH", False, ["make", "all"]),
    ],
)
def test_argv_in_the_replay(tmp_path: Path, argv: list[str], source: str, is_python: bool, expected: list[str]) -> None:
    tree = SourceTree(tmp_path / "src", "/proj", "test")
    (tmp_path / "src").mkdir()
    layout = Layout(tmp_path / "work", True, tree)
    prepared = Prepared("docker", "img", "/opt/venv/bin/python", False, 0.0, "uv")
    command = {"argv": argv, "python_source": source, "is_python": is_python}
    assert _argv(command, prepared, layout, "/proj") == expected


def test_tail_keeps_the_last_lines() -> None:
    assert tail("\n".join(str(i) for i in range(30)) + "\n", 3) == "27\n28\n29"
