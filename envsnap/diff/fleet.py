"""Skew inside a fleet snapshot (``envsnap diff FLEET --across-nodes``) and two fleets compared node group
by node group (``envsnap diff FLEET_A FLEET_B``).

Pure, like the other differs: snapshots in, frozen dataclasses out; :mod:`envsnap.diff.fleet_render`
renders them.

**Across nodes.** Node groups are compared within their runtime (the default worker runtime, or a named
Ray ``runtime_env``): a runtime's **reference** is the node fingerprint (docs/format.md, over what a node
capture records) shared by the most nodes; on a tie, the one of the node the driver runs on, then the
head node's, then the smallest key. Every node whose fingerprint differs from the reference is compared
with a reference node by the environment differs (:func:`envsnap.diff.env.diff_section`) and its
differences ranked by the same suspect ranking as ``envsnap diff`` (:func:`rank_suspects`).

**Two fleets.** For every runtime present in either fleet, A's reference node is compared with B's, and
each side's deviating nodes are listed; the drivers (the top level) are compared as any two snapshots.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envsnap.diff.model import DataDiff, EnvDiff, SectionDiff, Suspect, _plain

if TYPE_CHECKING:
    from envsnap.diff.model import PackageDelta, SnapshotDiff
    from envsnap.snapshot.fleet import Fleet, FleetNode
    from envsnap.snapshot.model import Snapshot

FLEET_DIFF_VERSION = 1


@dataclass(frozen=True)
class NodeSkew:
    """One node group that differs from its runtime's reference, and in what."""

    key: str
    hostname: str | None
    fingerprint: str | None
    env: EnvDiff
    suspects: tuple[Suspect, ...]


@dataclass(frozen=True)
class RuntimeSkew:
    """The node groups of one runtime: the reference, who shares it, who differs, who failed."""

    runtime: str
    reference: str | None
    reference_fingerprint: str | None
    majority: tuple[str, ...]
    tie_broken_by: str | None
    deviating: tuple[NodeSkew, ...]
    failed: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FleetSkew:
    """``--across-nodes``: every runtime's skew in one fleet."""

    path: str
    engine: str
    engine_version: str | None
    address: str | None
    runtimes: tuple[RuntimeSkew, ...]
    missing: tuple[str, ...]

    @property
    def skewed(self) -> bool:
        return any(r.deviating for r in self.runtimes)

    @property
    def verdict(self) -> str:
        """One line: which node groups differ from their runtime's majority, and the top suspect."""
        deviating = [n for r in self.runtimes for n in r.deviating]
        total = sum(len(r.majority) + len(r.deviating) for r in self.runtimes)
        parts = []
        if deviating:
            names = ", ".join(n.key for n in deviating)
            parts.append(f"{len(deviating)} of {total} node groups differ from their runtime's majority: {names}")
            top = next((n.suspects[0] for n in deviating if n.suspects), None)
            if top is not None:
                parts.append(f"top suspect: {top.subject} ({top.reason})")
        else:
            parts.append(f"no skew: all {total} node groups match their runtime's majority")
        if self.missing:
            parts.append(f"{len(self.missing)} node groups missing: {', '.join(self.missing)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--across-nodes --json``), docs/fleet.md."""
        out: dict[str, Any] = {"schema_version": FLEET_DIFF_VERSION, "kind": "fleet-skew", "verdict": self.verdict}
        out.update(_plain(self))
        return out


@dataclass(frozen=True)
class RuntimeComparison:
    """One runtime in two fleets: A's reference node against B's, and each side's deviating nodes."""

    runtime: str
    a_reference: str | None
    b_reference: str | None
    env: EnvDiff | None
    suspects: tuple[Suspect, ...]
    a_nodes: int
    b_nodes: int
    a_deviating: tuple[str, ...]
    b_deviating: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class FleetComparison:
    """``envsnap diff FLEET_A FLEET_B``: the drivers' diff and every runtime's node groups compared."""

    driver: SnapshotDiff
    runtimes: tuple[RuntimeComparison, ...]
    a_missing: tuple[str, ...]
    b_missing: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any((r.env is not None and r.env.changed) or r.note for r in self.runtimes)

    @property
    def verdict(self) -> str:
        """One line: the runtimes whose reference environment changed, and the top suspect."""
        changed = [r for r in self.runtimes if r.env is not None and r.env.changed]
        if not changed:
            return "every runtime's reference node environment matches"
        top = next((r.suspects[0] for r in changed if r.suspects), None)
        line = f"runtimes whose reference node changed: {', '.join(r.runtime for r in changed)}"
        return line + (f"; top suspect: {top.subject} ({top.reason})" if top else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``diff FLEET_A FLEET_B --json``); ``driver`` is a diff-json document."""
        return {
            "schema_version": FLEET_DIFF_VERSION,
            "kind": "fleet-diff",
            "verdict": self.verdict,
            "driver": self.driver.to_dict(),
            "runtimes": _plain(self.runtimes),
            "a_missing": list(self.a_missing),
            "b_missing": list(self.b_missing),
        }


# --- computing ---------------------------------------------------------------------------------------


def compare_nodes(reference: Snapshot, other: Snapshot) -> tuple[EnvDiff, tuple[Suspect, ...]]:
    """Two node views compared section by section (only the sections a node capture records), ranked."""
    from envsnap.diff.env import diff_section
    from envsnap.diff.suspects import rank_suspects
    from envsnap.snapshot.fleet import NODE_SECTIONS

    sections: list[SectionDiff] = []
    packages: tuple[PackageDelta, ...] = ()
    for name in NODE_SECTIONS:
        section, deltas = diff_section(reference, other, name)
        if name == "envvars":
            # A redacted value never leaves its worker (no digest): "cannot tell" is every node's answer
            # for every redacted variable, which says nothing about skew. Names added or removed stay.
            kept = tuple(c for c in section.changes if not (c.redacted and c.value_changed is None))
            section = SectionDiff(section.name, kept, section.note)
        sections.append(section)
        packages = packages or deltas
    env = EnvDiff(tuple(sections), packages, reference.fingerprint != other.fingerprint)
    return env, rank_suspects(env, DataDiff(), reference, other)


def _reference(fleet: Fleet, nodes: list[FleetNode]) -> tuple[FleetNode | None, str | None]:
    """The node holding the most common fingerprint, with what broke a tie (None when there was none)."""
    ok = [n for n in nodes if n.status == "ok" and n.fingerprint]
    if not ok:
        return None, None
    counts = Counter(n.fingerprint for n in ok)
    best = max(counts.values())
    leaders = {fp for fp, count in counts.items() if count == best}
    ordered = sorted(ok, key=lambda n: n.key)
    if len(leaders) == 1:
        return next(n for n in ordered if n.fingerprint in leaders), None
    for rule, pick in (
        ("the driver's node", lambda n: fleet.driver_node is not None and n.node_id == fleet.driver_node),
        ("the head node", lambda n: n.head),
        ("the smallest key", lambda n: True),
    ):
        chosen = next((n for n in ordered if n.fingerprint in leaders and pick(n)), None)
        if chosen is not None:
            return chosen, rule
    return None, None  # pragma: no cover - "the smallest key" always picks


def _runtime_order(fleet: Fleet) -> list[str]:
    return sorted({n.runtime for n in fleet.nodes}, key=lambda r: (r != "default", r))


def _skew(snap: Snapshot, fleet: Fleet, runtime: str) -> RuntimeSkew:
    from envsnap.snapshot.fleet import node_snapshot

    nodes = [n for n in fleet.nodes if n.runtime == runtime]
    reference, tie = _reference(fleet, nodes)
    failed = tuple((n.key, n.error or "no answer") for n in sorted(nodes, key=lambda n: n.key) if n.status != "ok")
    if reference is None:
        return RuntimeSkew(runtime, None, None, (), None, (), failed)
    ref_view = node_snapshot(snap, reference)
    majority = tuple(sorted(n.key for n in nodes if n.status == "ok" and n.fingerprint == reference.fingerprint))
    deviating = []
    for node in sorted(nodes, key=lambda n: n.key):
        if node.status != "ok" or node.fingerprint == reference.fingerprint:
            continue
        env, suspects = compare_nodes(ref_view, node_snapshot(snap, node))
        deviating.append(NodeSkew(node.key, node.hostname, node.fingerprint, env, suspects))
    return RuntimeSkew(runtime, reference.key, reference.fingerprint, majority, tie, tuple(deviating), failed)


def across_nodes(fleet_snapshot: Snapshot | str | os.PathLike[str]) -> FleetSkew:
    """The skew between the node groups of one fleet snapshot (see the module docstring)."""
    from envsnap.snapshot.fleet import read_fleet
    from envsnap.snapshot.reader import opened as _opened

    with _opened(fleet_snapshot) as snap:
        fleet = read_fleet(snap)
        return FleetSkew(
            path=str(snap.path),
            engine=fleet.engine,
            engine_version=fleet.engine_version,
            address=fleet.address,
            runtimes=tuple(_skew(snap, fleet, runtime) for runtime in _runtime_order(fleet)),
            missing=fleet.missing,
        )


def _compare_runtime(snap_a: Snapshot, fa: Fleet, snap_b: Snapshot, fb: Fleet, runtime: str) -> RuntimeComparison:
    from envsnap.snapshot.fleet import node_snapshot

    sa, sb = _skew(snap_a, fa, runtime), _skew(snap_b, fb, runtime)
    counts = (
        sum(1 for n in fa.nodes if n.runtime == runtime),
        sum(1 for n in fb.nodes if n.runtime == runtime),
    )
    deviating = (tuple(n.key for n in sa.deviating), tuple(n.key for n in sb.deviating))
    if sa.reference is None or sb.reference is None:
        side = " and ".join(s for s, skew in (("a", sa), ("b", sb)) if skew.reference is None)
        note = f"not compared: no node of runtime {runtime!r} was captured in {side}"
        return RuntimeComparison(runtime, sa.reference, sb.reference, None, (), *counts, *deviating, note=note)
    env, suspects = compare_nodes(
        node_snapshot(snap_a, fa.node(sa.reference)), node_snapshot(snap_b, fb.node(sb.reference))
    )
    return RuntimeComparison(runtime, sa.reference, sb.reference, env, suspects, *counts, *deviating)


def compare_fleets(
    a: Snapshot | str | os.PathLike[str], b: Snapshot | str | os.PathLike[str], **diff_options: Any
) -> FleetComparison:
    """Two fleet snapshots: the drivers as ``envsnap diff`` compares them, then runtime by runtime."""
    from envsnap.diff.compare import diff
    from envsnap.snapshot.fleet import read_fleet
    from envsnap.snapshot.reader import opened as _opened

    with _opened(a) as snap_a, _opened(b) as snap_b:
        fa, fb = read_fleet(snap_a), read_fleet(snap_b)
        runtimes = sorted(set(_runtime_order(fa)) | set(_runtime_order(fb)), key=lambda r: (r != "default", r))
        return FleetComparison(
            driver=diff(snap_a, snap_b, **diff_options),
            runtimes=tuple(_compare_runtime(snap_a, fa, snap_b, fb, r) for r in runtimes),
            a_missing=fa.missing,
            b_missing=fb.missing,
        )


__all__ = [
    "FleetComparison",
    "FleetSkew",
    "NodeSkew",
    "RuntimeComparison",
    "RuntimeSkew",
    "across_nodes",
    "compare_fleets",
    "compare_nodes",
]
