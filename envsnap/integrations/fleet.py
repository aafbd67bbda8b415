"""Fleet snapshots, engine-neutral: run the per-node payload's results into ``nodes/<key>/env/*.json``.

A **fleet snapshot** is an ordinary snapshot of the driver (every top-level member as ``envsnap capture``
writes it) plus:

* ``fleet.json``: the engine, its version, the cluster address (credentials stripped), the worker
  runtimes asked for, and one entry per captured node group (``key``, engine node id, hostname, address,
  head or not, runtime, ``status`` ok/error, the error, the members written, the node fingerprint);
  ``missing`` lists the keys of the node groups that could not be captured;
* ``nodes/<key>/env/{python,packages,system,threads,envvars,gpu}.json`` for every node group captured.

A *node group* is one node in one worker runtime. ``<key>`` is the engine's short node id (Ray: the
first 12 hex digits of the node id; Spark: ``executor-<id>``), followed by ``--<runtime>`` for a named
runtime (a Ray ``runtime_env`` with its own env_vars, pip packages or py_executable); the default worker
runtime has no suffix. The engines (:mod:`envsnap.integrations.ray`, :mod:`envsnap.integrations.spark`)
schedule :func:`payload_function` on their workers; this module turns what came back into members.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from envsnap._target import detached, sources
from envsnap.errors import EnvsnapError
from envsnap.snapshot.fleet import FLEET_MEMBER, FLEET_VERSION, NODES_PREFIX

if TYPE_CHECKING:
    from typing import Unpack

    from envsnap.capture.base import CaptureArguments
    from envsnap.snapshot.manifest import ProbeStatus
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "DEFAULT_RUNTIME",
    "PAYLOAD_MODULES",
    "ClusterError",
    "FleetCapture",
    "NodeResult",
    "PayloadFunction",
    "check_output",
    "check_runtime_name",
    "fleet_members",
    "fleet_snapshot",
    "node_key",
    "node_members",
    "partition_function",
    "payload_args",
    "payload_function",
]

DEFAULT_RUNTIME = "default"
_RUNTIME_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_KEY_SAFE = re.compile(r"[^a-z0-9_.-]+")

PayloadFunction = Callable[[Mapping[str, str], dict[str, Any]], dict[str, Any]]
#: The shipped modules a worker loads (:mod:`envsnap._target.payload`), each after those it imports.
PAYLOAD_MODULES = ("system", "host", "interpreter", "node_probe")


class ClusterError(EnvsnapError, ValueError):
    """The cluster cannot be reached or used (bad address, engine not installed, nothing alive)."""


def check_runtime_name(name: str) -> str:
    """A runtime name usable in member paths: lowercase letters, digits, ``_ . -``; not ``default``."""
    if not _RUNTIME_NAME.match(name) or "--" in name or name == DEFAULT_RUNTIME:
        raise ClusterError(
            f"runtime name {name!r} is not usable",
            hint="use 1-40 lowercase letters, digits, '_', '.' or '-' (no '--'), other than 'default'",
        )
    return name


def node_key(short_id: str, runtime: str = DEFAULT_RUNTIME) -> str:
    """The ``nodes/<key>/`` component of one node in one runtime."""
    base = _KEY_SAFE.sub("-", short_id.lower()).strip("-.") or "node"
    return base if runtime == DEFAULT_RUNTIME else f"{base}--{runtime}"


@dataclass(frozen=True)
class NodeResult:
    """What came back from one node group: the payload's facts, or why there are none."""

    key: str
    node_id: str
    runtime: str = DEFAULT_RUNTIME
    hostname: str | None = None
    address: str | None = None
    head: bool = False
    facts: Mapping[str, Any] | None = None
    error: str | None = None

    def failed(self) -> str | None:
        """The error of this node group: the engine's, or the payload's own (a worker Python that failed)."""
        if self.error is not None:
            return self.error
        if self.facts is None:
            return "no answer"
        payload_error = self.facts.get("payload_error")
        if isinstance(payload_error, Mapping):
            what = f"{payload_error.get('type')}: {payload_error.get('message')}"
            where = f"Python {payload_error.get('python')} at {payload_error.get('executable')}"
            return f"the worker's Python cannot run the payload: {what} ({where})"
        return None


# --- the payload -------------------------------------------------------------------------------------


@cache
def _payload_namespace() -> dict[str, Any]:
    return detached("payload")


def payload_function() -> PayloadFunction:
    """:func:`envsnap._target.payload.run_payload`, compiled under a module name no worker can import:
    cloudpickle then ships it by value, so workers need no envsnap."""
    function: PayloadFunction = _payload_namespace()["run_payload"]
    return function


def partition_function(payload_sources: Mapping[str, str], options: dict[str, Any]) -> Callable[[Any], Any]:
    """A ``mapPartitions`` function running the payload once per partition, shipped by value likewise."""
    make: Callable[..., Callable[[Any], Any]] = _payload_namespace()["partition_runner"]
    return make(payload_sources, options)


def payload_args(env_allow: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, Any]]:
    """The arguments of :func:`payload_function`: the sources of :data:`PAYLOAD_MODULES` and the options
    (the env allowlist)."""
    from envsnap.integrations.fleet_sections import env_request

    return sources(PAYLOAD_MODULES), {"env": env_request(env_allow)}


# --- node members ------------------------------------------------------------------------------------


def node_members(
    facts: Mapping[str, Any], env_allow: Iterable[str] = ()
) -> tuple[dict[str, bytes], dict[str, ProbeStatus], str]:
    """One node's ``env/*.json`` members (relative to ``nodes/<key>/``), probe statuses and fingerprint."""
    from envsnap.capture import FINGERPRINT_SECTIONS, run_probes
    from envsnap.capture.base import CaptureOptions
    from envsnap.integrations.fleet_sections import NODE_PROBES, NodeContext, env_request, node_environ
    from envsnap.snapshot.fingerprint import fingerprint

    options = CaptureOptions(env_allow=tuple(env_allow), git=False, environ=node_environ(facts), argv=(), cwd="/")
    ctx = NodeContext(options, facts, env_request(env_allow))
    members, statuses = run_probes(ctx, NODE_PROBES)
    return members, statuses, fingerprint({name: ctx.results.get(name) for name in FINGERPRINT_SECTIONS})


def _runtime_entry(name: str, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``fleet.json`` says of a runtime: its shape, never env var values (they may be secrets)."""
    from envsnap.core.redact import scrub_text

    if spec is None:
        return {"name": name, "fields": [], "env_vars": [], "pip": [], "py_executable": None}
    env_vars = spec.get("env_vars") or {}
    pip = spec.get("pip") or []
    pip_list = pip.get("packages", []) if isinstance(pip, Mapping) else pip
    return {
        "name": name,
        "fields": sorted(str(k) for k in spec),
        "env_vars": sorted(str(k) for k in env_vars) if isinstance(env_vars, Mapping) else [],
        "pip": [scrub_text(str(p)) for p in pip_list] if isinstance(pip_list, list) else [scrub_text(str(pip_list))],
        "py_executable": scrub_text(str(spec["py_executable"])) if spec.get("py_executable") else None,
    }


@dataclass
class FleetCapture:
    """Everything a fleet snapshot is made of, before it is assembled."""

    engine: str
    engine_version: str | None
    address: str | None
    runtimes: Mapping[str, Mapping[str, Any] | None]
    results: list[NodeResult]
    driver_node: str | None = None
    env_allow: tuple[str, ...] = ()
    wall_s: dict[str, float] = field(default_factory=dict)


def _status(status: ProbeStatus) -> dict[str, Any]:
    return {"status": status.status, "error": status.error}


def fleet_members(fleet: FleetCapture, *, reproducible: bool = False) -> dict[str, bytes]:
    """``fleet.json`` and every captured node group's members, encoded: what a fleet snapshot adds to the
    driver's own members."""
    from envsnap.core.redact import scrub_data, scrub_url
    from envsnap.snapshot import canonical

    members: dict[str, bytes] = {}
    nodes: list[dict[str, Any]] = []
    for result in sorted(fleet.results, key=lambda r: r.key):
        entry: dict[str, Any] = {
            "key": result.key,
            "node_id": result.node_id,
            "hostname": result.hostname,
            "address": result.address,
            "head": result.head,
            "runtime": result.runtime,
            "status": "error",
            "error": None,
            "members": [],
            "probes": {},
            "fingerprint": None,
            "python": None,
            "wall_s": None,
        }
        problem = result.failed()
        if problem is not None or result.facts is None:
            entry["error"] = (problem or "no answer")[:1000]
            nodes.append(entry)
            continue
        try:
            node, statuses, node_fingerprint = node_members(result.facts, fleet.env_allow)
        except (KeyError, TypeError, ValueError) as exc:  # a payload answer of the wrong shape
            entry["error"] = f"the worker's answer is not usable: {type(exc).__name__}: {exc}"[:1000]
            nodes.append(entry)
            continue
        prefix = f"{NODES_PREFIX}{result.key}/"
        for member, data in node.items():
            members[prefix + member] = data
        python = (result.facts.get("inspect") or {}).get("python") or {}
        entry.update(
            status="ok",
            members=sorted(prefix + m for m in node),
            probes={name: _status(status) for name, status in sorted(statuses.items())},
            fingerprint=node_fingerprint,
            python=python.get("version"),
            wall_s=None if reproducible else result.facts.get("wall_s"),
        )
        nodes.append(entry)
    document = {
        "fleet_version": FLEET_VERSION,
        "engine": fleet.engine,
        "engine_version": fleet.engine_version,
        "address": scrub_url(fleet.address) if fleet.address else None,
        "driver_node": fleet.driver_node,
        "runtimes": [_runtime_entry(name, spec) for name, spec in sorted(fleet.runtimes.items())],
        "nodes": nodes,
        "expected": len(nodes),
        "captured": sum(1 for n in nodes if n["status"] == "ok"),
        "missing": [n["key"] for n in nodes if n["status"] != "ok"],
        "timings": None if reproducible else dict(sorted(fleet.wall_s.items())),
    }
    members[FLEET_MEMBER] = canonical.dumps(scrub_data(document))
    return members


def fleet_snapshot(
    gather: Callable[[], FleetCapture],
    output: str | None = None,
    *,
    force: bool = False,
    **arguments: Unpack[CaptureArguments],
) -> Snapshot:
    """The fleet snapshot: the driver's own capture (in-process; ``arguments`` are those of
    :func:`envsnap.capture.capture`) with ``fleet.json`` and the node groups' members added; written to
    ``output`` atomically when given.

    ``gather`` returns what the nodes answered; it is called once the driver's probes ran, so the work
    already submitted to the nodes overlaps the driver's capture.
    """
    from envsnap.capture import capture_snapshot
    from envsnap.capture.base import CaptureOptions
    from envsnap.integrations.fleet_sections import FleetSteps

    steps = FleetSteps(lambda ctx: fleet_members(gather(), reproducible=ctx.options.reproducible))
    return capture_snapshot(CaptureOptions.build(**arguments), output, force=force, steps=steps)


def check_output(output: str | None, force: bool) -> None:
    """Refuse a bad destination before any cluster work."""
    if output is not None:
        from envsnap.snapshot import writer

        writer.check_output(output, force)
