"""Views of a :class:`~envsnap.check.CheckReport`: terminal text, JSON, JUnit XML and Markdown.

Pure functions, like :mod:`envsnap.diff.render`, whose phrasing they reuse; the Markdown view embeds the
diff's own Markdown (:func:`envsnap.diff.render.markdown.render_markdown`) below the gate's summary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from envsnap.diff.render.phrasing import TOP_SUSPECTS, number_text, ref_text, table_summary, value_text
from envsnap.diff.render.rows import row_text

if TYPE_CHECKING:
    from envsnap.check.report import CheckReport, StageCheck
    from envsnap.diff.model import TableDiff

__all__ = ["render_json", "render_junit", "render_markdown", "render_text", "table_details"]

MARK = {"identical": "ok", "equal": "ok", "within_tolerance": "ok", "not-compared": "skipped"}


def _tolerance_text(stage: StageCheck) -> str:
    tol = stage.tolerance
    parts = [f"rtol {number_text(tol.rtol)}", f"atol {number_text(tol.atol)}"]
    if tol.columns:
        parts.append(f"{len(tol.columns)} column override{'s' if len(tol.columns) != 1 else ''}")
    return ", ".join(parts)


def _stage_text(stage: StageCheck) -> str:
    if stage.status == "failed":
        return f"stage failed: {stage.error}"
    if stage.status == "not-run":
        return "did not run (an earlier stage failed)"
    if stage.table is None:
        return "ran; not compared (--stage)"
    return f"{table_summary(stage.table)} ({_tolerance_text(stage)})"


def table_details(table: TableDiff, *, max_rows: int = 5) -> list[str]:
    """What a reader needs to see of a diverged table: columns, first differing rows, stats shift."""
    lines: list[str] = []
    for change in table.schema:
        lines.append(
            f"column {change.column}: {change.kind} ({value_text(change.before)} -> {value_text(change.after)})"
        )
    for col in table.columns:
        if col.status != "equal":
            lines.append(
                f"column {col.column}: {col.status.replace('_', ' ')}, {col.differing} differing"
                f" (max abs diff {number_text(col.max_abs_diff)}, max rel diff {number_text(col.max_rel_diff)})"
            )
    for row in table.sample_rows[:max_rows]:
        where = row.get("key", row.get("position"))
        lines.append(f"row {value_text(where)}: baseline {row_text(row, 'a', limit=120)}")
        lines.append(f"{' ' * len(f'row {value_text(where)}: ')}current  {row_text(row, 'b', limit=120)}")
    for shift in table.stats:
        if shift.mean is not None and shift.mean[0] != shift.mean[1]:
            lines.append(
                f"stats {shift.column}: mean {number_text(shift.mean[0])} -> {number_text(shift.mean[1])}"
                + (f", std {number_text(shift.std[0])} -> {number_text(shift.std[1])}" if shift.std else "")
                + (f", PSI {number_text(shift.psi)}" if shift.psi is not None else "")
            )
    return lines


def render_text(report: CheckReport) -> str:
    """The terminal report: one line per stage, the verdict, suspects on failure, environment changes."""
    lines = [
        f"envsnap check: pipeline {report.pipeline} against {ref_text(report.baseline)}",
        *(f"  {s.index:02d} {s.name:<20} {MARK.get(s.status, 'FAIL'):<7} {_stage_text(s)}" for s in report.stages),
    ]
    first = next((s for s in report.stages if not s.passed), None)
    if first is not None and first.table is not None and first.status == "regressed":
        lines += ["", f"stage {first.name} differs from the baseline:"]
        lines += [f"  {line}" for line in table_details(first.table)]
    if not report.passed and report.diff.suspects:
        lines += ["", "top suspects:"]
        lines += [f"  {s.rank}. {s.subject}: {s.reason}" for s in report.diff.suspects[:TOP_SUSPECTS]]
    if report.package_changes:
        lines += ["", "packages changed since the baseline:"]
        lines += [f"  {change}" for change in report.package_changes[:20]]
        if len(report.package_changes) > 20:
            lines.append(f"  … and {len(report.package_changes) - 20} more (--json lists them all)")
    if report.config_changes:
        lines += ["", "config files changed since the baseline:"]
        lines += [f"  {change}" for change in report.config_changes[:20]]
        if len(report.config_changes) > 20:
            lines.append(f"  … and {len(report.config_changes) - 20} more (--json lists them all)")
    lines.append(f"runtime fingerprint: {'CHANGED' if report.fingerprint_changed else 'unchanged'}")
    lines += [f"note: {note}" for note in report.diff.notes]
    lines += ["", ("PASSED" if report.passed else "FAILED") + f" — {report.verdict}"]
    return "\n".join(lines) + "\n"


def render_json(report: CheckReport) -> str:
    """``envsnap check --json`` (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(report.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_junit(report: CheckReport) -> bytes:
    """JUnit XML: one ``testcase`` per stage (``failure`` for a regression, ``error`` for a failed stage,
    ``skipped`` for a stage left out), plus one for the environment when ``--fail-on-env`` failed."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name=f"envsnap check {report.pipeline}")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", report.baseline.path),
        ("baseline_fingerprint", report.baseline.fingerprint),
        ("current_fingerprint", report.current.fingerprint),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for stage in report.stages:
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=f"envsnap.check.{report.pipeline}", name=stage.name)
        if stage.status == "not-compared":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message="not compared (--stage)")
        elif stage.status == "failed":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=stage.error or "stage failed", type="StageFailed")
        elif not stage.passed:
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", message=_stage_text(stage), type=stage.status)
            body = table_details(stage.table) if stage.table is not None else []
            body += [f"suspect {s.rank}. {s.subject}: {s.reason}" for s in report.diff.suspects[:TOP_SUSPECTS]]
            failure.text = "\n".join(body)
        else:
            ET.SubElement(case, "system-out").text = _stage_text(stage)
    if report.env_failed:
        counts["tests"] += 1
        counts["failures"] += 1
        case = ET.SubElement(suite, "testcase", classname=f"envsnap.check.{report.pipeline}", name="environment")
        failure = ET.SubElement(case, "failure", message="the runtime fingerprint changed", type="environment")
        failure.text = "\n".join(report.package_changes)
    for key, count in counts.items():
        suite.set(key, str(count))
    ET.indent(suite)
    document: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(report: CheckReport) -> str:
    """The gate's summary (verdict, stage table, suspects) followed by the full diff in a collapsed block."""
    from envsnap.diff.render.markdown import render_markdown as diff_markdown

    icon = "✅" if report.passed else "❌"
    lines = [
        f"## {icon} envsnap check: {_cell(report.pipeline)}",
        "",
        f"**{'Passed' if report.passed else 'Failed'}:** {_cell(report.verdict)}",
        "",
        f"Baseline: {_cell(ref_text(report.baseline))}; runtime fingerprint "
        f"{'**changed**' if report.fingerprint_changed else 'unchanged'}.",
        "",
        "| # | stage | result | details |",
        "|---|---|---|---|",
    ]
    for s in report.stages:
        mark = {"ok": "✅", "skipped": "⏭️"}.get(MARK.get(s.status, ""), "❌")
        lines.append(f"| {s.index} | {_cell(s.name)} | {mark} {s.status} | {_cell(_stage_text(s))} |")
    if not report.passed and report.diff.suspects:
        lines += ["", "**Top suspects:**", ""]
        lines += [f"{s.rank}. **{_cell(s.subject)}** — {_cell(s.reason)}" for s in report.diff.suspects[:TOP_SUSPECTS]]
    diff_text = diff_markdown(report.diff).replace(
        "## envsnap diff", "### envsnap diff: baseline (a) vs this run (b)", 1
    )
    lines += ["", "<details>", "<summary>Full diff against the baseline</summary>", "", diff_text, "</details>"]
    return "\n".join(lines).rstrip() + "\n"
