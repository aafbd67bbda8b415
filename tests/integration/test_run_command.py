"""``envsnap run -- COMMAND`` on jobs that know nothing of envsnap, in real virtualenvs.

Each job is an ordinary script (or module, or console script) run in a fresh venv; envsnap runs from
its own environment and installs nothing in the job's: the venv's distributions are the same before and
after. The snapshot must say what happened: exit status, exception and frames, stderr tail, files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envsnap.snapshot.reader import open_snapshot
from tests.integration.conftest import installed_set, make_venv, pip_install

ENVSNAP = [sys.executable, "-m", "envsnap"]
SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

SCORE = textwrap.dedent(
    """\
    import csv
    import json
    import sys

    from helpers import total_of


    def main(path):
        rows = list(csv.DictReader(open(path)))
        total = total_of(rows)
        with open("scores.csv", "w") as fh:
            fh.write("x,score\\n" + "".join(f"{r['x']},{float(r['x']) * 2}\\n" for r in rows))
        print("scored", len(rows), "rows")
        if total > 5:
            raise ValueError(f"total too big: {total}")


    if __name__ == "__main__":
        main(sys.argv[1])
    """
)
HELPERS = "def total_of(rows):\n    return sum(float(r['x']) for r in rows)\n"


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv as a user has it: pip only, plus (later) their own console-script project."""
    return make_venv(tmp_path_factory.mktemp("run-command") / "venv")


def _job(tmp_path: Path, rows: str) -> Path:
    job = tmp_path / "job"
    job.mkdir()
    (job / "score.py").write_text(SCORE)
    (job / "helpers.py").write_text(HELPERS)
    (job / "in.csv").write_text("x,y\n" + rows)
    return job


def _envsnap(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENVSNAP, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _job_record(path: Path) -> tuple[dict, dict]:
    with open_snapshot(path) as snap:
        job = snap.section("job")
        files = snap.section("job-files") if "job/files.json" in snap else {}
        return job, files


def test_failing_script_passes_status_through_and_records_the_exception(tmp_path: Path, job_venv: Path) -> None:
    job = _job(tmp_path, "1,2\n5,6\n")
    before = installed_set(job_venv)
    proc = _envsnap(
        "run", "-o", "snaps/run.envsnap", "--input", "batch=in.csv", "--output", "scores.csv",
        "--", job_venv, "score.py", "in.csv", cwd=job,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "scored 2 rows" in proc.stdout  # the job's stdout is its own
    assert "ValueError: total too big: 6.0" in proc.stderr  # its stderr passes through
    assert installed_set(job_venv) == before  # nothing installed into the job's venv
    snapshot = job / "snaps" / "run.envsnap"  # the directory was created
    assert f"snapshot {snapshot}" in proc.stderr
    record, files = _job_record(snapshot)
    command = record["command"]
    assert record["exit_status"] == command["exit_status"] == 1
    assert command["python"] == str(job_venv) and command["python_source"] == "argv"
    assert record["argv"] == [str(job_venv), "score.py", "in.csv"]
    assert "ValueError: total too big" in command["stderr_tail"]
    exception = record["exception"]
    assert exception["type"] == "ValueError" and exception["message"] == "total too big: 6.0"
    project = [f for f in exception["frames"] if f["where"] == "project"]
    assert [(f["file"], f["function"]) for f in project] == [("score.py", "<module>"), ("score.py", "main")]
    assert "in.csv" in command["files"]["read"] and "scores.csv" in command["files"]["written"]
    by_role = {(f["role"], f["name"]): f for f in files["files"]}
    assert by_role[("input", "batch")]["recorded"] == "whole"
    assert by_role[("output", "scores")]["table_member"] == "job/tables/output/scores.parquet"
    with open_snapshot(snapshot) as snap:
        assert snap.read_bytes(by_role[("input", "batch")]["member"]) == (job / "in.csv").read_bytes()
        assert snap.manifest.members["job/tables/output/scores.parquet"].size > 0


def test_module_job_succeeding_writes_a_snapshot_with_no_exception(tmp_path: Path, job_venv: Path) -> None:
    job = _job(tmp_path, "1,2\n")
    (job / "pkg").mkdir()
    (job / "pkg" / "__init__.py").write_text("")
    (job / "pkg" / "cli.py").write_text("import sys\nfrom score import main\nmain(sys.argv[1])\n")
    proc = _envsnap("run", "-o", "ok.envsnap", "--", job_venv, "-m", "pkg.cli", "in.csv", cwd=job)
    assert proc.returncode == 0, proc.stderr
    record, _ = _job_record(job / "ok.envsnap")
    assert record["exception"] is None and record["command"]["exit_status"] == 0
    assert record["command"]["signal"] is None and record["command"]["duration_s"] > 0


def test_console_script_exit_code_and_shebang_python(tmp_path: Path, job_venv: Path) -> None:
    project = tmp_path / "tool"
    (project / "tool").mkdir(parents=True)
    (project / "tool" / "__init__.py").write_text(
        '"""A console-script job."""\nimport sys\n\n\ndef main():\n    print("tool ran")\n    sys.exit(3)\n'
    )
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3.4,<5"]\nbuild-backend = "flit_core.buildapi"\n\n'
        '[project]\nname = "tool"\nversion = "0.1.0"\ndescription = "job"\n\n'
        '[project.scripts]\nscore-tool = "tool:main"\n'
    )
    pip_install(job_venv, project)
    before = installed_set(job_venv)
    proc = _envsnap("run", "-o", "tool.envsnap", "--", job_venv.parent / "score-tool", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "tool ran" in proc.stdout
    assert installed_set(job_venv) == before
    record, _ = _job_record(tmp_path / "tool.envsnap")
    assert record["command"]["python_source"] == "shebang"
    assert Path(record["command"]["python"]).parent == job_venv.parent
    assert record["exception"] is None  # sys.exit(3) is an exit status, not an uncaught exception


def test_signal_death_is_128_plus_n_and_on_failure_skips_success(tmp_path: Path, job_venv: Path) -> None:
    (tmp_path / "die.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    proc = _envsnap("run", "-o", "die.envsnap", "--on-failure", "--", job_venv, "die.py", cwd=tmp_path)
    assert proc.returncode == 128 + 15, proc.stderr
    record, _ = _job_record(tmp_path / "die.envsnap")
    assert record["command"]["signal"] == 15 and record["exit_status"] == 143
    (tmp_path / "fine.py").write_text("print('fine')\n")
    proc = _envsnap("run", "-o", "fine.envsnap", "--on-failure", "--", job_venv, "fine.py", cwd=tmp_path)
    assert proc.returncode == 0 and not (tmp_path / "fine.envsnap").exists()
    assert "no snapshot written" in proc.stderr


def test_secrets_printed_to_stderr_are_redacted(tmp_path: Path, job_venv: Path) -> None:
    (tmp_path / "leak.py").write_text(f"import sys\nprint('token {SECRET}', file=sys.stderr)\nraise SystemExit(2)\n")
    proc = _envsnap("run", "-o", "leak.envsnap", "--", job_venv, "leak.py", cwd=tmp_path)
    assert proc.returncode == 2 and SECRET in proc.stderr  # the user's terminal still sees it
    with open_snapshot(tmp_path / "leak.envsnap") as snap:
        raw = b"".join(data for _, data in snap.iter_member_bytes())
    assert SECRET.encode() not in raw
    record, _ = _job_record(tmp_path / "leak.envsnap")
    assert "token <redacted" in record["command"]["stderr_tail"]


def test_child_python_process_failure_and_non_python_command(tmp_path: Path, job_venv: Path) -> None:
    (tmp_path / "parent.py").write_text(
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'raise KeyError(1)'])\n"
        "raise RuntimeError('parent failed')\n"
    )
    proc = _envsnap("run", "-o", "p.envsnap", "--", job_venv, "parent.py", cwd=tmp_path)
    assert proc.returncode == 1
    record, _ = _job_record(tmp_path / "p.envsnap")
    assert record["exception"]["type"] == "RuntimeError"  # the job's own, not its child's
    assert record["command"]["processes"] == 2
    proc = _envsnap(
        "run", "-o", "sh.envsnap", "--python", job_venv, "--", "sh", "-c", "echo hi >&2; exit 4", cwd=tmp_path
    )
    assert proc.returncode == 4
    assert "sh is not a Python program; capturing the environment of" in proc.stderr
    record, _ = _job_record(tmp_path / "sh.envsnap")
    assert record["command"]["python_source"] == "--python" and record["command"]["is_python"] is False
    assert record["command"]["stderr_tail"] == "hi\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--"], "no command after --"),
        (["--", "no-such-command-xyz"], "command not found on PATH"),
        (["--", "."], "is a directory, not a command"),
        (["--", "./missing.py"], "no such file"),
    ],
)
def test_a_command_that_cannot_run_is_one_line_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    proc = _envsnap("run", "-o", "x.envsnap", *argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.envsnap").exists()


def test_existing_snapshot_is_refused_before_the_job_runs(tmp_path: Path, job_venv: Path) -> None:
    (tmp_path / "x.envsnap").write_text("not mine")
    (tmp_path / "job.py").write_text("open('ran', 'w').write('1')\n")
    proc = _envsnap("run", "-o", "x.envsnap", "--", job_venv, "job.py", cwd=tmp_path)
    assert proc.returncode == 3 and "already exists" in proc.stderr
    assert not (tmp_path / "ran").exists() and (tmp_path / "x.envsnap").read_text() == "not mine"


def test_job_environment_is_its_own(tmp_path: Path, job_venv: Path) -> None:
    """The job sees its own sys.path (the bootstrap leaves none of itself) and its PYTHONPATH entries."""
    (tmp_path / "show.py").write_text("import json, os, sys\nprint(json.dumps(sys.path))\n")
    plain = subprocess.run([job_venv, "show.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    proc = _envsnap("run", "-o", "s.envsnap", "--", job_venv, "show.py", cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == json.loads(plain.stdout)
    assert os.environ.get("ENVSNAP_JOBHOOK_REPORTS") is None


def test_sigterm_to_envsnap_reaches_the_job_and_is_recorded(tmp_path: Path, job_venv: Path) -> None:
    """A batch scheduler stops envsnap: the job gets the signal, the snapshot says so."""
    (tmp_path / "slow.py").write_text("import time\nopen('started', 'w').close()\ntime.sleep(60)\n")
    proc = subprocess.Popen(
        [*ENVSNAP, "run", "-o", "slow.envsnap", "--", str(job_venv), "slow.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = 60.0
    start = time.monotonic()
    while not (tmp_path / "started").exists() and time.monotonic() - start < deadline:
        time.sleep(0.1)
    proc.terminate()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + 15, stderr
    record, _ = _job_record(tmp_path / "slow.envsnap")
    assert record["command"]["signal"] == 15 and record["command"]["duration_s"] < 60


def test_verbs_that_need_stages_name_a_command_snapshot_as_such(tmp_path: Path, job_venv: Path) -> None:
    (tmp_path / "ok.py").write_text("print('ok')\n")
    assert _envsnap("run", "-o", "c.envsnap", "--", job_venv, "ok.py", cwd=tmp_path).returncode == 0
    with open_snapshot(tmp_path / "c.envsnap") as snap:
        assert snap.kind == "command"
    for argv in (["bisect", "c.envsnap", "c.envsnap"], ["shrink", "c.envsnap"]):
        proc = _envsnap(*argv, cwd=tmp_path)
        assert proc.returncode == 3, proc.stderr
        assert "a command snapshot (envsnap run -- COMMAND)" in proc.stderr and "Traceback" not in proc.stderr
