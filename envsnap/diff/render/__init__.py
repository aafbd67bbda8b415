"""Renderers: pure functions from a :class:`~envsnap.diff.model.SnapshotDiff` to text, JSON, Markdown or HTML.

They never compute anything about the snapshots. Each format lives in its own module (``text``, ``json``,
``markdown``, ``html``), with the phrasing they share in :mod:`envsnap.diff.render.phrasing`; this package
only picks the module for a format name, importing it on first use (the text view pulls in rich).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.diff.model import SnapshotDiff

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "markdown", "html")


def render(diff: SnapshotDiff, fmt: str, **options: Any) -> str:
    """Render ``diff`` in ``fmt`` (text | json | markdown | html)."""
    if fmt == "text":
        from envsnap.diff.render.text import render_text

        return render_text(diff, **options)
    if fmt == "json":
        from envsnap.diff.render.json import render_json

        return render_json(diff)
    if fmt == "markdown":
        from envsnap.diff.render.markdown import render_markdown

        return render_markdown(diff)
    if fmt == "html":
        from envsnap.diff.render.html import render_html

        return render_html(diff)
    raise ValueError(f"unknown diff format {fmt!r}; choose one of {', '.join(FORMATS)}")
