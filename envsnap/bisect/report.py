"""What a bisection returns: every replay it made (:class:`BisectStep`) and the outcome (:class:`BisectReport`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from envsnap.bisect.delta import Change, Delta

__all__ = ["STATUS_EXIT", "BisectReport", "BisectStep"]


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
