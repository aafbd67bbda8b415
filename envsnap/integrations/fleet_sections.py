"""Driver side of a fleet capture: one worker's raw facts turned into ``env/*.json`` sections.

The worker ran :mod:`envsnap._target.node_probe` (stdlib only); here envsnap's own probe code does the
rest: the python and packages probes run unchanged on a :class:`~envsnap.capture.target.TargetRuntime`
built from the worker's inspection, the system section is :func:`envsnap._target.system.system_section`
of the worker's host facts (the function the local probe calls on this machine's), and the threads,
envvars and GPU sections are built with the parsers the local probes use. Every section goes through
:func:`envsnap.capture.run_probes`, so every stored string is redacted and a section that cannot be
built is recorded as that probe's error, exactly as in a local capture.

Not captured per node: ``native`` (loaded libraries need the job's process), ``container``, ``git``,
``job``, the lock, the SBOM and data; the node fingerprint is computed over what is captured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from envsnap._target.system import cgroup_section, format_cpu_list, system_section
from envsnap.capture import CaptureSteps
from envsnap.capture.base import CaptureContext, CaptureOptions, Probe
from envsnap.capture.envvars import DEFAULT_ENV_ALLOW, NEVER_KEEP, keeps_value
from envsnap.capture.gpu import no_gpu, parse_compute_caps, parse_nvidia_smi_xml
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.python import PythonProbe
from envsnap.capture.target import TargetRuntime
from envsnap.capture.threads import KNOB_NAMES, KNOB_PREFIXES, configured_knobs, find_mismatches, usable_cpus
from envsnap.core.redact import scrub_text
from envsnap.snapshot.manifest import ProbeStatus

__all__ = [
    "NODE_PROBES",
    "FleetSteps",
    "NodeContext",
    "NodeEnvvarsProbe",
    "NodeGpuProbe",
    "NodeSystemProbe",
    "NodeThreadsProbe",
    "env_request",
    "node_environ",
]

#: Sections captured on every node, in run order (the section name is the probe name).
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


class NodeSystemProbe(Probe):
    """``env/system.json`` of a worker, from the host facts it read."""

    name = "system"
    member = "env/system.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        return system_section(_facts(ctx, "system"), ctx.options.environ)


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
        cgroup_cpus = ((cgroup or cgroup_section(system.get("cgroup") or {})).get("cpu") or {}).get("effective_cpus")
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


#: The probes run on the driver for each node, in :data:`envsnap.snapshot.fleet.NODE_SECTIONS` order.
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


class FleetSteps(CaptureSteps):
    """The fleet's part of the driver's capture: once every driver probe ran, the node groups' members
    and ``fleet.json``, made by ``members`` (which waits for the nodes' answers)."""

    def __init__(self, members: Callable[[CaptureContext], dict[str, bytes]]) -> None:
        self._members = members

    def extra_members(self, ctx: CaptureContext) -> tuple[dict[str, bytes], dict[str, ProbeStatus]]:
        return self._members(ctx), {}
