"""The CLI's contract for bad input: one line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsnap.cli import app

runner = CliRunner()


def _one_line_error(result: object, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err and "Traceback" not in result.stdout  # type: ignore[attr-defined]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("envsnap: error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["show", "verify"])
def test_missing_snapshot(tmp_path: Path, command: str) -> None:
    line = _one_line_error(runner.invoke(app, [command, str(tmp_path / "nope.envsnap")]), 3)
    assert "no such snapshot" in line


@pytest.mark.parametrize("command", ["show", "verify"])
def test_garbage_snapshot(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.envsnap"
    bad.write_bytes(b"\x00garbage")
    line = _one_line_error(runner.invoke(app, [command, str(bad)]), 3)
    assert "not an envsnap archive" in line


def test_altered_member_fails_verify(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    lock = path / "env" / "requirements.lock"
    lock.write_bytes(lock.read_bytes().replace(b"six", b"siX"))
    line = _one_line_error(runner.invoke(app, ["verify", str(path)]), 3)
    assert "env/requirements.lock" in line and "hash" in line


def test_verify_ok(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("s.envsnap")
    result = runner.invoke(app, ["verify", str(path)])
    assert result.exit_code == 0
    assert result.stdout.startswith("OK ") and "4 members" in result.stdout


def test_show_unknown_section(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("s.envsnap")
    line = _one_line_error(runner.invoke(app, ["show", str(path), "--section", "nonsense"]), 3)
    assert "no section 'nonsense'" in line and "python" in line


def test_show_section_text_and_json(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("s.envsnap")
    assert runner.invoke(app, ["show", str(path), "--section", "lock"]).stdout == "six==1.16.0\n"
    result = runner.invoke(app, ["show", str(path), "--section", "python", "--json"])
    assert '"version": "3.11.7"' in result.stdout


def test_export_needs_exactly_one_target(write_snapshot: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_snapshot("s.envsnap")
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 2
    out = tmp_path / "req.txt"
    result = runner.invoke(app, ["export", str(path), "--requirements", str(out)])
    assert result.exit_code == 0 and out.read_text() == "six==1.16.0\n"


def test_export_into_missing_directory(write_snapshot: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_snapshot("s.envsnap")
    line = _one_line_error(
        runner.invoke(app, ["export", str(path), "--requirements", str(tmp_path / "no" / "r.txt")]), 3
    )
    assert "does not exist" in line
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("bad", ["/bin/true", "missing", "text"])
def test_python_that_is_not_a_python(tmp_path: Path, bad: str) -> None:
    target = {"/bin/true": "/bin/true", "missing": str(tmp_path / "nope"), "text": str(tmp_path / "t.txt")}[bad]
    if bad == "text":
        Path(target).write_text("hello")
        Path(target).chmod(0o755)
    out = tmp_path / "x.envsnap"
    line = _one_line_error(runner.invoke(app, ["capture", "--python", target, "-o", str(out)]), 3)
    assert "--python" in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["t.txt"] if bad == "text" else [])


def test_capture_refuses_existing_output_before_working(tmp_path: Path) -> None:
    out = tmp_path / "x.envsnap"
    out.write_bytes(b"precious")
    line = _one_line_error(runner.invoke(app, ["capture", "-o", str(out)]), 3)
    assert "already exists" in line and "--force" in line
    assert out.read_bytes() == b"precious"


def test_real_subprocess_exit_codes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "show", str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "envsnap", "show"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "no-equals-sign"], "is not NAME=PATH"),
        (["--input", "a=x.parquet", "--input", "a=y.parquet"], "given twice"),
        (["--rows", "5", "--fraction", "0.5"], "not both"),
        (["--method", "magic"], "--method"),
    ],
)
def test_capture_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.envsnap"
    result = runner.invoke(app, ["capture", "-o", str(out), *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_missing_artifact_writes_the_snapshot_and_exits_3(tmp_path: Path) -> None:
    import envsnap

    out = tmp_path / "x.envsnap"
    missing = tmp_path / "model.joblib"
    result = runner.invoke(app, ["capture", "--no-git", "--artifact", str(missing), "-o", str(out)])
    line = _one_line_error(result, 3)
    assert str(missing) in line and "snapshot was written" in line
    snap = envsnap.load(out)
    assert snap.manifest.probes["artifacts"].status == "error"
    assert snap.manifest.probes["packages"].status == "ok"
