"""The raw-fact reader of ``/proc``, ``/sys`` and ``/etc``, whose answer :mod:`envsnap._target.system` parses.

It runs wherever the facts are: in envsnap's process for a local capture, on a fleet worker (the node
payload), inside a replay (the fidelity probe). It only reads; every parser is in
:mod:`envsnap._target.system`, so the facts of this machine, of a worker and of a replay are parsed alike.

Shipped into other interpreters with the rest of ``envsnap._target``: standard library only, Python 3.8.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from .system import (
    CgroupMount,
    ancestors,
    cgroup_section,
    hierarchy_key,
    limit_files,
    parse_mountinfo_cgroups,
    parse_proc_cgroup,
)


def read_text(path: str, limit: int = 1 << 20) -> str | None:
    """Text of a small system file, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _cpu_siblings() -> list[str] | None:
    """Thread-sibling sets in sysfs, one per physical core: the core count where cpuinfo has no topology."""
    base = "/sys/devices/system/cpu"
    try:
        names = [n for n in os.listdir(base) if n.startswith("cpu") and n[3:].isdigit()]
    except OSError:
        return None
    siblings = set()
    for name in names:
        text = read_text(base + "/" + name + "/topology/thread_siblings_list") or read_text(
            base + "/" + name + "/topology/core_cpus_list"
        )
        if text:
            siblings.add(text.strip())
    return sorted(siblings)


def cgroup_dir(mount: CgroupMount, process_path: str | None) -> str:
    """The directory of this process's cgroup under ``mount`` (the mount point when it is not visible)."""
    if process_path:
        root = mount.root.rstrip("/")
        if process_path == root or process_path.startswith(root + "/") or root == "":
            rel = process_path[len(root) :].lstrip("/")
            candidate = os.path.join(mount.mount_point, rel) if rel else mount.mount_point
            if os.path.isdir(candidate):
                return candidate
    return mount.mount_point


def read_cgroup_facts(mountinfo: str, proc_cgroup: str) -> dict[str, Any]:
    """The raw cgroup facts of the process that ``mountinfo`` and ``proc_cgroup`` describe: both texts,
    its directory under each cgroup mount, and the text of every limit file there and in the ancestors."""
    paths = parse_proc_cgroup(proc_cgroup)
    dirs: dict[str, str] = {}
    files: dict[str, str] = {}
    for mount in parse_mountinfo_cgroups(mountinfo):
        key = hierarchy_key(mount)
        if key is None:
            continue
        directory = cgroup_dir(mount, paths.get(key))
        dirs[mount.mount_point] = directory
        chain_names, own_names = limit_files(mount)
        for where, names in ((ancestors(directory, mount.mount_point), chain_names), ([directory], own_names)):
            for folder in where:
                for name in names:
                    text = read_text(os.path.join(folder, name), 4096)
                    if text is not None:
                        files[os.path.join(folder, name)] = text
    return {"mountinfo": mountinfo, "proc_cgroup": proc_cgroup, "dirs": dirs, "files": files}


def cgroup_limits(mountinfo: str, proc_cgroup: str) -> dict[str, Any]:
    """:func:`cgroup_section` of the process ``mountinfo`` and ``proc_cgroup`` describe (files read here)."""
    return cgroup_section(read_cgroup_facts(mountinfo, proc_cgroup))


def current_cgroup_limits() -> dict[str, Any]:
    """:func:`cgroup_limits` of this process (empty limits where /proc is not there)."""
    return cgroup_limits(read_text("/proc/self/mountinfo") or "", read_text("/proc/self/cgroup") or "")


def read_host_facts() -> dict[str, Any]:
    """Every raw fact :func:`~envsnap._target.system.system_section` needs, read here, plus the CPU affinity."""
    uname = os.uname()
    try:
        libc: str | None = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        libc = None
    try:
        affinity: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None  # macOS and Windows have no sched_getaffinity
    try:
        localtime: str | None = os.readlink("/etc/localtime")
    except OSError:
        localtime = None
    cpuinfo = read_text("/proc/cpuinfo", 1 << 24)
    # sysfs is only asked when cpuinfo has no topology (most ARM kernels): one file per CPU adds up.
    topology = cpuinfo is not None and "physical id" in cpuinfo and "core id" in cpuinfo
    return {
        "os_release": read_text("/etc/os-release") or read_text("/usr/lib/os-release"),
        "system": platform.system(),
        "uname": {"release": uname.release, "version": uname.version, "machine": uname.machine},
        "libc": libc,
        "cpuinfo": cpuinfo,
        "cpu_count": os.cpu_count(),
        "cpu_siblings": None if topology else _cpu_siblings(),
        "meminfo": read_text("/proc/meminfo"),
        "affinity": affinity,
        "cgroup": read_cgroup_facts(read_text("/proc/self/mountinfo") or "", read_text("/proc/self/cgroup") or ""),
        "etc_timezone": read_text("/etc/timezone", 4096),
        "localtime_link": localtime,
    }
