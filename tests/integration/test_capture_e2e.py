"""End to end: real captures through the API and the CLI, checked by the real reader."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import envsnap
from envsnap.capture import PROBE_MODULES, capture

EXPECTED_MEMBERS = {
    "env/python.json",
    "env/packages.json",
    "env/requirements.lock",
    "env/sbom.cdx.json",
    "env/system.json",
    "env/native.json",
    "env/gpu.json",
    "env/threads.json",
    "env/envvars.json",
    "env/container.json",
    "job/command.json",
}


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envsnap", *args], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )


@pytest.fixture(scope="module")
def six_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with one small real package from the index."""
    root = tmp_path_factory.mktemp("fp") / "venv"
    venv.create(root, with_pip=True)
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "six==1.16.0"], check=True, capture_output=True
    )
    return root


def test_every_probe_succeeds_and_every_member_validates(tmp_path: Path) -> None:
    snap = capture(tmp_path / "s.envsnap", git=False)
    statuses = {name: s.status for name, s in snap.manifest.probes.items()}
    # --no-git; no inputs, artifacts or OS packages were asked for
    # (no source_files either: no stage, command or traceback ran project code)
    skipped = {"git", "data", "artifacts", "os_packages", "source_files", "job_files"}
    assert statuses == {name: ("skipped" if name in skipped else "ok") for name in PROBE_MODULES}
    loaded = envsnap.load(tmp_path / "s.envsnap")
    assert set(loaded.members()) >= EXPECTED_MEMBERS
    report = loaded.verify()  # re-hashes and schema-validates every JSON member
    assert report.members == len(loaded.members())
    assert loaded.fingerprint == snap.fingerprint


def test_os_packages_when_asked(tmp_path: Path) -> None:
    snap = capture(tmp_path / "s.envsnap", git=False, os_packages=True)
    assert snap.manifest.probes["os_packages"].status == "ok"
    loaded = envsnap.load(tmp_path / "s.envsnap")
    loaded.verify()  # env/os-packages.json against its schema
    managers = loaded.section("os-packages")["managers"]
    if not Path("/var/lib/dpkg/status").is_file() and not Path("/lib/apk/db/installed").is_file():
        assert managers == []
        return
    packages = {row[0] for manager in managers for row in manager["packages"]}
    system = [c for c in loaded.section("sbom")["components"] if c["type"] == "operating-system"]
    assert len(system) == 1
    os_refs = [
        c for c in loaded.section("sbom")["components"] if c.get("purl", "").startswith(("pkg:deb/", "pkg:apk/"))
    ]
    assert len(os_refs) == sum(len(m["packages"]) for m in managers) and {c["name"] for c in os_refs} == packages


def test_in_process_capture_sees_envsnap_itself() -> None:
    snap = capture(git=False)
    names = {d["normalized_name"] for d in snap.section("packages")["distributions"]}
    assert {"envsnap-ml", "pytest", "typer"} <= names
    assert snap.section("python")["executable"] == sys.executable


@pytest.mark.slow
def test_same_environment_same_fingerprint_one_change_changes_it(six_venv: Path, tmp_path: Path) -> None:
    python = str(six_venv / "bin" / "python")
    first = capture(python=python, git=False)
    second = capture(python=python, git=False)
    assert first.fingerprint == second.fingerprint
    subprocess.run([python, "-m", "pip", "install", "-q", "six==1.17.0"], check=True, capture_output=True)
    try:
        changed = capture(python=python, git=False)
    finally:
        subprocess.run([python, "-m", "pip", "install", "-q", "six==1.16.0"], check=True, capture_output=True)
    assert changed.fingerprint != first.fingerprint
    six = [d for d in changed.section("packages")["distributions"] if d["normalized_name"] == "six"]
    assert six[0]["version"] == "1.17.0"


@pytest.mark.slow
def test_reproducible_cli_captures_are_byte_identical(six_venv: Path, tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        work = tmp_path / run
        work.mkdir()
        proc = _cli("capture", "--python", str(six_venv), "--reproducible", "-o", "s.envsnap", cwd=work)
        assert proc.returncode == 0, proc.stderr
        outputs.append((work / "s.envsnap").read_bytes())
    # cwd differs between the two runs, and cwd is part of the job record: compare with it normalised.
    a = envsnap.load(tmp_path / "a" / "s.envsnap")
    b = envsnap.load(tmp_path / "b" / "s.envsnap")
    differing = [m for m in a.members() if a.read_bytes(m) != b.read_bytes(m)]
    assert differing == ["job/command.json"]
    assert a.section("job")["started_at"] is None


@pytest.mark.slow
def test_reproducible_cli_captures_in_the_same_place_are_byte_identical(six_venv: Path, tmp_path: Path) -> None:
    blobs = []
    for _ in range(2):
        proc = _cli("capture", "--python", str(six_venv), "--reproducible", "--force", "-o", "s.envsnap", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        blobs.append((tmp_path / "s.envsnap").read_bytes())
    assert blobs[0] == blobs[1]


def test_cli_capture_show_verify_export(six_venv: Path, tmp_path: Path) -> None:
    proc = _cli("capture", "--python", str(six_venv), "-o", "s.envsnap", "--label", "e2e", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "fingerprint sha256:" in proc.stdout
    show = _cli("show", "s.envsnap", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "label       e2e" in show.stdout
    assert "packages" in show.stdout and "distributions" in show.stdout
    verify = _cli("verify", "s.envsnap", cwd=tmp_path)
    assert verify.returncode == 0 and verify.stdout.startswith("OK ")
    export = _cli("export", "s.envsnap", "--requirements", "-", cwd=tmp_path)
    assert export.returncode == 0
    assert "six==1.16.0" in export.stdout


def test_active_virtualenv_is_captured_by_default(six_venv: Path, tmp_path: Path) -> None:
    env = dict(os.environ, VIRTUAL_ENV=str(six_venv))
    proc = _cli("capture", "-o", "s.envsnap", "--no-git", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "VIRTUAL_ENV" in proc.stderr
    names = {d["normalized_name"] for d in envsnap.load(tmp_path / "s.envsnap").section("packages")["distributions"]}
    assert "six" in names and "typer" not in names
