"""``envsnap diff --markdown``: GitHub-flavoured Markdown for a CI job summary or a PR comment.

The verdict and a suspects table come first (what a reviewer reads); each changed section and each
diverged table follows in a collapsible ``<details>`` block, so a 300-package diff stays one screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsnap.diff.render.phrasing import (
    TOP_SUSPECTS,
    change_before_after,
    changed_sections,
    code_file_line,
    code_heading,
    code_side_lines,
    delta_detail,
    number_text,
    package_notes,
    ref_text,
    section_changes,
    section_count,
    shifted,
    stage_lines,
    stage_run_text,
    stage_summary,
    stage_tables,
    table_summary,
    value_text,
)

if TYPE_CHECKING:
    from envsnap.diff.model import SnapshotDiff, TableDiff

__all__ = ["render_markdown"]

#: Rows of the suspects table; the rest are counted.
MAX_SUSPECTS = 10


def _cell(text: object) -> str:
    """Table-cell safe: pipes escaped, no line breaks, no HTML."""
    value = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return value.replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    """Inline code, safe against backticks inside."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    return [_row(*names), "|" + "|".join("---" for _ in names) + "|"]


def _verdict(diff: SnapshotDiff) -> list[str]:
    stage = diff.data.first_diverging_stage
    if stage:
        headline = f"❌ outputs first diverge at stage {_inline(stage)}"
    elif diff.data.changed:
        headline = "❌ inputs differ"
    elif diff.data.stages:
        headline = "✅ every stage output matches"
    elif diff.env.changed:
        headline = "⚠️ the environments differ"
    else:
        headline = "✅ no difference"
    lines = [
        "## envsnap diff",
        "",
        f"**Verdict:** {headline}",
        "",
        f"- **a**: {_cell(ref_text(diff.a))}",
        f"- **b**: {_cell(ref_text(diff.b))}",
    ]
    if diff.job_outcome:
        lines += ["", f"**Job:** {_cell(diff.job_outcome)}"]
    if diff.suspects:
        lines += ["", "**Top suspects:**", ""]
        lines += [f"{s.rank}. **{_cell(s.subject)}** — {_cell(s.reason)}" for s in diff.suspects[:TOP_SUSPECTS]]
    if diff.notes:
        lines += ["", "> [!NOTE]"]
        lines += [f"> - {_cell(n)}" for n in diff.notes]
    return lines


def _suspects(diff: SnapshotDiff) -> list[str]:
    if not diff.suspects:
        return []
    lines = ["", f"### Suspects ({len(diff.suspects)})", "", *_header("#", "score", "suspect", "reason")]
    lines += [_row(s.rank, number_text(s.score), s.subject, s.reason) for s in diff.suspects[:MAX_SUSPECTS]]
    if len(diff.suspects) > MAX_SUSPECTS:
        lines += ["", f"… and {len(diff.suspects) - MAX_SUSPECTS} more (`envsnap diff --json` lists them all)."]
    return lines


def _details(summary: str, body: list[str]) -> list[str]:
    return ["", "<details>", f"<summary>{_cell(summary)}</summary>", "", *body, "", "</details>"]


def _environment(diff: SnapshotDiff) -> list[str]:
    changed, same = changed_sections(diff)
    lines = ["", f"### Environment: {len(changed)} of {len(diff.env.sections)} sections changed"]
    if same:
        lines += ["", "Unchanged: " + ", ".join(same) + "."]
    for name in changed:
        body: list[str] = []
        if name == "packages" and diff.env.packages:
            notes = package_notes(diff)
            body += _header("package", "change", "before", "after", "details")
            for d in diff.env.packages:
                body.append(_row(d.name, d.change, d.before or "-", d.after or "-", delta_detail(d, notes.get(d.name))))
        changes = section_changes(diff, name)
        if changes:
            if body:
                body.append("")
            body += _header("key", "change", "before", "after")
            for c in changes:
                before, after = change_before_after(c)
                body.append(_row(c.key, c.kind + (f" ({c.note})" if c.note else ""), before, after))
        lines += _details(f"{name}: {section_count(diff, name)} changed", body)
    return lines


def _table_body(table: TableDiff) -> list[str]:
    body: list[str] = [table_summary(table)]
    if table.schema:
        body += ["", *_header("column", "schema change", "a", "b")]
        body += [_row(s.column, s.kind, value_text(s.before), value_text(s.after)) for s in table.schema]
    columns = [c for c in table.columns if c.status != "equal"]
    if columns:
        body += ["", *_header("column", "status", "differing", "null mismatches", "max abs Δ", "max rel Δ")]
        body += [
            _row(
                c.column,
                c.status,
                c.differing,
                c.null_mismatches,
                number_text(c.max_abs_diff),
                number_text(c.max_rel_diff),
            )
            for c in columns
        ]
    if table.sample_rows:
        from envsnap.diff.render.rows import row_text

        body += ["", f"First differing rows (by {table.matched_by}):", "", *_header("row", "a", "b")]
        for row in table.sample_rows:
            where = row.get("key", row.get("position"))
            a, b = row_text(row, "a", limit=160), row_text(row, "b", limit=160)
            body.append(_row(value_text(where), a, b))
    stats = shifted(table.stats)
    if stats:
        body += ["", *_header("column", "kind", "mean a → b", "std a → b", "PSI", "KS")]
        for s in stats:
            mean = f"{number_text(s.mean[0])} → {number_text(s.mean[1])}" if s.mean else "-"
            std = f"{number_text(s.std[0])} → {number_text(s.std[1])}" if s.std else "-"
            body.append(_row(s.column, s.kind, mean, std, number_text(s.psi), number_text(s.ks)))
    return body


def _data(diff: SnapshotDiff) -> list[str]:
    data = diff.data
    lines = ["", "### Data"]
    if data.note:
        lines += ["", data.note]
    if not data.inputs and not data.stages:
        return lines if data.note else [*lines, "", "No data on either side."]
    if data.inputs or data.stages:
        lines += ["", *_header("", "name", "status")]
        lines += [_row("input", t.name, table_summary(t)) for t in data.inputs]
        for s in data.stages:
            mark = " ← first to diverge" if s.name == data.first_diverging_stage else ""
            ran = stage_run_text(s)
            mark = f"; {ran}{mark}" if ran else mark
            lines.append(_row(f"stage {s.index}", s.name, stage_summary(s) + mark))
    for t in data.inputs:
        if t.diverged or t.schema:
            lines += _details(f"input {t.name}: {t.status}", _table_body(t))
    for s in data.stages:
        changes = stage_lines(s)
        if s.table.diverged or s.table.schema or changes:
            body = [f"- {_cell(line)}" for line in changes]
            for table, cells in stage_tables(s):
                if not (table.diverged or table.schema):
                    continue
                body += ["", f"**{_cell(table.name)}**"] if s.elements else []
                body += ([""] if body else []) + (_table_body(table) if cells else [table_summary(table)])
            lines += _details(f"stage {s.index} {s.name}: {s.table.status}", body)
    return lines


def _code(diff: SnapshotDiff) -> list[str]:
    """Each changed project file with its hunks in a ``diff`` fence; dirty and untracked files after."""
    code = diff.code
    if code is None or not (code.files or code.dirty or code.untracked):
        return []
    lines = ["", f"### {code_heading(code)}"]
    for file in code.files:
        lines += ["", f"**{_cell(code_file_line(file, diff.data.first_diverging_stage))}**"]
        if file.hunks:
            body = [line for hunk in file.hunks for line in (hunk.header, *hunk.lines)]
            fence = "`" * max(3, 1 + max((len(b) - len(b.lstrip("`")) for b in body), default=0))
            lines += ["", f"{fence}diff", *body, fence]
    extra = code_side_lines(code)
    if extra:
        lines += ["", *(f"- {_cell(line)}" for line in extra)]
    return lines


def render_markdown(diff: SnapshotDiff) -> str:
    """The Markdown report (ends with a newline)."""
    lines = _verdict(diff) + _suspects(diff) + _environment(diff) + _code(diff) + _data(diff)
    return "\n".join(lines).rstrip() + "\n"
