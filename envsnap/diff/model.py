"""The diff's result types: frozen dataclasses, produced by the pure differs and read by the renderers.

``SnapshotDiff`` is the whole answer to "what changed between A and B": environment sections, data
(inputs and stage intermediates, with the first diverging stage) and the ranked suspects. Renderers
(``envsnap.diff.render``) never compute; differs never format. ``to_dict()`` gives the JSON form whose
schema is versioned by ``DIFF_SCHEMA_VERSION`` (docs/diff-json.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DIFF_SCHEMA_VERSION",
    "Change",
    "CodeDiff",
    "CodeFile",
    "CodeHunk",
    "ColumnDiff",
    "DataDiff",
    "EnvDiff",
    "PackageDelta",
    "SchemaChange",
    "ScoreTerm",
    "SectionDiff",
    "SnapshotDiff",
    "SnapshotRef",
    "StageChange",
    "StageDiff",
    "StatsShift",
    "Suspect",
    "TableDiff",
]

DIFF_SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class SnapshotRef:
    """Which snapshot a side of the diff is: path, id, label, creation time, fingerprint, format minor."""

    path: str
    id: str
    label: str | None
    created_at: str | None
    fingerprint: str
    format_minor: int


# --- environment --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference in an environment section.

    ``kind`` is added | removed | changed. ``key`` names the thing within the section (``OMP_NUM_THREADS``,
    ``blas:openblas``, ``glibc``). ``before``/``after`` are JSON-able (None when absent). ``redacted`` is
    True for an env var whose value was not kept: then before/after are None and only ``kind`` and
    ``value_changed`` say anything. ``note`` is a short human explanation when the raw values are not
    self-explanatory.
    """

    section: str
    key: str
    kind: str
    before: Any = None
    after: Any = None
    redacted: bool = False
    value_changed: bool | None = None
    note: str | None = None


@dataclass(frozen=True)
class PackageDelta:
    """A distribution added, removed, upgraded or downgraded (``change``), with the size of the step.

    ``level`` is major | minor | patch | local | other (PEP 440 comparison of the release segments; local
    = only the ``+local`` part differs; other = a version that is not PEP 440) or None for added/removed.
    ``installer``/``location_kind`` hold (before, after) when they changed, else None.
    """

    name: str
    change: str
    before: str | None
    after: str | None
    level: str | None = None
    installer: tuple[str | None, str | None] | None = None
    location_kind: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class SectionDiff:
    """Differences in one environment section; ``note`` says why a section could not be compared."""

    name: str
    changes: tuple[Change, ...] = ()
    note: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class EnvDiff:
    """Every environment section (python, packages, lock, native, threads, envvars, gpu, container, git,
    system, artifacts, lockfiles, configs, job — the job's outcome) plus the package deltas in detail."""

    sections: tuple[SectionDiff, ...]
    packages: tuple[PackageDelta, ...] = ()
    fingerprint_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.fingerprint_changed or any(s.changed for s in self.sections) or bool(self.packages)

    def section(self, name: str) -> SectionDiff | None:
        return next((s for s in self.sections if s.name == name), None)


# --- data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaChange:
    """A column added, removed, moved, retyped or whose nullability changed (``kind``)."""

    column: str
    kind: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class StatsShift:
    """How a column's distribution moved: numeric (mean, std, quantiles, PSI, KS) or categorical
    (top-value frequency shift, ``psi`` over categories). ``histogram`` holds binned frequencies of both
    sides (``{"edges": [...], "a": [...], "b": [...]}`` or ``{"labels": [...], "a": [...], "b": [...]}``)
    for the HTML plots."""

    column: str
    kind: str
    mean: tuple[float | None, float | None] | None = None
    std: tuple[float | None, float | None] | None = None
    quantiles: dict[str, tuple[Any, Any]] | None = None
    psi: float | None = None
    ks: float | None = None
    frequency_shift: dict[str, tuple[float, float]] | None = None
    histogram: dict[str, Any] | None = None


@dataclass(frozen=True)
class ColumnDiff:
    """One column compared cell by cell: exact, within tolerance, or differing (``status``)."""

    column: str
    status: str
    differing: int = 0
    null_mismatches: int = 0
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None


@dataclass(frozen=True)
class TableDiff:
    """Two tables (an input or a stage intermediate) compared.

    ``status``: identical (fast path: equal hashes) | equal (every cell matches exactly) | within_tolerance
    | different | incomparable (``note`` says why: missing on one side, unreadable). ``rows`` holds the row
    counts; ``sample_rows`` the first K differing rows, each ``{"key" or "position": ..., "a": {...},
    "b": {...}}``.
    """

    name: str
    status: str
    rows: tuple[int | None, int | None] = (None, None)
    schema: tuple[SchemaChange, ...] = ()
    columns: tuple[ColumnDiff, ...] = ()
    stats: tuple[StatsShift, ...] = ()
    sample_rows: tuple[dict[str, Any], ...] = ()
    matched_by: str = "position"
    note: str | None = None

    @property
    def diverged(self) -> bool:
        return self.status in ("different", "incomparable")


@dataclass(frozen=True)
class StageChange:
    """One named thing of a stage that differs between a and b (format minor 4 records).

    ``kind``: ``param`` (a keyword argument from the stage's definition: ``threshold``), ``fitted`` (the
    fitted state of the estimator the stage applied or returned: ``mean_``, ``feature_names_in``,
    ``params.C``, ``scaler/scale_`` in a nested pipeline) or ``key`` (a key of a returned dict:
    ``metrics.auc``). ``change`` is added | removed | changed; ``before``/``after`` are the values when
    small (None when absent or too big to show); ``note`` summarises the difference (``first at [1]:
    2.5 → 2.75; max abs diff 0.25``). ``element`` names the tuple element (``split.1``) the key is in.
    """

    stage: str
    kind: str
    name: str
    change: str
    before: Any = None
    after: Any = None
    note: str | None = None
    element: str | None = None


@dataclass(frozen=True)
class StageDiff:
    """One pipeline stage on both sides: its status on each side and its intermediate compared.

    ``table`` is the stage's output compared; for a stage that returned a tuple it sums up ``elements``
    (one table diff per element, ``NAME.0``, ``NAME.1``). ``kinds`` are the value kinds it returned on each
    side (``pandas``, ``numpy``, ``dict``, ``estimator``, ``none``, ``tuple``, ...; None when the record
    does not say). ``params``, ``fitted`` and ``keys`` name what differs in its params, in its fitted state
    and in the keys of a returned dict.
    """

    index: int
    name: str
    status: tuple[str | None, str | None]
    table: TableDiff
    imports: tuple[str, ...] = ()
    #: Distributions already loaded before the first stage ran (the runner reads inputs with them): any
    #: stage may use them without importing them.
    preloaded: tuple[str, ...] = ()
    kinds: tuple[str | None, str | None] = (None, None)
    elements: tuple[TableDiff, ...] = ()
    params: tuple[StageChange, ...] = ()
    fitted: tuple[StageChange, ...] = ()
    keys: tuple[StageChange, ...] = ()


@dataclass(frozen=True)
class DataDiff:
    """Inputs and stage intermediates; ``first_diverging_stage`` is the first stage whose output differs."""

    inputs: tuple[TableDiff, ...] = ()
    stages: tuple[StageDiff, ...] = ()
    first_diverging_stage: str | None = None
    note: str | None = None

    @property
    def changed(self) -> bool:
        return any(t.diverged or t.schema for t in self.inputs) or any(s.table.diverged for s in self.stages)


# --- code -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeHunk:
    """One unified-diff hunk: ``header`` (``@@ -14,7 +14,7 @@``) and its lines, each prefixed ``' '``/``-``/``+``."""

    header: str
    old_start: int
    new_start: int
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeFile:
    """One project source file that differs between a and b (:mod:`envsnap.diff.code_map`).

    ``status``: modified | added | removed | renamed (``old_path`` is a's name). ``stages``: the stages that
    imported it (either side, in pipeline order); ``first_diverging``: the first diverging stage is one of
    them. ``line``/``snippet``: the first changed line (b's number; a's for a pure removal) and its text.
    ``source`` says where the hunks came from: stored (the snapshots' text), clone (the local git clone at
    both commits) or hashes (neither: only that it changed; ``note`` says why). ``untracked``: git did not
    track it on the side(s) named.
    """

    path: str
    status: str
    old_path: str | None = None
    stages: tuple[str, ...] = ()
    first_diverging: bool = False
    line: int | None = None
    snippet: str | None = None
    hunks: tuple[CodeHunk, ...] = ()
    sha256: tuple[str | None, str | None] = (None, None)
    source: str = "hashes"
    note: str | None = None
    untracked: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeDiff:
    """The project's code, a against b: the files that changed with their hunks, dirty patches by file,
    untracked files the job imported, and why hunks are missing (``notes``)."""

    files: tuple[CodeFile, ...] = ()
    commits: tuple[str | None, str | None] = (None, None)
    dirty: dict[str, tuple[str, ...]] = field(default_factory=dict)
    untracked: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.files)


# --- suspects and the whole -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreTerm:
    """One term of a suspect's score: what it is for (``prior: numeric core``) and its points."""

    term: str
    points: float


@dataclass(frozen=True)
class Suspect:
    """An environment or input difference ranked by how likely it is to explain the divergence.

    ``evidence`` is the strongest fact tying it to the outcome, used to break ties of equal score:
    traceback (the failure's frames run through it) > imported (by the first diverging stage) > loaded
    (before that stage ran) > present. ``terms`` are the points that add up to ``score``.
    """

    rank: int
    score: float
    kind: str
    subject: str
    reason: str
    change: Change | PackageDelta | SchemaChange | StageChange | None = None
    evidence: str = "present"
    terms: tuple[ScoreTerm, ...] = ()


@dataclass(frozen=True)
class SnapshotDiff:
    """The whole comparison of snapshot ``a`` (the good/old one) with ``b`` (the bad/new one)."""

    a: SnapshotRef
    b: SnapshotRef
    env: EnvDiff
    data: DataDiff
    suspects: tuple[Suspect, ...] = ()
    notes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    #: The project's code compared (minor 3 code maps, else the local clone); None when not compared.
    code: CodeDiff | None = None

    @property
    def job_outcome(self) -> str | None:
        """How the two jobs ended, when they ended differently ("the job fails in b: TypeError at …")."""
        job = self.env.section("job")
        outcome = next((c for c in job.changes if c.key == "outcome"), None) if job is not None else None
        return outcome.note if outcome is not None else None

    @property
    def verdict(self) -> str:
        """One line: where the outputs first diverged and the top suspect."""
        parts = []
        if self.data.first_diverging_stage:
            parts.append(f"outputs first diverge at stage {self.data.first_diverging_stage}")
        elif self.data.changed:
            parts.append("inputs differ")
        elif self.data.stages:
            parts.append("every stage output matches")
        if self.job_outcome:
            parts.append(self.job_outcome)
        if self.suspects:
            parts.append(f"top suspect: {self.suspects[0].subject} ({self.suspects[0].reason})")
        elif not self.env.changed:
            parts.append("no environment difference")
        return "; ".join(parts) or "no difference"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``envsnap diff --json``), versioned by ``schema_version``."""
        out: dict[str, Any] = {"schema_version": DIFF_SCHEMA_VERSION, "verdict": self.verdict}
        out.update(_plain(self))
        return out
