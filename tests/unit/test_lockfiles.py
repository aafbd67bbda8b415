"""The lockfiles probe on real files: every kind parsed, discovery at the root only, raw copies only when
clean, bad files recorded per file, and where the installed environment disagrees with a lock."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.lockfile_parsers import detect_kind, parse_lockfile, split_requirement
from envsnap.capture.lockfiles import LockfilesProbe
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.python import PythonProbe
from envsnap.snapshot.schema import validate_member

PYTEST = importlib.metadata.version("pytest")

UV_LOCK = """\
version = 1
requires-python = ">=3.10"

[[package]]
name = "numpy"
version = "1.26.4"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "2.2.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "0.0.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "my-project"
source = { virtual = "." }
"""


def _collect(tmp_path: Path, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    ctx = CaptureContext(CaptureOptions(git=False, cwd=str(tmp_path), **options), target.in_process)
    ctx.results["python"] = PythonProbe().collect(ctx)
    ctx.results["packages"] = PackagesProbe().collect(ctx)
    out = LockfilesProbe().collect(ctx)
    assert isinstance(out, ProbeOutput)
    validate_member("<test>", "project/lockfiles.json", out.data)
    return out.data, out.extra


def _file(data: dict[str, Any], path: str) -> dict[str, Any]:
    return next(f for f in data["files"] if f["path"] == path)


# --- parsers ---------------------------------------------------------------------------------------------


def test_requirements_pins_options_comments_markers(tmp_path: Path) -> None:
    text = (
        "--index-url https://pypi.org/simple\n"
        "-r base.in\n"
        "# a comment\n"
        "numpy==1.26.4 \\\n    --hash=sha256:abc\n"
        "Pandas>=2.0,<3  # inline comment\n"
        "tomli==2.0.1 ; python_version < '3.11'\n"
        "-e ./local\n"
        "requests[socks] === 2.32.3\n"
    )
    parsed = parse_lockfile("requirements", text)
    assert parsed.pins == {"numpy": "1.26.4", "tomli": "2.0.1", "requests": "2.32.3"}
    assert parsed.requirements == {"pandas": ">=2.0,<3"}
    assert parsed.markers == {"tomli": "python_version < '3.11'"}
    assert any("editable" in n for n in parsed.notes)


def test_split_requirement_forms() -> None:
    assert split_requirement("foo[bar] (==1.0) ; os_name == 'nt'").exact == "1.0"
    url = split_requirement("pkg @ https://example.com/pkg-1.0.whl")
    assert url.url == "https://example.com/pkg-1.0.whl" and url.exact is None
    with pytest.raises(ValueError, match="not a requirement"):
        split_requirement("==1.0")


def test_uv_lock_forks_and_virtual_project() -> None:
    parsed = parse_lockfile("uv.lock", UV_LOCK)
    assert parsed.pins["numpy"] == "1.26.4 || 2.2.6"
    assert parsed.pins["pytest"] == "0.0.1"
    assert parsed.requirements == {"my-project": ""}


def test_pyproject_poetry_pylock_pipfile_conda() -> None:
    pyproject = parse_lockfile(
        "pyproject",
        '[project]\nname = "x"\ndependencies = ["numpy==1.26.4", "pandas>=2"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8"]\n'
        '[dependency-groups]\nlint = ["ruff==0.5.0", {include-group = "dev"}]\n'
        '[tool.poetry.dependencies]\npython = "^3.10"\nscipy = "1.13.0"\nrich = "^13"\n',
    )
    assert pyproject.pins == {"numpy": "1.26.4", "ruff": "0.5.0", "scipy": "1.13.0"}
    assert pyproject.requirements == {"pandas": ">=2", "pytest": ">=8", "rich": "^13"}
    poetry = parse_lockfile("poetry.lock", '[[package]]\nname = "Six"\nversion = "1.16.0"\n[metadata]\n')
    assert poetry.pins == {"six": "1.16.0"}
    pylock = parse_lockfile(
        "pylock",
        'lock-version = "1.0"\n[[packages]]\nname = "attrs"\nversion = "24.2.0"\nmarker = "os_name == \'nt\'"\n',
    )
    assert pylock.pins == {"attrs": "24.2.0"} and pylock.markers == {"attrs": "os_name == 'nt'"}
    pipfile = parse_lockfile(
        "pipfile.lock",
        '{"_meta": {}, "default": {"requests": {"version": "==2.32.3"}}, "develop": {"black": {"version": "*"}}}',
    )
    assert pipfile.pins == {"requests": "2.32.3"} and pipfile.requirements == {"black": "*"}
    conda = parse_lockfile(
        "conda-environment",
        "name: job\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - conda-forge::numpy==1.26.4\n"
        "  - scipy>=1.10\n  - libblas=3.9=20_linux64_openblas\n  - pip\n  - pip:\n    - pandas==2.2.3\n",
    )
    assert conda.pins == {"python": "3.11", "numpy": "1.26.4", "libblas": "3.9", "pandas": "2.2.3"}
    assert conda.requirements == {"scipy": ">=1.10", "pip": ""} and conda.prefix_pins
    conda_lock = parse_lockfile(
        "conda-lock",
        "version: 1\npackage:\n  - name: numpy\n    version: 1.26.4\n    manager: conda\n    platform: linux-64\n"
        "  - name: numpy\n    version: 1.26.4\n    manager: conda\n    platform: osx-arm64\n",
    )
    assert conda_lock.pins == {"numpy": "1.26.4"}


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("uv.lock", "[[package]\nname = 'x'", "not valid TOML"),
        ("pipfile.lock", "{not json", "not valid JSON"),
        ("conda-environment", "dependencies: [a, b\n", "not valid YAML at line"),
        ("requirements", "numpy==1.0\n!!!\n", "line 2"),
        ("poetry.lock", "[[package]]\nversion = '1'\n", "has no name"),
    ],
)
def test_malformed_lockfiles_raise_one_line(kind: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_lockfile(kind, text)
    assert "\n" not in str(info.value)


def test_detect_kind() -> None:
    assert detect_kind("requirements-dev.txt") == "requirements"
    assert detect_kind("Pipfile.lock") == "pipfile.lock"
    assert detect_kind("prod.conda-lock.yml") == "conda-lock"
    assert detect_kind("notes.txt") is None
    assert detect_kind("notes.txt", loose=True) == "requirements"
    assert detect_kind("MANIFEST.in", loose=True) is None


# --- the probe -----------------------------------------------------------------------------------------


def test_uv_lock_that_disagrees_with_the_environment_is_reported(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(UV_LOCK)
    data, extra = _collect(tmp_path)
    assert data["root_kind"] == "cwd" and data["searched"] == ["."]
    messages = [d["message"] for d in data["disagreements"]]
    assert f"uv.lock pins pytest 0.0.1; the job ran {PYTEST}" in messages
    entry = _file(data, "uv.lock")
    assert entry["kind"] == "uv.lock" and entry["error"] is None
    assert entry["raw_member"] == "project/lock/uv.lock"
    assert extra["project/lock/uv.lock"] == (tmp_path / "uv.lock").read_bytes()


def test_range_marker_and_conda_prefix_semantics(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        f"pytest=={PYTEST}\npytest-never==1.0\ntyper<0.0.1\npytest==0.0.2 ; python_version < '3'\n"
    )
    major_minor = ".".join(
        PythonProbe().collect(CaptureContext(CaptureOptions(), target.in_process))["version"].split(".")[:2]
    )
    (tmp_path / "environment.yml").write_text(f"dependencies:\n  - python={major_minor}\n  - pytest=0.0\n")
    data, _ = _collect(tmp_path)
    by_file = {(d["file"], d["name"]): d for d in data["disagreements"]}
    assert ("requirements.txt", "pytest") not in by_file  # pinned to what runs, and the marker pin is off
    assert by_file[("requirements.txt", "typer")]["message"].startswith(
        "requirements.txt requires typer<0.0.1; the job ran "
    )
    assert ("environment.yml", "python") not in by_file  # python=3.x matches 3.x.y
    assert by_file[("environment.yml", "pytest")]["installed"] == PYTEST


def test_discovery_is_root_and_requirements_dir_only(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "base.in").write_text("six\n")
    (tmp_path / "deep" / "nested").mkdir(parents=True)
    (tmp_path / "deep" / "nested" / "uv.lock").write_text(UV_LOCK)
    (tmp_path / "README.txt").write_text("not a lockfile\n")
    elsewhere = tmp_path / "deep" / "prod-pins.txt"
    elsewhere.write_text("six==1.16.0\n")
    data, _ = _collect(tmp_path, lockfiles=(str(elsewhere),))
    assert [f["path"] for f in data["files"]] == ["deep/prod-pins.txt", "requirements/base.in"]
    assert _file(data, "deep/prod-pins.txt")["pins"] == {"six": "1.16.0"}


def test_credentials_keep_the_raw_copy_out(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "--index-url https://deploy:s3cr3tpassw0rd@pypi.example.com/simple\nsix==1.16.0\n"
    )
    data, extra = _collect(tmp_path)
    entry = _file(data, "requirements.txt")
    assert entry["pins"] == {"six": "1.16.0"}
    assert entry["raw_member"] is None and entry["sha256"] is None and not extra
    assert any("credentials" in n for n in entry["notes"])


def test_bad_lockfiles_are_recorded_and_capture_goes_on(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("[[package]\nname = 'broken'\n")
    (tmp_path / "poetry.lock").write_text('[[package]]\nname = "six"\nversion = "1.16.0"\n[metadata]\n')
    (tmp_path / "Pipfile.lock").write_bytes(b"\x00\x01binary\xff")
    data, extra = _collect(tmp_path, lockfiles=(str(tmp_path / "missing.txt"),))
    uv = _file(data, "uv.lock")
    assert uv["error"].startswith("uv.lock: not valid TOML") and "\n" not in uv["error"]
    assert _file(data, "Pipfile.lock")["error"] == "Pipfile.lock: is a binary file, not text"
    assert _file(data, "missing.txt")["error"] == "missing.txt: does not exist"
    assert _file(data, "poetry.lock")["pins"] == {"six": "1.16.0"}
    assert list(extra) == ["project/lock/poetry.lock"]


def test_lockfiles_from_the_envsnap_config(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "prod.txt").write_text("six==1.16.0\n")
    (tmp_path / "envsnap.toml").write_text('[capture]\nlockfiles = ["locks/*.txt"]\n')
    data, _ = _collect(tmp_path)
    assert data["settings"] == "envsnap.toml"
    assert [f["path"] for f in data["files"]] == ["locks/prod.txt"]


def test_no_lockfiles_is_an_empty_list(tmp_path: Path) -> None:
    data, extra = _collect(tmp_path)
    assert data["files"] == [] and data["disagreements"] == [] and extra == {}
