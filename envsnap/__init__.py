"""envsnap: capture, replay, diff and bisect the runtime of an ML pipeline run.

Public API (loaded lazily, on first use, so that ``import envsnap`` stays cheap)::

    snap = envsnap.load("run.envsnap")         # open and verify-on-read an existing snapshot
    snap.section("packages")                   # parsed members by section name

    with envsnap.on_failure("snapshots/"):     # a snapshot when an exception escapes
        run_batch()

The verbs live in their packages, each a function of the same name as its package::

    from envsnap.capture import capture        # capture(...) -> Snapshot
    from envsnap.diff import diff              # diff(a, b) -> SnapshotDiff
    from envsnap.replay import replay          # replay(snap, ...) -> ReplayReport
    from envsnap.bisect import bisect          # bisect(good, bad, ...) -> BisectReport
    from envsnap.check import check            # check(baseline, ...) -> CheckReport
    from envsnap.shrink import shrink          # shrink(snap, ...) -> ShrinkReport

``envsnap.capture``, ``envsnap.diff`` and the others are those packages, never the functions: a package
attribute named like its submodule is rebound to the submodule the day that submodule is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from envsnap._version import __version__
from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.capture.failure import on_failure
    from envsnap.pipeline.model import Pipeline
    from envsnap.pipeline.runner import run_pipeline
    from envsnap.snapshot.model import Snapshot
    from envsnap.snapshot.reader import open_snapshot as load

__all__ = [
    "EnvsnapError",
    "Pipeline",
    "Snapshot",
    "__version__",
    "load",
    "on_failure",
    "run_pipeline",
]

#: Public name -> (module, attribute), imported on first access.
_LAZY = {
    "load": ("envsnap.snapshot.reader", "open_snapshot"),
    "Snapshot": ("envsnap.snapshot.model", "Snapshot"),
    "Pipeline": ("envsnap.pipeline.model", "Pipeline"),
    "run_pipeline": ("envsnap.pipeline.runner", "run_pipeline"),
    "on_failure": ("envsnap.capture.failure", "on_failure"),
}
#: Subpackages reachable as attributes without their own import (``envsnap.diff.diff(a, b)``).
_SUBPACKAGES = frozenset({"bisect", "capture", "check", "diff", "pipeline", "replay", "shrink", "snapshot"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _SUBPACKAGES:
        # import_module binds the submodule as this package's attribute, so this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'envsnap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBPACKAGES})
