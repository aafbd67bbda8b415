"""Each bench script run alone from a fresh clone: a missing peer venv or subject is one line, never a traceback.

The scripts are copied into a scratch ``bench/`` (no ``bench/.venvs``, no ``.cache/demo-venv``, no
generated data) and run with the options that reach their missing-peer path without measuring anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

CASES = {
    "capture_bench.py": (
        ["--no-setup", "--runs", "1", "--venvs", "ml", "--only", "pip-freeze", "--envsnap-python", sys.executable],
        0,
        "capture_bench: skipped, bench/.venvs/{ml,tools,ml-envsnap} missing",
    ),
    "diff_env_bench.py": (["--no-setup", "--runs", "20"], 0, "diff_env_bench: skipped, bench/.venvs/big or ml missing"),
    "diff_data_bench.py": (["--only", "datacompy", "--runs", "1"], 0, "pair envsnap vs datacompy: skipped"),
    "job_capture_bench.py": (["--runs", "1"], 2, "demo-venv/bin/python does not exist"),
    "bench_run_command.py": (["--runs", "1"], 2, "demo-venv/bin/python does not exist"),
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(BENCH, root / "bench", ignore=shutil.ignore_patterns(".venvs", ".data", "__pycache__", "results-*"))
    return root


@pytest.mark.parametrize("script", sorted(CASES))
def test_a_missing_peer_is_one_line(fresh: Path, script: str) -> None:
    args, code, line = CASES[script]
    proc = subprocess.run(
        [sys.executable, str(fresh / "bench" / script), *args],
        cwd=fresh,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == code, output
    [said] = [ln for ln in output.splitlines() if line in ln]
    assert len(said) < 300
