"""``envsnap.bisect``: find the environment change that flipped a pipeline's output.

The *delta* between a good and a bad snapshot is every package added, removed or re-versioned
(``env/packages.json``), every environment and thread setting whose value changed (``env/envvars.json``
values kept by the redaction policy, ``env/threads.json`` ``configured``), and Python itself. Subsets of it
are applied to the GOOD runtime and replayed on GOOD's recorded inputs (:func:`envsnap.replay.replay`,
``with_packages``/``set_env``); the oracle calls a subset *bad* when the replay diverges from GOOD's
recorded intermediates (with ``stage``: when that stage, rerun from GOOD's recorded input to it, diverges).
Delta debugging (ddmin, Zeller & Hildebrandt 2002) narrows the delta to a 1-minimal culprit set.

- Packages that cannot be installed apart move as one unit: the captured ``requires`` metadata says when
  the new version of A needs the new version of B (or when the old A refuses the new B).
- A removed package or variable is applied by replaying a copy of GOOD without it (``replay`` has no
  ``--without``); every other subset is exactly ``envsnap replay GOOD --with ... --set-env ...``.
- Python cannot be swapped under GOOD's packages: when it changed it is an indivisible last step, reported,
  never guessed at. Redacted variables and packages no index serves are listed as not applicable.
- A subset whose packages cannot be installed (no wheel for the target, a failed install) is
  *unresolved*, not bad; any other replay failure stops the bisection with its reason.
- Every step reuses the replay runtime cached by its image key; outcomes are memoized per subset.

The package: :mod:`~envsnap.bisect.delta` (the delta and what applying a subset means for replay),
:mod:`~envsnap.bisect.ddmin` (the search, shared with :mod:`envsnap.shrink`), :mod:`~envsnap.bisect.run`
(the replays), :mod:`~envsnap.bisect.report` (what :func:`bisect` returns).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from envsnap.bisect.ddmin import BAD, GOOD, UNRESOLVED, Progress
from envsnap.bisect.delta import (
    BisectError,
    Change,
    Delta,
    extract_delta,
    group_coupled,
    recorded_differences,
    replay_arguments,
    repro_command,
    without,
)
from envsnap.bisect.report import STATUS_EXIT, BisectReport, BisectStep

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "BAD",
    "GOOD",
    "STATUS_EXIT",
    "UNRESOLVED",
    "BisectError",
    "BisectReport",
    "BisectStep",
    "Change",
    "Delta",
    "bisect",
    "extract_delta",
    "group_coupled",
    "recorded_differences",
    "replay_arguments",
    "replay_bound",
    "repro_command",
    "without",
]

DEFAULT_MAX_REPLAYS = 64


# -- the driver ------------------------------------------------------------------------------------------


def _quiet(_kind: str, _message: str) -> None:
    return None


def bisect(
    good: Snapshot | str | os.PathLike[str],
    bad: Snapshot | str | os.PathLike[str],
    *,
    engine: str = "docker",
    stage: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    progress: Progress | None = None,
    base_image: str | None = None,
    source: str | None = None,
    repo: str | None = None,
    timeout: float | None = None,
) -> BisectReport:
    """Narrow the environment delta from ``good`` to ``bad`` down to the change that flips the output.

    ``progress(kind, message)`` sees ``step`` (a replay starts), ``result`` (its outcome) and ``replay``
    (the replay's own progress). Raises :class:`~envsnap.errors.EnvsnapError` subclasses when a replay
    fails for infrastructure reasons (the message says which step); install failures of a subset are
    recorded as unresolved steps instead.
    """
    from envsnap.bisect.run import run_bisection

    if max_replays < 2:
        raise BisectError(f"--max-replays {max_replays}: bisect needs at least 2 (GOOD alone, then the full delta)")
    return run_bisection(
        good,
        bad,
        engine=engine,
        stage=stage,
        rtol=rtol,
        atol=atol,
        max_replays=max_replays,
        progress=progress or _quiet,
        base_image=base_image,
        source=source,
        repo=repo,
        timeout=timeout,
    )


def replay_bound(units: int) -> int:
    """The replays one culprit among ``units`` costs at most: GOOD, the full delta, then 2⌈log2 n⌉."""
    return 2 * math.ceil(math.log2(units)) + 2 if units > 1 else 2
