"""Driver side of a fleet capture: one worker's raw facts turned into ``env/*.json`` sections.

The worker ran :mod:`envsnap.integrations._node_probe` (stdlib only); here envsnap's own probe code does
the rest: the python and packages probes run unchanged on a :class:`~envsnap.capture.target.TargetRuntime`
built from the worker's inspection, and the system, threads, envvars and GPU sections are built with the
same parsers the local probes use, fed with the worker's file texts instead of this machine's. Every
section goes through :func:`envsnap.capture.run_probes`, so every stored string is redacted and a section
that cannot be built is recorded as that probe's error, exactly as in a local capture.

Not captured per node: ``native`` (loaded libraries need the job's process), ``container``, ``git``,
``job``, the lock, the SBOM and data; the node fingerprint is computed over what is captured.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from envsnap.capture.base import CaptureContext, CaptureOptions, Probe
from envsnap.capture.envvars import DEFAULT_ENV_ALLOW, NEVER_KEEP, keeps_value
from envsnap.capture.gpu import no_gpu, parse_compute_caps, parse_nvidia_smi_xml
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.python import PythonProbe
from envsnap.capture.system import (
    OS_RELEASE_KEYS,
    cgroup_version,
    format_cpu_list,
    locale_facts,
    parse_cpu_list,
    parse_cpu_max,
    parse_cpuinfo,
    parse_meminfo_total,
    parse_memory_limit,
    parse_mountinfo_cgroups,
    parse_os_release,
    parse_proc_cgroup,
    parse_v1_cpu_quota,
    zone_from_localtime_target,
)
from envsnap.capture.target import TargetRuntime
from envsnap.capture.threads import KNOB_NAMES, KNOB_PREFIXES, configured_knobs, find_mismatches, usable_cpus
from envsnap.core.redact import scrub_text
from envsnap.integrations._node_probe import cgroup_chain

#: Sections captured on every node, in run order (the section name is the probe name).
NODE_SECTIONS = ("python", "packages", "system", "threads", "envvars", "gpu")
_GLOB = frozenset("*?[")


def env_request(env_allow: Iterable[str] = ()) -> dict[str, Any]:
    """What the payload may send back of the worker's environment: allowlisted names and thread knobs.

    Everything else stays on the worker, names aside. The driver applies the full policy (secret-looking
    names under a glob are redacted) before anything is stored.
    """
    patterns = tuple(dict.fromkeys((*DEFAULT_ENV_ALLOW, *env_allow)))
    exact = sorted({p for p in patterns if not _GLOB.intersection(p)} | set(KNOB_NAMES))
    globs = sorted({p for p in patterns if _GLOB.intersection(p)} | {f"{p}*" for p in KNOB_PREFIXES} | {"FLEXIBLAS_*"})
    return {"exact": exact, "globs": globs, "never": sorted(NEVER_KEEP), "allow": list(patterns)}


class NodeContext(CaptureContext):
    """A capture context over one worker's raw facts instead of this process."""

    def __init__(self, options: CaptureOptions, facts: Mapping[str, Any], request: Mapping[str, Any]) -> None:
        inspected = facts["inspect"]
        target = TargetRuntime(
            in_process=False,
            python=dict(inspected["python"]),
            markers=dict(inspected["markers"]),
            site_dirs=[str(d) for d in inspected["site_dirs"]],
            distributions=list(inspected["distributions"]),
            numpy=None,  # numpy's build config lies on the worker's disk, not ours
        )
        super().__init__(options, lambda: target)
        self.facts = facts
        self.request = request


def _facts(ctx: CaptureContext, key: str) -> Any:
    if not isinstance(ctx, NodeContext):
        raise TypeError("node probes run on a NodeContext")
    return ctx.facts[key]


# --- system ------------------------------------------------------------------------------------------


def _strictest_cpu(chain: list[str], files: Mapping[str, str], v2: bool) -> dict[str, Any] | None:
    ratios = []
    for directory in chain:
        if v2:
            quota, period = parse_cpu_max(files.get(os.path.join(directory, "cpu.max"), ""))
        else:
            quota, period = parse_v1_cpu_quota(
                files.get(os.path.join(directory, "cpu.cfs_quota_us"), ""),
                files.get(os.path.join(directory, "cpu.cfs_period_us"), ""),
            )
        if quota is not None and period:
            ratios.append((quota / period, quota, period))
    if not ratios:
        return None
    ratio, quota, period = min(ratios)
    return {"quota_us": quota, "period_us": period, "effective_cpus": round(ratio, 3), "source": "v2" if v2 else "v1"}


def _strictest_memory(chain: list[str], files: Mapping[str, str], name: str, source: str) -> dict[str, Any] | None:
    limits = [parse_memory_limit(files.get(os.path.join(d, name), "")) for d in chain]
    present = [limit for limit in limits if limit is not None]
    return {"limit_bytes": min(present), "source": source} if present else None


def node_cgroup(system: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cgroup`` part of ``env/system.json`` from the worker's cgroup file texts."""
    mounts = parse_mountinfo_cgroups(system.get("mountinfo") or "")
    paths = parse_proc_cgroup(system.get("proc_cgroup") or "")
    files: Mapping[str, str] = system.get("cgroup_files") or {}
    cpu = memory = None
    cpuset: str | None = None
    if "" in paths:
        chain = cgroup_chain("/sys/fs/cgroup", paths[""])
        cpu = _strictest_cpu(chain, files, v2=True)
        memory = _strictest_memory(chain, files, "memory.max", "v2")
        cpuset = files.get(os.path.join(chain[0], "cpuset.cpus.effective"), "").strip() or None
    if cpu is None and "cpu" in paths:
        cpu = _strictest_cpu(cgroup_chain("/sys/fs/cgroup/cpu", paths["cpu"]), files, v2=False)
    if memory is None and "memory" in paths:
        memory = _strictest_memory(
            cgroup_chain("/sys/fs/cgroup/memory", paths["memory"]), files, "memory.limit_in_bytes", "v1"
        )
    if cpuset is None and "cpuset" in paths:
        directory = cgroup_chain("/sys/fs/cgroup/cpuset", paths["cpuset"])[0]
        text = files.get(os.path.join(directory, "cpuset.effective_cpus")) or files.get(
            os.path.join(directory, "cpuset.cpus"), ""
        )
        cpuset = text.strip() or None
    cpus = parse_cpu_list(cpuset) if cpuset else []
    return {
        "version": cgroup_version(mounts),
        "cpu": cpu or {"quota_us": None, "period_us": None, "effective_cpus": None, "source": None},
        "memory": memory or {"limit_bytes": None, "source": None},
        "cpuset_cpus": format_cpu_list(cpus) if cpus else None,
        "cpuset_count": len(cpus) or None,
    }


def _glibc(libc: Any) -> str | None:
    text = str(libc or "")
    return text.split()[1] if text.startswith("glibc ") and len(text.split()) > 1 else None


class NodeSystemProbe(Probe):
    """``env/system.json`` of a worker, parsed from its file texts."""

    name = "system"
    member = "env/system.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        system = _facts(ctx, "system")
        release = parse_os_release(system.get("os_release") or "")
        os_facts: dict[str, Any] = {key: release.get(key) for key in OS_RELEASE_KEYS}
        os_facts["system"] = str(system.get("system") or "")
        cpu = parse_cpuinfo(system.get("cpuinfo") or "")
        if cpu["logical_cores"] is None:
            cpu["logical_cores"] = system.get("cpu_count")
        environ = ctx.options.environ
        link = system.get("localtime_link")
        tz_env = environ.get("TZ") or None
        localtime = zone_from_localtime_target(str(link)) if link else None
        etc_timezone = (system.get("etc_timezone") or "").strip() or None
        uname = system["uname"]
        return {
            "os": os_facts,
            "kernel": {
                "release": str(uname["release"]),
                "version": str(uname["version"]),
                "machine": str(uname["machine"]),
            },
            "glibc": _glibc(system.get("libc")),
            "cpu": cpu,
            "memory": {"total_bytes": parse_meminfo_total(system.get("meminfo") or "")},
            "cgroup": node_cgroup(system),
            "locale": locale_facts(environ),
            "timezone": {
                "tz": tz_env,
                "etc_timezone": etc_timezone,
                "localtime": localtime,
                "name": (tz_env.lstrip(":") if tz_env else None) or localtime or etc_timezone,
            },
        }


class NodeThreadsProbe(Probe):
    """``env/threads.json`` of a worker: its thread knobs against its CPU budget (no pools: not in-process)."""

    name = "threads"
    member = "env/threads.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        system = _facts(ctx, "system")
        configured = configured_knobs(ctx.options.environ)
        affinity = system.get("affinity")
        system_result = ctx.results.get("system")
        cgroup = system_result.get("cgroup") if isinstance(system_result, Mapping) else None
        cgroup_cpus = ((cgroup or node_cgroup(system)).get("cpu") or {}).get("effective_cpus")
        cpu_count = system.get("cpu_count")
        affinity_count = len(affinity) if isinstance(affinity, list) else None
        effective: dict[str, Any] = {
            "cpu_count": cpu_count,
            "affinity": format_cpu_list(affinity) if isinstance(affinity, list) else None,
            "affinity_count": affinity_count,
            "cgroup_cpus": cgroup_cpus,
            "usable_cpus": usable_cpus(affinity_count, cgroup_cpus, cpu_count),
            "pools": None,
        }
        return {
            "configured": configured,
            "effective": effective,
            "mismatches": find_mismatches(configured, effective, None),
        }


class NodeEnvvarsProbe(Probe):
    """``env/envvars.json`` of a worker: names, allowlisted values; redacted values never left the worker,
    so they carry no digest and ``policy.comparable`` is false."""

    name = "envvars"
    member = "env/envvars.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        environment = _facts(ctx, "environment")
        request = ctx.request if isinstance(ctx, NodeContext) else {}
        patterns = list(request.get("allow") or DEFAULT_ENV_ALLOW)
        exact = frozenset(p for p in patterns if not _GLOB.intersection(p))
        globs = tuple(p for p in patterns if _GLOB.intersection(p))
        values: Mapping[str, str] = environment.get("values") or {}
        variables: dict[str, dict[str, Any]] = {}
        for name in environment.get("names") or ():
            if name in values and keeps_value(name, exact, globs):
                variables[str(name)] = {"value": scrub_text(str(values[name]))}
            else:
                variables[str(name)] = {"redacted": True}
        return {
            "policy": {"allow": sorted(set(patterns)), "key_id": None, "key_source": "none", "comparable": False},
            "variables": dict(sorted(variables.items())),
        }


class NodeGpuProbe(Probe):
    """``env/gpu.json`` of a worker from its ``nvidia-smi`` output ("no GPU" is a value)."""

    name = "gpu"
    member = "env/gpu.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        raw = _facts(ctx, "gpu")
        data = self._facts(raw)
        data["cuda_visible_devices"] = ctx.options.environ.get("CUDA_VISIBLE_DEVICES")
        return data

    @staticmethod
    def _facts(raw: Mapping[str, Any]) -> dict[str, Any]:
        if raw.get("reason"):
            return no_gpu(str(raw["reason"]))
        xml = raw.get("xml") or {}
        if "error" in xml:
            return no_gpu(f"nvidia-smi cannot be run ({xml['error']})")
        if xml.get("returncode") != 0:
            lines = (str(xml.get("stdout") or "") + str(xml.get("stderr") or "")).strip().splitlines() or ["no output"]
            return no_gpu(f"nvidia-smi exited with {xml.get('returncode')}: {lines[0][:200]}")
        facts = parse_nvidia_smi_xml(str(xml.get("stdout") or ""))
        caps = raw.get("caps") or {}
        if caps.get("returncode") == 0:
            known = parse_compute_caps(str(caps.get("stdout") or ""))
            for device in facts["devices"]:
                device["compute_capability"] = device["compute_capability"] or known.get(device["uuid"] or "")
        if not facts["devices"]:
            return no_gpu("nvidia-smi reports no devices")
        return {"available": True, "source": "nvidia-smi", "reason": None, **facts}


#: The probes run on the driver for each node, in :data:`NODE_SECTIONS` order.
NODE_PROBES: tuple[type[Probe], ...] = (
    PythonProbe,
    PackagesProbe,
    NodeSystemProbe,
    NodeThreadsProbe,
    NodeEnvvarsProbe,
    NodeGpuProbe,
)


def node_environ(facts: Mapping[str, Any]) -> dict[str, str]:
    """The part of the worker's environment that came back (allowlisted names with their values)."""
    values = (facts.get("environment") or {}).get("values") or {}
    return {str(k): str(v) for k, v in values.items()}
