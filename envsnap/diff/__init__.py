"""Diff two snapshots: pure differs per section, a streaming data diff, suspect ranking; ``render/``
turns the result into text, JSON, Markdown or HTML.

    from envsnap.diff import diff
    result = diff("good.envsnap", "bad.envsnap")   # -> SnapshotDiff

Nothing heavy at import: the diff model and the differs load on the first :func:`diff` call, so that
``import envsnap.diff`` (and every ``envsnap`` command) does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from envsnap.diff.model import SnapshotDiff
    from envsnap.snapshot.model import Snapshot

__all__ = ["diff"]


def diff(
    a: Snapshot | str | os.PathLike[str],
    b: Snapshot | str | os.PathLike[str],
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    keys: Sequence[str] = (),
    max_rows: int = 10,
) -> SnapshotDiff:
    """Compare snapshot ``a`` (the good/old run) with ``b`` (the bad/new run): environment, data, suspects.

    ``a``/``b`` are opened snapshots or paths (directory or ``*.envsnap``). ``rtol``/``atol`` are the
    cell tolerances of the data diff, ``keys`` the columns that match rows (default: by position) and
    ``max_rows`` how many differing rows each table shows. See :func:`envsnap.diff.compare.diff`.
    """
    from envsnap.diff.compare import diff as compare_snapshots

    return compare_snapshots(a, b, rtol=rtol, atol=atol, keys=keys, max_rows=max_rows)
