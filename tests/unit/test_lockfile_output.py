"""Bad lockfiles and what a user reads: a named file of any name is read by its content, a missing one says
so, truncated locks (one cut exactly at a [[package]] boundary), a Poetry lock without [metadata] and invalid
JSON are one line each while capture goes on; the capture summary lists parse errors first and caps the
disagreements; `show --section lockfiles` prints a table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsnap.capture import capture
from envsnap.capture.lockfile_parsers import parse_lockfile, sniff_kind
from envsnap.cli import app
from envsnap.snapshot.summary import SHOWN_DISAGREEMENTS, lockfile_problems, lockfiles_table

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_lockfiles"
runner = CliRunner()


def _cut_at_package(text: str, keep: int) -> str:
    """``text`` cut just before its ``keep``-th ``[[package]]`` header (a boundary a truncation can hit)."""
    at = -1
    for _ in range(keep):
        at = text.index("\n[[package]]", at + 1)
    return text[: at + 1]


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("uv.lock", "uv.lock"),
        ("uv-git-a.lock", "uv.lock"),
        ("pylock.toml", "pylock"),
        ("poetry2.lock", "poetry.lock"),
        ("poetry18.lock", "poetry.lock"),
        ("Pipfile.lock", "pipfile.lock"),
        ("requirements-hashes.txt", "requirements"),
        ("requirements-uv.txt", "requirements"),
        ("projects/poetry/pyproject.toml", "pyproject"),
    ],
)
def test_kind_is_sniffed_from_real_content(fixture: str, kind: str) -> None:
    assert sniff_kind((FIXTURES / fixture).read_text()) == kind


def test_sniff_declines_what_is_no_lockfile() -> None:
    assert sniff_kind("# Title\n\nSome prose, not a requirement at all!\n") is None
    assert sniff_kind('{"name": "x"}') is None


def test_truncated_and_headless_locks_are_one_line_errors() -> None:
    uv = (FIXTURES / "uv.lock").read_text()
    with pytest.raises(ValueError, match=r"^depends on numpy, six, tomli without a \[\[package\]\] entry: truncated"):
        parse_lockfile("uv.lock", _cut_at_package(uv, 3))  # the project and iniconfig only
    with pytest.raises(ValueError, match=r"^not valid TOML"):
        parse_lockfile("uv.lock", uv[: len(uv) // 2])
    poetry = (FIXTURES / "poetry2.lock").read_text()
    with pytest.raises(ValueError, match=r"^no \[metadata\] table \(Poetry writes it last\): truncated\?"):
        parse_lockfile("poetry.lock", poetry[: poetry.index("[metadata]")])
    with pytest.raises(ValueError, match=r"^not valid JSON"):
        parse_lockfile("pipfile.lock", (FIXTURES / "Pipfile.lock").read_text()[:300])


def _snapshot(tmp_path: Path, **options: Any) -> Path:
    out = tmp_path / "snap"
    cwd = os.getcwd()
    try:
        capture(out, cwd=str(tmp_path / "proj"), git=False, **options)
    finally:
        os.chdir(cwd)
    return out


def test_capture_goes_on_and_show_lists_errors_first(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    uv = (FIXTURES / "uv.lock").read_text()
    (proj / "uv.lock").write_text(_cut_at_package(uv, 3))
    (proj / "Pipfile.lock").write_text('{"_meta": {}, "default": {')
    (proj / "deps.lock").write_text("six==0.0.1\n")  # requirements content under a name no tool uses
    (proj / "frozen.lock").write_text((FIXTURES / "pylock.toml").read_text())
    snap = _snapshot(tmp_path, lockfiles=("deps.lock", "frozen.lock", "missing.lock"))
    result = runner.invoke(app, ["show", str(snap), "--section", "lockfiles"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "could not be parsed:"
    errors = lines[1:4]
    assert errors[0].startswith("  Pipfile.lock: not valid JSON")
    assert errors[1] == "  missing.lock: does not exist"
    assert errors[2].startswith("  uv.lock: depends on numpy, six, tomli without a [[package]] entry")
    table = "\n".join(lines)
    assert "deps.lock    requirements" in table and "frozen.lock  pylock" in table
    assert "deps.lock pins six 0.0.1; the job ran" in table
    raw = runner.invoke(app, ["show", str(snap), "--section", "lockfiles", "--json"])
    assert raw.stdout.lstrip().startswith("{")
    summary = runner.invoke(app, ["show", str(snap)])
    assert "3 could not be parsed" in summary.stdout


def test_capture_summary_caps_disagreements() -> None:
    drift = [{"message": f"uv.lock pins p{i} 1.0; the job ran 2.0"} for i in range(25)]
    data = {"files": [{"path": "bad.lock", "error": "bad.lock: not valid TOML"}], "disagreements": drift}
    lines = lockfile_problems(data)
    assert lines[0] == "lockfile bad.lock: not valid TOML"
    assert lines[1 : SHOWN_DISAGREEMENTS + 1] == [d["message"] for d in drift[:SHOWN_DISAGREEMENTS]]
    assert lines[-1] == "and 15 more: envsnap show --section lockfiles"
    assert len(lockfile_problems(data, limit=None)) == 26
    assert "p24" in lockfiles_table(data)


def test_lockfile_kind_forces_the_kind_of_named_files(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    # a requirements file under a name that reads as a uv.lock: only --lockfile-kind can say what it is
    (proj / "uv.lock").write_text("six==0.0.1\n")
    (proj / "locks").mkdir()
    (proj / "locks" / "uv.lock").write_text("six==0.0.2\n")
    out = tmp_path / "snap"
    args = ["capture", "--no-git", "-q", "-o", str(out), "--lockfile", "locks/uv.lock", "--lockfile-kind"]
    cwd = os.getcwd()
    os.chdir(proj)
    try:
        result = runner.invoke(app, [*args, "requirements"])
        bad = runner.invoke(app, [*args, "nonsense", "-o", str(tmp_path / "other")])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    table = runner.invoke(app, ["show", str(out), "--section", "lockfiles"]).stdout
    assert "locks/uv.lock  requirements" in table  # forced
    assert "  uv.lock: not valid TOML" in table  # the discovered one is still read by its name
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines()[-1] == (
        "envsnap: error: unknown lockfile kind 'nonsense'; use one of: conda-environment, conda-lock, "
        "pipfile.lock, poetry.lock, pylock, pyproject, requirements, uv.lock"
    )


def test_lockfile_kinds_are_the_parsers() -> None:
    from envsnap.capture.base import LOCKFILE_KINDS
    from envsnap.capture.lockfile_parsers import PARSERS

    assert set(LOCKFILE_KINDS) == set(PARSERS)
