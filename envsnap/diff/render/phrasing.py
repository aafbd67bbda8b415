"""The phrasing every diff view shares: how a value, a change, a package delta or a table's status reads.

Kept in one place so the text, Markdown and HTML views (and the check and replay reports that quote a
diff) agree word for word. Pure functions of :mod:`envsnap.diff.model` values.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.diff.model import (
        Change,
        CodeDiff,
        CodeFile,
        PackageDelta,
        SnapshotDiff,
        SnapshotRef,
        StageChange,
        StageDiff,
        StatsShift,
        TableDiff,
    )

__all__ = [
    "TOP_SUSPECTS",
    "change_before_after",
    "change_line",
    "changed_sections",
    "code_file_line",
    "code_heading",
    "code_side_lines",
    "delta_detail",
    "number_text",
    "package_notes",
    "ref_text",
    "rows_text",
    "section_changes",
    "section_count",
    "shifted",
    "stage_change_line",
    "stage_change_text",
    "stage_lines",
    "stage_run_text",
    "stage_summary",
    "stage_tables",
    "table_summary",
    "value_text",
]

#: How many suspects the verdict of every view leads with.
TOP_SUSPECTS = 3


def value_text(value: Any, *, limit: int = 80) -> str:
    """A JSON-able value as a short single line ("-" for absent)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number_text(value: float | int | None) -> str:
    """Numbers with 6 significant digits; NaN and infinities spelt out."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def ref_text(ref: SnapshotRef) -> str:
    """``label (id…) path`` of one side."""
    name = ref.label or ref.id[:12] or "?"
    return f"{name} ({ref.path})"


def change_before_after(change: Change) -> tuple[str, str]:
    """What a change shows as before/after; a redacted value never shows, only whether it changed."""
    if change.redacted:
        said = {True: "changed", False: "unchanged", None: "cannot tell"}[change.value_changed]
        if change.kind == "added":
            return "-", "(redacted)"
        if change.kind == "removed":
            return "(redacted)", "-"
        return "(redacted)", f"(redacted, {said})"
    return value_text(change.before), value_text(change.after)


def change_line(change: Change) -> str:
    """One line for a change: ``OMP_NUM_THREADS: 1 → 8``."""
    before, after = change_before_after(change)
    if change.kind == "added":
        text = f"{change.key}: added {after}"
    elif change.kind == "removed":
        text = f"{change.key}: removed (was {before})"
    else:
        text = f"{change.key}: {before} → {after}"
    return f"{text} ({change.note})" if change.note else text


def delta_detail(delta: PackageDelta, note: str | None = None) -> str:
    """The step and what else moved: ``major``, ``patch; installer pip → uv``, ``vcs commit … → …``."""
    if note:
        return note
    parts = [delta.level or "-"]
    if delta.installer:
        parts.append(f"installer {delta.installer[0] or '-'} → {delta.installer[1] or '-'}")
    if delta.location_kind:
        parts.append(f"location {delta.location_kind[0] or '-'} → {delta.location_kind[1] or '-'}")
    return "; ".join(parts)


def shifted(stats: tuple[StatsShift, ...]) -> list[StatsShift]:
    """The distribution shifts worth showing: those where some statistic moved."""
    out = []
    for shift in stats:
        moved = (shift.mean is not None and shift.mean[0] != shift.mean[1]) or (
            shift.std is not None and shift.std[0] != shift.std[1]
        )
        if moved or (shift.psi or 0) > 0 or (shift.ks or 0) > 0:
            out.append(shift)
    return out


def stage_run_text(stage: StageDiff) -> str:
    """How the stage ran on each side, when that differs: ``ran ok → missing``."""
    ran = [s or "missing" for s in stage.status]
    return "" if ran[0] == ran[1] else f"ran {ran[0]} → {ran[1]}"


def rows_text(rows: tuple[int | None, int | None]) -> str:
    """``100`` when equal, ``100 → 98`` otherwise."""
    a, b = rows
    if a == b:
        return number_text(a)
    return f"{number_text(a)} → {number_text(b)}"


def table_summary(table: TableDiff) -> str:
    """The status of an input or intermediate in one line."""
    parts = [table.status.replace("_", " ")]
    if table.rows != (None, None):
        parts.append(f"rows {rows_text(table.rows)}")
    if table.schema:
        parts.append(f"{len(table.schema)} schema change{'s' if len(table.schema) != 1 else ''}")
    differing = [c for c in table.columns if c.status == "different"]
    if differing:
        parts.append(f"{len(differing)} column{'s' if len(differing) != 1 else ''} differ")
    if table.note:
        parts.append(table.note)
    return "; ".join(parts)


def stage_change_text(change: StageChange) -> str:
    """``0.5 → 0.7``, ``added 3``, ``removed (was 3)``, ``first at [1]: 2.5 → 2.75; max abs diff 0.25``.

    Small values read before → after; a big array or list only by its note (where it first differs, by how
    much at most); a feature order by the features that moved."""
    if change.change == "added":
        return f"added {value_text(change.after, limit=60)}"
    if change.change == "removed":
        return f"removed (was {value_text(change.before, limit=60)})"
    if change.note and (isinstance(change.before, list) or isinstance(change.after, list) or change.before is None):
        return change.note
    text = f"{value_text(change.before, limit=60)} → {value_text(change.after, limit=60)}"
    return f"{text} ({change.note})" if change.note else text


def stage_change_line(change: StageChange) -> str:
    """``param `threshold`: 0.5 → 0.7``, ``fitted `mean_`: …``, ``key `metrics.auc`: 0.91 → 0.88``."""
    where = f" of {change.element}" if change.element else ""
    return f"{change.kind} `{change.name}`{where}: {stage_change_text(change)}"


def stage_lines(stage: StageDiff) -> list[str]:
    """What differs inside a stage beyond its table, one line each: params, fitted state, dict keys."""
    return [stage_change_line(c) for c in (*stage.params, *stage.fitted, *stage.keys)]


def stage_tables(stage: StageDiff) -> list[tuple[TableDiff, bool]]:
    """The tables a stage's detail shows, each with whether its cells are worth showing: not those of a
    dict or an estimator whose keys or fitted state :func:`stage_lines` already tell (its one row)."""
    keyed = {k.element for k in stage.keys}
    if not stage.elements:
        # A returned estimator's one row is its fitted state, which the fitted lines already tell.
        told = bool(keyed) or (bool(stage.fitted) and "estimator" in stage.kinds)
        return [(stage.table, not told)]
    return [(t, t.name not in keyed) for t in stage.elements]


def stage_summary(stage: StageDiff) -> str:
    """A stage's output in one line; a dict's differing columns are its keys (``1 key differs``)."""
    table = stage.table
    if "dict" not in stage.kinds or stage.elements or table.status in ("identical", "incomparable"):
        return table_summary(table)
    parts = [table.status.replace("_", " "), "a dict"]
    keys = len(stage.keys)
    if keys:
        parts.append(f"{keys} key{'s differ' if keys != 1 else ' differs'}")
    if table.note:
        parts.append(table.note)
    return "; ".join(parts)


def section_count(diff: SnapshotDiff, name: str) -> int:
    """How many differences a section holds (the package deltas count for ``packages``)."""
    return len(section_changes(diff, name)) + (len(diff.env.packages) if name == "packages" else 0)


def package_notes(diff: SnapshotDiff) -> dict[str, str]:
    """The env differ's note per package (a VCS commit that moved, a version that is not PEP 440)."""
    section = diff.env.section("packages")
    if section is None:
        return {}
    return {c.key: c.note for c in section.changes if c.note}


def section_changes(diff: SnapshotDiff, name: str) -> list[Change]:
    """A section's changes, leaving out those the package deltas already show."""
    section = diff.env.section(name)
    if section is None:
        return []
    if name != "packages":
        return list(section.changes)
    names = {d.name for d in diff.env.packages}
    return [c for c in section.changes if c.key not in names]


def changed_sections(diff: SnapshotDiff) -> tuple[list[str], list[str]]:
    """Names of the sections with differences, and of those without, in the fixed section order."""
    changed: list[str] = []
    same: list[str] = []
    for section in diff.env.sections:
        (changed if section_count(diff, section.name) else same).append(section.name)
    return changed, same


_SOURCES = {"stored": "from the snapshots", "clone": "from the local clone", "hashes": "hashes only"}


def code_heading(code: CodeDiff) -> str:
    """``Code: 2 files changed (hunks from the snapshots)`` — or what else is known about the code."""
    count = len(code.files)
    if not count:
        return "Code: no imported file changed" if not (code.dirty or code.untracked) else "Code"
    sources = sorted({f.source for f in code.files})
    where = ", ".join(_SOURCES.get(s, s) for s in sources)
    return f"Code: {count} file{'s' if count != 1 else ''} changed ({'hunks ' if sources != ['hashes'] else ''}{where})"


def code_file_line(file: CodeFile, first_diverging_stage: str | None) -> str:
    """``churn/preprocess.py (modified; imported by stage preprocess, the first to diverge)``."""
    facts = [file.status + (f" from {file.old_path}" if file.old_path else "")]
    if file.stages:
        word = "stage" if len(file.stages) == 1 else "stages"
        imported = f"imported by {word} {', '.join(file.stages)}"
        if file.first_diverging and first_diverging_stage:
            many = len(file.stages) > 1
            imported += f" ({first_diverging_stage} is the first to diverge)" if many else ", the first to diverge"
        facts.append(imported)
    if file.untracked:
        facts.append(f"untracked in {' and '.join(file.untracked)}")
    if file.note:
        facts.append(file.note)
    return f"{file.path} ({'; '.join(facts)})"


def code_side_lines(code: CodeDiff) -> list[str]:
    """The dirty patches by file and the untracked imported files, one line each."""
    lines = []
    for side in ("a", "b"):
        if code.dirty.get(side):
            lines.append(f"dirty patch ({side}) touches: {', '.join(code.dirty[side])}")
    for side in ("a", "b"):
        if code.untracked.get(side):
            lines.append(f"imported but untracked by git ({side}): {', '.join(code.untracked[side])}")
    return lines
