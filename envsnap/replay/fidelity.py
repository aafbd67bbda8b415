"""Fidelity: the replayed runtime captured from inside, and every way it differs from the snapshot.

A stdlib-only snippet runs in the replay (the same runtime, mounts and limits as the stages) and
prints what the capture probes would record there: the Python facts and distributions (through
:mod:`envsnap.capture._inspect`), ``/etc/os-release``, glibc, ``/proc/cpuinfo``, the cgroup limits and
the thread settings it sees. The host parses that with the capture's own parsers and compares it with
the snapshot, layer by layer. Nothing is hidden: a different Python patch version, OS, glibc, CPU
model or flags, a missing GPU, a package that could not be installed, a limit that was not mirrored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap.capture import _inspect
from envsnap.capture.system import parse_cpuinfo, parse_memory_limit, parse_os_release
from envsnap.core.naming import normalize_name
from envsnap.replay.plan import ReplayPlan
from envsnap.snapshot.model import Snapshot

_EXTRA = r"""
import json, os, platform
def _read(p):
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError:
        return None
facts = ns["inspect"]()
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (ValueError, OSError, AttributeError):
    libc = ""
facts["system"] = {
    "os_release": _read("/etc/os-release") or _read("/usr/lib/os-release"),
    "glibc": libc.split()[-1] if libc.startswith("glibc") else (platform.libc_ver()[1] or None),
    "cpuinfo": _read("/proc/cpuinfo"),
    "memory_max": _read("/sys/fs/cgroup/memory.max") or _read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "uid": os.getuid(),
}
facts["environ"] = {k: v for k, v in os.environ.items() if k in ENV_KEYS}
import sys
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump(facts, fh, default=str)
"""


def snippet(env_keys: list[str]) -> str:
    """The Python source run in the replay to inspect it (stdlib only)."""
    source = Path(_inspect.__file__).read_text(encoding="utf-8")
    return (
        f"ENV_KEYS = set({json.dumps(sorted(env_keys))})\n"
        f"ns = {{'__name__': 'envsnap_inspect'}}\n"
        f"exec(compile({source!r}, '_inspect', 'exec'), ns)\n" + _EXTRA
    )


@dataclass(frozen=True)
class Difference:
    """One way the replay is not the captured runtime."""

    layer: str
    what: str
    recorded: str
    replayed: str
    note: str = ""


def _section(snap: Snapshot, name: str, member: str) -> dict[str, Any]:
    data = snap.section(name) if member in snap else None
    return data if isinstance(data, dict) and "error" not in data else {}


def compare(snap: Snapshot, plan: ReplayPlan, facts: dict[str, Any], *, engine: str) -> list[Difference]:
    """Every difference between the snapshot's runtime and the replayed one described by ``facts``."""
    out: list[Difference] = []
    py = _section(snap, "python", "env/python.json")
    got = facts.get("python") or {}
    for key, label in (("implementation", "implementation"), ("version", "version"), ("compiler", "compiler")):
        if py.get(key) != got.get(key):
            out.append(Difference("python", label, str(py.get(key)), str(got.get(key)), _base_note(plan)))
    if list(py.get("build") or []) != list(got.get("build") or []) and py.get("version") == got.get("version"):
        out.append(Difference("python", "build", " ".join(py.get("build") or []), " ".join(got.get("build") or [])))
    recorded_pkgs = {
        str(d.get("normalized_name")): str(d.get("version"))
        for d in _section(snap, "packages", "env/packages.json").get("distributions") or []
    }
    replayed_pkgs = {
        normalize_name(str(d.get("name"))): str(d.get("version")) for d in facts.get("distributions") or []
    }
    overridden = {p.normalized: p for p in plan.packages if p.overridden_from}
    excluded = {normalize_name(e.name): e for e in plan.excluded}
    for name in sorted(set(recorded_pkgs) | set(replayed_pkgs)):
        a, b = recorded_pkgs.get(name), replayed_pkgs.get(name)
        if a == b:
            continue
        if name in overridden:
            note = "--with"
        elif name in excluded:
            note = f"not installed: {excluded[name].reason}"
        elif a is None:
            note = "not in the snapshot (the base image or the installer brought it)"
        else:
            note = ""
        out.append(Difference("packages", name, a or "(absent)", b or "(absent)", note))
    system = _section(snap, "system", "env/system.json")
    inside = facts.get("system") or {}
    os_now = parse_os_release(inside.get("os_release") or "")
    os_then = system.get("os") or {}
    then_os = f"{os_then.get('id')} {os_then.get('version_id')}"
    now_os = f"{os_now.get('id')} {os_now.get('version_id')}"
    if os_then and then_os != now_os:
        out.append(Difference("system", "os", then_os, now_os, _base_note(plan)))
    if system.get("glibc") and system.get("glibc") != inside.get("glibc"):
        out.append(Difference("system", "glibc", str(system.get("glibc")), str(inside.get("glibc")), _base_note(plan)))
    cpu_then = system.get("cpu") or {}
    cpu_now = parse_cpuinfo(inside.get("cpuinfo") or "") if inside.get("cpuinfo") else {}
    if cpu_then.get("model") and cpu_now.get("model") and cpu_then.get("model") != cpu_now.get("model"):
        out.append(Difference("system", "cpu model", str(cpu_then["model"]), str(cpu_now["model"]), "this host's CPU"))
    flags_then, flags_now = set(cpu_then.get("flags") or []), set(cpu_now.get("flags") or [])
    if flags_then and flags_now and flags_then != flags_now:
        missing, extra = sorted(flags_then - flags_now), sorted(flags_now - flags_then)
        out.append(
            Difference(
                "system",
                "cpu flags",
                f"{len(flags_then)} flags",
                f"{len(flags_now)} flags",
                f"missing here: {', '.join(missing[:12]) or 'none'}; only here: {', '.join(extra[:12]) or 'none'}",
            )
        )
    mem_then = ((system.get("cgroup") or {}).get("memory") or {}).get("limit_bytes")
    mem_now = parse_memory_limit(inside.get("memory_max") or "") if inside.get("memory_max") else None
    if mem_then != mem_now and (mem_then or plan.memory_bytes):
        out.append(
            Difference(
                "resources",
                "memory limit",
                str(mem_then),
                str(mem_now),
                "mirrored" if plan.memory_bytes else "not mirrored (--no-match-resources, or the engine cannot)",
            )
        )
    gpu = _section(snap, "gpu", "env/gpu.json")
    if gpu.get("devices"):
        names = ", ".join(sorted({str(d.get("name")) for d in gpu["devices"]}))
        out.append(
            Difference("gpu", "devices", f"{len(gpu['devices'])} x {names}", "none", f"the {engine} replay has no GPU")
        )
    environ = facts.get("environ") or {}
    for key, value in sorted(plan.env.items()):
        if environ.get(key) != value:
            out.append(Difference("env", key, value, str(environ.get(key)), "not applied in the replay"))
    if inside.get("uid") == 0 and engine == "docker":
        out.append(Difference("isolation", "uid", "non-root", "0", "the replay ran as root"))
    return out


def _base_note(plan: ReplayPlan) -> str:
    return f"from the base image {plan.base_image}"
