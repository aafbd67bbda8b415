"""Suspects inside the pipeline itself: a stage param that changed, a stage's fitted state that changed.

A param (``threshold`` of stage ``score``) or a fitted state (the ``mean_``/``scale_`` of the scaler a
step applied, the feature order it was fitted on) is a change made to the stage, not to its runtime:
when that stage is the first whose output diverges, or runs before it, the change explains the divergence
outright and ranks at the top, with input schema changes. A change in a stage that runs after the first
diverging one cannot explain it and ranks low.
"""

from __future__ import annotations

from collections.abc import Iterator

from envsnap.diff.model import DataDiff, ScoreTerm, StageChange, StageDiff, Suspect
from envsnap.diff.render.phrasing import stage_change_text

__all__ = ["stage_suspects"]

PARAM_BASE = 9.0
FITTED_BASE = 8.0
#: The stage that changed is the first whose output diverges.
AT_DIVERGING = 12.0
#: The stage that changed runs before the first diverging one (its output may not show the change).
BEFORE_DIVERGING = 10.0
#: The stage that changed runs after the first diverging one: it cannot explain the divergence.
AFTER_DIVERGING = -6.0
#: Fitted attributes named in one reason; the rest are counted (``--json`` holds them all).
MAX_NAMED = 4


def _where(stage: StageDiff, data: DataDiff) -> tuple[float, str, str]:
    """(points, term, reason part) for where ``stage`` runs relative to the first diverging stage."""
    first = data.first_diverging_stage
    if first is None:
        if data.changed:
            return 0.0, "", ""
        return 0.0, "", "every stage output matches"
    order = [s.name for s in data.stages]
    if stage.name == first:
        return AT_DIVERGING, "the first diverging stage", f"stage `{first}` is the first to diverge"
    if stage.name in order and order.index(stage.name) < order.index(first):
        return BEFORE_DIVERGING, "runs before the first diverging stage", f"runs before `{first}`, the first to diverge"
    return AFTER_DIVERGING, "runs after the first diverging stage", f"runs after `{first}`, the first to diverge"


def _suspect(kind: str, subject: str, parts: list[str], terms: list[ScoreTerm], change: StageChange) -> Suspect:
    terms = [t for t in terms if t.points]
    evidence = "read" if any(t.term == "the first diverging stage" for t in terms) else "present"
    score = sum(t.points for t in terms)
    return Suspect(0, score, kind, subject, "; ".join(p for p in parts if p), change, evidence, tuple(terms))


def _params(stage: StageDiff, data: DataDiff) -> Iterator[Suspect]:
    points, term, where = _where(stage, data)
    for change in stage.params:
        terms = [ScoreTerm("prior: stage param", PARAM_BASE), ScoreTerm(term, points)]
        parts = [f"param `{change.name}` of stage `{stage.name}`: {stage_change_text(change)}", where]
        yield _suspect("param", f"stage {stage.name} param {change.name}", parts, terms, change)


def _fitted_text(changes: tuple[StageChange, ...]) -> str:
    """The changed attributes, then what happened to the features: "`mean_` (first at [0]: 40 → 52000,
    max abs diff 51960), `scale_` (…) and the feature order (income, age at other positions)"."""
    features = [c for c in changes if c.name.rsplit("/", 1)[-1] == "feature_names_in" and c.change == "changed"]
    rest = [c for c in changes if c not in features]
    named = [f"`{c.name}` ({stage_change_text(c).replace('; ', ', ')})" for c in rest[:MAX_NAMED]]
    if len(rest) > MAX_NAMED:
        named.append(f"{len(rest) - MAX_NAMED} more")
    for change in features:
        step = change.name.rsplit("/", 1)[0] + " " if "/" in change.name else ""
        note = change.note or ""
        if note.startswith("feature order changed: "):
            named.append(f"the {step}feature order ({note.removeprefix('feature order changed: ')})")
        else:
            named.append(f"the {step}{note.replace('; ', ', ') or 'features'}")
    if len(named) == 1:
        return named[0]
    return ", ".join(named[:-1]) + " and " + named[-1]


def _fitted(stage: StageDiff, data: DataDiff) -> Iterator[Suspect]:
    if not stage.fitted:
        return
    points, term, where = _where(stage, data)
    terms = [ScoreTerm("prior: fitted state", FITTED_BASE), ScoreTerm(term, points)]
    parts = [f"fitted state of stage `{stage.name}` changed: {_fitted_text(stage.fitted)}", where]
    yield _suspect("fitted", f"stage {stage.name} fitted state", parts, terms, stage.fitted[0])


def stage_suspects(data: DataDiff) -> list[Suspect]:
    """A suspect per changed stage param and one per stage whose fitted state changed (unranked)."""
    out: list[Suspect] = []
    for stage in data.stages:
        out.extend(_params(stage, data))
        out.extend(_fitted(stage, data))
    return out
