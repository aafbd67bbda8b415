"""Fleet snapshots read back: ``fleet.json`` and the per-node members under ``nodes/<key>/``.

This is the format side of fleets (docs/format.md), shared by the differs and the CLI; capturing a fleet
lives in :mod:`envsnap.integrations.fleet`, which imports the names from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envsnap.errors import SnapshotError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "FLEET_MEMBER",
    "FLEET_VERSION",
    "NODES_PREFIX",
    "NODE_SECTIONS",
    "Fleet",
    "FleetNode",
    "is_fleet",
    "node_snapshot",
    "read_fleet",
]

FLEET_MEMBER = "fleet.json"
NODES_PREFIX = "nodes/"
FLEET_VERSION = 1
#: The sections every node group records (a subset of a single-host capture's).
NODE_SECTIONS = ("python", "packages", "system", "threads", "envvars", "gpu")


@dataclass(frozen=True)
class FleetNode:
    """One node group of a fleet snapshot, as ``fleet.json`` lists it."""

    key: str
    node_id: str
    hostname: str | None
    runtime: str
    head: bool
    status: str
    error: str | None
    fingerprint: str | None
    members: tuple[str, ...]
    probes: Mapping[str, Any]


@dataclass(frozen=True)
class Fleet:
    """``fleet.json`` read back."""

    engine: str
    engine_version: str | None
    address: str | None
    driver_node: str | None
    nodes: tuple[FleetNode, ...]
    missing: tuple[str, ...]

    def node(self, key: str) -> FleetNode:
        """The node group ``key``, or a :class:`SnapshotError` naming the known ones."""
        for node in self.nodes:
            if node.key == key:
                return node
        raise SnapshotError("fleet.json", f"no node group {key!r}; known: {', '.join(n.key for n in self.nodes)}")


def is_fleet(snap: Snapshot) -> bool:
    """Whether ``snap`` is a fleet snapshot."""
    return FLEET_MEMBER in snap


def read_fleet(snap: Snapshot) -> Fleet:
    """``fleet.json`` of ``snap`` (hash-checked and schema-validated by the reader)."""
    if not is_fleet(snap):
        raise SnapshotError(
            snap.path, "is not a fleet snapshot (no fleet.json)", hint="capture one with --ray or --spark"
        )
    data = snap.read_json(FLEET_MEMBER)
    nodes = tuple(
        FleetNode(
            key=n["key"],
            node_id=n["node_id"],
            hostname=n.get("hostname"),
            runtime=n["runtime"],
            head=bool(n.get("head")),
            status=n["status"],
            error=n.get("error"),
            fingerprint=n.get("fingerprint"),
            members=tuple(n.get("members") or ()),
            probes=n.get("probes") or {},
        )
        for n in data["nodes"]
    )
    return Fleet(
        engine=data["engine"],
        engine_version=data.get("engine_version"),
        address=data.get("address"),
        driver_node=data.get("driver_node"),
        nodes=nodes,
        missing=tuple(data.get("missing") or ()),
    )


def node_snapshot(snap: Snapshot, node: FleetNode) -> Snapshot:
    """An in-memory snapshot of one node group (its ``env/*.json`` at the top), for the differs."""
    from envsnap.snapshot.build import assemble_snapshot
    from envsnap.snapshot.manifest import ProbeStatus

    prefix = f"{NODES_PREFIX}{node.key}/"
    members = {m[len(prefix) :]: snap.read_bytes(m) for m in node.members if m.startswith(prefix)}
    probes = {
        name: ProbeStatus(p.get("status", "ok"), p.get("error"), tuple(p.get("members", ())))
        for name, p in node.probes.items()
        if isinstance(p, Mapping)
    }
    view = assemble_snapshot(
        members, fingerprint=node.fingerprint or "sha256:" + "0" * 64, probes=probes, reproducible=True
    )
    view.path = f"{snap.path}#{node.key}"
    return view
