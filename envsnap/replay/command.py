"""Replay of a command snapshot (``envsnap run -- CMD``): one stage, named "command".

The recorded code is placed at the recorded root (a private, writable copy: the job writes its outputs
into it), the recorded inputs (``job/files.json`` role ``input``, and files the job read that git does not
track, when recorded whole) at their recorded paths, and the recorded argv is rerun from the recorded
working directory with the job bootstrap (:mod:`envsnap._target.jobhook`) on ``PYTHONPATH``, so that the
replay's uncaught exception is known. Then the run is compared with the recording:

- both succeeded: every declared output (role ``output``) is compared, sha256 first, else the table
  differ on the table forms (parquet, CSV, JSON); all equal → **reproduced**, else **diverged** (outputs
  differ);
- both failed: the same exception (:func:`envsnap.capture.frames.same_failure`: same type, same innermost
  project frame), or, without a Python exception on either side, the same exit status → **reproduced**;
  else **diverged** (a different failure);
- one failed, the other not → **diverged** (failed where it succeeded / succeeded where it failed).

Paths in a container are the recorded ones (the code is mounted at the recorded root unless that is a
system path); the venv engine runs in the private copy on this machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envsnap._target import jobhook
from envsnap.core.redact import scrub_text
from envsnap.diff.model import TableDiff
from envsnap.replay.engines.base import Engine, Exit, Prepared
from envsnap.replay.fidelity import recorded_config_path
from envsnap.replay.layout import Layout, run_environment
from envsnap.replay.plan import ReplayPlan
from envsnap.replay.source import SourceTree
from envsnap.snapshot.model import Snapshot

__all__ = ["TRACEBACK_LINES", "CommandReplay", "OutputReplay", "place_code", "run_command_stage", "tail"]

#: How many lines of each traceback (or stderr) the report shows.
TRACEBACK_LINES = 12
FILES_MEMBER = "job/files.json"


@dataclass(frozen=True)
class OutputReplay:
    """One declared output: ``identical`` (same sha256), ``equal``/``within_tolerance`` (the same table),
    ``different``, ``missing`` (the replay did not write it), ``absent`` (neither run wrote it) or
    ``not-compared`` (``note`` says why)."""

    name: str
    path: str
    status: str
    note: str = ""
    table: TableDiff | None = None

    @property
    def matches(self) -> bool:
        return self.status in ("identical", "equal", "within_tolerance", "absent", "not-compared")


@dataclass(frozen=True)
class CommandReplay:
    """The recorded command rerun: how each run ended, the verdict and why."""

    argv: tuple[str, ...]
    cwd: str
    recorded_exit_status: int | None
    replayed_exit_status: int
    recorded_exception: dict[str, Any] | None
    replayed_exception: dict[str, Any] | None
    recorded_traceback: str
    replayed_traceback: str
    verdict: str
    reason: str
    outputs: tuple[OutputReplay, ...] = ()
    notes: tuple[str, ...] = field(default=())
    duration_s: float | None = None
    failure: str | None = None


def tail(text: str, lines: int = TRACEBACK_LINES) -> str:
    """The last ``lines`` non-empty-ended lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _files(snap: Snapshot) -> list[dict[str, Any]]:
    doc = snap.read_json(FILES_MEMBER) if FILES_MEMBER in snap else {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return [f for f in files or [] if isinstance(f, dict)]


def _writable(root: Path) -> None:
    """Let the container user (not the host user) write in the private copy of the code."""
    for directory, _dirs, names in os.walk(root):
        os.chmod(directory, 0o777)  # noqa: S103 - a private copy inside a 0700 work directory
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o666)  # noqa: S103 - the private copy


def place_code(tree: SourceTree, work: Path) -> SourceTree:
    """A private, writable copy of the code (an exported commit already is one; ``--source`` or a tree used
    in place is copied, ``.git`` left out), so that the job can write its outputs without touching yours."""
    host = tree.host
    if not str(host.resolve()).startswith(str(work.resolve()) + os.sep):
        copy = work / "code"
        shutil.copytree(host, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        host = copy
    _writable(host)
    return SourceTree(host, tree.original, tree.how, tree.notes)


def _inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` when inside it (recorded paths are relative already)."""
    if not os.path.isabs(path):
        rel = os.path.normpath(path)
    else:
        rel = os.path.relpath(path, root)
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _place_inputs(snap: Snapshot, layout: Layout, root: str) -> tuple[list[str], dict[str, str]]:
    """Write the recorded inputs at their recorded paths; ``(notes, {host file: absolute inner path})``."""
    assert layout.source is not None  # noqa: S101 - a command replay always has its code
    notes: list[str] = []
    extra: dict[str, str] = {}
    outside = layout.work / "job" / "files"
    for index, entry in enumerate(_files(snap)):
        role, path, member = entry.get("role"), str(entry.get("path") or ""), entry.get("member")
        label = entry.get("name") or path
        if role not in ("input", "read") or not path:
            continue
        rel = _inside(path, root)
        if role == "read" and (entry.get("recorded") != "whole" or member not in snap):
            continue  # a file the job happened to read: placed only when recorded whole
        if member is None or member not in snap:
            notes.append(f"input {label}: not in the snapshot ({entry.get('recorded')}); the job runs without it")
            continue
        if rel is None:
            if not layout.isolates:
                notes.append(f"input {label}: {path} is outside the recorded root; not placed on this machine")
                continue
            dest = outside / str(index) / Path(path).name
            extra[str(dest)] = path
        else:
            dest = layout.source.host / rel
            if role == "read" and dest.exists():
                continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with snap.open_member(member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
        if not layout.isolates or rel is not None:
            os.chmod(dest, 0o666)  # noqa: S103 - the private copy
        if entry.get("recorded") == "sample":
            notes.append(
                f"input {label}: only a sample was recorded ({entry.get('size')} bytes originally); "
                "the replay runs on the sample, so its outputs may differ"
            )
    return notes, extra


def _place_configs(snap: Snapshot, layout: Layout, root: str) -> list[str]:
    """Put recorded configuration files (``--config-file``, stored raw) that the code tree lacks at their
    recorded paths inside the root (an untracked ``config.yaml`` the job reads)."""
    assert layout.source is not None  # noqa: S101 - a command replay always has its code
    doc = snap.read_json("project/configs.json") if "project/configs.json" in snap else {}
    job = snap.read_json("job/command.json") if "job/command.json" in snap else {}
    cwd = job.get("cwd") if isinstance(job, dict) else None
    git = snap.section("git") if "env/git.json" in snap else {}
    git_root = git.get("root") if isinstance(git, dict) and isinstance(git.get("root"), str) else None
    notes = []
    for entry in doc.get("files") or [] if isinstance(doc, dict) else []:
        member = entry.get("raw_member") if isinstance(entry, dict) else None
        if not isinstance(member, str) or member not in snap or not entry.get("path"):
            continue
        recorded = recorded_config_path(entry, git_root, cwd)
        if recorded is None:
            continue
        rel = _inside(recorded, root)
        if rel is None or (layout.source.host / rel).exists():
            continue
        dest = layout.source.host / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(snap.read_bytes(member))
        os.chmod(dest, 0o666)  # noqa: S103 - the private copy
        notes.append(f"config file {entry['path']}: put in place from the snapshot (the code tree lacks it)")
    return notes


def _argv(command: Mapping[str, Any], prepared: Prepared, layout: Layout, root: str) -> list[str]:
    """The recorded argv for the replayed runtime: its Python in place of the recorded one, recorded paths
    inside the root rebased."""
    argv = [str(a) for a in command.get("argv") or []]
    mapped = [layout.recorded(a) if os.path.isabs(a) and _inside(a, root) is not None else a for a in argv]
    source = command.get("python_source")
    if command.get("is_python") and source in ("argv", "--python") and mapped:
        name = os.path.basename(argv[0])
        if name.startswith("python"):
            return [prepared.python, *mapped[1:]]
    own_script = bool(mapped) and os.sep in argv[0] and _inside(argv[0], root) is not None
    if command.get("is_python") and source == "shebang" and own_script:
        return [prepared.python, *mapped]  # the project's own script, run by the replay's interpreter
    if mapped and os.sep in argv[0] and _inside(argv[0], root) is None:
        mapped[0] = os.path.basename(argv[0])  # a program of the captured machine: found on the replay's PATH
    return mapped


def _shell_status(code: int) -> int:
    return 128 - code if code < 0 else code


def _compare_output(
    snap: Snapshot, entry: Mapping[str, Any], produced: Path | None, rtol: float, atol: float
) -> OutputReplay:
    from envsnap.core.hashing import hash_file

    name = str(entry.get("name") or entry.get("path"))
    path = str(entry.get("path"))
    recorded = entry.get("recorded")
    if produced is None:
        return OutputReplay(name, path, "not-compared", f"{path} is outside the recorded root")
    if not produced.is_file():
        if recorded == "missing":
            return OutputReplay(name, path, "absent", "written by neither run")
        return OutputReplay(name, path, "missing", "the replay did not write it")
    if recorded == "missing":
        return OutputReplay(name, path, "different", "the recorded run did not write it")
    if entry.get("sha256") and hash_file(str(produced))[0] == entry.get("sha256"):
        return OutputReplay(name, path, "identical", "same sha256")
    table_member = entry.get("table_member")
    fmt = str(entry.get("format") or "other")
    if not table_member or table_member not in snap or fmt not in ("parquet", "csv", "json"):
        return OutputReplay(name, path, "different", "a different sha256 (not a table the differ reads)")
    from envsnap.capture.job_files import table_form
    from envsnap.diff.tables import diff_parquet

    try:
        table = table_form(str(produced), fmt)
    except Exception as exc:  # noqa: BLE001 - the replayed file is not a readable table: that is the finding
        return OutputReplay(name, path, "different", f"the replayed file is not a readable {fmt} table ({exc})")
    if table is None:
        return OutputReplay(name, path, "different", "a different sha256")
    with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
        tmp.write(table)
        tmp.flush()
        try:
            with snap.open_member(table_member) as before:
                diff = diff_parquet(before, tmp.name, name=name, rtol=rtol, atol=atol)
        except Exception as exc:  # noqa: BLE001 - tables the differ cannot line up (a column changed type) differ
            return OutputReplay(name, path, "different", f"the tables cannot be compared cell by cell ({exc})"[:300])
    status = "different" if diff.diverged else diff.status if diff.status != "identical" else "equal"
    return OutputReplay(name, path, status, "the table differs" if diff.diverged else "the same table", diff)


def _verdict(
    recorded_status: int | None,
    replayed_status: int,
    recorded_exc: Mapping[str, Any] | None,
    replayed_exc: Mapping[str, Any] | None,
    outputs: list[OutputReplay],
) -> tuple[str, str]:
    from envsnap.capture.frames import same_failure

    if recorded_status is None:
        return "diverged", "the recording has no exit status to compare with"
    if recorded_status == 0 and replayed_status == 0:
        differing = [o.name for o in outputs if not o.matches]
        if differing:
            return "diverged", f"outputs differ: {', '.join(differing)}"
        compared = [o for o in outputs if o.status not in ("not-compared", "absent")]
        what = f", {len(compared)} output(s) the same" if compared else ""
        return "reproduced", f"the same success (exit status 0){what}"
    if recorded_status == 0:
        return "diverged", f"failed where it succeeded: exit status {replayed_status}"
    if replayed_status == 0:
        return "diverged", f"succeeded where it failed (the recorded run exited {recorded_status})"
    if recorded_exc is None and replayed_exc is None:
        if recorded_status == replayed_status:
            return "reproduced", f"the same failure: exit status {replayed_status}"
        return "diverged", f"a different failure: exit status {recorded_status} recorded, {replayed_status} replayed"
    same, why = same_failure(recorded_exc, replayed_exc)
    return ("reproduced" if same else "diverged"), (
        f"the same failure: {why}" if same else f"a different failure: {why}"
    )


def _replayed_exception(reports: Path, layout: Layout, root_inner: str) -> dict[str, Any] | None:
    from envsnap.capture.frames import enrich_exception, stdlib_dirs_of

    collected = jobhook.collect(str(reports), None)
    raw = collected.get("exception")
    if not isinstance(raw, dict):
        return None
    python = collected.get("python") or {}
    sites = [str(d) for d in python.get("site_dirs") or []]
    return enrich_exception(raw, root=root_inner, site_dirs=sites, stdlib_dirs=stdlib_dirs_of(python))


def run_command_stage(
    snap: Snapshot,
    plan: ReplayPlan,
    engine: Engine,
    prepared: Prepared,
    layout: Layout,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    timeout: float | None = None,
    say: Callable[[str, str], None],
) -> tuple[CommandReplay, Exit]:
    """Rerun the recorded command in ``prepared`` (the code already in ``layout``) and compare it."""
    import time

    assert layout.source is not None  # noqa: S101 - the caller placed the code
    command = plan.command or {}
    job = snap.read_json("job/command.json")
    root = str(command.get("root") or layout.source.original)
    root_inner = layout.recorded(root)
    cwd = layout.recorded(os.path.normpath(os.path.join(root, str(command.get("cwd") or "."))))
    notes, extra = _place_inputs(snap, layout, root)
    notes += _place_configs(snap, layout, root)
    layout.extra_files = extra
    outputs = [f for f in _files(snap) if f.get("role") == "output"]
    for entry in outputs:  # what the replay compares must be what the replay wrote
        rel = _inside(str(entry.get("path") or ""), root)
        if rel is not None and (layout.source.host / rel).is_file():
            (layout.source.host / rel).unlink()
    boot = jobhook.install_bootstrap(str(layout.work / "runner"))
    reports = layout.work / "out" / "reports"
    reports.mkdir(exist_ok=True)
    os.chmod(reports, 0o777)  # noqa: S103 - written by the container user; inside the private work dir
    boot_inner = f"{layout.inner('runner')}/{os.path.basename(boot)}"
    env = jobhook.bootstrap_env(
        boot_inner, f"{layout.inner('out')}/reports", root_inner, run_environment(plan, engine.isolates), audit=False
    )
    if not engine.isolates:
        env.setdefault("TMPDIR", str(layout.work / "scratch"))
    argv = _argv(command, prepared, layout, root)
    say("step", f"running the recorded command in the replay: {' '.join(argv)[:200]}")
    started = time.monotonic()
    exit_ = engine.execute(prepared, argv, plan=plan, mounts=layout.mounts(), cwd=cwd, env=env, timeout=timeout)
    duration = time.monotonic() - started
    status = _shell_status(exit_.returncode)
    replayed_exc = _replayed_exception(reports, layout, root_inner)
    recorded_exc = job.get("exception") if isinstance(job.get("exception"), dict) else None
    recorded_status = command.get("exit_status")
    compared = []
    for entry in outputs:
        rel = _inside(str(entry.get("path") or ""), root)
        produced = layout.source.host / rel if rel is not None else None
        compared.append(_compare_output(snap, entry, produced, rtol, atol))
    failure = None
    if exit_.oom_killed:
        failure = "out of memory: killed at the mirrored memory limit"
    elif exit_.timed_out:
        failure = "timed out"
    if failure is not None:
        verdict, reason = "diverged", f"the replay was stopped: {failure}"
    else:
        verdict, reason = _verdict(
            recorded_status if isinstance(recorded_status, int) else None, status, recorded_exc, replayed_exc, compared
        )
    recorded_tb = str((recorded_exc or {}).get("traceback") or command.get("stderr_tail") or "")
    replayed_tb = str((replayed_exc or {}).get("traceback") or scrub_text(exit_.output or ""))
    result = CommandReplay(
        argv=tuple(argv),
        cwd=cwd,
        recorded_exit_status=recorded_status if isinstance(recorded_status, int) else None,
        replayed_exit_status=status,
        recorded_exception=recorded_exc,
        replayed_exception=replayed_exc,
        recorded_traceback=tail(recorded_tb),
        replayed_traceback=tail(replayed_tb),
        verdict=verdict,
        reason=reason,
        outputs=tuple(compared),
        notes=tuple(notes),
        duration_s=round(duration, 3),
        failure=failure,
    )
    return result, exit_
