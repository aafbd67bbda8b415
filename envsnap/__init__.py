"""envsnap: capture, replay, diff and bisect the runtime of an ML pipeline run.

Public API (imported lazily so that ``import envsnap`` stays cheap)::

    snap = envsnap.capture("run.envsnap")      # capture this interpreter's runtime
    snap = envsnap.load("run.envsnap")         # open and verify-on-read an existing snapshot
    snap.section("packages")                   # parsed members by section name
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The subpackages envsnap.capture, envsnap.diff and envsnap.replay would otherwise shadow the functions of
# the same names once imported; binding the functions here, after the subpackages are loaded, keeps
# `envsnap.capture(...)`, `envsnap.diff(...)` and `envsnap.replay(...)` callable. Probes and differs load
# lazily, on first use. (`envsnap.check` loads lazily too: its module forwards calls to the function, so it
# stays callable once imported.)
import envsnap.diff as _diff_package  # the light package only: the differs load on the first diff()
from envsnap._version import __version__
from envsnap.capture import capture
from envsnap.errors import EnvsnapError
from envsnap.replay import replay

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from envsnap.bisect import bisect
    from envsnap.check import check
    from envsnap.diff.model import SnapshotDiff
    from envsnap.failure import on_failure
    from envsnap.pipeline.model import Pipeline
    from envsnap.pipeline.runner import run_pipeline
    from envsnap.snapshot.model import Snapshot
    from envsnap.snapshot.reader import open_snapshot as load

__all__ = [
    "EnvsnapError",
    "Pipeline",
    "Snapshot",
    "__version__",
    "bisect",
    "capture",
    "check",
    "diff",
    "load",
    "on_failure",
    "replay",
    "run_pipeline",
]


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

    See :func:`envsnap.diff.compare.diff`; the diff model and differs load on the first call, so that
    ``import envsnap`` (and every ``envsnap`` command) does not pay for them.
    """
    from envsnap.diff.compare import diff as _diff

    return _diff(a, b, rtol=rtol, atol=atol, keys=keys, max_rows=max_rows)


del _diff_package


def __getattr__(name: str) -> Any:
    if name == "load":
        from envsnap.snapshot.reader import open_snapshot

        return open_snapshot
    if name == "Snapshot":
        from envsnap.snapshot.model import Snapshot

        return Snapshot
    if name == "Pipeline":
        from envsnap.pipeline.model import Pipeline

        return Pipeline
    if name == "run_pipeline":
        from envsnap.pipeline.runner import run_pipeline

        return run_pipeline
    if name == "check":
        from envsnap.check import check

        return check
    if name == "bisect":
        from envsnap.bisect import bisect

        return bisect
    if name == "on_failure":
        from envsnap.failure import on_failure

        return on_failure
    raise AttributeError(f"module 'envsnap' has no attribute {name!r}")
