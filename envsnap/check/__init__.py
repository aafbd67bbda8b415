"""``envsnap.check``: the CI regression gate. Rerun the pipeline here against a baseline snapshot.

The pipeline is the *current* one (its config file, found as ``envsnap run`` finds it), because a check is
about code, dependency and config changes; its inputs are the baseline's recorded samples
(``data/inputs/NAME.parquet``, every row, in order). The stages run through
:func:`envsnap.pipeline.run_pipeline` in this interpreter or in ``python`` — nothing is rebuilt — so the
current run is a full snapshot of its own. Each stage's intermediate is compared with the baseline's under
the tolerances of :mod:`envsnap.check.tolerance`; the environments are diffed and the suspects ranked as
``envsnap diff`` does.

A check *passes* when every compared stage ran and matched within tolerance; an environment change is
reported but fails only with ``fail_on_env`` (a changed runtime fingerprint). A baseline that cannot serve
(unreadable, no intermediates, stages that no longer match the pipeline's) raises :class:`CheckError`.

The package: :mod:`~envsnap.check.baseline` (reading, rerunning and updating a baseline),
:mod:`~envsnap.check.tolerance` (the ``[check]`` tolerances and the compare under them),
:mod:`~envsnap.check.report` (what :func:`check` returns), :mod:`~envsnap.check.render` (its text,
JSON, JUnit and Markdown forms).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envsnap.check.baseline import (
    PIPELINE,
    CheckError,
    config_file,
    load_pipeline_for,
    recorded_config_files,
    recorded_inputs,
    recorded_stages,
    rerun,
    stage_entries,
    stage_mismatch,
    update_baseline,
)
from envsnap.check.report import CheckReport, StageCheck
from envsnap.check.tolerance import CheckConfig, Tolerance, compare_intermediate, load_check_config
from envsnap.diff.model import DataDiff, SnapshotDiff, StageDiff, TableDiff

if TYPE_CHECKING:
    from envsnap.pipeline.model import Pipeline
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "CheckConfig",
    "CheckError",
    "CheckReport",
    "StageCheck",
    "Tolerance",
    "check",
    "recorded_config_files",
    "recorded_inputs",
    "recorded_stages_of_run",
    "update_baseline",
]


# --- the check --------------------------------------------------------------------------------------------


def _imports(*records: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({d["name"] for rec in records for e in rec for d in e.get("distributions") or []}))


def _preloaded(*snaps: Snapshot) -> tuple[str, ...]:
    names: set[str] = set()
    for snap in snaps:
        runner = (snap.read_json(PIPELINE) if PIPELINE in snap else {}).get("runner") or {}
        names.update(str(n) for n in runner.get("preloaded_distributions") or [])
    return tuple(sorted(names))


def _compare_outputs(
    baseline: Snapshot, current: Snapshot, base: dict[str, Any], cur: dict[str, Any], tolerance: Tolerance,
    max_rows: int,
) -> list[TableDiff]:  # fmt: skip
    """Each output of one stage against the baseline's with the same label (one per tuple element; a dict's or
    an estimator's one-row table too); another kind of value returned is a difference of its own."""
    name = str(base["name"])
    if base.get("value_kind") and cur.get("value_kind") and base["value_kind"] != cur["value_kind"]:
        note = f"returned {cur['value_kind']}, the baseline {base['value_kind']}"
        return [TableDiff(name=name, status="different", note=note)]
    ours, theirs = dict(base["outputs"]), dict(cur["outputs"])
    if not ours and not theirs:  # a stage that returned None, as in the baseline: nothing to compare
        return [TableDiff(name=name, status="equal", note="returned None, as in the baseline")]
    tables = []
    for label in [*ours, *(k for k in theirs if k not in ours)]:
        if label not in ours or label not in theirs:
            where = "the baseline" if label not in ours else "this run"
            tables.append(TableDiff(name=label, status="different", note=f"{label} is missing from {where}"))
            continue
        tables.append(
            compare_intermediate(
                baseline.read_bytes(ours[label]),
                current.read_bytes(theirs[label]),
                name=label,
                tolerance=tolerance,
                max_rows=max_rows,
            )
        )
    return tables


def _compare_stages(
    baseline: Snapshot, current: Snapshot, recorded: list[dict[str, Any]], settings: CheckConfig,
    selected: Sequence[str], max_rows: int,
) -> tuple[list[StageCheck], list[StageDiff]]:  # fmt: skip
    now = {s["name"]: s for s in recorded_stages_of_run(current)}
    preloaded = _preloaded(baseline, current)
    checks: list[StageCheck] = []
    diffs: list[StageDiff] = []
    for base in recorded:
        name = base["name"]
        if name not in now:  # --stage cut the run short after the last selected stage
            continue
        cur = now[name]
        tolerance = settings.tolerance(name)
        error = None
        if selected and name not in selected:
            checks.append(StageCheck(base["index"], name, "not-compared", tolerance))
            continue
        if cur["status"] != "ok":
            failure = (current.read_json(cur["record"]) if cur.get("record") else {}).get("error") or {}
            error = str(failure.get("message") or cur["status"])
            status = "failed" if cur["status"] == "failed" else "not-run"
            tables = [TableDiff(name=name, status="incomparable", note=error if status == "failed" else "did not run")]
        else:
            tables = _compare_outputs(baseline, current, base, cur, tolerance, max_rows)
            status = ""
        # One row per output: a tuple's elements are judged (and named, NAME.0 ...) one by one.
        for table in tables:
            row_status = status or (table.status if not table.diverged else "regressed")
            checks.append(StageCheck(base["index"], table.name, row_status, tolerance, table, error))
            diffs.append(
                StageDiff(
                    index=base["index"],
                    name=table.name,
                    status=(base["status"], cur["status"]),
                    table=table,
                    imports=_imports(base["imports"], cur["imports"]),
                    preloaded=preloaded,
                )
            )
    return checks, diffs


def recorded_stages_of_run(snap: Snapshot) -> list[dict[str, Any]]:
    """The stages of a fresh run (like :func:`recorded_stages`, without requiring intermediates)."""
    return stage_entries(snap)


def check(
    baseline: Snapshot | str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    pipeline: Pipeline | None = None,
    tolerances: CheckConfig | None = None,
    python: str | os.PathLike[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    ignore_added_columns: bool | None = None,
    stages: Sequence[str] = (),
    fail_on_env: bool = False,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    git: bool = True,
    cwd: str | None = None,
    max_rows: int = 10,
    config_files: Sequence[str] = (),
) -> CheckReport:
    """Rerun the current pipeline on ``baseline``'s recorded inputs and compare every stage with it.

    The pipeline is ``pipeline``, or the one declared in ``config`` (default: found from ``cwd`` upwards);
    its ``[check]`` table gives the tolerances unless ``tolerances`` is passed; ``rtol``/``atol``/
    ``ignore_added_columns`` replace its defaults. ``stages`` limits the gate to those stages (the run
    stops after the last of them). ``python`` runs the stages in that interpreter; ``output`` writes the
    current run's snapshot. The config files the baseline recorded are recorded again (else the diff would
    call them removed), with ``config_files`` (paths or globs) beside them. Raises :class:`CheckError` (or
    another :class:`EnvsnapError`) when the baseline or the pipeline cannot serve; a regression is a result,
    not an error.
    """
    from envsnap.diff.compare import _notes, snapshot_ref
    from envsnap.diff.env import diff_env
    from envsnap.diff.suspects import rank_suspects
    from envsnap.pipeline.model import Pipeline
    from envsnap.snapshot.reader import opened

    with opened(baseline) as base:
        recorded = recorded_stages(base)
        pipe = load_pipeline_for(config, pipeline, cwd)
        mismatch = stage_mismatch(recorded, pipe)
        if mismatch:
            raise CheckError(
                f"the pipeline's stages no longer match the baseline's: {mismatch}",
                hint="if that is intended, refresh it: `envsnap baseline update BASELINE --reason ...`",
            )
        settings = tolerances if tolerances is not None else load_check_config(config_file(pipe))
        settings.check_stages(s.name for s in pipe.stages)
        settings = settings.with_overrides(rtol=rtol, atol=atol, ignore_added_columns=ignore_added_columns)
        names = [s.name for s in pipe.stages]
        unknown = [s for s in stages if s not in names]
        if unknown:
            raise CheckError(f"no stage {unknown[0]!r} in pipeline {pipe.name!r} (its stages: {', '.join(names)})")
        last = max((names.index(s) for s in stages), default=len(names) - 1)
        missing = [
            s["name"]
            for s in recorded[: last + 1]
            if not s["outputs"] and s.get("value_kind") != "none" and (not stages or s["name"] in stages)
        ]
        if missing:
            raise CheckError(
                f"{base.path}: the baseline has no intermediate for stage {', '.join(missing)} (it did not succeed "
                "when the baseline was made)",
                hint="refresh the baseline with `envsnap baseline update BASELINE --reason ...`",
            )
        if last < len(names) - 1:
            pipe = Pipeline(
                pipe.name, inputs=pipe.inputs, stages=pipe.stages[: last + 1], pythonpath=pipe.pythonpath,
                root=pipe.root, accepts=pipe.accepts, source=pipe.source, key_prefix=pipe.key_prefix,
            )  # fmt: skip
        label = f"envsnap check against {base.label or base.id}"
        configs = [*recorded_config_files(base, cwd), *config_files]
        result = rerun(
            pipe, base, python=python, label=label, output=output, force=force, git=git, cwd=cwd, config_files=configs
        )
        if result.status == "not-run":  # the recorded inputs could not be read back: nothing to judge
            raise CheckError(f"no stage ran: {result.error}")
        current = result.snapshot
        checks, stage_diffs = _compare_stages(base, current, recorded, settings, stages, max_rows)
        first = next((c.name for c in checks if not c.passed), None)
        data = DataDiff(stages=tuple(stage_diffs), first_diverging_stage=first)
        env = diff_env(base, current)
        result_diff = SnapshotDiff(
            a=snapshot_ref(base),
            b=snapshot_ref(current),
            env=env,
            data=data,
            suspects=rank_suspects(env, data, base, current),
            notes=tuple(_notes(base, current, env, data)),
            options={"rtol": settings.rtol, "atol": settings.atol, "keys": [], "max_rows": max_rows},
        )
        return CheckReport(
            baseline=result_diff.a,
            current=result_diff.b,
            pipeline=pipe.name,
            config=config_file(pipe),
            stages=tuple(checks),
            diff=result_diff,
            fail_on_env=fail_on_env,
            snapshot=current,
        )
