"""``envsnap check --python`` across real virtualenvs: a numeric library change turns the gate red and is
named; a patch upgrade of an unrelated package stays green (and is reported).

The stage adds a Python float to NumPy float32 scalars. NumPy 2 keeps the result float32 (NEP 50); NumPy 1
promoted it to float64 — a real, documented behaviour change of the kind that silently moves outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

STAGES = '''"""One stage whose output depends on NumPy's scalar promotion rules."""
import numpy as np
import pyarrow as pa


def shift(t):
    y = [float(np.float32(v) + 0.1) for v in t.column("x").to_pylist()]
    return t.append_column("y", pa.array(y, pa.float64()))
'''

CONFIG = """[pipeline]
name = "promo"
accepts = "arrow"
inputs = {events = "events.parquet"}

[[pipeline.stages]]
name = "shift"
call = "promo.stages:shift"
"""

OLD_NUMPY, NEW_NUMPY = "1.26.4", "2.2.6"
COMMON = ("pyarrow==20.0.0", "urllib3==2.2.2")


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> tuple[Path, Path]:
    """(python with NumPy 1, python with NumPy 2); both with pyarrow and urllib3 2.2.2."""
    root = tmp_path_factory.mktemp("check-venvs")
    old = venv_tools.make_venv(root / "numpy1")
    venv_tools.pip_install(old, f"numpy=={OLD_NUMPY}", *COMMON)
    new = venv_tools.make_venv(root / "numpy2")
    venv_tools.pip_install(new, f"numpy=={NEW_NUMPY}", *COMMON)
    return old, new


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "promo").mkdir()
    (tmp_path / "promo" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "promo" / "stages.py").write_text(STAGES, encoding="utf-8")
    (tmp_path / "envsnap.toml").write_text(CONFIG, encoding="utf-8")
    pq.write_table(pa.table({"x": [0.1 * i for i in range(200)]}), tmp_path / "events.parquet")
    return tmp_path


def envsnap_cli(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GITHUB_STEP_SUMMARY")}
    argv = [sys.executable, "-m", "envsnap", *map(str, args)]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=environ)


def check_json(cwd: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    proc = envsnap_cli(cwd, "check", "--no-git", "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, report


@pytest.mark.slow
def test_numeric_library_change_turns_the_check_red_and_names_it(project: Path, venvs: tuple[Path, Path]) -> None:
    old, new = venvs
    baseline = project / "baseline.envsnap"
    proc = envsnap_cli(project, "run", "--no-git", "--python", old, "-o", baseline, "-q")
    assert proc.returncode == 0, proc.stderr

    code, green = check_json(project, baseline, "--python", old)
    assert code == 0 and green["passed"], green["verdict"]
    assert green["stages"][0]["status"] == "identical"

    code, red = check_json(project, baseline, "--python", new)
    assert code == 1
    assert red["first_diverging_stage"] == "shift"
    assert red["stages"][0]["status"] == "regressed"
    assert red["suspects"][0]["subject"] == "numpy"
    assert "stage `shift`" in red["suspects"][0]["reason"]
    numpy = next(p for p in red["environment"]["packages"] if p["name"] == "numpy")
    assert (numpy["before"], numpy["after"], numpy["level"]) == (OLD_NUMPY, NEW_NUMPY, "major")
    assert red["environment"]["fingerprint_changed"]

    text = envsnap_cli(project, "check", "--no-git", baseline, "--python", new)
    assert text.returncode == 1
    assert "top suspect: numpy" in text.stdout and "numpy 1.26.4 -> 2.2.6" in text.stdout

    # The drift is float32 rounding: a tolerance that accepts it turns the gate green again.
    code, tolerant = check_json(project, baseline, "--python", new, "--rtol", "1e-6")
    assert code == 0 and tolerant["stages"][0]["status"] == "within_tolerance"


@pytest.mark.slow
def test_patch_upgrade_of_an_unrelated_package_stays_green(
    project: Path, venvs: tuple[Path, Path], venv_tools: Any
) -> None:
    old, _ = venvs
    baseline = project / "baseline.envsnap"
    assert envsnap_cli(project, "run", "--no-git", "--python", old, "-o", baseline, "-q").returncode == 0
    venv_tools.pip_install(old, "urllib3==2.2.3")
    try:
        code, report = check_json(project, baseline, "--python", old)
        assert code == 0, report["verdict"]
        urllib3 = next(p for p in report["environment"]["packages"] if p["name"] == "urllib3")
        assert (urllib3["before"], urllib3["after"], urllib3["level"]) == ("2.2.2", "2.2.3", "patch")
        assert "urllib3 2.2.2 -> 2.2.3" in report["verdict"] and "outputs did not" in report["verdict"]
        # Reported, not failed — unless the runtime fingerprint must not move.
        proc = envsnap_cli(project, "check", "--no-git", "--fail-on-env", baseline, "--python", old)
        assert proc.returncode == 1
        assert "the runtime fingerprint changed" in proc.stdout
    finally:
        venv_tools.pip_install(old, "urllib3==2.2.2")
