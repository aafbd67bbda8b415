"""The job bootstrap: put it on a job's ``PYTHONPATH``, read what each Python process of the job reported.

:func:`install_bootstrap` writes a directory holding the bootstrap ``sitecustomize.py``
(:mod:`.sitecustomize` says what it records); :func:`bootstrap_env` is the environment that makes a job
load it; :func:`collect` merges the reports its processes wrote (``REPORTS/<pid>.json``) into one record.
Nothing is installed into the job's environment. Standard library only: envsnap imports this module on the
host, and the replay runs the same bootstrap inside a container.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_FILES", "bootstrap_env", "collect", "install_bootstrap"]

#: The files listed by the merged record, reading and writing each (a process lists at most as many).
MAX_FILES = 2000
_HERE = os.path.dirname(os.path.abspath(__file__))
_BOOT_DIR = "envsnap-jobhook"


def install_bootstrap(dest_dir: str) -> str:
    """Write the bootstrap directory under ``dest_dir`` (created if needed) and return its path.

    The directory holds ``sitecustomize.py`` alone, since all of it goes on the job's ``sys.path``
    (briefly: the bootstrap takes it off again).
    """
    boot_dir = os.path.join(os.path.abspath(dest_dir), _BOOT_DIR)
    os.makedirs(boot_dir, exist_ok=True)
    with open(os.path.join(_HERE, "sitecustomize.py"), encoding="utf-8") as handle:
        text = handle.read()
    target = os.path.join(boot_dir, "sitecustomize.py")
    with open(target + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(target + ".tmp", target)
    return boot_dir


def bootstrap_env(
    boot_dir: str,
    reports_dir: str,
    root: str | None,
    base_env: Mapping[str, str],
    *,
    audit: bool = True,
) -> dict[str, str]:
    """The full environment for the job: ``base_env`` with the bootstrap first on ``PYTHONPATH``.

    ``boot_dir`` and ``reports_dir`` are paths as the job sees them (a container's, in a replay);
    ``audit`` turns on the listing of opened files. ``root`` (the project root) is passed along as
    ``ENVSNAP_JOBHOOK_ROOT``.
    """
    env = dict(base_env)
    # A job run by a job that envsnap runs reports to its own envsnap only: one bootstrap on the path.
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.basename(p) != _BOOT_DIR]
    env["PYTHONPATH"] = os.pathsep.join([boot_dir, *kept])
    env["ENVSNAP_JOBHOOK_REPORTS"] = reports_dir
    env["ENVSNAP_JOBHOOK_AUDIT"] = "1" if audit else "0"
    if root is not None:
        env["ENVSNAP_JOBHOOK_ROOT"] = root
    else:
        env.pop("ENVSNAP_JOBHOOK_ROOT", None)
    return env


def _reports(reports_dir: str) -> list[dict[str, Any]]:
    """Every well-formed report in ``reports_dir`` (a half-written or foreign file is skipped)."""
    try:
        names = sorted(os.listdir(reports_dir))
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(reports_dir, name), encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and isinstance(document.get("pid"), int):
            found.append(document)
    return found


def _started(report: Mapping[str, Any]) -> float:
    started = report.get("started")
    return float(started) if isinstance(started, (int, float)) else float("inf")


def _paths(reports: list[dict[str, Any]], key: str) -> tuple[list[str], bool]:
    paths: set[str] = set()
    for report in reports:
        files = report.get("files") if isinstance(report.get("files"), dict) else {}
        listed = files.get(key) if isinstance(files, dict) else None
        if isinstance(listed, list):
            paths.update(p for p in listed if isinstance(p, str))
    ordered = sorted(paths)
    return ordered[:MAX_FILES], len(ordered) > MAX_FILES


def collect(reports_dir: str, root_pid: int | None) -> dict[str, Any]:
    """Merge the reports of a job's Python processes into one record.

    ``{"processes": N, "exception": RAW_EXCEPTION | None, "python": {...} | None, "files": {"read",
    "written", "truncated", "detected"}}``. The exception and the interpreter are those of ``root_pid``
    when it reported (a Python job); else (a shell script running Python, or ``root_pid`` unknown, as in a
    container) of the earliest-started top Python process (one whose parent wrote no report) that raised,
    else of the earliest top one. A child's exception is its parent's business: a parent that handled
    its child's failure has none. Files are the union over all the processes.
    """
    reports = sorted(_reports(reports_dir), key=lambda r: (_started(r), r["pid"]))
    pids = {r["pid"] for r in reports}
    tops = [r for r in reports if r.get("ppid") not in pids] or reports
    root = next((r for r in reports if r["pid"] == root_pid), None)
    source = root or next((r for r in tops if isinstance(r.get("exception"), dict)), None)
    exception = source.get("exception") if source is not None else None
    python_of = source or (tops[0] if tops else None)
    python = python_of.get("python") if python_of is not None else None
    read, read_cut = _paths(reports, "read")
    written, written_cut = _paths(reports, "written")
    truncated = read_cut or written_cut
    audited = False
    for report in reports:
        files = report.get("files")
        if isinstance(files, dict):
            truncated = truncated or files.get("truncated") is True
            audited = audited or files.get("detected") == "audit-hook"
    return {
        "processes": len(reports),
        "exception": exception if isinstance(exception, dict) else None,
        "python": python if isinstance(python, dict) else None,
        "files": {
            "read": read,
            "written": written,
            "truncated": truncated,
            "detected": "audit-hook" if audited else "none",
        },
    }
