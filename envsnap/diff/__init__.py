"""Diff two snapshots: pure differs per section, a streaming data diff, suspect ranking; ``render/``
turns the result into text, JSON, Markdown or HTML."""
