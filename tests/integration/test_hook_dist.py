"""``envsnap-hook``: a stdlib-only distribution in a real job venv that hands failures to the host's envsnap.

The wheel is built from ``hook/`` (a copy: the build writes into the tree), installed with ``--no-index``
into a fresh ``python -m venv``: exactly one distribution more, no version changed. A failing job there
writes a snapshot through ``.venv/bin/envsnap`` (``ENVSNAP_BIN``) whose exception, frames, inputs and
packages are the job's; without an envsnap the job's exception comes out unchanged, with a warning.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import envsnap
from tests.integration.conftest import make_venv, pip_install, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENVSNAP = Path(sys.executable).parent / "envsnap"
_GIT = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main"]

JOB = """\
import sys

import envsnap_hook


class BadBatch(Exception):
    pass


def score(rows):
    raise BadBatch("bad row 42 in batch, password=hunter2hunter2")


def unavailable():
    return 1 / 0


inputs = {"batch": "data/batch.csv", "gone": unavailable, "memory": [1, 2, 3]}
with envsnap_hook.on_failure("snaps", inputs=inputs, config_files=["conf/*.toml"], label="nightly") as guard:
    score([1, 2])
"""


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listed(python: Path) -> dict[str, str]:
    out = run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]).stdout
    return {entry["name"].lower(): entry["version"] for entry in json.loads(out)}


@pytest.fixture(scope="module")
def hook_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hook-build")
    source = work / "hook"
    shutil.copytree(ROOT / "hook", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", work / "dist", source])
    [wheel] = (work / "dist").glob("envsnap_hook-*.whl")
    return wheel


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory: pytest.TempPathFactory, hook_wheel: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """(python, pip list before, pip list after installing the hook wheel)."""
    python = make_venv(tmp_path_factory.mktemp("job") / "venv")
    before = _listed(python)
    run([python, "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", hook_wheel])
    return python, before, _listed(python)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "data" / "batch.csv").write_text("id,score\n1,0.5\n2,0.25\n3,0.125\n", encoding="utf-8")
    (root / "conf" / "score.toml").write_text("threshold = 0.7\n", encoding="utf-8")
    (root / ".gitignore").write_text("snaps/\n", encoding="utf-8")
    (root / "job.py").write_text(JOB, encoding="utf-8")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "job"]):
        subprocess.run([*_GIT, *args], cwd=root, check=True, capture_output=True)
    return root


def _job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ENVSNAP_BIN", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"  # no envsnap here: only ENVSNAP_BIN can name one
    env.update(extra)
    return env


def test_the_hook_version_is_envsnaps_and_it_declares_no_dependency(hook_wheel: Path) -> None:
    hook = _load(ROOT / "hook" / "src" / "envsnap_hook" / "__init__.py", "_envsnap_hook_version_check")
    assert hook.__version__ == envsnap.__version__
    assert hook_wheel.name == f"envsnap_hook-{envsnap.__version__}-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(hook_wheel) as wheel:
        metadata = wheel.read(f"envsnap_hook-{envsnap.__version__}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"envsnap_hook-{envsnap.__version__}.dist-info/entry_points.txt").decode()
    assert "Requires-Dist" not in metadata and "Requires-Python: >=3.8" in metadata
    assert "envsnap_hook = envsnap_hook.pytest_plugin" in entry_points


def test_installing_the_hook_adds_one_distribution_and_changes_none(
    job_venv: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    _, before, after = job_venv
    assert set(after) - set(before) == {"envsnap-hook"}
    assert after["envsnap-hook"] == envsnap.__version__
    assert {name: after[name] for name in before} == before, "no installed version changed"


def test_a_failing_job_is_captured_by_the_hosts_envsnap(
    job_venv: tuple[Path, dict[str, str], dict[str, str]], project: Path
) -> None:
    python = job_venv[0]
    proc = subprocess.run(
        [python, "job.py"], cwd=project, env=_job_env(ENVSNAP_BIN=str(ENVSNAP)), capture_output=True, text=True
    )
    assert proc.returncode == 1
    lines = proc.stderr.rstrip().splitlines()
    assert "BadBatch: bad row 42 in batch, password=hunter2hunter2" in lines, "the job's own exception"
    assert "Warning" not in proc.stderr, proc.stderr
    [path] = (project / "snaps").glob("envsnap-*-BadBatch.envsnap")
    if sys.version_info >= (3, 11):  # the job venv's Python is this one's
        assert lines[-1] == f"envsnap: snapshot of this failure: {path}"
    snap = envsnap.load(path)
    snap.verify()
    assert snap.label == "nightly"
    job = snap.section("job")
    assert job["argv"] == ["job.py"]
    exception = job["exception"]
    assert exception["type"] == "__main__.BadBatch"
    assert exception["message"].startswith("bad row 42 in batch")
    assert "hunter2hunter2" not in json.dumps(exception), "message and traceback are scrubbed"
    project_frames = [(f["file"], f["function"]) for f in exception["frames"] if f["where"] == "project"]
    assert project_frames == [("job.py", "<module>"), ("job.py", "score")]
    # The job's interpreter and venv were captured, not envsnap's.
    packages = {d["name"] for d in snap.section("env/packages.json")["distributions"]}
    assert "envsnap-hook" in packages and "envsnap-ml" not in packages
    inputs = snap.section("data/inputs.json")["inputs"]
    assert inputs["batch"]["rows"] == 3
    assert "ZeroDivisionError" in inputs["gone"]["error"]
    assert "without pyarrow" in inputs["memory"]["error"]
    configs = snap.section("project/configs.json")["files"]
    assert [Path(c["path"]).name for c in configs] == ["score.toml"]


def test_the_hooks_pytest_plugin_captures_a_failing_test(
    tmp_path: Path, job_venv: tuple[Path, dict[str, str], dict[str, str]], hook_wheel: Path
) -> None:
    python = make_venv(tmp_path / "pytest-venv")
    pip_install(python, f"pytest=={pytest.__version__}")
    run([python, "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", hook_wheel])
    tests = tmp_path / "suite"
    tests.mkdir()
    (tests / "test_model.py").write_text(
        "def test_ok():\n    assert True\n\n\ndef test_broken():\n    assert 1 + 1 == 3, 'arithmetic'\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--envsnap-hook-on-fail", "snaps"],
        cwd=tests,
        env=_job_env(ENVSNAP_BIN=str(ENVSNAP)),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "envsnap-hook: 1 snapshot(s) of failing tests written to snaps" in proc.stdout
    [path] = (tests / "snaps").glob("*.envsnap")
    assert "test_broken" in path.name
    snap = envsnap.load(path)
    assert snap.label == "test_model.py::test_broken"
    exception = snap.section("job")["exception"]
    assert exception["type"] == "AssertionError" and "arithmetic" in exception["message"]
    assert any(f["function"] == "test_broken" and f["where"] == "project" for f in exception["frames"])


def test_both_plugins_side_by_side_capture_each_failure_once(tmp_path: Path) -> None:
    """envsnap's own plugin (installed here) and the hook's (from the source tree): no option clash, and a
    failure either captured is not captured again by the other."""
    (tmp_path / "test_twice.py").write_text("def test_broken():\n    raise ValueError('once')\n", encoding="utf-8")
    env = _job_env(ENVSNAP_BIN=str(ENVSNAP), PYTHONPATH=str(ROOT / "hook" / "src"))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "envsnap_hook.pytest_plugin"]
    argv += ["--envsnap-on-fail", "own", "--envsnap-hook-on-fail", "hook", "test_twice.py"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    own = list((tmp_path / "own").glob("*.envsnap")) if (tmp_path / "own").exists() else []
    hook = list((tmp_path / "hook").glob("*.envsnap")) if (tmp_path / "hook").exists() else []
    assert len(own) + len(hook) == 1, (own, hook, proc.stdout)


@pytest.mark.parametrize("bin_value", [None, "/nonexistent/envsnap"])
def test_without_envsnap_the_jobs_exception_comes_out_unchanged_with_a_warning(
    job_venv: tuple[Path, dict[str, str], dict[str, str]], tmp_path: Path, bin_value: str | None
) -> None:
    python = job_venv[0]
    job = tmp_path / "job.py"
    job.write_text(
        textwrap.dedent(
            """\
            import envsnap_hook

            with envsnap_hook.on_failure("snaps"):
                raise KeyError("missing column 'score'")
            """
        ),
        encoding="utf-8",
    )
    env = _job_env() if bin_value is None else _job_env(ENVSNAP_BIN=bin_value)
    proc = subprocess.run([python, "-W", "always", "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "KeyError: \"missing column 'score'\"" in proc.stderr.splitlines(), proc.stderr
    assert "EnvsnapHookWarning: envsnap-hook: this failure was not captured" in proc.stderr
    assert "pipx install envsnap-ml" in proc.stderr
    assert (
        "no envsnap on PATH" if bin_value is None else f"ENVSNAP_BIN={bin_value} is not an executable"
    ) in proc.stderr
    assert not list(tmp_path.glob("snaps/*.envsnap"))


def test_the_hook_records_an_exception_as_the_job_bootstrap_does() -> None:
    """The hook cannot import envsnap: its raw exception record is its own code, kept equal to the bootstrap's."""
    hook = _load(ROOT / "hook" / "src" / "envsnap_hook" / "__init__.py", "_envsnap_hook_record_check")
    boot = _load(ROOT / "envsnap" / "_target" / "jobhook" / "sitecustomize.py", "_envsnap_boot_record_check")

    class Nested(Exception):
        pass

    def inner() -> None:
        raise Nested("deep, with a 'quote'")

    try:
        inner()
    except Nested as exc:
        assert hook.raw_exception(exc) == boot.exception_record(type(exc), exc, exc.__traceback__)


def test_in_memory_tables_go_through_parquet_when_the_job_has_pyarrow(tmp_path: Path) -> None:
    """This interpreter has pyarrow: the hook (from the source tree) writes the table to a temporary parquet."""
    job = tmp_path / "job.py"
    job.write_text(
        textwrap.dedent(
            """\
            import pyarrow as pa
            import envsnap_hook

            frame = pa.table({"user": ["a", "b"], "score": [1.0, 2.0]})
            with envsnap_hook.on_failure("snaps", inputs={"frame": lambda: frame}):
                raise RuntimeError("scores off")
            """
        ),
        encoding="utf-8",
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = _job_env(ENVSNAP_BIN=str(ENVSNAP), PYTHONPATH=str(ROOT / "hook" / "src"), TMPDIR=str(scratch))
    proc = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "RuntimeError: scores off" in proc.stderr, proc.stderr
    assert not [p for p in scratch.iterdir() if p.name.startswith("envsnap-hook-")], "the temporary files are removed"
    [path] = (tmp_path / "snaps").glob("*.envsnap")
    inputs = envsnap.load(path).section("data/inputs.json")["inputs"]
    assert inputs["frame"]["rows"] == 2 and "error" not in inputs["frame"]
