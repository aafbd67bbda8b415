"""Delta debugging (ddmin, Zeller & Hildebrandt 2002) and the memoizing oracle it asks.

Shared by :mod:`envsnap.bisect` (units of the environment delta) and :mod:`envsnap.shrink` (input rows):
both search for a 1-minimal subset that an oracle still calls *bad*, each oracle call being a replay, so
the oracle is memoized per subset and bounded by a replay budget.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["BAD", "GOOD", "UNRESOLVED", "MemoOracle", "OutOfReplaysError", "Progress", "Trial", "ddmin"]

U = TypeVar("U", bound=Hashable)
#: ``progress(kind, message)``: how a search reports its steps (the CLI draws them).
Progress = Callable[[str, str], None]
#: Outcomes of one oracle call.
BAD, GOOD, UNRESOLVED = "bad", "good", "unresolved"


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
