"""The bisection itself: baseline replays, then ddmin over the delta, each step a replay of GOOD.

Part of :mod:`envsnap.bisect`, beside the delta (:mod:`~envsnap.bisect.delta`), the search
(:mod:`~envsnap.bisect.ddmin`) and the report types (:mod:`~envsnap.bisect.report`).

Order of work, each step stopping early when it settles the question:

1. GOOD and BAD recorded outputs compared (no replay): the same output means nothing to bisect;
2. the delta: empty while the outputs differ means not an environment change;
3. GOOD replayed alone: it must reproduce its own recording, or no oracle can be trusted;
4. the whole applicable delta applied to GOOD: it must flip the output, or what is left (Python, redacted
   variables, packages no index serves, data, code) is reported instead;
5. ddmin over the delta's units.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from envsnap.bisect.ddmin import BAD, GOOD, UNRESOLVED, MemoOracle, OutOfReplaysError, Progress, Trial, ddmin
from envsnap.bisect.delta import (
    Change,
    Delta,
    Unit,
    extract_delta,
    recorded_differences,
    replay_arguments,
    repro_command,
    without,
)
from envsnap.bisect.report import BisectReport, BisectStep
from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["BisectStepError", "run_bisection"]


class BisectStepError(EnvsnapError):
    """A replay of the bisection failed for infrastructure reasons; ``steps`` are the steps before it."""

    def __init__(self, message: str, *, cause: EnvsnapError, steps: tuple[BisectStep, ...]) -> None:
        super().__init__(message, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.steps = steps


def _install_failed(exc: EnvsnapError) -> bool:
    """A subset's packages could not be installed: unresolved, not an infrastructure failure."""
    from envsnap.replay.engines.base import InstallError
    from envsnap.replay.wheelhouse import NoDistributionError

    return isinstance(exc, (NoDistributionError, InstallError))


def _flatten(units: tuple[Unit, ...]) -> tuple[Change, ...]:
    return tuple(c for unit in units for c in unit)


def _listing(changes: tuple[Change, ...]) -> str:
    return ", ".join(c.describe() for c in changes) or "nothing"


class _Bisection:
    def __init__(self, good: Snapshot, bad: Snapshot, good_ref: str, bad_ref: str, **options: Any) -> None:
        self.good, self.bad = good, bad
        self.good_ref, self.bad_ref = good_ref, bad_ref
        self.options = options
        self.say: Progress = options.pop("progress")
        self.max_replays: int = options.pop("max_replays")
        self.stage: str | None = options["stage"]
        self.steps: list[BisectStep] = []
        self.phase = "good"
        self.total = 0
        self._copies: dict[frozenset[str], Snapshot] = {}

    # one step ------------------------------------------------------------------------------------------
    def _target(self, removed: list[str], unset: list[str]) -> Snapshot:
        if not removed and not unset:
            return self.good
        key = frozenset([*(f"p:{n}" for n in removed), *(f"e:{n}" for n in unset)])
        if key not in self._copies:
            self._copies[key] = without(self.good, removed, unset)
        return self._copies[key]

    def _run(self, units: tuple[Unit, ...]) -> Trial:
        from envsnap.replay import replay

        changes = _flatten(units)
        index = len(self.steps) + 1
        self.say("step", f"step {index} ({self.phase}): {len(changes)} of {self.total} changes: {_listing(changes)}")
        pins, pairs, removed, unset = replay_arguments(changes)
        started = time.perf_counter()
        try:
            report = replay(
                self._target(removed, unset),
                with_packages=pins,
                set_env=pairs,
                fidelity=False,
                progress=lambda kind, message: self.say("replay", message) if kind == "step" else None,
                **self.options,
            )
        except EnvsnapError as exc:
            if not changes or not _install_failed(exc):
                raise BisectStepError(
                    f"step {index} ({_listing(changes)}): the replay failed: {exc.message}",
                    cause=exc,
                    steps=tuple(self.steps),
                ) from exc
            return Trial(UNRESOLVED, f"cannot be installed: {exc.message}", seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        first = report.first_diverging_stage
        if first is None:
            return Trial(GOOD, "matches GOOD's recording", not report.prepared.built, seconds)
        stage = next(s for s in report.stages if s.name == first)
        why = f": {stage.failure}: {stage.error}" if stage.status == "failed" else ""
        return Trial(BAD, f"{first} {stage.status}{why}"[:300], not report.prepared.built, seconds)

    def _record(self, units: tuple[Any, ...], trial: Trial) -> None:
        changes = _flatten(units)
        step = BisectStep(
            index=len(self.steps) + 1,
            phase=self.phase,
            changes=tuple(c.describe() for c in changes),
            outcome=trial.outcome,
            detail=trial.detail,
            seconds=round(trial.seconds, 3),
            cached=trial.cached,
        )
        self.steps.append(step)
        reuse = "runtime reused" if trial.cached else "runtime built"
        self.say("result", f"step {step.index}: {trial.outcome} ({trial.detail}; {trial.seconds:.1f} s, {reuse})")

    # the whole ------------------------------------------------------------------------------------------
    def _report(self, status: str, message: str, delta: Delta, differing: list[str], **extra: Any) -> BisectReport:
        return BisectReport(
            good=self.good_ref,
            bad=self.bad_ref,
            status=status,
            message=message,
            stage=self.stage,
            delta=delta,
            steps=tuple(self.steps),
            differing_stages=tuple(differing),
            **extra,
        )

    def run(self) -> BisectReport:
        rtol, atol = self.options["rtol"], self.options["atol"]
        differing = recorded_differences(self.good, self.bad, self.stage, rtol, atol)
        delta = extract_delta(self.good, self.bad)
        where = f" at stage {self.stage}" if self.stage else ""
        if not differing:
            return self._report(
                "same-output", f"GOOD and BAD recorded the same output{where}: nothing to bisect", delta, differing
            )
        diff_hint = f"`envsnap diff {self.good_ref} {self.bad_ref}` shows the data and git differences"
        if delta.empty:
            hidden = [c.name for c in delta.not_applicable]
            return self._report(
                "not-environment",
                f"the outputs differ ({', '.join(differing)}) but the environments do not: not an environment "
                f"change; {diff_hint}",
                delta,
                differing,
                notes=(f"redacted variables differ too (values unknown): {', '.join(hidden)}",) if hidden else (),
            )
        self.total = len(delta.changes)
        oracle = MemoOracle(self._run, max_runs=self.max_replays, on_trial=self._record)
        leftovers = ((delta.python,) if delta.python else ()) + delta.not_applicable
        notes = [f"not applicable: {c.describe()} ({c.note})" for c in leftovers]
        try:
            if oracle.trial(()).outcome == BAD:
                return self._report(
                    "good-diverges",
                    f"GOOD does not replay to its own recorded output ({self.steps[-1].detail}); bisect needs a GOOD "
                    f"that reproduces (check `envsnap replay {self.good_ref}`, or loosen --rtol/--atol)",
                    delta,
                    differing,
                    notes=tuple(notes),
                )
            if delta.units:
                self.phase = "full"
                full = oracle.trial(delta.units)
            else:
                full = Trial(GOOD, "nothing applicable")
            if full.outcome == UNRESOLVED:
                return self._report(
                    "unresolved",
                    f"the whole delta cannot be installed on GOOD's runtime ({full.detail})",
                    delta,
                    differing,
                    notes=tuple(notes),
                )
            if full.outcome == GOOD:
                return self._not_reproduced(delta, differing, leftovers, notes, diff_hint)
            self.phase = "ddmin"
            best = [delta.units]
            try:
                units = ddmin(delta.units, oracle, on_reduce=lambda found: best.__setitem__(0, found))
            except OutOfReplaysError:
                culprit = _flatten(best[0])
                return self._report(
                    "out-of-replays",
                    f"the budget of {self.max_replays} replays ran out; the smallest bad set so far has "
                    f"{len(culprit)} change(s): {_listing(culprit)}",
                    delta,
                    differing,
                    culprit=culprit,
                    repro=self._repro(culprit),
                    notes=tuple(notes),
                )
        except OutOfReplaysError:
            return self._report("out-of-replays", f"the budget of {self.max_replays} replays ran out", delta, differing)
        culprit = _flatten(units)
        if delta.python:
            notes.insert(0, f"Python also changed ({delta.python.describe()}) but is not needed to reproduce")
        unresolved = sum(1 for s in self.steps if s.outcome == UNRESOLVED)
        if unresolved:
            notes.append(
                f"{unresolved} step(s) unresolved (could not be installed): the culprit is minimal among the rest"
            )
        return self._report(
            "found",
            f"the culprit ({len(culprit)} of {self.total} changes, {len(self.steps)} replays): {_listing(culprit)}",
            delta,
            differing,
            culprit=culprit,
            repro=self._repro(culprit),
            notes=tuple(notes),
        )

    def _not_reproduced(
        self, delta: Delta, differing: list[str], leftovers: tuple[Change, ...], notes: list[str], diff_hint: str
    ) -> BisectReport:
        applied = "applying every package and setting change to GOOD" if delta.units else "GOOD"
        if leftovers:
            indivisible = " (an indivisible step: replay BAD itself to confirm)" if delta.python else ""
            return self._report(
                "unresolved",
                f"{applied} does not reproduce the difference; what bisect cannot apply remains: "
                f"{_listing(leftovers)}{indivisible}",
                delta,
                differing,
                culprit=leftovers,
                notes=tuple(notes),
            )
        return self._report(
            "not-reproduced",
            f"{applied} does not change its output: the difference is not in what bisect can apply (packages, "
            f"settings); native libraries, the OS, the GPU, the data or the code differ: {diff_hint}",
            delta,
            differing,
            notes=tuple(notes),
        )

    def _repro(self, culprit: tuple[Change, ...]) -> str:
        return repro_command(
            self.good_ref,
            culprit,
            engine=self.options["engine"],
            stage=self.stage,
            base_image=self.options["base_image"],
        )


def run_bisection(
    good: Snapshot | str | os.PathLike[str], bad: Snapshot | str | os.PathLike[str], **options: Any
) -> BisectReport:
    """:func:`envsnap.bisect.bisect` after its option checks."""
    from envsnap.snapshot.model import Snapshot
    from envsnap.snapshot.reader import opened

    with opened(good) as good_snap, opened(bad) as bad_snap:
        refs = [s.path if isinstance(s, Snapshot) else os.fspath(s) for s in (good, bad)]
        return _Bisection(good_snap, bad_snap, refs[0], refs[1], **options).run()
