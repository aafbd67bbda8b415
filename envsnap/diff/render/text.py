"""The terminal view of a diff (rich): the verdict first, then what changed, section by section.

Rendered into a string with a recording console, so the CLI decides where it goes and the tests compare it
with golden files. Without colour (``NO_COLOR``, not a TTY, or ``color=False``) the output is plain text.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

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
    from rich.console import Console
    from rich.table import Table

    from envsnap.diff.model import SnapshotDiff, TableDiff

__all__ = ["render_text"]

#: Suspects listed in the full table (the JSON holds them all).
MAX_SUSPECTS = 15
STATUS_STYLE = {
    "identical": "green",
    "equal": "green",
    "within_tolerance": "cyan",
    "different": "bold red",
    "incomparable": "yellow",
}


def _table(*columns: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _verdict(console: Console, diff: SnapshotDiff) -> None:
    from rich.text import Text

    console.print(Text("envsnap diff", style="bold"))
    console.print(Text(f"  a: {ref_text(diff.a)}"))
    console.print(Text(f"  b: {ref_text(diff.b)}"))
    console.print()
    stage = diff.data.first_diverging_stage
    if stage:
        headline = Text.assemble(("Verdict: ", "bold"), ("outputs first diverge at stage ", ""), (stage, "bold red"))
    elif diff.data.changed:
        headline = Text.assemble(("Verdict: ", "bold"), ("inputs differ", "bold red"))
    elif diff.data.stages:
        headline = Text.assemble(("Verdict: ", "bold"), ("every stage output matches", "green"))
    elif diff.env.changed:
        headline = Text.assemble(("Verdict: ", "bold"), ("the environments differ", "yellow"))
    else:
        headline = Text.assemble(("Verdict: ", "bold"), ("no difference", "green"))
    console.print(headline)
    if diff.job_outcome:
        console.print(Text.assemble(("Job: ", "bold"), (diff.job_outcome, "bold red")))
    if diff.suspects:
        console.print(Text("Top suspects:", style="bold"))
        console.print(_hanging([(f"  {s.rank}.", f"{s.subject} — {s.reason}") for s in diff.suspects[:TOP_SUSPECTS]]))
    if diff.notes:
        console.print(Text("Notes:", style="bold yellow"))
        console.print(_hanging([("  -", note) for note in diff.notes], style="yellow"))
    console.print()


def _hanging(rows: list[tuple[str, str]], style: str = "") -> Any:
    """Numbered lines whose continuation lines stay indented under the text, not under the number."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style=style)
    grid.add_column(style=style)
    for marker, text in rows:
        grid.add_row(marker, text)
    return grid


def _environment(console: Console, diff: SnapshotDiff) -> None:
    from rich.text import Text

    changed, same = changed_sections(diff)
    total = len(diff.env.sections)
    console.print(Text(f"Environment: {len(changed)} of {total} sections changed", style="bold"))
    if same:
        console.print(Text(f"  unchanged: {', '.join(same)}"))
    for name in changed:
        console.print()
        console.print(Text(f"{name} ({section_count(diff, name)})", style="bold underline"))
        if name == "packages" and diff.env.packages:
            notes = package_notes(diff)
            table = _table("package", "change", "before", "after", "details")
            for delta in diff.env.packages:
                detail = delta_detail(delta, notes.get(delta.name))
                table.add_row(delta.name, delta.change, delta.before or "-", delta.after or "-", detail)
            console.print(table)
        changes = section_changes(diff, name)
        if changes:
            table = _table("key", "change", "before", "after")
            for change in changes:
                before, after = change_before_after(change)
                kind = change.kind + (f" ({change.note})" if change.note else "")
                table.add_row(change.key, kind, before, after)
            console.print(table)
    console.print()


def _code(console: Console, diff: SnapshotDiff) -> None:
    """The changed project files, each with its hunks (red/green with colour), then dirty and untracked files."""
    from rich.text import Text

    code = diff.code
    if code is None or not (code.files or code.dirty or code.untracked):
        return
    console.print(Text(code_heading(code), style="bold"))
    for file in code.files:
        console.print(Text(f"  {code_file_line(file, diff.data.first_diverging_stage)}", style="bold"))
        for hunk in file.hunks:
            console.print(Text(f"    {hunk.header}", style="cyan"))
            for line in hunk.lines:
                style = {"+": "green", "-": "red"}.get(line[:1], "")
                console.print(Text(f"    {line}", style=style), overflow="fold")
    for line in code_side_lines(code):
        console.print(Text(f"  {line}"))
    console.print()


def _table_detail(console: Console, table: TableDiff, indent: str) -> None:
    from rich.padding import Padding
    from rich.text import Text

    from envsnap.diff.render.rows import row_text

    if table.schema:
        schema = _table("column", "schema change", "a", "b")
        for change in table.schema:
            schema.add_row(change.column, change.kind, value_text(change.before), value_text(change.after))
        console.print(Padding(schema, (0, 0, 0, len(indent))))
    columns = [c for c in table.columns if c.status != "equal"]
    if columns:
        grid = _table("column", "status", "differing", "null mismatches", "max |Δ|", "max rel Δ")
        for col in columns:
            grid.add_row(
                col.column,
                col.status.replace("_", " "),
                str(col.differing),
                str(col.null_mismatches),
                number_text(col.max_abs_diff),
                number_text(col.max_rel_diff),
            )
        console.print(Padding(grid, (0, 0, 0, len(indent))))
    if table.sample_rows:
        console.print(Text(f"{indent}first differing rows (by {table.matched_by}):"))
        for row in table.sample_rows:
            where = row.get("key", row.get("position"))
            label = f"[{value_text(where)}]"
            console.print(Text(f"{indent}  {label} a {row_text(row, 'a', limit=200)}"))
            console.print(Text(f"{indent}  {' ' * len(label)} b {row_text(row, 'b', limit=200)}"))
    for shift in shifted(table.stats):
        parts = [f"{indent}shift {shift.column} ({shift.kind}):"]
        if shift.mean:
            parts.append(f"mean {number_text(shift.mean[0])} → {number_text(shift.mean[1])}")
        if shift.std:
            parts.append(f"std {number_text(shift.std[0])} → {number_text(shift.std[1])}")
        if shift.psi is not None:
            parts.append(f"PSI {number_text(shift.psi)}")
        if shift.ks is not None:
            parts.append(f"KS {number_text(shift.ks)}")
        console.print(Text(" ".join(parts)))


def _data(console: Console, diff: SnapshotDiff) -> None:
    from rich.text import Text

    data = diff.data
    if not data.inputs and not data.stages:
        console.print(Text("Data: " + (data.note or "none on either side"), style="bold"))
        return
    console.print(Text("Data", style="bold"))
    if data.note:
        console.print(Text(f"  {data.note}", style="yellow"))
    if data.inputs:
        console.print(Text("  inputs:"))
        for table in data.inputs:
            line = Text(f"    {table.name}: ")
            line.append(table_summary(table), style=STATUS_STYLE.get(table.status, ""))
            console.print(line)
            if table.diverged or table.schema:
                _table_detail(console, table, "      ")
    if data.stages:
        console.print(Text("  stages:"))
        for stage in data.stages:
            marker = " ◀ first to diverge" if stage.name == data.first_diverging_stage else ""
            ran = stage_run_text(stage)
            status = f" ({ran})" if ran else ""
            line = Text(f"    {stage.index}. {stage.name}: ")
            line.append(stage_summary(stage), style=STATUS_STYLE.get(stage.table.status, ""))
            line.append(status + marker, style="bold red" if marker else "")
            console.print(line)
            for change in stage_lines(stage):
                console.print(Text(f"      {change}"))
            for table, cells in stage_tables(stage):
                indent = "      "
                if stage.elements:
                    line = Text(f"      {table.name}: ")
                    line.append(table_summary(table), style=STATUS_STYLE.get(table.status, ""))
                    console.print(line)
                    indent = "        "
                if cells and (table.diverged or table.schema):
                    _table_detail(console, table, indent)


def _suspects(console: Console, diff: SnapshotDiff) -> None:
    from rich.text import Text

    if not diff.suspects:
        return
    console.print()
    console.print(Text(f"Suspects ({len(diff.suspects)})", style="bold"))
    table = _table("#", "score", "suspect", "reason")
    for suspect in diff.suspects[:MAX_SUSPECTS]:
        table.add_row(str(suspect.rank), number_text(suspect.score), suspect.subject, suspect.reason)
    console.print(table)
    if len(diff.suspects) > MAX_SUSPECTS:
        console.print(Text(f"  … and {len(diff.suspects) - MAX_SUSPECTS} more (see --json)"))


def render_text(diff: SnapshotDiff, *, width: int = 100, color: bool = False, **_: Any) -> str:
    """The terminal view as a string; ANSI styles only with ``color=True``."""
    from rich.console import Console

    console = Console(
        file=io.StringIO(),
        record=True,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=False,
        legacy_windows=False,
    )
    _verdict(console, diff)
    _environment(console, diff)
    _code(console, diff)
    _data(console, diff)
    _suspects(console, diff)
    text = console.export_text(styles=color)
    # rich pads table cells with spaces up to the column width: trailing blanks only churn golden files.
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
