"""scripts/install_lock.py (what `make` runs): a file that does not match the lock fails in one line."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_a_tampered_lock_fails_naming_the_file(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    lock = tmp_path / "tampered.txt"
    lock.write_text("six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "install_lock.py"), str(python), str(lock), "--no-project"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "install_lock: six==1.17.0 (six-1.17.0-py2.py3-none-any.whl): expected sha256 000000000000"
    ), last
    assert f"does not match its hash in {lock}" in last, last
    # Nothing of the refused lock was installed (the bootstrap tools were, from their own hashed lock).
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "six" not in listed.split()


def test_the_bootstrap_lock_installs_hash_checked(tmp_path: Path) -> None:
    """The good path of the same script: pip, setuptools and wheel at the locked versions."""
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    lock = tmp_path / "empty.txt"
    lock.write_text("", encoding="utf-8")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "install_lock.py"), str(python), str(lock), "--no-project"],
        check=True,
        capture_output=True,
    )
    bootstrap = (ROOT / "requirements" / "bootstrap.txt").read_text(encoding="utf-8")
    pins = {line.split(" ")[0] for line in bootstrap.splitlines() if "==" in line and not line.startswith("#")}
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert pins <= {line.strip().lower() for line in listed.splitlines()}, (pins, listed)
