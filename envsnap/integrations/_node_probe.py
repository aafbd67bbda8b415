"""The per-node payload of a fleet capture: raw facts about one worker, gathered with the standard library.

This file is never imported on a worker. The driver compiles its source under a module name that no
worker can import (:func:`envsnap.integrations.fleet.payload_function`), so Ray's and Spark's cloudpickle
ship :func:`run_payload` *by value*: a worker needs its engine (ray, pyspark) and a Python >= 3.8, never
envsnap. It must stay self-contained (stdlib only, Python 3.8 syntax) for the same reason.

The payload returns raw facts (file texts, ``os.uname``, the environment filtered by the driver's
allowlist, ``nvidia-smi`` output); the driver parses them with envsnap's own probe code and redacts every
string before anything is stored. A value of an environment variable whose name is not on the allowlist
never leaves the worker: only its name does.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

PAYLOAD_VERSION = 1
NVIDIA_SMI_TIMEOUT_S = 20
_TEXT_LIMIT = 1 << 22

# cgroup files read for the limits, at the usual mount points (v2 unified at /sys/fs/cgroup, v1 per
# controller below it). The driver parses them with envsnap.capture.system's parsers.
_CGROUP_V2_FILES = ("cpu.max", "memory.max", "cpuset.cpus.effective")
_CGROUP_V1_FILES = {
    "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "memory": ("memory.limit_in_bytes",),
    "cpuset": ("cpuset.effective_cpus", "cpuset.cpus"),
}


def _read(path: str, limit: int = _TEXT_LIMIT) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def cgroup_chain(root: str, relative: str) -> list[str]:
    """``root/relative`` and its parents up to ``root``: a parent's limit binds the child too."""
    out = []
    parts = [p for p in relative.split("/") if p and p not in (".", "..")]
    while True:
        out.append(os.path.join(root, *parts))
        if not parts:
            return out
        parts.pop()


def cgroup_files(proc_cgroup: str) -> dict[str, str]:
    """Texts of the cgroup limit files of this process and its ancestors, keyed by absolute path."""
    files: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        fields = line.strip().split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        roots: list[tuple[str, tuple[str, ...]]]
        if hierarchy == "0" and controllers == "":
            roots = [("/sys/fs/cgroup", _CGROUP_V2_FILES)]
        else:
            roots = [
                ("/sys/fs/cgroup/" + name, _CGROUP_V1_FILES[name])
                for name in controllers.split(",")
                if name in _CGROUP_V1_FILES
            ]
        for root, names in roots:
            for directory in cgroup_chain(root, path):
                for name in names:
                    text = _read(os.path.join(directory, name), 4096)
                    if text is not None:
                        files[os.path.join(directory, name)] = text
    return files


def _wanted(name: str, exact: list[str], globs: list[str], never: list[str]) -> bool:
    if name in never:
        return False
    return name in exact or any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def environment(options: dict[str, Any]) -> dict[str, Any]:
    """Every variable name; values only for names on the driver's allowlist (``options["env"]``)."""
    policy = options.get("env") or {}
    exact = list(policy.get("exact") or ())
    globs = list(policy.get("globs") or ())
    never = list(policy.get("never") or ())
    values = {}
    for name, value in os.environ.items():
        if _wanted(name, exact, globs, never):
            values[name] = value
    return {"names": sorted(os.environ), "values": values}


def gpu() -> dict[str, Any]:
    """``nvidia-smi -q -x`` (and the compute-capability query) when nvidia-smi is on PATH."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"reason": "nvidia-smi is not on PATH"}
    out: dict[str, Any] = {}
    for key, argv in (
        ("xml", [exe, "-q", "-x"]),
        ("caps", [exe, "--query-gpu=uuid,compute_cap", "--format=csv,noheader"]),
    ):
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            out[key] = {"error": type(exc).__name__ + ": " + str(exc)[:200]}
            continue
        out[key] = {
            "returncode": proc.returncode,
            "stdout": proc.stdout.decode("utf-8", "replace")[:_TEXT_LIMIT],
            "stderr": proc.stderr.decode("utf-8", "replace")[:2000],
        }
    return out


def system() -> dict[str, Any]:
    """OS, kernel, C library, CPU, memory, cgroups, CPU affinity and timezone files of this node."""
    uname = os.uname()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        libc = None
    try:
        affinity: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        localtime: str | None = os.readlink("/etc/localtime")
    except OSError:
        localtime = None
    proc_cgroup = _read("/proc/self/cgroup") or ""
    return {
        "os_release": _read("/etc/os-release") or _read("/usr/lib/os-release"),
        "system": platform.system(),
        "uname": {"release": uname.release, "version": uname.version, "machine": uname.machine},
        "libc": libc,
        "cpuinfo": _read("/proc/cpuinfo", 1 << 24),
        "meminfo": _read("/proc/meminfo"),
        "cpu_count": os.cpu_count(),
        "affinity": affinity,
        "mountinfo": _read("/proc/self/mountinfo"),
        "proc_cgroup": proc_cgroup,
        "cgroup_files": cgroup_files(proc_cgroup),
        "etc_timezone": _read("/etc/timezone", 4096),
        "localtime_link": localtime,
    }


def collect(inspect: Callable[[], dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Every raw fact of this worker; ``inspect`` is ``envsnap.capture._inspect.inspect``."""
    started = time.monotonic()
    facts: dict[str, Any] = {
        "payload_version": PAYLOAD_VERSION,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "inspect": inspect(),
        "system": system(),
        "environment": environment(options),
        # Variables that say which engine worker this is (Spark's executor id); read by the driver only.
        "identity": {name: os.environ.get(name) for name in options.get("identity_env") or ()},
        "gpu": gpu(),
    }
    facts["wall_s"] = round(time.monotonic() - started, 6)
    return facts


def run_payload(inspect_source: str, node_source: str, options: dict[str, Any]) -> dict[str, Any]:
    """What a worker runs: compile the inspection and this module's source, then :func:`collect`.

    Nothing escapes as an exception: a worker whose Python cannot run the payload (too old, a broken
    standard library) answers ``{"payload_error": {...}}``, which the driver records for that node.
    """
    try:
        if sys.version_info < (3, 8):  # noqa: UP036 - the worker's Python, not envsnap's
            raise RuntimeError("Python {}.{} is older than 3.8".format(*sys.version_info[:2]))
        namespaces = []
        for label, source in (("inspect", inspect_source), ("node", node_source)):
            namespace: dict[str, Any] = {"__name__": "envsnap_payload_" + label}
            exec(compile(source, "<envsnap " + label + " payload>", "exec"), namespace)  # noqa: S102 - envsnap's own source
            namespaces.append(namespace)
        result: dict[str, Any] = namespaces[1]["collect"](namespaces[0]["inspect"], options)
        return result
    except Exception as exc:  # noqa: BLE001 - every failure on the worker becomes that node's error record
        return {
            "payload_error": {
                "type": type(exc).__name__,
                "message": str(exc)[:500],
                "python": sys.version.split()[0],
                "executable": sys.executable,
            }
        }


def partition_runner(inspect_source: str, node_source: str, options: dict[str, Any]) -> Callable[[Any], Any]:
    """A ``mapPartitions`` function (Spark) that answers one payload per partition. Defined here so that
    it, too, is shipped by value with :func:`run_payload`."""

    def run(rows: Any) -> Any:
        yield run_payload(inspect_source, node_source, options)

    return run
