"""What :func:`envsnap.shrink.shrink` returns, and the error it raises when a snapshot cannot be shrunk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envsnap.errors import EnvsnapError

__all__ = ["ShrinkError", "ShrinkReport"]


class ShrinkError(EnvsnapError, ValueError):
    """The snapshot cannot be shrunk as asked (no recorded failure, no inputs, an unknown stage)."""


@dataclass(frozen=True)
class ShrinkReport:
    """What shrink found: ``status`` shrunk | out-of-replays (best so far written) | not-reproduced."""

    snapshot: str
    against: str | None
    stage: str | None
    status: str
    message: str
    rows_in: int
    rows_kept: int
    replays: int
    kept: dict[str, list[int]] = field(default_factory=dict)
    output: str | None = None
    steps: tuple[dict[str, Any], ...] = ()

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "not-reproduced" else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``envsnap shrink --json``)."""
        return {
            "snapshot": self.snapshot,
            "against": self.against,
            "stage": self.stage,
            "status": self.status,
            "message": self.message,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "replays": self.replays,
            "kept": self.kept,
            "output": self.output,
            "steps": list(self.steps),
        }

    def render(self) -> str:
        """The terminal form."""
        lines = [f"shrink {self.snapshot}: {self.status}", f"  {self.message}"]
        for name, rows in sorted(self.kept.items()):
            shown = ", ".join(map(str, rows[:20])) + (" …" if len(rows) > 20 else "")
            lines.append(f"  input {name}: kept row(s) {shown}")
        if self.output:
            lines.append(f"wrote {self.output}")
        return "\n".join(lines) + "\n"
