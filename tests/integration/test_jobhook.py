"""The job bootstrap in real virtualenvs: what an unmodified job raised and which files it opened.

One venv for the module: ``six`` from the index (a library to fail in) and ``jobtool``, a local project
with a console script, built here and installed with ``--no-index``. Each job runs twice where it
matters, with and without the bootstrap, so that its stderr can be compared byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envsnap._target.jobhook import bootstrap_env, collect, install_bootstrap
from envsnap.capture.frames import enrich_exception, innermost_project_frame, stdlib_dirs_of
from tests.integration.conftest import make_venv, pip_install, run

pytestmark = pytest.mark.slow

JOBTOOL_CLI = '''\
"""jobtool's console script."""
import sys


def main():
    if "--fail" in sys.argv:
        raise RuntimeError("jobtool failed")
    print("jobtool ok")
'''

PROJECT_FILES = {
    "pkg/__init__.py": "",
    "pkg/model.py": """\
        import six


        def predict(rows):
            if not rows:
                six.reraise(ValueError, ValueError("no rows to predict"))
            return len(rows)
        """,
    "pkg/mod.py": """\
        import sys

        from pkg.model import predict

        if __name__ == "__main__":
            predict(sys.argv[1:])
        """,
    "train.py": """\
        import sys

        from pkg.model import predict


        def main():
            return predict(sys.argv[1:])


        main()
        """,
}


@dataclass(frozen=True)
class JobVenv:
    python: Path
    project: Path
    boot: str
    freeze: str  # before any job ran
    site_listing: list[str]


def _freeze(python: Path) -> str:
    return run([python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"], cwd=python.parent).stdout


def _site_listing(python: Path) -> list[str]:
    code = "import json, os, site; print(json.dumps(sorted(os.listdir(site.getsitepackages()[0]))))"
    return list(json.loads(run([python, "-c", code]).stdout))


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory: pytest.TempPathFactory) -> JobVenv:
    base = tmp_path_factory.mktemp("jobhook")
    python = make_venv(base / "venv")
    tool = base / "jobtool"
    (tool / "jobtool").mkdir(parents=True)
    (tool / "jobtool" / "__init__.py").write_text("")
    (tool / "jobtool" / "cli.py").write_text(JOBTOOL_CLI)
    (tool / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "jobtool"\nversion = "0.1.0"\n\n'
        '[project.scripts]\njobtool = "jobtool.cli:main"\n\n'
        '[tool.setuptools]\npackages = ["jobtool"]\n'
    )
    # Built by envsnap's own environment (it has setuptools), installed into the job's from the wheel alone.
    wheels = base / "wheels"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-w",
            wheels,
            tool,
        ]
    )
    pip_install(python, "six")
    pip_install(python, "--no-index", "--no-deps", next(wheels.glob("jobtool-*.whl")))
    project = base / "project"
    for name, text in PROJECT_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text))
    boot = install_bootstrap(str(base / "boot"))
    return JobVenv(python, project, boot, freeze=_freeze(python), site_listing=_site_listing(python))


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ENVSNAP_", "VIRTUAL_ENV"))}


@dataclass
class Ran:
    proc: subprocess.CompletedProcess[str]
    merged: dict[str, Any]
    reports: Path


def _run_job(
    job: JobVenv, argv: list[str], tmp_path: Path, *, audit: bool = True, env: dict[str, str] | None = None
) -> Ran:
    reports = tmp_path / f"reports-{len(list(tmp_path.glob('reports-*')))}"
    full_env = bootstrap_env(
        job.boot, str(reports), str(job.project), env if env is not None else _plain_env(), audit=audit
    )
    with subprocess.Popen(
        argv, cwd=job.project, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        stdout, stderr = child.communicate(timeout=120)
    proc = subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)
    return Ran(proc, collect(str(reports), child.pid), reports)


def _plain(job: JobVenv, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=job.project, env=_plain_env(), capture_output=True, text=True, check=False, timeout=120
    )


def _enriched(job: JobVenv, merged: dict[str, Any]) -> dict[str, Any]:
    python = merged["python"]
    return enrich_exception(
        merged["exception"], root=str(job.project), site_dirs=python["site_dirs"], stdlib_dirs=stdlib_dirs_of(python)
    )


def test_a_failing_script_records_its_project_frame_and_the_library_it_failed_in(
    job_venv: JobVenv, tmp_path: Path
) -> None:
    argv = [str(job_venv.python), "train.py"]
    ran = _run_job(job_venv, argv, tmp_path)
    plain = _plain(job_venv, argv)
    assert ran.proc.returncode == plain.returncode == 1
    assert ran.proc.stderr == plain.stderr  # the job's own traceback, unchanged
    assert ran.proc.stdout == plain.stdout
    assert ran.merged["processes"] == 1
    record = _enriched(job_venv, ran.merged)
    assert record["type"] == "ValueError"
    assert record["message"] == "no rows to predict"
    assert "no rows to predict" in record["traceback"]
    where = [(f["file"], f["where"], f["distribution"]) for f in record["frames"]]
    assert where[:2] == [("train.py", "project", None), ("train.py", "project", None)]
    assert where[2] == ("pkg/model.py", "project", None)
    assert where[-1][1:] == ("library", "six")
    frame = innermost_project_frame(record)
    assert frame is not None
    assert (frame["file"], frame["function"], frame["line"]) == ("pkg/model.py", "predict", 6)
    assert ran.merged["python"]["executable"] == str(job_venv.python)


def test_python_dash_m_records_the_module_frame(job_venv: JobVenv, tmp_path: Path) -> None:
    ran = _run_job(job_venv, [str(job_venv.python), "-m", "pkg.mod"], tmp_path)
    assert ran.proc.returncode == 1
    record = _enriched(job_venv, ran.merged)
    project = [(f["file"], f["function"]) for f in record["frames"] if f["where"] == "project"]
    assert project == [("pkg/mod.py", "<module>"), ("pkg/model.py", "predict")]
    assert {f["where"] for f in record["frames"]} >= {"project", "library", "stdlib"}  # runpy is the stdlib's
    assert ran.merged["python"]["executable"] == str(job_venv.python)


def test_a_console_script_failing_in_its_installed_package(job_venv: JobVenv, tmp_path: Path) -> None:
    script = job_venv.python.parent / "jobtool"
    ok = _run_job(job_venv, [str(script)], tmp_path)
    assert (ok.proc.returncode, ok.proc.stdout) == (0, "jobtool ok\n")
    assert ok.merged["exception"] is None
    assert ok.merged["processes"] == 1
    failed = _run_job(job_venv, [str(script), "--fail"], tmp_path)
    assert failed.proc.returncode == 1
    assert failed.proc.stderr == _plain(job_venv, [str(script), "--fail"]).stderr
    record = _enriched(job_venv, failed.merged)
    assert record["type"] == "RuntimeError"
    innermost = record["frames"][-1]
    assert (innermost["where"], innermost["distribution"], innermost["function"]) == ("library", "jobtool", "main")
    assert record["frames"][0]["file"] == str(script)  # the script itself: outside the project root


def test_a_success_has_no_exception(job_venv: JobVenv, tmp_path: Path) -> None:
    ran = _run_job(job_venv, [str(job_venv.python), "train.py", "a", "b"], tmp_path)
    assert ran.proc.returncode == 0
    assert ran.proc.stderr == ""
    assert ran.merged["processes"] == 1
    assert ran.merged["exception"] is None


def test_sys_exit_with_a_code_is_not_an_exception(job_venv: JobVenv, tmp_path: Path) -> None:
    ran = _run_job(job_venv, [str(job_venv.python), "-c", "import sys; sys.exit(3)"], tmp_path)
    assert ran.proc.returncode == 3
    assert ran.proc.stderr == ""
    assert ran.merged["processes"] == 1
    assert ran.merged["exception"] is None


def test_a_job_that_replaces_the_excepthook_still_has_its_exception_recorded(job_venv: JobVenv, tmp_path: Path) -> None:
    code = "import sys\nsys.excepthook = lambda *a: print('handled', file=sys.stderr)\nraise KeyError('lost?')\n"
    ran = _run_job(job_venv, [str(job_venv.python), "-c", code], tmp_path)
    assert (ran.proc.returncode, ran.proc.stderr) == (1, "handled\n")
    assert ran.merged["exception"]["type"] == "KeyError"


def test_an_exception_printed_through_the_hook_and_handled_is_not_the_jobs_failure(
    job_venv: JobVenv, tmp_path: Path
) -> None:
    code = "import sys\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    sys.excepthook(*sys.exc_info())\n"
    ran = _run_job(job_venv, [str(job_venv.python), "-c", code], tmp_path)
    assert ran.proc.returncode == 0
    assert "ZeroDivisionError" in ran.proc.stderr
    assert ran.merged["exception"] is None


def test_files_read_and_written_are_listed_and_code_is_not(job_venv: JobVenv, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.csv").write_text("a,b\n1,2\n")
    (data / "conf.yaml").write_text("k: v\n")
    out = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import json, os
        import six  # imports open code files: never listed
        rows = open({str(data / "in.csv")!r}).read().splitlines()
        os.chdir({str(data)!r})
        with open("conf.yaml", "rb") as handle:
            handle.read()
        os.makedirs({str(out)!r})
        with open({str(out / "log.txt")!r}, "a") as handle:
            handle.write("x")
        with open({str(out / "result.json.tmp")!r}, "w") as handle:
            json.dump(rows, handle)
        os.replace({str(out / "result.json.tmp")!r}, {str(out / "result.json")!r})
        fd = os.open({str(out / "raw.bin")!r}, os.O_WRONLY | os.O_CREAT)
        os.close(fd)
        try:
            open({str(data / "missing.csv")!r})
        except OSError:
            pass
        """
    )
    ran = _run_job(job_venv, [str(job_venv.python), "-c", code], tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    files = ran.merged["files"]
    assert files["read"] == [str(data / "conf.yaml"), str(data / "in.csv")]
    assert files["written"] == [str(out / "log.txt"), str(out / "raw.bin"), str(out / "result.json")]
    assert files["detected"] == "audit-hook"
    assert files["truncated"] is False

    quiet = _run_job(
        job_venv, [str(job_venv.python), "-c", code.replace(str(out), str(tmp_path / "out2"))], tmp_path, audit=False
    )
    assert quiet.proc.returncode == 0, quiet.proc.stderr
    assert quiet.merged["files"] == {"read": [], "written": [], "truncated": False, "detected": "none"}


def test_a_python_child_reports_too_and_the_root_keeps_the_exception(job_venv: JobVenv, tmp_path: Path) -> None:
    child_out = tmp_path / "child.txt"
    code = textwrap.dedent(
        f"""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "open({str(child_out)!r}, 'w').write('c'); raise KeyError('child')"])
        raise ValueError("parent")
        """
    )
    ran = _run_job(job_venv, [str(job_venv.python), "-c", code], tmp_path)
    assert ran.proc.returncode == 1
    assert ran.merged["processes"] == 2
    assert len(list(ran.reports.glob("*.json"))) == 2
    assert ran.merged["exception"]["type"] == "ValueError"
    assert ran.merged["files"]["written"] == [str(child_out)]

    # A shell runs the Python job: the shell writes no report, the first Python that raised is the job's.
    shell = _run_job(job_venv, ["sh", "-c", f"{job_venv.python} -c 'pass' && {job_venv.python} train.py"], tmp_path)
    assert shell.proc.returncode == 1
    assert shell.merged["processes"] == 2
    assert _enriched(job_venv, shell.merged)["type"] == "ValueError"


def _user_customize(directory: Path) -> None:
    directory.mkdir()
    (directory / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE'] = __file__\n")
    (directory / "usercustomize.py").write_text("import os\nos.environ['USER_USERCUSTOMIZE'] = __file__\n")


def test_the_users_sitecustomize_and_usercustomize_still_run(job_venv: JobVenv, tmp_path: Path) -> None:
    # usercustomize runs only where the user site is enabled: not in an isolated venv, so this venv sees the
    # system site packages (and nothing of the bootstrap is installed in either).
    shared = tmp_path / "shared-venv"
    venv.create(shared, system_site_packages=True, with_pip=False)
    python = shared / "bin" / "python"
    mine = tmp_path / "mine"
    _user_customize(mine)
    code = (
        "import os, sys, sitecustomize\n"
        "print(os.environ.get('USER_SITECUSTOMIZE'), os.environ.get('USER_USERCUSTOMIZE'), sitecustomize.__file__)\n"
        "print(any('envsnap-jobhook' in p for p in sys.path))\n"
        "raise SystemExit('stopped')\n"
    )
    env = {**_plain_env(), "PYTHONPATH": str(mine)}
    ran = _run_job(job_venv, [str(python), "-c", code], tmp_path, env=env)
    plain = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, check=False)
    assert ran.proc.stdout == plain.stdout
    assert ran.proc.stdout.splitlines() == [
        f"{mine / 'sitecustomize.py'} {mine / 'usercustomize.py'} {mine / 'sitecustomize.py'}",
        "False",
    ]
    assert (ran.proc.returncode, ran.proc.stderr) == (plain.returncode, plain.stderr) == (1, "stopped\n")
    assert ran.merged["processes"] == 1
    assert ran.merged["exception"] is None  # SystemExit with a message is an exit, not an exception


def test_a_failing_user_sitecustomize_is_reported_as_without_envsnap(job_venv: JobVenv, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sitecustomize.py").write_text("raise RuntimeError('broken customize')\n")
    env = {**_plain_env(), "PYTHONPATH": str(mine)}
    argv = [str(job_venv.python), "-c", "print('ran')"]
    ran = _run_job(job_venv, argv, tmp_path, env=env)
    plain = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert (ran.proc.returncode, ran.proc.stdout, ran.proc.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert "broken customize" in plain.stderr


def test_pip_freeze_and_site_packages_are_unchanged_by_jobs(job_venv: JobVenv, tmp_path: Path) -> None:
    """Last in this module: every job above has run in the venv by now (and three more run here)."""
    assert "jobtool @ file:" in job_venv.freeze
    assert "six==" in job_venv.freeze
    python = str(job_venv.python)
    for argv in ([python, "train.py"], [python, "-m", "pkg.mod", "x"], [str(job_venv.python.parent / "jobtool")]):
        _run_job(job_venv, argv, tmp_path)
    assert _freeze(job_venv.python) == job_venv.freeze
    assert _site_listing(job_venv.python) == job_venv.site_listing
    assert not any("envsnap" in name for name in job_venv.site_listing)
