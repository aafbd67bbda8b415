"""What :func:`envsnap.check.check` returns: each stage against the baseline (:class:`StageCheck`) and the
whole verdict with the environment diff (:class:`CheckReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envsnap.check.tolerance import Tolerance
from envsnap.diff.model import SnapshotDiff, SnapshotRef, TableDiff

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["CHECK_SCHEMA_VERSION", "PASSING", "CheckReport", "StageCheck"]

CHECK_SCHEMA_VERSION = 1
#: Stage statuses that pass the gate.
PASSING = ("identical", "equal", "within_tolerance", "not-compared")


@dataclass(frozen=True)
class StageCheck:
    """One stage: ``status`` identical | equal | within_tolerance | regressed | failed | not-run |
    not-compared (ran, but ``--stage`` left it out); ``table`` is the compare, ``error`` a failure's message."""

    index: int
    name: str
    status: str
    tolerance: Tolerance
    table: TableDiff | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        from envsnap.diff.model import _plain

        return {
            "index": self.index,
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "tolerance": self.tolerance.to_dict(),
            "error": self.error,
            "table": _plain(self.table) if self.table is not None else None,
        }


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check`: each stage against the baseline, the environment diff and suspects."""

    baseline: SnapshotRef
    current: SnapshotRef
    pipeline: str
    config: str | None
    stages: tuple[StageCheck, ...]
    diff: SnapshotDiff
    fail_on_env: bool = False
    #: The current run's snapshot (in memory unless ``output`` was given).
    snapshot: Snapshot | None = field(default=None, compare=False, repr=False)

    @property
    def first_diverging_stage(self) -> str | None:
        return next((s.name for s in self.stages if not s.passed), None)

    @property
    def regressed(self) -> bool:
        return self.first_diverging_stage is not None

    @property
    def fingerprint_changed(self) -> bool:
        return self.diff.env.fingerprint_changed

    @property
    def env_failed(self) -> bool:
        """``fail_on_env`` was asked and the runtime fingerprint changed."""
        return self.fail_on_env and self.fingerprint_changed

    @property
    def passed(self) -> bool:
        return not self.regressed and not self.env_failed

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed (a regression, or an environment change under ``fail_on_env``)."""
        return 0 if self.passed else 1

    @property
    def package_changes(self) -> list[str]:
        """``numpy 1.26.4 -> 2.2.6`` for each distribution that differs from the baseline's."""
        return [f"{d.name} {d.before or '(none)'} -> {d.after or '(removed)'}" for d in self.diff.env.packages]

    @property
    def config_changes(self) -> list[str]:
        """``conf/app.yaml:model.threshold: 0.5 → 0.7`` for each config key that differs from the baseline's."""
        from envsnap.diff.render.phrasing import change_line

        section = self.diff.env.section("configs")
        return [change_line(c) for c in section.changes] if section is not None else []

    @property
    def verdict(self) -> str:
        """One line: passed or where it regressed, and the top suspect."""
        stage = next((s for s in self.stages if not s.passed), None)
        if stage is not None:
            what = {
                "failed": f"failed ({stage.error})",
                "not-run": "did not run",
                "regressed": "differs from the baseline beyond tolerance",
            }.get(stage.status, stage.status)
            head = f"regression: stage {stage.name} {what}"
        elif self.env_failed:
            head = "failed: the runtime fingerprint changed (--fail-on-env)"
        else:
            compared = sum(1 for s in self.stages if s.status != "not-compared")
            head = f"passed: {compared} stage{'s' if compared != 1 else ''} within tolerance"
        if not self.passed and self.diff.suspects:
            top = self.diff.suspects[0]
            head += f"; top suspect: {top.subject} ({top.reason})"
        elif self.passed and (self.package_changes or self.fingerprint_changed):
            changes = self.package_changes
            shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
            head += f"; the environment changed ({shown or 'runtime fingerprint'}), outputs did not"
        return head

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``envsnap check --json`` (``schema_version`` versions it; docs/ci.md)."""
        from envsnap.diff.model import _plain

        return {
            "schema_version": CHECK_SCHEMA_VERSION,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "pipeline": self.pipeline,
            "config": self.config,
            "baseline": _plain(self.baseline),
            "current": _plain(self.current),
            "first_diverging_stage": self.first_diverging_stage,
            "fail_on_env": self.fail_on_env,
            "environment": {
                "changed": self.diff.env.changed,
                "fingerprint_changed": self.fingerprint_changed,
                "packages": _plain(self.diff.env.packages),
            },
            "stages": [s.to_dict() for s in self.stages],
            "suspects": _plain(self.diff.suspects[:10]),
            "notes": list(self.diff.notes),
            "diff": self.diff.to_dict(),
        }
