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
"""

from __future__ import annotations

import math
import os
import sys
import types
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from envsnap.bisect_delta import (
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

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "BAD",
    "GOOD",
    "UNRESOLVED",
    "BisectError",
    "BisectReport",
    "BisectStep",
    "Change",
    "Delta",
    "bisect",
    "ddmin",
    "extract_delta",
    "group_coupled",
    "recorded_differences",
    "replay_arguments",
    "repro_command",
    "without",
]

U = TypeVar("U", bound=Hashable)
Progress = Callable[[str, str], None]
#: Outcomes of one oracle call.
BAD, GOOD, UNRESOLVED = "bad", "good", "unresolved"
DEFAULT_MAX_REPLAYS = 64


# -- delta debugging -----------------------------------------------------------------------------------


def _split(items: Sequence[U], n: int) -> list[tuple[U, ...]]:
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(tuple(items[start:end]))
        start = end
    return [p for p in parts if p]


def ddmin(
    units: Sequence[U],
    test: Callable[[tuple[U, ...]], str],
    *,
    on_reduce: Callable[[tuple[U, ...]], None] | None = None,
) -> tuple[U, ...]:
    """Zeller's ddmin: a 1-minimal subset of ``units`` for which ``test`` says ``bad``.

    ``units`` as a whole must be bad (the caller checks); ``test`` returns ``bad``, ``good`` or
    ``unresolved`` (treated as not bad: nothing is reduced on it). Subsets are tried before complements,
    and complements only when they differ from the subsets (more than two parts), so one culprit among n
    units costs at most 2⌈log2 n⌉ tests. ``on_reduce`` sees every smaller bad set as it is found.
    """
    current = tuple(units)
    n = 2
    while len(current) >= 2:
        parts = _split(current, n)
        reduced: tuple[U, ...] | None = next((p for p in parts if test(p) == BAD), None)
        next_n = 2
        if reduced is None and len(parts) > 2:
            for part in parts:
                complement = tuple(u for u in current if u not in part)
                if test(complement) == BAD:
                    reduced, next_n = complement, max(len(parts) - 1, 2)
                    break
        if reduced is not None:
            current, n = reduced, next_n
            if on_reduce is not None:
                on_reduce(current)
            continue
        if n >= len(current):
            break
        n = min(len(current), 2 * n)
    return current


class OutOfReplaysError(Exception):
    """Raised inside :class:`MemoOracle` when the replay budget is spent (caught by the driver)."""


@dataclass(frozen=True)
class Trial:
    """What one oracle run found: ``outcome`` bad | good | unresolved, and whether the runtime was reused."""

    outcome: str
    detail: str = ""
    cached: bool = False
    seconds: float = 0.0


class MemoOracle:
    """Memoizes ``run`` per subset (order does not matter) and enforces ``max_runs``."""

    def __init__(
        self,
        run: Callable[[tuple[Any, ...]], Trial],
        *,
        max_runs: int | None = None,
        on_trial: Callable[[tuple[Any, ...], Trial], None] | None = None,
    ) -> None:
        self.run = run
        self.max_runs = max_runs
        self.on_trial = on_trial
        self.memo: dict[frozenset[Any], Trial] = {}
        self.runs = 0

    def trial(self, subset: tuple[Any, ...]) -> Trial:
        """The trial for ``subset``, run at most once."""
        key = frozenset(subset)
        if key in self.memo:
            return self.memo[key]
        if self.max_runs is not None and self.runs >= self.max_runs:
            raise OutOfReplaysError
        self.runs += 1
        result = self.run(subset)
        self.memo[key] = result
        if self.on_trial is not None:
            self.on_trial(subset, result)
        return result

    def __call__(self, subset: tuple[Any, ...]) -> str:
        return self.trial(subset).outcome


# -- the report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BisectStep:
    """One replay of the bisection: the changes applied to GOOD, the outcome, and what it cost."""

    index: int
    phase: str
    changes: tuple[str, ...]
    outcome: str
    detail: str
    seconds: float
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "changes": list(self.changes)}


#: status -> exit code of ``envsnap bisect``.
STATUS_EXIT = {
    "found": 0,
    "same-output": 0,
    "not-environment": 1,
    "not-reproduced": 1,
    "good-diverges": 1,
    "unresolved": 1,
    "out-of-replays": 1,
}


@dataclass(frozen=True)
class BisectReport:
    """The outcome: ``status`` (see :data:`STATUS_EXIT`), the minimal culprit set, every step, a repro command."""

    good: str
    bad: str
    status: str
    message: str
    stage: str | None
    delta: Delta
    culprit: tuple[Change, ...] = ()
    steps: tuple[BisectStep, ...] = ()
    differing_stages: tuple[str, ...] = ()
    repro: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def replays(self) -> int:
        return len(self.steps)

    @property
    def exit_code(self) -> int:
        return STATUS_EXIT[self.status]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``envsnap bisect --json``)."""
        return {
            "good": self.good,
            "bad": self.bad,
            "status": self.status,
            "message": self.message,
            "stage": self.stage,
            "culprit": [c.to_dict() for c in self.culprit],
            "repro": self.repro,
            "replays": self.replays,
            "steps": [s.to_dict() for s in self.steps],
            "differing_stages": list(self.differing_stages),
            "delta": self.delta.to_dict(),
            "notes": list(self.notes),
        }


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
    from envsnap.bisect_run import run_bisection

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


class _CallableModule(types.ModuleType):
    """``envsnap.bisect`` is this module once imported (a submodule binds to the package attribute), so the
    module forwards calls to :func:`bisect`: ``envsnap.bisect(...)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> BisectReport:
        return bisect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
