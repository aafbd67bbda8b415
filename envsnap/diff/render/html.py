"""``envsnap diff --html FILE``: one self-contained HTML file.

No network at all: CSS is inline, plots are inline SVG drawn here from ``StatsShift.histogram``, there is no
script, and a Content-Security-Policy forbids any load, so the report opens the same from a CI artifact,
an air-gapped laptop or a mail attachment. Stable ids (``verdict``, ``suspects``, ``environment``,
``data``, ``section-NAME``, ``stage-NAME``) let tools and tests find the parts.
"""

from __future__ import annotations

import re
from html import escape
from typing import TYPE_CHECKING, Any

from envsnap.diff.model import DIFF_SCHEMA_VERSION
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
    stage_tables,
    table_summary,
    value_text,
)

if TYPE_CHECKING:
    from envsnap.diff.model import CodeFile, SnapshotDiff, StatsShift, TableDiff

__all__ = ["CSP", "render_html"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:16px;
color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid #d0d7de}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}h1 code{font-size:inherit}
#verdict{border:2px solid #cf222e;border-radius:8px;padding:12px 16px;background:#fff5f5}
#verdict.ok{border-color:#1a7f37;background:#f0fff4}#verdict.env{border-color:#9a6700;background:#fffbeb}
.refs{color:#57606a;margin:4px 0}
table{border-collapse:collapse;margin:8px 0;width:100%}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
details{margin:6px 0;border:1px solid #d0d7de;border-radius:6px;padding:4px 10px}
summary{cursor:pointer;font-weight:600}
.status-different,.status-incomparable{color:#cf222e;font-weight:600}
.status-equal,.status-identical{color:#1a7f37}.status-within_tolerance{color:#0969da}
.notes{background:#fffbeb;border-left:4px solid #9a6700;padding:6px 12px}
.plot{display:inline-block;margin:4px 12px 4px 0}
.legend-a{fill:#0969da}.legend-b{fill:#fb8f44}
.code-file{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;overflow:hidden}
.code-file h3{font-size:13px;margin:0;padding:6px 10px;background:#f6f8fa;border-bottom:1px solid #d0d7de}
table.hunks{margin:0;border:0;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
table.hunks td{border:0;padding:0 8px;white-space:pre-wrap;word-break:break-all}
table.hunks td.ln{width:1%;color:#57606a;text-align:right;user-select:none;white-space:nowrap}
tr.hunk td{background:#ddf4ff;color:#57606a}tr.add td{background:#e6ffec}tr.del td{background:#ffebe9}
"""

_PLOT_W, _PLOT_H, _PAD = 420, 150, 24


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "x"


def _table(headers: list[str], rows: list[list[str]], *, row_class: str | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    cls = f' class="{row_class}"' if row_class else ""
    body = "".join(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(diff: SnapshotDiff) -> str:
    stage = diff.data.first_diverging_stage
    css = ""
    if stage:
        headline = f'Outputs first diverge at stage <code id="first-diverging-stage">{_e(stage)}</code>'
    elif diff.data.changed:
        headline = "Inputs differ"
    elif diff.data.stages:
        headline, css = "Every stage output matches", "ok"
    elif diff.env.changed:
        headline, css = "The environments differ", "env"
    else:
        headline, css = "No difference", "ok"
    parts = [
        f'<section id="verdict" class="verdict {css}">',
        f"<h1>{headline}</h1>",
        f'<p class="refs">a: {_e(ref_text(diff.a))}<br>b: {_e(ref_text(diff.b))}</p>',
    ]
    if diff.job_outcome:
        parts.append(f'<p id="job-outcome"><strong>Job:</strong> {_e(diff.job_outcome)}</p>')
    if diff.suspects:
        items = "".join(
            f'<li class="top-suspect"><strong>{_e(s.subject)}</strong> — {_e(s.reason)}</li>'
            for s in diff.suspects[:TOP_SUSPECTS]
        )
        parts.append(f'<p>Top suspects:</p><ol id="top-suspects">{items}</ol>')
    parts.append("</section>")
    if diff.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in diff.notes)
        parts.append(f'<section id="notes" class="notes"><strong>Notes</strong><ul>{items}</ul></section>')
    return "".join(parts)


def _suspects(diff: SnapshotDiff) -> str:
    if not diff.suspects:
        return '<section id="suspects"><h2>Suspects</h2><p>No environment or input difference.</p></section>'
    rows = [
        [str(s.rank), _e(number_text(s.score)), f"<code>{_e(s.subject)}</code>", _e(s.reason)] for s in diff.suspects
    ]
    return (
        f'<section id="suspects"><h2>Suspects ({len(diff.suspects)})</h2>'
        + _table(["#", "score", "suspect", "reason"], rows, row_class="suspect")
        + "</section>"
    )


def _environment(diff: SnapshotDiff) -> str:
    changed, same = changed_sections(diff)
    heading = f"Environment: {len(changed)} of {len(diff.env.sections)} sections changed"
    out = [f'<section id="environment"><h2>{_e(heading)}</h2>']
    if same:
        out.append(f"<p>Unchanged: {_e(', '.join(same))}.</p>")
    for name in changed:
        body = ""
        if name == "packages" and diff.env.packages:
            notes = package_notes(diff)
            rows = [
                [
                    f"<code>{_e(d.name)}</code>",
                    _e(d.change),
                    _e(d.before or "-"),
                    _e(d.after or "-"),
                    _e(delta_detail(d, notes.get(d.name))),
                ]
                for d in diff.env.packages
            ]
            body += _table(["package", "change", "before", "after", "details"], rows)
        changes = section_changes(diff, name)
        if changes:
            rows = []
            for c in changes:
                before, after = change_before_after(c)
                rows.append(
                    [
                        f"<code>{_e(c.key)}</code>",
                        _e(c.kind + (f" ({c.note})" if c.note else "")),
                        _e(before),
                        _e(after),
                    ]
                )
            body += _table(["key", "change", "before", "after"], rows)
        out.append(
            f'<details id="section-{_slug(name)}" open><summary>{_e(name)}: '
            f"{section_count(diff, name)} changed</summary>{body}</details>"
        )
    out.append("</section>")
    return "".join(out)


def _svg(shift: StatsShift) -> str:
    """Grouped bars (a blue, b orange) of the two binned distributions; empty when there is nothing to draw."""
    hist: dict[str, Any] = shift.histogram or {}
    a, b = list(hist.get("a") or []), list(hist.get("b") or [])
    n = min(len(a), len(b))
    if n == 0:
        return ""
    if "labels" in hist:
        labels = [str(x) for x in hist["labels"]][:n]
        first, last = (labels[0], labels[-1]) if labels else ("", "")
    else:
        edges = list(hist.get("edges") or [])
        first = number_text(edges[0]) if edges else ""
        last = number_text(edges[-1]) if edges else ""
        labels = [
            f"{number_text(edges[i])} to {number_text(edges[i + 1])}" if i + 1 < len(edges) else str(i)
            for i in range(n)
        ]
    top = max([float(v or 0) for v in a[:n] + b[:n]] + [1e-12])
    plot_w, plot_h = _PLOT_W - 2 * _PAD, _PLOT_H - 2 * _PAD
    slot = plot_w / n
    bar = max(slot / 2 - 1, 0.5)
    bars = []
    for i in range(n):
        for j, (series, css) in enumerate(((a, "legend-a"), (b, "legend-b"))):
            height = plot_h * float(series[i] or 0) / top
            x = _PAD + i * slot + j * bar
            y = _PAD + plot_h - height
            bars.append(
                f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{_e(labels[i])}: {'ab'[j]} {_e(number_text(float(series[i] or 0)))}</title></rect>"
            )
    axis_y = _PAD + plot_h
    return (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{_PLOT_W}" height="{_PLOT_H}" '
        f'viewBox="0 0 {_PLOT_W} {_PLOT_H}" role="img" aria-label="distribution of {_e(shift.column)}, a vs b">'
        f'<text x="{_PAD}" y="14" font-size="12" font-weight="600">{_e(shift.column)}</text>'
        f'<rect class="legend-a" x="{_PLOT_W - 110}" y="5" width="10" height="10"/>'
        f'<text x="{_PLOT_W - 96}" y="14" font-size="11">a</text>'
        f'<rect class="legend-b" x="{_PLOT_W - 70}" y="5" width="10" height="10"/>'
        f'<text x="{_PLOT_W - 56}" y="14" font-size="11">b</text>'
        + "".join(bars)
        + f'<line x1="{_PAD}" y1="{axis_y}" x2="{_PLOT_W - _PAD}" y2="{axis_y}" stroke="#57606a"/>'
        f'<text x="{_PAD}" y="{_PLOT_H - 6}" font-size="10">{_e(first)}</text>'
        f'<text x="{_PLOT_W - _PAD}" y="{_PLOT_H - 6}" font-size="10" text-anchor="end">{_e(last)}</text>'
        "</svg>"
    )


def _table_body(table: TableDiff) -> str:
    out = [f'<p class="status-{_e(table.status)}">{_e(table_summary(table))}</p>']
    if table.schema:
        rows = [
            [f"<code>{_e(s.column)}</code>", _e(s.kind), _e(value_text(s.before)), _e(value_text(s.after))]
            for s in table.schema
        ]
        out.append(_table(["column", "schema change", "a", "b"], rows))
    columns = [c for c in table.columns if c.status != "equal"]
    if columns:
        rows = [
            [
                f"<code>{_e(c.column)}</code>",
                _e(c.status),
                str(c.differing),
                str(c.null_mismatches),
                _e(number_text(c.max_abs_diff)),
                _e(number_text(c.max_rel_diff)),
            ]
            for c in columns
        ]
        out.append(_table(["column", "status", "differing", "null mismatches", "max abs Δ", "max rel Δ"], rows))
    if table.sample_rows:
        from envsnap.diff.render.rows import row_text

        rows = [
            [
                _e(value_text(r.get("key", r.get("position")))),
                _e(row_text(r, "a", limit=300)),
                _e(row_text(r, "b", limit=300)),
            ]
            for r in table.sample_rows
        ]
        out.append(f"<p>First differing rows (by {_e(table.matched_by)}):</p>" + _table(["row", "a", "b"], rows))
    stats = shifted(table.stats)
    if stats:
        rows = []
        for s in stats:
            mean = f"{number_text(s.mean[0])} → {number_text(s.mean[1])}" if s.mean else "-"
            std = f"{number_text(s.std[0])} → {number_text(s.std[1])}" if s.std else "-"
            rows.append(
                [
                    f"<code>{_e(s.column)}</code>",
                    _e(s.kind),
                    _e(mean),
                    _e(std),
                    _e(number_text(s.psi)),
                    _e(number_text(s.ks)),
                ]
            )
        headers = ["column", "kind", "mean a → b", "std a → b", "PSI", "KS"]
        out.append("<p>Distribution shift:</p>" + _table(headers, rows))
        plots = "".join(_svg(s) for s in stats)
        if plots:
            out.append(f'<div class="plots">{plots}</div>')
    return "".join(out)


def _data(diff: SnapshotDiff) -> str:
    data = diff.data
    out = ['<section id="data"><h2>Data</h2>']
    if data.note:
        out.append(f'<p class="notes">{_e(data.note)}</p>')
    if not data.inputs and not data.stages:
        if not data.note:
            out.append("<p>No data on either side.</p>")
        out.append("</section>")
        return "".join(out)
    for t in data.inputs:
        is_open = " open" if t.diverged or t.schema else ""
        out.append(
            f'<details id="input-{_slug(t.name)}" class="input"{is_open}><summary>input {_e(t.name)}: '
            f'<span class="status-{_e(t.status)}">{_e(t.status)}</span></summary>{_table_body(t)}</details>'
        )
    for s in data.stages:
        first = s.name == data.first_diverging_stage
        mark = " ← first to diverge" if first else ""
        ran = stage_run_text(s)
        mark = f" ({ran}){mark}" if ran else mark
        changes = stage_lines(s)
        is_open = " open" if first or changes else ""
        cls = "stage first-diverging" if first else "stage"
        listed = "".join(f"<li>{_e(line)}</li>" for line in changes)
        body = f'<ul class="stage-changes">{listed}</ul>' if listed else ""
        if s.elements:
            body += f'<p class="status-{_e(s.table.status)}">{_e(table_summary(s.table))}</p>'
        for table, cells in stage_tables(s):
            heading = f'<h4 id="element-{_slug(table.name)}">{_e(table.name)}</h4>' if s.elements else ""
            shown = f'<p class="status-{_e(table.status)}">{_e(table_summary(table))}</p>'
            body += heading + (_table_body(table) if cells else shown)
        out.append(
            f'<details id="stage-{_slug(s.name)}" class="{cls}"{is_open}><summary>stage {s.index} {_e(s.name)}: '
            f'<span class="status-{_e(s.table.status)}">{_e(s.table.status)}</span>{_e(mark)}</summary>'
            f"{body}</details>"
        )
    out.append("</section>")
    return "".join(out)


def _hunk_rows(file: CodeFile) -> str:
    """A code-review view of one file's hunks: a's and b's line numbers, then the line."""
    rows = []
    for hunk in file.hunks:
        rows.append(f'<tr class="hunk"><td class="ln"></td><td class="ln"></td><td>{_e(hunk.header)}</td></tr>')
        old, new = hunk.old_start, hunk.new_start
        for line in hunk.lines:
            mark = line[:1]
            if mark == "+":
                cls, left, right, new = "add", "", str(new), new + 1
            elif mark == "-":
                cls, left, right, old = "del", str(old), "", old + 1
            elif mark == " ":
                cls, left, right, old, new = "ctx", str(old), str(new), old + 1, new + 1
            else:
                cls, left, right = "ctx", "", ""
            rows.append(
                f'<tr class="{cls}"><td class="ln">{left}</td><td class="ln">{right}</td><td>{_e(line)}</td></tr>'
            )
    return f'<table class="hunks">{"".join(rows)}</table>' if rows else ""


def _code(diff: SnapshotDiff) -> str:
    code = diff.code
    if code is None or not (code.files or code.dirty or code.untracked):
        return ""
    out = [f'<section id="code"><h2>{_e(code_heading(code))}</h2>']
    for file in code.files:
        out.append(
            f'<div class="code-file" id="code-{_slug(file.path)}"><h3>'
            f"{_e(code_file_line(file, diff.data.first_diverging_stage))}</h3>{_hunk_rows(file)}</div>"
        )
    extra = code_side_lines(code)
    if extra:
        out.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in extra) + "</ul>")
    out.append("</section>")
    return "".join(out)


def render_html(diff: SnapshotDiff) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    title = f"envsnap diff: {diff.verdict}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="envsnap diff, schema {DIFF_SCHEMA_VERSION}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + _verdict(diff)
        + _suspects(diff)
        + _environment(diff)
        + _code(diff)
        + _data(diff)
        + "</body></html>\n"
    )
