"""Plain-text and JSON renderings of fleet skew and fleet comparisons (:mod:`envsnap.diff.fleet`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.diff.fleet import FleetComparison, FleetSkew
    from envsnap.diff.model import EnvDiff, Suspect

__all__ = ["comparison_text", "skew_text", "to_json"]

#: Suspects shown per deviating node group (all of them are in --json).
TOP_SUSPECTS = 5


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _changes(env: EnvDiff, indent: str) -> list[str]:
    lines = []
    for delta in env.packages:
        lines.append(f"{indent}package {delta.name}: {delta.before or '-'} -> {delta.after or '-'} ({delta.change})")
    for section in env.sections:
        if section.note:
            lines.append(f"{indent}{section.name}: {section.note}")
        for change in section.changes:
            if section.name in ("packages", "lock"):
                continue
            if change.redacted:
                what = "redacted value changed" if change.value_changed else change.kind
                lines.append(f"{indent}{section.name} {change.key}: {what}")
            else:
                before = "-" if change.before is None else _value(change.before)
                after = "-" if change.after is None else _value(change.after)
                lines.append(f"{indent}{section.name} {change.key}: {before} -> {after}")
    return lines


def _suspects(suspects: tuple[Suspect, ...], indent: str) -> list[str]:
    lines = [f"{indent}{s.rank}. {s.subject} — {s.reason}" for s in suspects[:TOP_SUSPECTS]]
    if len(suspects) > TOP_SUSPECTS:
        lines.append(f"{indent}… and {len(suspects) - TOP_SUSPECTS} more (see --json)")
    return lines


def skew_text(skew: FleetSkew) -> str:
    """``envsnap diff FLEET --across-nodes`` for a terminal."""
    engine = f"{skew.engine} {skew.engine_version}" if skew.engine_version else skew.engine
    where = f" at {skew.address}" if skew.address else ""
    lines = [f"fleet {skew.path} ({engine}{where})", skew.verdict, ""]
    for runtime in skew.runtimes:
        total = len(runtime.majority) + len(runtime.deviating) + len(runtime.failed)
        lines.append(f"runtime {runtime.runtime}: {total} node groups")
        if runtime.reference is None:
            lines.append("  no node group of this runtime was captured")
        else:
            tie = f"; a tie, broken by {runtime.tie_broken_by}" if runtime.tie_broken_by else ""
            lines.append(f"  majority ({len(runtime.majority)}{tie}): {', '.join(runtime.majority)}")
        for node in runtime.deviating:
            host = f" on {node.hostname}" if node.hostname else ""
            lines.append(f"  {node.key}{host} differs from {runtime.reference}:")
            lines += _changes(node.env, "      ")
            if node.suspects:
                lines.append("    suspects:")
                lines += _suspects(node.suspects, "      ")
        for key, error in runtime.failed:
            lines.append(f"  {key}: not captured ({error})")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def comparison_text(comparison: FleetComparison, driver_text: str) -> str:
    """``envsnap diff FLEET_A FLEET_B``: the drivers' diff (already rendered), then runtime by runtime."""
    lines = [driver_text.rstrip("\n"), "", "Fleet node groups", comparison.verdict]
    for runtime in comparison.runtimes:
        lines.append("")
        lines.append(
            f"runtime {runtime.runtime}: a {runtime.a_nodes} node groups (reference {runtime.a_reference or '-'}), "
            f"b {runtime.b_nodes} (reference {runtime.b_reference or '-'})"
        )
        if runtime.note:
            lines.append(f"  {runtime.note}")
        if runtime.env is not None:
            changes = _changes(runtime.env, "    ")
            lines += ["  reference nodes differ:", *changes] if changes else ["  reference nodes match"]
            if runtime.suspects:
                lines.append("  suspects:")
                lines += _suspects(runtime.suspects, "    ")
        for side, keys in (("a", runtime.a_deviating), ("b", runtime.b_deviating)):
            if keys:
                lines.append(f"  {side}: {', '.join(keys)} differ from that fleet's majority (see --across-nodes)")
    for side, missing in (("a", comparison.a_missing), ("b", comparison.b_missing)):
        if missing:
            lines.append(f"{side}: node groups missing from the capture: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def to_json(document: dict[str, Any]) -> str:
    """Stable JSON (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
