"""Marker-aware drift over lockfiles written by the real tools (tests/fixtures_lockfiles, see its README):
among several entries of one name the one whose markers apply to the captured interpreter is compared, and a
pin whose marker does not apply is skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.lockfile_parsers import all_of, any_of, parse_lockfile, python_marker
from envsnap.capture.lockfiles import LockfilesProbe, disagreements
from envsnap.capture.python import PythonProbe
from envsnap.snapshot.schema import validate_member

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_lockfiles"

PY311 = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.7",
    "python_version": "3.11",
    "sys_platform": "linux",
}
PY310 = {**PY311, "python_full_version": "3.10.12", "python_version": "3.10"}

#: (fixture, kind): every file pins numpy 2.2.6 below 3.11 and 2.3.2 from 3.11, tomli 2.2.1 below 3.11.
FORKED = [
    ("uv.lock", "uv.lock"),
    ("pylock.toml", "pylock"),
    ("requirements-uv.txt", "requirements"),
    ("poetry2.lock", "poetry.lock"),
]
ALL = [
    *FORKED,
    ("poetry18.lock", "poetry.lock"),
    ("Pipfile.lock", "pipfile.lock"),
    ("requirements-hashes.txt", "requirements"),
]


def _drift(fixture: str, kind: str, installed: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    parsed = parse_lockfile(kind, (FIXTURES / fixture).read_text())
    return {d["name"]: d["message"] for d in disagreements(fixture, parsed, installed, env)}


@pytest.mark.parametrize(("fixture", "kind"), FORKED)
def test_fork_compares_the_entry_that_applies(fixture: str, kind: str) -> None:
    # a 3.11 job running the 3.10 pin: reported, naming only the pin that applies
    found = _drift(fixture, kind, {"numpy": "2.2.6"}, PY311)
    assert found == {"numpy": f"{fixture} pins numpy 2.3.2; the job ran 2.2.6"}
    # the same version on 3.10 is right; the 3.11 pin on 3.10 is wrong
    assert _drift(fixture, kind, {"numpy": "2.2.6"}, PY310) == {}
    assert _drift(fixture, kind, {"numpy": "2.3.2"}, PY310) == {
        "numpy": f"{fixture} pins numpy 2.2.6; the job ran 2.3.2"
    }
    assert _drift(fixture, kind, {"numpy": "2.3.2"}, PY311) == {}


@pytest.mark.parametrize(("fixture", "kind"), [*FORKED, ("Pipfile.lock", "pipfile.lock")])
def test_pin_whose_marker_does_not_apply_is_skipped(fixture: str, kind: str) -> None:
    # tomli is pinned for Python < 3.11 only: another version on 3.11 is not the lock's business
    assert _drift(fixture, kind, {"tomli": "2.0.1"}, PY311) == {}
    assert _drift(fixture, kind, {"tomli": "2.0.1"}, PY310) == {
        "tomli": f"{fixture} pins tomli 2.2.1; the job ran 2.0.1"
    }


@pytest.mark.parametrize(("fixture", "kind"), ALL)
def test_unconditional_pin_is_always_compared(fixture: str, kind: str) -> None:
    for env in (PY310, PY311):
        assert _drift(fixture, kind, {"six": "1.16.0"}, env) == {
            "six": f"{fixture} pins six 1.17.0; the job ran 1.16.0"
        }
        assert _drift(fixture, kind, {"six": "1.17.0"}, env) == {}


def test_poetry_1_8_lock_bounds_entries_by_python_versions() -> None:
    # Poetry 1.x writes no markers: an entry applies where its python-versions admits the interpreter, so
    # on 3.10 only numpy 2.2.6 can apply; on 3.11 both can, and either version passes.
    assert _drift("poetry18.lock", "poetry.lock", {"numpy": "2.3.2"}, PY310) == {
        "numpy": "poetry18.lock pins numpy 2.2.6; the job ran 2.3.2"
    }
    assert _drift("poetry18.lock", "poetry.lock", {"numpy": "2.2.6"}, PY311) == {}
    assert _drift("poetry18.lock", "poetry.lock", {"numpy": "1.26.4"}, PY311) == {
        "numpy": "poetry18.lock pins numpy 2.2.6 or 2.3.2; the job ran 1.26.4"
    }


def test_poetry_2_per_group_markers_and_requirements_lines() -> None:
    lock = (
        '[[package]]\nname = "attrs"\nversion = "24.2.0"\ngroups = ["main", "dev"]\n'
        "markers = {main = \"sys_platform == 'win32'\", dev = \"sys_platform == 'darwin'\"}\n[metadata]\n"
    )
    parsed = parse_lockfile("poetry.lock", lock)
    assert parsed.pin_markers == {"attrs": {"24.2.0": "sys_platform == 'win32' or sys_platform == 'darwin'"}}
    assert disagreements("poetry.lock", parsed, {"attrs": "23.1.0"}, PY311) == []
    text = "numpy==1.26.4 ; sys_platform == 'darwin'\nnumpy==2.0.0 ; sys_platform != 'darwin'\n"
    parsed = parse_lockfile("requirements", text)
    assert [d["pinned"] for d in disagreements("r.txt", parsed, {"numpy": "1.26.4"}, PY311)] == ["2.0.0"]


def test_marker_helpers() -> None:
    assert all_of("a == '1'", "", None, "a == '1'") == "a == '1'"
    assert all_of("a == '1' or b == '2'", "c == '3'") == "(a == '1' or b == '2') and c == '3'"
    assert any_of(["a == '1'", ""]) == ""
    assert python_marker(">=3.10,<3.14") == "python_full_version >= '3.10' and python_full_version < '3.14'"
    assert python_marker("^3.8") == "" and python_marker("*") == "" and python_marker(None) == ""


def test_unevaluable_marker_keeps_the_check() -> None:
    parsed = parse_lockfile("pylock", '[[packages]]\nname = "six"\nversion = "1.17.0"\nmarker = "nonsense ~~ 1"\n')
    assert [d["name"] for d in disagreements("pylock.toml", parsed, {"six": "1.16.0"}, PY311)] == ["six"]


def test_probe_uses_the_captured_interpreter(tmp_path: Path) -> None:
    # the probe's marker environment is the captured interpreter's (this one): write a lock whose numpy pin
    # forks on exactly this Python, and "install" the other branch's version through the packages result
    here = PythonProbe().collect(CaptureContext(CaptureOptions(git=False), target.in_process))
    assert isinstance(here, dict)
    version = here["version"]
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\n'
        f'[[packages]]\nname = "numpy"\nversion = "1.0.0"\nmarker = "python_full_version == \'{version}\'"\n'
        f'[[packages]]\nname = "numpy"\nversion = "2.0.0"\nmarker = "python_full_version != \'{version}\'"\n'
    )
    ctx = CaptureContext(CaptureOptions(git=False, cwd=str(tmp_path)), target.in_process)
    ctx.results["python"] = here
    dist: dict[str, Any] = {"normalized_name": "numpy", "version": "2.0.0"}
    ctx.results["packages"] = {"distributions": [dist]}
    out = LockfilesProbe().collect(ctx)
    assert isinstance(out, ProbeOutput)
    validate_member("<test>", "project/lockfiles.json", out.data)
    assert [d["message"] for d in out.data["disagreements"]] == ["pylock.toml pins numpy 1.0.0; the job ran 2.0.0"]
    assert out.data["files"][0]["pin_markers"]["numpy"]["1.0.0"] == f"python_full_version == '{version}'"


def test_pip_compile_lock_of_one_python_applies_to_that_python() -> None:
    # pip-compile's header names the Python it resolved for (jax keeps one such lock per Python)
    fixture = "requirements-pip-compile-header.txt"
    assert _drift(fixture, "requirements", {"six": "1.16.0"}, PY311) == {
        "six": f"{fixture} pins six 1.17.0; the job ran 1.16.0"
    }
    assert _drift(fixture, "requirements", {"six": "1.16.0"}, PY310) == {}
    parsed = parse_lockfile("requirements", (FIXTURES / fixture).read_text())
    assert parsed.requires_python == "==3.11.*"
    assert "compiled by pip-compile for Python 3.11: its pins apply to that Python" in parsed.notes


def test_extra_markers_assume_no_extra_installed() -> None:
    # uv writes conflicting extras as extra == 'extra-N-project-name': a pin for an extra is not compared
    text = (
        'version = 1\nrequires-python = ">=3.10"\n'
        '[[package]]\nname = "torch"\nversion = "2.4.0+cu121"\nsource = { registry = "https://download.pytorch.org" }\n'
        "resolution-markers = [\"extra == 'extra-7-project-cu121'\"]\n"
        '[[package]]\nname = "torch"\nversion = "2.3.1"\nsource = { registry = "https://pypi.org/simple" }\n'
        "resolution-markers = [\"extra != 'extra-7-project-cu121'\"]\n"
    )
    assert _drift_text("uv.lock", text, {"torch": "2.4.0+cu121"}) == {
        "torch": "uv.lock pins torch 2.3.1; the job ran 2.4.0+cu121"
    }
    assert _drift_text("uv.lock", text, {"torch": "2.3.1"}) == {}


def _drift_text(kind: str, text: str, installed: dict[str, str]) -> dict[str, str]:
    parsed = parse_lockfile(kind, text)
    return {d["name"]: d["message"] for d in disagreements(kind, parsed, installed, PY311)}
