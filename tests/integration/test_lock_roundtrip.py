"""The captured lock, installed into a fresh real venv, reproduces the captured set exactly."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.lock import LockProbe
from envsnap.capture.packages import PackagesProbe
from envsnap.core.lock_text import parse_lock

pytestmark = pytest.mark.slow


def _capture(python: Path, *, hashes: bool = False) -> tuple[set[str], str]:
    """(captured name==version set, lock text) of the venv of ``python``, through the probes."""
    inspected = target_mod.from_interpreter(python)
    ctx = CaptureContext(CaptureOptions(python=str(python), hashes=hashes), lambda: inspected)
    packages = PackagesProbe().collect(ctx)
    ctx.results["packages"] = packages
    lock = LockProbe().collect(ctx)
    return {f"{d['normalized_name']}=={d['version']}" for d in packages["distributions"]}, lock


def _header(lock: str) -> str:
    """The header's comment text as one line (it is wrapped at 100 columns)."""
    head = []
    for line in lock.splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("#").strip())
    return " ".join(part for part in head if part)


def _install(venv_tools: Any, python: Path, lock: str, tmp_path: Path, *extra: str) -> None:
    path = tmp_path / "requirements.lock"
    path.write_text(lock, encoding="utf-8")
    venv_tools.pip_install(python, *extra, "--no-deps", "-r", path)


def test_lock_reinstalls_the_exact_set(index_venv: Path, fresh_venv: Path, venv_tools: Any, tmp_path: Path) -> None:
    captured, lock = _capture(index_venv)
    assert captured == venv_tools.installed_set(index_venv)  # the probe saw exactly what is there
    assert "--hash=" not in lock
    _install(venv_tools, fresh_venv, lock, tmp_path)
    assert venv_tools.installed_set(fresh_venv) == captured


def test_lock_with_index_hashes_installs_with_require_hashes(
    index_venv: Path, fresh_venv: Path, venv_tools: Any, tmp_path: Path
) -> None:
    captured, lock = _capture(index_venv, hashes=True)
    requirements = parse_lock(lock)
    assert {r.pin for r in requirements} == captured
    assert all(r.hashes for r in requirements), [r.name for r in requirements if not r.hashes]
    assert all(h.startswith("sha256:") for r in requirements for h in r.hashes)
    assert "pip install --require-hashes --no-deps -r requirements.lock" in _header(lock)
    _install(venv_tools, fresh_venv, lock, tmp_path, "--require-hashes")
    assert venv_tools.installed_set(fresh_venv) == captured


def test_a_wrong_hash_is_refused_by_pip(index_venv: Path, fresh_venv: Path, venv_tools: Any, tmp_path: Path) -> None:
    """The hashes are really checked: corrupting one makes the install fail."""
    _captured, lock = _capture(index_venv, hashes=True)
    six = next(r for r in parse_lock(lock) if r.name == "six")
    tampered = lock
    for digest in six.hashes:
        tampered = tampered.replace(digest, "sha256:" + "0" * 64)
    path = tmp_path / "tampered.lock"
    path.write_text(tampered, encoding="utf-8")
    proc = subprocess.run(
        [str(fresh_venv), "-m", "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "HASHES" in proc.stderr.upper()


def _pip_tools_pip_requirement() -> SpecifierSet:
    """The pip versions the installed pip-tools accepts in a target venv (its own ``pip`` requirement)."""
    for text in importlib.metadata.requires("pip-tools") or []:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "pip" and not requirement.marker:
            return requirement.specifier
    return SpecifierSet()


def _pip_sync_dry_run(python: Path, lock: str) -> subprocess.CompletedProcess[str]:
    path = python.parent.parent / "requirements.lock"
    path.write_text(lock, encoding="utf-8")
    pip_sync = Path(sys.executable).parent / "pip-sync"
    return subprocess.run(
        [str(pip_sync), "--dry-run", "--python-executable", str(python), str(path)],
        capture_output=True,
        text=True,
        check=False,
        # `python -m pip` puts its cwd on sys.path: run away from envsnap's checkout and its *.egg-info.
        cwd=path.parent,
    )


def test_pip_sync_sees_the_lock_as_up_to_date(tmp_path: Path, venv_tools: Any) -> None:
    """pip-tools compatibility: pip-sync reads the lock and finds nothing to change in the captured venv.

    pip-sync refuses a target whose pip is older than the one pip-tools itself requires, so the target is
    made with our own pip (which satisfies pip-tools: both come from one lock), whatever ensurepip gave.
    """
    ours = importlib.metadata.version("pip")
    assert ours in _pip_tools_pip_requirement(), (ours, str(_pip_tools_pip_requirement()))
    python = venv_tools.make_venv(tmp_path / "synced")
    venv_tools.pip_install(python, f"pip=={ours}", "six", "requests")
    _captured, lock = _capture(python)
    proc = _pip_sync_dry_run(python, lock)
    assert "Everything up-to-date" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_pip_sync_refusal_of_an_old_pip_names_the_versions(index_venv: Path, venv_tools: Any) -> None:
    """The refusal docs/cli.md documents: a venv with an older pip than pip-tools requires."""
    target_pip = Version(next(p.split("==")[1] for p in venv_tools.installed_set(index_venv) if p.startswith("pip==")))
    required = _pip_tools_pip_requirement()
    if target_pip in required:
        pytest.skip(f"ensurepip's pip {target_pip} already satisfies pip-tools' {required}: nothing to refuse")
    _captured, lock = _capture(index_venv)
    proc = _pip_sync_dry_run(index_venv, lock)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"pip version {target_pip} installed" in output, output
    assert str(required).lstrip(">=") in output, output


def test_lock_of_every_location_kind_reinstalls(
    kinds_venv: Any, fresh_venv: Path, venv_tools: Any, tmp_path: Path
) -> None:
    captured, lock = _capture(kinds_venv.python)
    lines = {r.name: r for r in parse_lock(lock)}
    assert lines["six"].line.startswith("six==")
    assert lines["envsnap-t-editable"].line == f"-e {kinds_venv.editable_dir.as_uri()}"
    assert lines["envsnap-t-editable"].editable
    assert lines["envsnap-t-local"].line == f"envsnap-t-local @ {kinds_venv.local_dir.as_uri()}"
    assert lines["envsnap-t-wheel"].line == f"envsnap-t-wheel @ {kinds_venv.wheel_file.as_uri()}"
    # A git+file:// URL has no host: written in pip's #egg form, which every pip version reads.
    vcs_line = f"git+{kinds_venv.vcs_repo.as_uri()}@{kinds_venv.vcs_commit}#egg=envsnap-t-vcs"
    assert lines["envsnap-t-vcs"].line == vcs_line
    assert lines["envsnap-t-served"].line == f"envsnap-t-served @ {kinds_venv.http_url}"
    # Two archives have a local hash but the others cannot: hashes stay comments, pip stays out of
    # hash-checking mode, and the header says why.
    assert "--hash=" not in lock
    assert lines["envsnap-t-wheel"].noted_hashes and lines["envsnap-t-served"].noted_hashes
    assert "# hash known locally: sha256:" in lock
    assert "requirement(s) have none" in _header(lock)
    assert {r.pin for r in lines.values()} == captured

    _install(venv_tools, fresh_venv, lock, tmp_path)
    assert venv_tools.installed_set(fresh_venv) == captured


def test_hashes_cannot_cover_editable_local_or_vcs(kinds_venv: Any) -> None:
    _captured, lock = _capture(kinds_venv.python, hashes=True)
    requirements = {r.name: r for r in parse_lock(lock)}
    assert "--hash=" not in lock
    header = _header(lock)
    assert "--hashes: cannot hash requirements that do not come from an index" in header
    for name, kind in (
        ("envsnap-t-editable", "editable"),
        ("envsnap-t-local", "local directory"),
        ("envsnap-t-vcs", "VCS checkout"),
    ):
        assert f"{name} ({kind})" in header
        assert not requirements[name].noted_hashes
    # The index packages were still resolved, and are kept as comments.
    assert requirements["six"].noted_hashes
    assert "# hash from the index: sha256:" in lock
