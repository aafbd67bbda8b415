"""Shared measurement helpers for the bench/ scripts: one run, paired runs, statistics, machine facts.

Every command is run as a child process; its wall time is taken with ``time.perf_counter`` around
spawn-to-reap and its peak RSS comes from the ``rusage`` that ``os.wait4`` returns for that very child.
On Linux that rusage covers the child *and* the descendants it reaped, and ``ru_maxrss`` is the largest of
them (not the sum): for a tool that inspects a venv through a subprocess of the venv's Python (envsnap
``--python``, cyclonedx-py, pipdeptree, uv) the figure is the peak of the biggest process of the run, the
same number GNU ``/usr/bin/time -f %M`` prints.

The command is not spawned by the bench process itself but by a small launcher (:data:`LAUNCHER`, a fresh
``python -I -S``) that spawns it, reaps it with ``wait4`` and reports the figures. Linux carries the
spawning process's resident high-water mark into the child's ``ru_maxrss`` across fork/vfork and exec: a
bench that had generated 1.8 GiB of data reported 1840.9 MiB for every worker it started, whatever the
worker used. Through the launcher the figure is the worker's own, with a floor of the launcher's ~8 MiB
(``/bin/true`` reads 8 MiB); bench/RESULTS-diff-data.md checks it against ``/usr/bin/time -v``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Command:
    """One benchmarked command line: what it is, how to run it, and an optional check of its output."""

    key: str  # stable identifier used in results.json
    label: str  # how RESULTS.md shows it
    argv: tuple[str, ...]
    shown: str  # the command as a reader would type it (paths shortened)
    before: Callable[[], None] | None = None  # untimed preparation (e.g. delete the previous output)


@dataclass
class Run:
    """One measured run."""

    wall_s: float
    cpu_s: float  # user + system time of the child and its reaped descendants: less sensitive to load
    max_rss_kib: int
    returncode: int
    stdout_bytes: int


@dataclass
class Series:
    """All measured runs of one command (warm-up excluded)."""

    key: str
    label: str
    shown: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None  # why the command could not be measured, when it could not

    def walls(self) -> list[float]:
        return [r.wall_s for r in self.runs]

    def cpus(self) -> list[float]:
        return [r.cpu_s for r in self.runs]

    def rss_mib(self) -> list[float]:
        return [r.max_rss_kib / 1024 for r in self.runs]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "label": self.label, "command": self.shown, "error": self.error}
        data["runs"] = [asdict(r) for r in self.runs]
        if self.runs:
            data["wall_s"] = summary(self.walls())
            data["cpu_s"] = summary(self.cpus())
            data["max_rss_mib"] = summary(self.rss_mib())
        return data


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero: its figures would be meaningless."""

    def __init__(self, command: Command, returncode: int, stderr_tail: str) -> None:
        super().__init__(f"exited {returncode}: {one_line(stderr_tail)}")
        self.command = command
        self.stderr_tail = stderr_tail[-2000:]


#: Spawns ``argv[2:]``, reaps it with ``wait4`` (this child's own rusage, not RUSAGE_CHILDREN's maximum
#: over every child ever reaped) and writes ``wall cpu maxrss_kib exit_code`` to the fd ``argv[1]``.
#: Run as ``python -I -S -c``: a fresh interpreter of a few MiB whatever the bench process holds.
LAUNCHER = """import os, sys, time
fd = int(sys.argv[1])
argv = sys.argv[2:]
start = time.perf_counter()
try:
    pid = os.posix_spawnp(argv[0], argv, os.environ)
except OSError as exc:
    sys.stderr.write(f"cannot run {argv[0]}: {exc}\\n")
    os.write(fd, b"0 0 0 127")
    sys.exit(0)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(fd, f"{wall!r} {usage.ru_utime + usage.ru_stime!r} {usage.ru_maxrss} {code}".encode())
"""


@dataclass(frozen=True)
class Spawned:
    """What :func:`spawn_measured` reports of one child."""

    wall_s: float
    cpu_s: float
    max_rss_kib: int
    returncode: int  # 127 when it could not be started (the reason is on its stderr)


def spawn_measured(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None, stdout: Any, stderr: Any) -> Spawned:
    """Run ``argv`` through :data:`LAUNCHER` (stdin empty, stdout/stderr to the given files) and measure it.

    Its peak RSS is its own (see the module docstring); the wall time is the launcher's spawn-to-reap,
    without the launcher's own start-up.
    """
    read_fd, write_fd = os.pipe()
    try:
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(write_fd), *argv]
        proc = subprocess.Popen(
            launcher, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, pass_fds=(write_fd,)
        )
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as report:
            read_fd = -1
            fields = report.read().decode().split()
        launcher_code = proc.wait()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    if launcher_code != 0 or len(fields) != 4:
        return Spawned(0.0, 0.0, 0, launcher_code or 127)
    return Spawned(float(fields[0]), float(fields[1]), int(fields[2]), int(fields[3]))


def run_once(command: Command, *, cwd: Path, env: dict[str, str]) -> Run:
    """Run ``command`` once, stdout to a scratch file (as a user redirecting it would), and measure it."""
    if command.before is not None:
        command.before()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        spawned = spawn_measured(command.argv, cwd=cwd, env=env, stdout=out, stderr=err)
        size = out.tell()
        if spawned.returncode != 0:
            err.seek(0)
            raise CommandFailed(command, spawned.returncode, err.read().decode("utf-8", "replace"))
    return Run(
        wall_s=spawned.wall_s,
        cpu_s=spawned.cpu_s,
        max_rss_kib=spawned.max_rss_kib,
        returncode=spawned.returncode,
        stdout_bytes=size,
    )


@dataclass
class Pair:
    """A reference command (A) and one peer (B) measured A B A B ... in the same run."""

    a: Series
    b: Series

    def ratios(self) -> list[float]:
        """A/B of each pair of neighbouring runs: drift in machine load hits both halves of a pair."""
        if len(self.a.runs) != len(self.b.runs):
            return []
        return [ra.wall_s / rb.wall_s for ra, rb in zip(self.a.runs, self.b.runs, strict=True)]

    def cpu_ratios(self) -> list[float]:
        """A/B of the CPU time of each pair of neighbouring runs."""
        if len(self.a.runs) != len(self.b.runs):
            return []
        return [ra.cpu_s / rb.cpu_s for ra, rb in zip(self.a.runs, self.b.runs, strict=True) if rb.cpu_s > 0]

    def to_json(self) -> dict[str, Any]:
        ratios, cpu_ratios = self.ratios(), self.cpu_ratios()
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "ratio_a_over_b": summary(ratios) if ratios else None,
            "cpu_ratio_a_over_b": summary(cpu_ratios) if cpu_ratios else None,
        }


def run_pair(
    a: Command,
    b: Command,
    *,
    runs: int,
    warmup: int,
    cwd: Path,
    env: dict[str, str],
    progress: Callable[[str], None] = print,
) -> Pair:
    """Measure A and B interleaved, ``warmup`` unrecorded pairs first. A failing command ends the pair."""
    pair = Pair(Series(a.key, a.label, a.shown), Series(b.key, b.label, b.shown))
    for i in range(warmup + runs):
        ra = None
        if pair.a.error is None:
            try:
                ra = run_once(a, cwd=cwd, env=env)
            except CommandFailed as exc:
                # The peer is still measured on its own: its figures stand, only the ratio is lost.
                pair.a.error = str(exc)
                pair.a.runs.clear()
        try:
            rb = run_once(b, cwd=cwd, env=env)
        except CommandFailed as exc:
            pair.b.error = str(exc)
            break
        if i >= warmup:
            if ra is not None:
                pair.a.runs.append(ra)
            pair.b.runs.append(rb)
        shown_a = f"{ra.wall_s:7.3f}s {ra.max_rss_kib / 1024:6.1f}MiB" if ra else "failed"
        progress(
            f"    {a.key} {shown_a} | {b.key} {rb.wall_s:7.3f}s {rb.max_rss_kib / 1024:6.1f}MiB"
            f"{'  (warm-up)' if i < warmup else ''}"
        )
    if pair.b.error:
        # A half-measured pair would give figures over different conditions: keep the error, drop the runs.
        pair.a.runs.clear()
        pair.b.runs.clear()
    return pair


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of ``values``."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _first_line_with(path: str, prefix: str, sep: str = ":") -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(prefix) and sep in line:
                    return line.split(sep, 1)[1].strip().strip('"')
    except OSError:
        return None
    return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and load: what a reader needs to weigh absolute times."""
    mem_kib = _first_line_with("/proc/meminfo", "MemTotal")
    cpu_quota = None
    try:
        quota = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="utf-8").split()
        if quota[0] != "max":
            cpu_quota = int(quota[0]) / int(quota[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_model": _first_line_with("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "cgroup_cpu_quota": cpu_quota,
        "memory_gib": round(int(mem_kib.split()[0]) / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "os": (_first_line_with("/etc/os-release", "PRETTY_NAME", "=") or "").strip() or platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def tool_output(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    """First line of a ``--version``-style command, or why it could not run."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60, cwd=cwd)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (proc.stdout or proc.stderr).strip()
    if proc.returncode != 0:
        return f"unavailable (exit {proc.returncode}: {text[-200:]})"
    return text.splitlines()[0] if text else ""


def one_line(text: str, limit: int = 300) -> str:
    """An error message fit for a Markdown table cell: its last meaningful line, pipes escaped."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    if len(lines) > 1 and ": " not in line:
        line = " ".join(lines[-2:])
    line = line.replace("|", "\\|").replace("`", "'")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fmt_s(value: float) -> str:
    """Seconds with a precision that suits the magnitude."""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def fmt_ratio(value: float) -> str:
    """A ratio such as 0.42x."""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"
