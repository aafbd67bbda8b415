"""``envsnap run -- COMMAND``: run any job unmodified, and capture its runtime and what happened.

The command runs as a child process: stdin and stdout are its own, stderr passes through envsnap (which
keeps its last :data:`STDERR_LINES` lines), and its exit status is handed back (a death by signal N as
``128 + N``). Nothing is installed into the job's environment: a Python job gets the stdlib-only job
bootstrap (:mod:`envsnap._target.jobhook`) through ``PYTHONPATH``, which records the uncaught exception
and the files the job opened, and runs the job's own ``sitecustomize``.

The environment probes run WHILE the job runs, at a lower CPU priority (``nice`` 10 for envsnap's own
thread and its helper processes), so that when the job ends only its record, its files and the write
are left: a failure's snapshot is on disk about a second after the job exits. The interpreter captured
is the one the command runs (``python ...``, a path to a python, a console script's shebang), else
``--python``, else the first python on PATH (a non-Python command), and the record says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from envsnap.capture import CaptureSteps
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.job import iso_utc
from envsnap.capture.job_files import FileSpec, relative_to_root
from envsnap.core.redact import scrub_argv, scrub_text
from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from typing import Unpack

    from envsnap.capture.base import CaptureArguments
    from envsnap.snapshot.manifest import ProbeStatus
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "STDERR_LINES",
    "CommandError",
    "CommandResult",
    "ResolvedCommand",
    "default_snapshot_name",
    "resolve_command",
    "run_command",
]

#: Lines of the job's stderr kept in the snapshot (each cut at :data:`LINE_CAP` characters).
STDERR_LINES = 200
LINE_CAP = 2000
_TAIL_BYTES = 512 << 10
#: Probes that wait for the job: they record what it did (the rest run while it runs).
AFTER_JOB = frozenset({"job", "data", "job_files", "artifacts", "configs", "source_files", "sbom"})
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)*)?(\.exe)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: The second line of pip's launcher script when the interpreter's path is too long for a shebang.
PIP_EXEC = "'''exec' "


class CommandError(EnvsnapError):
    """The command cannot be run (none given, not found, a directory): a usage error, nothing ran."""

    exit_code = 2


@dataclass(frozen=True)
class ResolvedCommand:
    """The command as given, the program it runs, and the interpreter whose environment is captured."""

    argv: tuple[str, ...]
    program: str
    python: str | None
    python_source: str
    is_python: bool


@dataclass
class CommandResult:
    """What ``run_command`` did: the job's exit status, and the snapshot (None when none was written)."""

    exit_status: int
    signal: int | None
    record: dict[str, Any]
    snapshot: Snapshot | None = None
    path: str | None = None
    capture_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.exit_status != 0


def _shebang_python(path: str) -> str | None:
    """The python a script's first line runs (``#!/venv/bin/python``, ``#!/usr/bin/env python3``, and
    pip's ``#!/bin/sh`` + ``'''exec' /long/path/python "$0"`` form for long paths), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[0][2:].split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0]) if words else None
        words = [found] if found else []
    if words and _PYTHON_NAME.match(os.path.basename(words[0])):
        return words[0]
    if words and os.path.basename(words[0]) == "sh" and len(lines) > 1 and lines[1].startswith(PIP_EXEC):
        rest = lines[1][len(PIP_EXEC) :].strip()
        candidate = rest[1:].split('"', 1)[0] if rest.startswith('"') else (rest.split() or [""])[0]
        if _PYTHON_NAME.match(os.path.basename(candidate)):
            return candidate
    return None


def resolve_command(argv: Sequence[str], python: str | None = None) -> ResolvedCommand:
    """Find the program ``argv`` runs and the interpreter to capture; raise :class:`CommandError`."""
    if not argv:
        raise CommandError("no command after --: envsnap run [OPTIONS] -- COMMAND [ARGS]...")
    first = argv[0]
    if os.sep in first or (os.altsep and os.altsep in first):
        program = os.path.abspath(first)
        if os.path.isdir(program):
            raise CommandError(f"{first} is a directory, not a command; give the program to run")
        if not os.path.exists(program):
            raise CommandError(f"{first}: no such file; give the path of the program to run")
        if not os.access(program, os.X_OK):
            raise CommandError(f"{first} is not executable; run it with its interpreter (e.g. python {first})")
    else:
        found = shutil.which(first)
        if found is None and os.path.isdir(first):
            raise CommandError(f"{first} is a directory, not a command; give the program to run")
        if found is None:
            raise CommandError(f"{first}: command not found on PATH; check its spelling or activate its environment")
        program = found
    if python is not None:
        source, is_python = "--python", bool(_PYTHON_NAME.match(os.path.basename(program)) or _shebang_python(program))
        return ResolvedCommand(tuple(argv), program, python, source, is_python)
    if _PYTHON_NAME.match(os.path.basename(program)):
        # Keep the path as run (a venv's bin/python is a symlink; resolving it would lose the venv).
        return ResolvedCommand(tuple(argv), program, program, "argv", True)
    shebang = _shebang_python(program)
    if shebang is not None:
        return ResolvedCommand(tuple(argv), program, shebang, "shebang", True)
    on_path = shutil.which("python3") or shutil.which("python")
    return ResolvedCommand(tuple(argv), program, on_path, "PATH", False)


def default_snapshot_name(argv: Sequence[str], when: float | None = None) -> str:
    """``train-20260101T120000Z.envsnap``: the script's (or program's) name and the UTC time."""
    words = (
        [a for a in argv[1:] if not a.startswith("-")] if argv and _PYTHON_NAME.match(os.path.basename(argv[0])) else []
    )
    if argv and len(argv) > 2 and argv[1] == "-m":
        name = argv[2]  # a module: pkg.score
    else:
        name = os.path.splitext(os.path.basename(words[0] if words else (argv[0] if argv else "job")))[0]
    stem = _UNSAFE.sub("_", name).strip("_.")[:60] or "job"
    return time.strftime(f"{stem}-%Y%m%dT%H%M%SZ.envsnap", time.gmtime(when))


def _git_root(cwd: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _git_tracked(root: str) -> set[str]:
    try:
        done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {os.path.join(root, p) for p in done.stdout.decode("utf-8", "replace").split("\0") if p}


class _StderrTee(threading.Thread):
    """Pass the child's stderr through to ours as it comes; keep its tail."""

    def __init__(self, fd: int) -> None:
        super().__init__(name="envsnap-stderr", daemon=True)
        self.fd = fd
        self.tail = bytearray()

    def run(self) -> None:
        out = getattr(sys.stderr, "buffer", None)
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            with contextlib.suppress(Exception):  # a closed stderr must not stop the draining
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:
                    sys.stderr.write(chunk.decode("utf-8", "replace"))
                    sys.stderr.flush()
            self.tail += chunk
            if len(self.tail) > 2 * _TAIL_BYTES:
                del self.tail[:-_TAIL_BYTES]
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def lines(self) -> str:
        text = bytes(self.tail[-_TAIL_BYTES:]).decode("utf-8", "replace")
        kept = deque((line[:LINE_CAP] for line in text.splitlines()), maxlen=STDERR_LINES)
        return scrub_text("\n".join(kept) + ("\n" if kept else ""))


class _Job:
    """The running child: started at once, waited for in a thread (``wait4``: its own peak RSS)."""

    def __init__(self, command: ResolvedCommand, env: Mapping[str, str], cwd: str) -> None:
        self.command = command
        self.started = time.time()
        self._t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            list(command.argv), executable=command.program, env=dict(env), cwd=cwd, stderr=subprocess.PIPE
        )
        stderr = self.proc.stderr
        if stderr is None:  # pragma: no cover - stderr=PIPE always gives one
            raise RuntimeError("no stderr pipe")
        self.tee = _StderrTee(os.dup(stderr.fileno()))
        stderr.close()
        self.tee.start()
        self.status: int | None = None
        self.max_rss: int | None = None
        self.ended: float | None = None
        self.duration: float | None = None
        self._done = threading.Event()
        threading.Thread(target=self._wait, name="envsnap-wait", daemon=True).start()

    def _wait(self) -> None:
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.max_rss = int(usage.ru_maxrss) * 1024
        except ChildProcessError:  # pragma: no cover - reaped elsewhere
            status = 0
        self.duration = time.perf_counter() - self._t0
        self.ended = time.time()
        self.status = status
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()

    def wait(self) -> None:
        while not self._done.wait(0.5):  # a timed wait lets signal handlers run in the main thread
            pass
        self.tee.join(timeout=5)

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            self.proc.send_signal(signum)

    @property
    def exit_status(self) -> tuple[int, int | None]:
        code = self.proc.returncode if self.proc.returncode is not None else 0
        return (128 - code, -code) if code < 0 else (code, None)


@contextlib.contextmanager
def _forward_signals(job_holder: list[_Job]) -> Any:
    """SIGTERM/SIGHUP/SIGQUIT go to the job; SIGINT is ignored (the terminal sends it to the job too)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def forward(signum: int, _frame: Any) -> None:
        for job in job_holder:
            job.send(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT):
        previous[sig] = signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else forward)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _CommandSteps(CaptureSteps):
    """The capture's steps around the job: start it first, run the environment probes while it runs,
    then record what it did (see :class:`envsnap.capture.CaptureSteps`)."""

    def __init__(
        self, command: ResolvedCommand, root: str, root_kind: str, outputs: Sequence[FileSpec], cwd: str, *, nice: bool
    ) -> None:
        self.nice = nice
        self.command = command
        self.root = root
        self.root_kind = root_kind
        self.outputs = list(outputs)
        self.cwd = cwd
        self.first: tuple[str, ...] = ()  # set once the job runs: importing the probes takes time
        self.jobs: list[_Job] = []
        self.workdir = tempfile.mkdtemp(prefix="envsnap-run-")
        self.reports = os.path.join(self.workdir, "reports")
        self.record: dict[str, Any] | None = None
        self.raw_exception: Mapping[str, Any] | None = None

    def prepare(self, options: CaptureOptions) -> None:
        from envsnap._target import jobhook

        os.makedirs(self.reports, exist_ok=True)
        boot = jobhook.install_bootstrap(os.path.join(self.workdir, "boot"))
        env = jobhook.bootstrap_env(boot, self.reports, self.root, os.environ, audit=True)
        self.jobs.append(_Job(self.command, env, self.cwd))
        if self.nice and hasattr(os, "setpriority"):
            # This thread only (Linux nice is per thread); the probes' helper processes inherit it.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))
        from envsnap.capture import load_probes

        self.first = tuple(cls.name for cls in load_probes() if cls.name not in AFTER_JOB)

    def finish(self) -> dict[str, Any]:
        """Wait for the job; build its record (once)."""
        if self.record is not None:
            return self.record
        from envsnap._target import jobhook

        job = self.jobs[0]
        job.wait()
        status, signum = job.exit_status
        collected = jobhook.collect(self.reports, job.proc.pid)
        self.raw_exception = collected.get("exception")
        files = collected.get("files") or {}
        self.python_facts = collected.get("python") or {}
        shutil.rmtree(self.workdir, ignore_errors=True)

        def rel(path: str) -> str:
            return scrub_text(relative_to_root(path, self.root))

        self.opened = {"read": list(files.get("read") or ()), "written": list(files.get("written") or ())}
        self.record = {
            "argv": scrub_argv(self.command.argv),
            "program": scrub_text(self.command.program),
            "python": scrub_text(self.command.python) if self.command.python else None,
            "python_source": self.command.python_source,
            "is_python": self.command.is_python,
            "root": scrub_text(self.root),
            "root_abs": self.root,
            "root_kind": self.root_kind,
            "cwd": rel(os.path.abspath(self.cwd)),
            "started_at": iso_utc(job.started),
            "ended_at": iso_utc(job.ended or time.time()),
            "duration_s": round(job.duration or 0.0, 6),
            "exit_status": status,
            "signal": signum,
            "peak_rss_bytes": job.max_rss,
            "stderr_tail": job.tee.lines(),
            "processes": collected.get("processes", 0),
            "files": {
                "read": sorted({rel(p) for p in self.opened["read"]}),
                "written": sorted({rel(p) for p in self.opened["written"]}),
                "truncated": bool(files.get("truncated")),
                "detected": files.get("detected") or "none",
            },
        }
        return self.record

    def between(self, ctx: CaptureContext, statuses: Mapping[str, ProbeStatus]) -> None:
        from envsnap.capture.frames import enrich_exception

        record = self.finish()
        failure = None
        if self.raw_exception is not None:
            facts = self.python_facts
            site_dirs = list(facts.get("site_dirs") or ())
            base = facts.get("base_prefix") or ""
            version = str(facts.get("version") or "")
            stdlib = (
                [os.path.join(base, "lib", f"python{'.'.join(version.split('.')[:2])}")] if base and version else []
            )
            failure = enrich_exception(self.raw_exception, root=self.root, site_dirs=site_dirs, stdlib_dirs=stdlib)
        specs = [
            FileSpec("input", spec.name, os.fspath(spec.source))
            for spec in ctx.options.inputs
            if isinstance(spec.source, (str, os.PathLike))
        ]
        specs += self.outputs
        named = {os.path.abspath(s.path) for s in specs}
        tracked = _git_tracked(self.root) if self.root_kind == "git" else set()
        for role in ("read", "written"):
            for path in self.opened[role]:
                if path not in named and path not in tracked:
                    specs.append(FileSpec(role, None, path))
                    named.add(path)
        ctx.options = dataclasses.replace(ctx.options, failure=failure, command=record, job_files=tuple(specs))


def _output_specs(outputs: Iterable[str], cwd: str) -> list[FileSpec]:
    specs: list[FileSpec] = []
    seen: set[str] = set()
    for value in outputs:
        name, sep, path = value.partition("=")
        if not sep or os.sep in name:
            name, path = "", value
        path = os.path.join(cwd, path)
        name = name or _UNSAFE.sub("_", Path(path).name.split(".")[0]).strip("_.") or "output"
        if name in seen:
            raise CommandError(f"--output {value}: the name {name!r} is given twice; name them NAME=PATH")
        seen.add(name)
        specs.append(FileSpec("output", name, path))
    return specs


def run_command(
    command_line: Sequence[str],
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    on_failure_only: bool = False,
    outputs: Iterable[str] = (),
    nice: bool = False,
    **arguments: Unpack[CaptureArguments],
) -> CommandResult:
    """Run ``command_line`` as a child (streams and exit status its own); capture its runtime and record.

    ``output`` is where the snapshot goes (default: :func:`default_snapshot_name` in the working
    directory); with ``on_failure_only`` it is written only when the command fails. ``outputs`` are
    ``[NAME=]PATH`` files the job writes, recorded after it exits. The other keyword arguments are
    :func:`envsnap.capture.capture`'s (``python`` overrides the interpreter found from the command).
    ``nice`` lowers the CPU priority of the calling thread for the rest of its life (the CLI's choice:
    the probes then yield to the job; a library caller keeps its priority by default).
    Raises :class:`CommandError` before anything runs when the command cannot be run, and
    :class:`~envsnap.errors.OutputError` when the destination cannot be written; once the job has run,
    a failure of the capture is returned in ``capture_error`` with the job's exit status.
    """
    from envsnap.capture import capture_snapshot
    from envsnap.snapshot.writer import check_output

    python = arguments.pop("python", None)
    command = resolve_command(command_line, os.fspath(python) if python is not None else None)
    cwd = os.fspath(arguments.get("cwd") or os.getcwd())
    dest = check_output(output if output is not None else default_snapshot_name(command_line), force)
    specs = _output_specs(outputs, cwd)
    git_root = _git_root(cwd) if arguments.get("git", True) else None
    root, root_kind = (os.path.realpath(git_root), "git") if git_root else (os.path.realpath(cwd), "cwd")
    given = cast("CaptureArguments", {k: v for k, v in arguments.items() if k != "argv"})  # argv: the command's
    options = dataclasses.replace(
        CaptureOptions.build(**given),
        python=command.python,
        argv=tuple(command.argv),
    )
    steps = _CommandSteps(command, root, root_kind, specs, cwd, nice=nice)
    result: CommandResult
    with _forward_signals(steps.jobs):
        try:
            snap = capture_snapshot(options, None, steps=steps)
            error = None
        except Exception as exc:  # the job ran: its status comes back whatever capture did
            snap, error = None, f"{type(exc).__name__}: {exc}" if not isinstance(exc, EnvsnapError) else str(exc)
            if not steps.jobs:
                raise
        record = steps.finish()
    status, signum = record["exit_status"], record["signal"]
    result = CommandResult(status, signum, record, snapshot=snap, capture_error=error)
    if snap is not None and (not on_failure_only or status != 0):
        try:
            result.path = str(snap.write(dest, force=force))
            snap.path = result.path
        except (OSError, EnvsnapError) as exc:
            result.capture_error = f"the snapshot could not be written to {dest}: {exc}"
    return result
