"""The host side of the job bootstrap: its directory, the job's environment, merging the processes' reports."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from envsnap._target import jobhook


def _report(
    reports: Path, pid: int, started: float, *, exception: str | None = None, ppid: int = 1, **files: Any
) -> None:
    document = {
        "pid": pid,
        "ppid": ppid,
        "argv": ["job.py"],
        "started": started,
        "ended": started + 1,
        "python": {
            "executable": f"/py{pid}",
            "prefix": "/p",
            "base_prefix": "/b",
            "version": "3.11.7",
            "site_dirs": [],
        },
        "exception": None if exception is None else {"type": exception, "message": "", "traceback": "", "frames": []},
        "files": {
            "read": files.get("read", []),
            "written": files.get("written", []),
            "truncated": files.get("truncated", False),
            "detected": files.get("detected", "audit-hook"),
        },
    }
    reports.mkdir(exist_ok=True)
    (reports / f"{pid}.json").write_text(json.dumps(document))


def test_install_bootstrap_writes_only_the_sitecustomize_and_is_idempotent(tmp_path: Path) -> None:
    boot = jobhook.install_bootstrap(str(tmp_path / "scratch"))
    assert os.listdir(boot) == ["sitecustomize.py"]
    assert jobhook.install_bootstrap(str(tmp_path / "scratch")) == boot
    source = Path(jobhook.__file__).with_name("sitecustomize.py").read_text(encoding="utf-8")
    assert Path(boot, "sitecustomize.py").read_text(encoding="utf-8") == source


def test_bootstrap_env_puts_the_bootstrap_first_and_keeps_everything_else() -> None:
    base = {"PATH": "/bin", "PYTHONPATH": "/mine", "ENVSNAP_JOBHOOK_ROOT": "/stale"}
    env = jobhook.bootstrap_env("/boot", "/reports", None, base, audit=False)
    assert env["PYTHONPATH"] == f"/boot{os.pathsep}/mine"
    assert env["ENVSNAP_JOBHOOK_REPORTS"] == "/reports"
    assert env["ENVSNAP_JOBHOOK_AUDIT"] == "0"
    assert "ENVSNAP_JOBHOOK_ROOT" not in env
    assert env["PATH"] == "/bin"
    assert base["PYTHONPATH"] == "/mine"  # the caller's mapping is not changed
    env = jobhook.bootstrap_env("/boot", "/reports", "/proj", {})
    assert env["PYTHONPATH"] == "/boot"
    nested = jobhook.bootstrap_env(
        "/inner/envsnap-jobhook", "/r2", None, {"PYTHONPATH": f"/outer/envsnap-jobhook{os.pathsep}/mine"}
    )
    assert nested["PYTHONPATH"] == f"/inner/envsnap-jobhook{os.pathsep}/mine"
    assert env["ENVSNAP_JOBHOOK_AUDIT"] == "1"
    assert env["ENVSNAP_JOBHOOK_ROOT"] == "/proj"


def test_collect_takes_the_root_processs_exception_and_merges_the_files(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _report(reports, 200, 5.0, exception="KeyError", read=["/d/b.csv"], written=["/d/out.csv"])
    _report(reports, 100, 1.0, exception="ValueError", read=["/d/a.csv", "/d/b.csv"])
    merged = jobhook.collect(str(reports), 100)
    assert merged["processes"] == 2
    assert merged["exception"]["type"] == "ValueError"
    assert merged["python"]["executable"] == "/py100"
    assert merged["files"] == {
        "read": ["/d/a.csv", "/d/b.csv"],
        "written": ["/d/out.csv"],
        "truncated": False,
        "detected": "audit-hook",
    }


def test_a_root_that_succeeded_has_no_exception_even_if_a_child_failed(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _report(reports, 100, 1.0)
    _report(reports, 200, 2.0, exception="KeyError")
    assert jobhook.collect(str(reports), 100)["exception"] is None


def test_without_a_root_report_the_earliest_process_that_raised_counts(tmp_path: Path) -> None:
    """``bash run.sh`` runs Python twice: the shell writes no report; the first failing Python does."""
    reports = tmp_path / "reports"
    _report(reports, 300, 1.0)
    _report(reports, 302, 3.0, exception="KeyError")
    _report(reports, 301, 2.0, exception="ValueError")
    merged = jobhook.collect(str(reports), 299)
    assert merged["exception"]["type"] == "ValueError"
    assert merged["python"]["executable"] == "/py301"
    assert jobhook.collect(str(reports), None)["exception"]["type"] == "ValueError"


def test_a_child_that_failed_under_a_parent_that_succeeded_is_not_the_jobs_failure(tmp_path: Path) -> None:
    """``sh -c 'python parent.py'`` (or a container, where the root pid is unknown): the parent handled it."""
    reports = tmp_path / "reports"
    _report(reports, 300, 1.0, ppid=299)
    _report(reports, 301, 2.0, ppid=300, exception="KeyError", read=["/d/child.csv"])
    for root_pid in (299, None):
        merged = jobhook.collect(str(reports), root_pid)
        assert merged["exception"] is None
        assert merged["python"]["executable"] == "/py300"
        assert merged["files"]["read"] == ["/d/child.csv"]
    _report(reports, 300, 1.0, ppid=299, exception="ValueError")
    assert jobhook.collect(str(reports), None)["exception"]["type"] == "ValueError"


def test_no_exception_anywhere_keeps_the_earliest_interpreter(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _report(reports, 301, 2.0)
    _report(reports, 300, 1.0, detected="none")
    merged = jobhook.collect(str(reports), None)
    assert merged["exception"] is None
    assert merged["python"]["executable"] == "/py300"


def test_collect_skips_half_written_and_foreign_files_and_an_empty_directory(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _report(reports, 100, 1.0, detected="none")
    (reports / "101.json.tmp").write_text("{")
    (reports / "102.json").write_text("{not json")
    (reports / "103.json").write_text("[1, 2]")
    (reports / "notes.txt").write_text("x")
    merged = jobhook.collect(str(reports), 100)
    assert merged["processes"] == 1
    assert merged["files"]["detected"] == "none"
    assert jobhook.collect(str(tmp_path / "missing"), 1) == {
        "processes": 0,
        "exception": None,
        "python": None,
        "files": {"read": [], "written": [], "truncated": False, "detected": "none"},
    }


def test_collect_caps_the_merged_lists_and_says_so(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _report(reports, 1, 1.0, read=[f"/d/{i:05d}" for i in range(1500)])
    _report(reports, 2, 2.0, read=[f"/e/{i:05d}" for i in range(1500)])
    files = jobhook.collect(str(reports), 1)["files"]
    assert len(files["read"]) == jobhook.MAX_FILES
    assert files["truncated"] is True
    _report(reports, 2, 2.0, truncated=True)
    assert jobhook.collect(str(reports), 1)["files"]["truncated"] is True
