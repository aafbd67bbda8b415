"""Fixtures for the bisect and shrink tests: two real venvs that differ in 9 packages, and recordings.

GOOD and BAD differ in six independent small packages (pytz among them: it flips ``localize``), a coupled
pair (BAD's pytest 8.3 requires pluggy >= 1.5; GOOD has pluggy 1.3), one package only BAD has (toolz)
and one only GOOD has (zipp). The env-setting snapshots are recorded in the GOOD venv with different
thread settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import make_venv, pip_install
from tests.integration.replay_env import make_events

HERE = Path(__file__).resolve().parent
ENVSNAP = [sys.executable, "-m", "envsnap"]
COMMON = ("pyarrow==20.0.0", "iniconfig==2.0.0")
GOOD_PINS = (
    *COMMON,
    "pytz==2025.2",
    "six==1.17.0",
    "idna==3.10",
    "packaging==24.2",
    "attrs==25.1.0",
    "tzdata==2025.1",
    "pluggy==1.3.0",
    "pytest==7.4.4",
    "zipp==3.21.0",
)
BAD_PINS = (
    *COMMON,
    "pytz==2019.1",
    "six==1.16.0",
    "idna==3.7",
    "packaging==24.1",
    "attrs==24.2.0",
    "tzdata==2024.2",
    "pluggy==1.5.0",
    "pytest==8.3.3",
    "toolz==1.0.0",
)
#: Thread knobs a recording must not inherit from the machine running the tests.
_KNOBS = ("OMP_", "MKL_", "KMP_", "OPENBLAS_NUM_THREADS", "NUMEXPR_", "VECLIB_")


def git_project(source: Path, dest: Path, data: str = "events") -> Path:
    """``source`` (a test pipeline) committed in a fresh git repository, with its data untracked."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if data == "events":
        make_events(dest / "events.parquet")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for argv in (["git", "init", "-q"], ["git", "add", "stages.py", "envsnap.toml"], ["git", "commit", "-qm", "p"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def record(project: Path, python: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Path:
    """``envsnap run`` of ``project`` in ``python`` with exactly the thread settings in ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_KNOBS)}
    environ.update(env or {})
    argv = [*ENVSNAP, "run", "--config", str(project / "envsnap.toml"), "--python", str(python), "-o", str(out)]
    proc = subprocess.run(
        [*argv, "--force", *extra], cwd=project, env=environ, capture_output=True, text=True, check=False
    )
    if proc.returncode not in (0, 1):  # 1: a stage failed, which some tests record on purpose
        pytest.fail(f"envsnap run exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return out


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The envsnap CLI in a subprocess."""
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def good_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with GOOD's packages."""
    python = make_venv(tmp_path_factory.mktemp("bisect-good") / "venv")
    pip_install(python, *GOOD_PINS)
    return python


@pytest.fixture(scope="session")
def bad_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with BAD's packages."""
    python = make_venv(tmp_path_factory.mktemp("bisect-bad") / "venv")
    pip_install(python, *BAD_PINS)
    return python


@pytest.fixture(scope="session")
def bisect_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bisect test pipeline in a git repository."""
    return git_project(HERE / "bisect_project", tmp_path_factory.mktemp("bisect-project") / "proj")


@pytest.fixture(scope="session")
def good_snap(bisect_project: Path, good_python: Path) -> Path:
    """GOOD: the pipeline recorded in the GOOD venv, no thread settings."""
    return record(bisect_project, good_python, bisect_project / "good.envsnap")
