"""``env/system.json`` from raw host facts: a pure function of texts, for every place that needs it.

:func:`system_section` turns what :func:`envsnap._target.host.read_host_facts` read (file texts,
``os.uname``, the cgroup limit files) into the section, so that a local capture, a fleet worker's facts
and the facts read inside a replay go through one parser, testable on cgroup v1, v2 and hybrid fixtures
without such a machine. Only facts that stay put are recorded: memory *total*, never free or available
memory, and no load or uptime, so that two captures of one machine are identical.

Shipped into other interpreters with the rest of ``envsnap._target``: standard library only, Python 3.8.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OS_RELEASE_KEYS = ("id", "id_like", "name", "version", "version_id", "version_codename", "pretty_name", "variant_id")
# The kernel reports "no limit" in cgroup v1 as LONG_MAX rounded down to a page; anything this big is it.
_UNLIMITED_BYTES = 1 << 60
_LOCALE_CATEGORIES = ("LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES")
_CGROUP_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices"})
# Limit files per hierarchy: (read in the process's cgroup and its ancestors, read in its own cgroup only).
_V2_FILES = (("cpu.max", "memory.max"), ("cpuset.cpus.effective",))
_V1_FILES = {
    "cpu": (("cpu.cfs_quota_us", "cpu.cfs_period_us"), ()),
    "memory": (("memory.limit_in_bytes",), ()),
    "cpuset": ((), ("cpuset.effective_cpus", "cpuset.cpus")),
}


# --- OS, CPU, memory --------------------------------------------------------------------------------


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
        if value and "\\" in value:
            value = value.replace('\\"', '"').replace("\\$", "$").replace("\\`", "`").replace("\\\\", "\\")
    return value


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` (shell-style ``KEY="value"`` lines) as ``{"id": "debian", ...}`` (keys lowercased)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = _unquote(value)
    return out


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Model, vendor, sorted flags and counts from ``/proc/cpuinfo`` (x86 and ARM spellings).

    ``physical_cores`` counts distinct (physical id, core id) pairs; it is None where the kernel does
    not report topology there (most ARM kernels), and :func:`system_section` falls back to sysfs.
    """
    processors = 0
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    current: dict[str, str] = {}

    def close(block: dict[str, str]) -> None:
        if "physical id" in block and "core id" in block:
            cores.add((block["physical id"], block["core id"]))
        if "physical id" in block:
            sockets.add(block["physical id"])

    for raw in [*text.splitlines(), ""]:
        if not raw.strip():
            if current:
                close(current)
                current = {}
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if key == "processor":
            processors += 1
        current[key] = value
        first.setdefault(key, value)
    flags = first.get("flags") or first.get("Features") or ""
    return {
        "model": first.get("model name") or first.get("Processor") or first.get("cpu model") or first.get("cpu"),
        "vendor": first.get("vendor_id") or first.get("CPU implementer") or first.get("vendor"),
        "family": first.get("cpu family") or first.get("CPU architecture"),
        "model_number": first.get("model") or first.get("CPU part"),
        "stepping": first.get("stepping") or first.get("CPU revision"),
        "flags": sorted(set(flags.split())),
        "logical_cores": processors or None,
        "physical_cores": len(cores) or None,
        "sockets": len(sockets) or None,
    }


def parse_meminfo_total(text: str) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * (1024 if len(parts) < 3 or parts[2].lower() == "kb" else 1)
    return None


def glibc_of(confstr: str | None) -> str | None:
    """The glibc version in ``os.confstr("CS_GNU_LIBC_VERSION")`` (``"glibc 2.36"``), else None (musl)."""
    parts = (confstr or "").split()
    return parts[1] if len(parts) > 1 and parts[0] == "glibc" else None


# --- cpu lists ---------------------------------------------------------------------------------------


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,8,10-11"`` (cpuset syntax) → sorted CPU numbers; malformed parts are skipped."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        lo, sep, hi = part.strip().partition("-")
        if lo.isdigit() and (not sep or hi.isdigit()):
            cpus.update(range(int(lo), int(hi if sep else lo) + 1))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """Sorted CPU numbers as compact ranges: {0, 1, 2, 5} → ``"0-2,5"``."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in [*ordered, None]:
        if start is not None and prev is not None and (cpu is None or cpu != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        prev = cpu
    return ",".join(parts)


# --- cgroups ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup filesystem from ``/proc/self/mountinfo``."""

    version: int  # 1 or 2
    root: str  # the cgroup path mounted there (not "/" when the namespace shows a sub-tree)
    mount_point: str
    controllers: frozenset[str]  # v1 controllers of the hierarchy; empty for v2


def _unescape_mount(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_mountinfo_cgroups(text: str) -> list[CgroupMount]:
    """Cgroup v1 and v2 mounts listed in ``/proc/self/mountinfo``."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        options = set(fields[sep + 3].split(",")) if len(fields) > sep + 3 else set()
        mounts.append(
            CgroupMount(
                version=2 if fstype == "cgroup2" else 1,
                root=_unescape_mount(fields[3]),
                mount_point=_unescape_mount(fields[4]),
                controllers=frozenset(options & _CGROUP_CONTROLLERS) if fstype == "cgroup" else frozenset(),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 unified entry (``0::/path``) has the key ``""``."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if parts[0] == "0" and controllers == "":
            paths[""] = path
            continue
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def cgroup_version(mounts: Iterable[CgroupMount]) -> str | None:
    """The cgroup layout: "v2" (unified only), "v1", "hybrid" (v1 controllers and a cgroup2 mount) or None."""
    mounts = list(mounts)
    has_v1 = any(m.version == 1 and m.controllers for m in mounts)
    has_v2 = any(m.version == 2 for m in mounts)
    if has_v1 and has_v2:
        return "hybrid"
    if has_v2:
        return "v2"
    if has_v1:
        return "v1"
    return None


def hierarchy_key(mount: CgroupMount) -> str | None:
    """The ``/proc/self/cgroup`` key of a mount's hierarchy: ``""`` for v2, one of its controllers for v1."""
    if mount.version == 2:
        return ""
    for controller in ("cpu", "memory", "cpuset"):
        if controller in mount.controllers:
            return controller
    return None


def ancestors(directory: str, stop: str) -> list[str]:
    """``directory`` and its parents up to the mount point: a parent's limit also binds the child."""
    out = [directory]
    stop = stop.rstrip("/") or "/"
    while directory.rstrip("/") != stop and directory not in ("/", ""):
        directory = os.path.dirname(directory.rstrip("/"))
        out.append(directory)
    return out


def limit_files(mount: CgroupMount) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The limit files of a mount's hierarchy: (read in the process's cgroup and every ancestor, read in
    the process's own cgroup only)."""
    if mount.version == 2:
        return _V2_FILES
    chain: tuple[str, ...] = ()
    own: tuple[str, ...] = ()
    for controller in sorted(mount.controllers & set(_V1_FILES)):
        chain += _V1_FILES[controller][0]
        own += _V1_FILES[controller][1]
    return chain, own


# --- cgroup limits -----------------------------------------------------------------------------------


def parse_cpu_max(text: str) -> tuple[int | None, int | None]:
    """cgroup v2 ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``) → (quota_us or None, period_us)."""
    parts = text.split()
    if not parts:
        return None, None
    quota = int(parts[0]) if parts[0].lstrip("-").isdigit() and int(parts[0]) > 0 else None
    period = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 100000
    return quota, period


def parse_v1_cpu_quota(quota_text: str, period_text: str) -> tuple[int | None, int | None]:
    """cgroup v1 ``cpu.cfs_quota_us`` (-1 = none) and ``cpu.cfs_period_us``."""
    quota_s, period_s = quota_text.strip(), period_text.strip()
    quota = int(quota_s) if quota_s.lstrip("-").isdigit() and int(quota_s) > 0 else None
    period = int(period_s) if period_s.isdigit() and int(period_s) > 0 else None
    return quota, period


def parse_memory_limit(text: str) -> int | None:
    """v2 ``memory.max`` (``"max"``) or v1 ``memory.limit_in_bytes`` (huge = none) → bytes or None."""
    value = text.strip()
    if not value.isdigit():
        return None
    limit = int(value)
    return None if limit >= _UNLIMITED_BYTES else limit


def _strictest_quota(quotas: Iterable[tuple[int | None, int | None]], source: str) -> dict[str, Any] | None:
    """The smallest quota/period among (quota, period) pairs of a cgroup and its ancestors."""
    ratios = [(quota / period, quota, period) for quota, period in quotas if quota is not None and period]
    if not ratios:
        return None
    ratio, quota, period = min(ratios)
    return {"quota_us": quota, "period_us": period, "effective_cpus": round(ratio, 3), "source": source}


def _strictest_memory(texts: Iterable[str], source: str) -> dict[str, Any] | None:
    present = [limit for limit in (parse_memory_limit(text) for text in texts) if limit is not None]
    return {"limit_bytes": min(present), "source": source} if present else None


def cgroup_section(raw: Mapping[str, Any]) -> dict[str, Any]:
    """CPU and memory limits from :func:`envsnap._target.host.read_cgroup_facts` (v2 preferred, v1 read
    too; the strictest ancestor wins)."""
    mounts = parse_mountinfo_cgroups(raw.get("mountinfo") or "")
    dirs: Mapping[str, str] = raw.get("dirs") or {}
    files: Mapping[str, str] = raw.get("files") or {}

    def chain(mount: CgroupMount) -> list[str]:
        return ancestors(dirs.get(mount.mount_point, mount.mount_point), mount.mount_point)

    def text(directory: str, name: str) -> str:
        return files.get(os.path.join(directory, name)) or ""

    cpu: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    cpuset: str | None = None
    for v2 in (m for m in mounts if m.version == 2):
        folders = chain(v2)
        cpu = _strictest_quota((parse_cpu_max(text(d, "cpu.max")) for d in folders), "v2")
        memory = _strictest_memory((text(d, "memory.max") for d in folders), "v2")
        cpuset = text(folders[0], "cpuset.cpus.effective").strip() or None
        break
    for mount in (m for m in mounts if m.version == 1):
        folders = chain(mount)
        if "cpu" in mount.controllers and cpu is None:
            quotas = (parse_v1_cpu_quota(text(d, "cpu.cfs_quota_us"), text(d, "cpu.cfs_period_us")) for d in folders)
            cpu = _strictest_quota(quotas, "v1")
        if "memory" in mount.controllers and memory is None:
            memory = _strictest_memory((text(d, "memory.limit_in_bytes") for d in folders), "v1")
        if "cpuset" in mount.controllers and cpuset is None:
            own = text(folders[0], "cpuset.effective_cpus") or text(folders[0], "cpuset.cpus")
            cpuset = own.strip() or None
    cpus = parse_cpu_list(cpuset) if cpuset else []
    return {
        "version": cgroup_version(mounts),
        "cpu": cpu or {"quota_us": None, "period_us": None, "effective_cpus": None, "source": None},
        "memory": memory or {"limit_bytes": None, "source": None},
        "cpuset_cpus": format_cpu_list(cpus) if cpus else None,
        "cpuset_count": len(cpus) or None,
    }


# --- locale and timezone -----------------------------------------------------------------------------


def locale_facts(environ: Mapping[str, str]) -> dict[str, Any]:
    """LANG/LC_* as set, and each category as POSIX resolves it (LC_ALL, then LC_x, then LANG)."""
    variables = {k: v for k, v in environ.items() if k in ("LANG", "LANGUAGE") or (k.startswith("LC_") and k.isupper())}
    effective = {}
    for category in _LOCALE_CATEGORIES:
        effective[category] = environ.get("LC_ALL") or environ.get(category) or environ.get("LANG") or None
    return {"variables": dict(sorted(variables.items())), "effective": effective}


def zone_from_localtime_target(target: str) -> str | None:
    """``/usr/share/zoneinfo/Europe/Paris`` (the /etc/localtime link) → ``Europe/Paris``."""
    marker = "zoneinfo/"
    at = target.rfind(marker)
    if at < 0:
        return None
    zone = target[at + len(marker) :]
    for prefix in ("posix/", "right/"):
        if zone.startswith(prefix):
            zone = zone[len(prefix) :]
    return zone or None


def timezone_facts(environ: Mapping[str, str], etc_timezone: str | None, localtime_link: str | None) -> dict[str, Any]:
    """TZ, /etc/timezone and the /etc/localtime link; ``name`` is the one that applies (TZ first)."""
    tz_env = environ.get("TZ") or None
    etc_zone = (etc_timezone or "").strip() or None
    localtime = zone_from_localtime_target(localtime_link) if localtime_link else None
    name = (tz_env.lstrip(":") if tz_env else None) or localtime or etc_zone
    return {"tz": tz_env, "etc_timezone": etc_zone, "localtime": localtime, "name": name}


def system_section(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``env/system.json`` from :func:`read_host_facts` and the environment's LANG/LC_*/TZ variables."""
    release = parse_os_release(raw.get("os_release") or "")
    os_facts: dict[str, Any] = {key: release.get(key) for key in OS_RELEASE_KEYS}
    os_facts["system"] = str(raw.get("system") or "")
    cpu = parse_cpuinfo(raw.get("cpuinfo") or "")
    if cpu["logical_cores"] is None:
        cpu["logical_cores"] = raw.get("cpu_count")
    if cpu["physical_cores"] is None:
        cpu["physical_cores"] = len(raw.get("cpu_siblings") or ()) or None
    uname = raw["uname"]
    return {
        "os": os_facts,
        "kernel": {
            "release": str(uname["release"]),
            "version": str(uname["version"]),
            "machine": str(uname["machine"]),
        },
        "glibc": glibc_of(raw.get("libc")),
        "cpu": cpu,
        "memory": {"total_bytes": parse_meminfo_total(raw.get("meminfo") or "")},
        "cgroup": cgroup_section(raw.get("cgroup") or {}),
        "locale": locale_facts(environ),
        "timezone": timezone_facts(environ, raw.get("etc_timezone"), raw.get("localtime_link")),
    }
