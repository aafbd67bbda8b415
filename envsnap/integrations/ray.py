"""``envsnap capture --ray ADDRESS``: capture every alive node of a Ray cluster into one fleet snapshot.

The only module that imports ``ray``. One task per alive node and per worker runtime is pinned to its
node (``NodeAffinitySchedulingStrategy(soft=False)``), asks for no CPU (so a busy node still answers) and
is never retried; all are submitted at once, so the node captures run in parallel while the driver
captures itself. Each task runs the stdlib-only payload (:mod:`envsnap._target.node_probe`), which
cloudpickle ships by value: workers need ray, not envsnap.

A node that dies, a worker that crashes, a runtime_env that cannot be set up and a node that does not
answer within ``timeout`` each become that node group's error record in ``fleet.json``; the fleet is
written with them listed under ``missing``. An unreachable address is a :class:`ClusterError` before
anything is written.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from envsnap.integrations.fleet import (
    DEFAULT_RUNTIME,
    ClusterError,
    FleetCapture,
    NodeResult,
    check_output,
    check_runtime_name,
    fleet_snapshot,
    node_key,
    payload_args,
    payload_function,
)

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["capture_cluster"]

#: How long to wait for a TCP connection to the GCS before calling the address unreachable: ray.init
#: itself retries for minutes.
CONNECT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_S = 300.0
SHORT_ID = 12


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("ray is not installed", hint="pip install 'envsnap[ray]'") from exc
    return ray


def _check_reachable(address: str) -> None:
    """A TCP connection to ``HOST:PORT`` (the GCS), so that a wrong address fails in seconds."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ClusterError(f"Ray address {address!r} is not HOST:PORT", hint="e.g. --ray 10.0.0.5:6379, or --ray auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or type(exc).__name__})",
            hint="check the address (`ray status` on the head node prints it) and that this machine can reach it",
        ) from exc


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to the cluster unless this process already is; True when we connected (and must leave)."""
    if ray.is_initialized():
        return False
    if address is None:
        raise ClusterError(
            "no Ray address given and this process is not connected to a cluster", hint="pass --ray HOST:PORT"
        )
    if address != "auto" and not address.startswith("ray://"):
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except Exception as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {_first_line(exc)}") from exc
    return True


def _first_line(exc: BaseException) -> str:
    from envsnap.core.redact import scrub_text

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return scrub_text(f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "))[:300]


def _runtimes(runtime_envs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any] | None]:
    runtimes: dict[str, Mapping[str, Any] | None] = {DEFAULT_RUNTIME: None}
    for name, spec in (runtime_envs or {}).items():
        if not isinstance(spec, Mapping):
            raise ClusterError(f"runtime {name!r}: a runtime_env must be a mapping (JSON object)")
        runtimes[check_runtime_name(name)] = dict(spec)
    return runtimes


def _keys(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Short node ids (12 hex digits), the whole id where two nodes share a prefix."""
    short = {n["NodeID"]: str(n["NodeID"])[:SHORT_ID] for n in nodes}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    return {node_id: (node_id if s in clash else s) for node_id, s in short.items()}


def capture_cluster(
    address: str | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    runtime_envs: Mapping[str, Mapping[str, Any]] | None = None,
    label: str | None = None,
    env_allow: Iterable[str] = (),
    git: bool = True,
    reproducible: bool = False,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Snapshot:
    """Capture every alive node of the Ray cluster at ``address`` (``HOST:PORT`` of the GCS, or ``auto``)
    into a fleet snapshot; write it to ``output`` when given.

    ``runtime_envs`` maps runtime names to Ray ``runtime_env`` dicts (``env_vars``, ``pip``,
    ``py_executable``, ...): each is captured on every node as its own node group, besides the default
    worker runtime. A process already connected to Ray (``ray.init`` done) is used as it is and stays
    connected; otherwise envsnap connects and disconnects. Raises :class:`ClusterError` when the cluster
    cannot be reached; a node group that fails is recorded in the fleet, which is still written.
    """
    ray = _import_ray()
    out = os.fspath(output) if output is not None else None
    check_output(out, force)
    runtimes = _runtimes(runtime_envs)
    env_allow = tuple(env_allow)
    started = time.monotonic()
    connected = _connect(ray, address)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: str(n["NodeID"]))
        if not nodes:
            raise ClusterError(f"the Ray cluster at {address} has no alive node")
        keys = _keys(nodes)
        remote = ray.remote(payload_function())
        args = payload_args(env_allow)
        pending: list[tuple[Any, NodeResult]] = []
        for node in nodes:
            head = "node:__internal_head__" in (node.get("Resources") or {})
            for runtime, spec in runtimes.items():
                options: dict[str, Any] = {
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                    "num_cpus": 0,
                    "max_retries": 0,
                    "name": "envsnap-node-capture",
                }
                if spec is not None:
                    options["runtime_env"] = dict(spec)
                stub = NodeResult(
                    key=node_key(keys[node["NodeID"]], runtime),
                    node_id=str(node["NodeID"]),
                    runtime=runtime,
                    hostname=node.get("NodeManagerHostname"),
                    address=node.get("NodeManagerAddress"),
                    head=head,
                )
                try:
                    pending.append((remote.options(**options).remote(*args), stub))
                except Exception as exc:  # noqa: BLE001 - a runtime_env Ray refuses up front is this group's error
                    pending.append((None, _with_error(stub, _first_line(exc))))
        submitted = time.monotonic()

        def gather() -> FleetCapture:
            driver_done = time.monotonic()
            results = _gather(ray, pending, timeout)
            return FleetCapture(
                engine="ray",
                engine_version=str(getattr(ray, "__version__", "")) or None,
                address=address,
                runtimes=runtimes,
                results=results,
                driver_node=_driver_node(ray),
                env_allow=env_allow,
                wall_s={
                    "submit": round(submitted - started, 3),
                    "driver_capture": round(driver_done - submitted, 3),
                    "total": round(time.monotonic() - started, 3),
                },
            )

        # The node tasks run while the driver captures itself; gather() waits for them afterwards.
        return fleet_snapshot(
            gather, out, force=force, label=label, env_allow=env_allow, git=git, reproducible=reproducible
        )
    finally:
        if connected:
            ray.shutdown()


def _with_error(stub: NodeResult, error: str) -> NodeResult:
    import dataclasses

    return dataclasses.replace(stub, error=error)


def _gather(ray: Any, pending: list[tuple[Any, NodeResult]], timeout: float) -> list[NodeResult]:
    """Each node group's answer or error; the ones still running after ``timeout`` are cancelled."""
    refs = [ref for ref, _ in pending if ref is not None]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout) if refs else ([], [])
    ready_set = set(ready)
    results: list[NodeResult] = []
    for ref, stub in pending:
        if ref is None:
            results.append(stub)
            continue
        if ref not in ready_set:
            # A task on a dead node cannot be cancelled; it is recorded as missing anyway.
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            results.append(_with_error(stub, f"did not answer within {timeout:g} s"))
            continue
        try:
            facts = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - NodeDiedError, WorkerCrashedError, RuntimeEnvSetupError...
            results.append(_with_error(stub, _first_line(exc)))
            continue
        if not isinstance(facts, dict):
            results.append(_with_error(stub, f"the worker answered a {type(facts).__name__}, not the payload's facts"))
            continue
        results.append(_replace_facts(stub, facts))
    return results


def _replace_facts(stub: NodeResult, facts: dict[str, Any]) -> NodeResult:
    import dataclasses

    return dataclasses.replace(stub, facts=facts)


def _driver_node(ray: Any) -> str | None:
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - a Ray client driver has no node of its own
        return None
