"""Shared fixtures: small hand-built snapshots for format tests (no probes involved)."""

from __future__ import annotations

import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

import pytest

from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot

FAKE_FINGERPRINT = "sha256:" + "0" * 64


def sample_members() -> dict[str, bytes]:
    """A few members of each kind the format stores: JSON, text, binary parquet-named."""
    return {
        "env/python.json": canonical.dumps({"implementation": "cpython", "version": "3.11.7"}),
        "env/requirements.lock": b"six==1.16.0\n",
        "data/inputs/batch.parquet": bytes(range(256)) * 8,
        "pipeline/notes.txt": b"free text member: no schema applies\n",
    }


@pytest.fixture
def memory_snapshot() -> Snapshot:
    """An in-memory snapshot with a complete manifest."""
    return assemble_snapshot(sample_members(), fingerprint=FAKE_FINGERPRINT, label="test", reproducible=True)


@pytest.fixture
def write_snapshot(tmp_path: Path, memory_snapshot: Snapshot) -> Callable[[str], Path]:
    """Write the sample snapshot under ``tmp_path`` with the given file name (``*.envsnap`` = zip)."""

    def _write(name: str) -> Path:
        return memory_snapshot.write(tmp_path / name)

    return _write


@pytest.fixture(scope="session")
def numpy_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real venv with numpy (vendoring OpenBLAS) and threadpoolctl, built once per test session."""
    root = tmp_path_factory.getbasetemp() / "numpy-venv"
    python = root / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(root)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "threadpoolctl"], check=True)
    return str(python)
