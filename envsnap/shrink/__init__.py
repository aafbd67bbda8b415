"""``envsnap.shrink``: the smallest subset of a snapshot's recorded input rows that still reproduces its failure.

The *failure* is either the exception a stage raised in the recording (same stage, same exception type),
or, with ``against=GOOD``, a divergence between the snapshot's runtime and GOOD's runtime (the same
candidate rows replayed in both, the target stage's outputs compared within ``rtol``/``atol``). Each
candidate batch is a copy of the snapshot with fewer input rows (:func:`assemble_snapshot`), replayed up
to the target stage with :func:`envsnap.replay.replay` (runtimes cached by image key, outcomes memoized per
subset, as in :mod:`envsnap.bisect`). ddmin runs over row chunks, then over the single rows of the chunks
it kept. A candidate that fails some other way (an earlier stage, another exception) is *unresolved*.

The result is a new snapshot: the minimal batch as its inputs (stats recomputed), the intermediates a
final replay produced from it, and a label saying how many rows went in, how many were kept and how many
replays it took.

The package: :mod:`~envsnap.shrink.candidates` (candidate batches, replayed and compared),
:mod:`~envsnap.shrink.write` (the shrunk snapshot), :mod:`~envsnap.shrink.report` (what :func:`shrink`
returns); the search is :mod:`envsnap.bisect.ddmin`'s.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsnap.bisect.ddmin import BAD, GOOD, UNRESOLVED, MemoOracle, OutOfReplaysError, Progress, Trial, ddmin
from envsnap.shrink.candidates import Row, Shrinker
from envsnap.shrink.report import ShrinkError, ShrinkReport
from envsnap.shrink.write import write_shrunk

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["ShrinkError", "ShrinkReport", "shrink"]


def _quiet(_kind: str, _message: str) -> None:
    return None


def _stage(stages: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    found = next((s for s in stages if s.get("name") == name), None)
    if found is None:
        names = ", ".join(str(s.get("name")) for s in stages)
        raise ShrinkError(f"--stage {name!r}: no such stage", hint=f"the stages are: {names}")
    return found


def _target_exception(shrinker: Shrinker, stage: str | None) -> tuple[dict[str, Any], str]:
    failed = [s for s in shrinker.stages if s.get("status") == "failed"]
    target = _stage(shrinker.stages, stage) or (failed[0] if failed else None)
    if target is None or target.get("status") != "failed":
        what = f"stage {stage!r} did not fail" if stage else "no stage failed"
        raise ShrinkError(
            f"{shrinker.snap.path}: {what} in the recording, so there is no exception to keep",
            hint="pass --against GOOD to shrink a divergence between two runtimes instead",
        )
    record = shrinker.snap.read_json(str(target["record"])) if target.get("record") in shrinker.snap else {}
    return target, str((record.get("error") or {}).get("type") or "")


def shrink(
    snap: Snapshot | str | os.PathLike[str],
    against: Snapshot | str | os.PathLike[str] | None = None,
    stage: str | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    engine: str = "docker",
    base_image: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_replays: int = 200,
    chunks: int = 32,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> ShrinkReport:
    """Shrink ``snap``'s recorded input rows to a minimal batch that still fails; write it to ``output``.

    ``output`` defaults to ``SNAP.shrunk.envsnap`` next to the snapshot. Raises :class:`ShrinkError` for a
    snapshot with nothing to shrink, and the replay's :class:`~envsnap.errors.EnvsnapError` subclasses
    for infrastructure failures (nothing is written then).
    """
    from envsnap.snapshot.reader import opened
    from envsnap.snapshot.writer import check_output

    if output is None and isinstance(snap, str) and snap.startswith("runs:/"):
        # The run's artifact is downloaded to a temporary directory: "beside it" would vanish at exit.
        raise ShrinkError("a runs:/ snapshot needs -o (where to write the shrunk snapshot: a path or s3:// URI)")
    with contextlib.ExitStack() as stack:
        the_snap = stack.enter_context(opened(snap))
        the_good = stack.enter_context(opened(against)) if against is not None else None
        if output is None:
            if the_snap.path.startswith("<"):
                raise ShrinkError("an in-memory snapshot needs an explicit output path")
            output = f"{str(the_snap.path).removesuffix('.envsnap')}.shrunk.envsnap"
        destination = check_output(output, force)
        options = {"engine": engine, "base_image": base_image, "rtol": rtol, "atol": atol, "timeout": timeout}
        shrinker = Shrinker(the_snap, the_good, options, progress or _quiet)
        return _run(shrinker, stage, destination, force, max_replays, chunks, against)


def _run(
    shrinker: Shrinker,
    stage: str | None,
    destination: Path | str,
    force: bool,
    max_replays: int,
    chunks: int,
    against: object,
) -> ShrinkReport:
    say = shrinker.say
    all_rows: tuple[Row, ...] = tuple((n, i) for n, t in shrinker.tables.items() for i in range(t.num_rows))
    work = Path(tempfile.mkdtemp(prefix="envsnap-shrink-"))
    mode = "exception" if shrinker.good is None else "divergence"
    target: dict[str, Any] | None = None
    error_type = ""
    if mode == "exception":
        target, error_type = _target_exception(shrinker, stage)
    else:
        target = _stage(shrinker.stages, stage)
    counter = iter(range(1, 1 << 30))

    def run(rows: tuple[Row, ...]) -> Trial:
        started = time.perf_counter()
        step_dir = work / str(next(counter))
        until = str(target["name"]) if target else None
        ours = shrinker.replay(rows, "snap", until, step_dir / "snap")
        if mode == "exception" and target is not None:
            outcome = ours.get(int(target["index"]))
            shutil.rmtree(step_dir, ignore_errors=True)
            seconds = time.perf_counter() - started
            if outcome is not None and outcome["status"] == "ok":
                return Trial(GOOD, f"{target['name']} ran without error", seconds=seconds)
            error = (outcome or {}).get("error") or {}
            if outcome is not None and error.get("kind") == "exception" and error.get("type") == error_type:
                return Trial(BAD, f"{target['name']} raised {error_type}", seconds=seconds)
            first_failed = next((o for _, o in sorted(ours.items()) if o["status"] != "ok"), None)
            what = f"{first_failed['name']}: {(first_failed.get('error') or {}).get('type')}" if first_failed else "?"
            return Trial(UNRESOLVED, f"fails differently ({what})", seconds=seconds)
        theirs = shrinker.replay(rows, "good", until, step_dir / "good")
        ran = set(ours) | set(theirs)
        stages = [target] if target else [s for s in shrinker.stages if int(s["index"]) in ran]
        differing = [s for s in stages if shrinker.differs(step_dir / "snap", step_dir / "good", s)]
        shutil.rmtree(step_dir, ignore_errors=True)
        seconds = time.perf_counter() - started
        if differing:
            return Trial(BAD, f"{differing[0]['name']} differs from GOOD's runtime", seconds=seconds)
        return Trial(GOOD, "same output as GOOD's runtime", seconds=seconds)

    def record(rows: tuple[Any, ...], trial: Trial) -> None:
        step = {"index": len(shrinker.steps) + 1, "rows": len(rows), "outcome": trial.outcome}
        step.update(detail=trial.detail, seconds=round(trial.seconds, 3))
        shrinker.steps.append(step)
        say(
            "result",
            f"step {step['index']}: {len(rows)} row(s): {trial.outcome} ({trial.detail}; {trial.seconds:.1f} s)",
        )

    per_replay = 1 if mode == "exception" else 2
    oracle = MemoOracle(run, max_runs=max(1, max_replays // per_replay), on_trial=record)
    name = shrinker.snap.path
    try:
        say("step", f"step 1: the whole batch ({len(all_rows)} rows) must fail")
        baseline = oracle.trial(all_rows)
        if baseline.outcome != BAD or not all_rows:
            return ShrinkReport(
                name,
                str(against) if against is not None else None,
                target["name"] if target else None,
                "not-reproduced",
                f"the failure does not reproduce in a replay of the whole batch ({baseline.detail}); nothing written",
                len(all_rows),
                len(all_rows),
                oracle.runs * per_replay,
                steps=tuple(shrinker.steps),
            )
        if target is None:
            target = next(s for s in shrinker.stages if s["name"] == baseline.detail.split(" ", 1)[0])
        best = [all_rows]
        status = "shrunk"
        size = max(1, math.ceil(len(all_rows) / max(1, chunks)))
        pieces = tuple(all_rows[i : i + size] for i in range(0, len(all_rows), size))
        try:
            kept_pieces = ddmin(
                pieces,
                lambda p: oracle(tuple(r for piece in p for r in piece)),
                on_reduce=lambda p: best.__setitem__(0, tuple(r for piece in p for r in piece)),
            )
            rows = tuple(r for piece in kept_pieces for r in piece)
            best[0] = rows
            rows = ddmin(rows, oracle, on_reduce=lambda r: best.__setitem__(0, r))
        except OutOfReplaysError:
            rows, status = best[0], "out-of-replays"
        say("step", f"writing the minimal batch ({len(rows)} of {len(all_rows)} rows)")
        final = shrinker.replay(rows, "snap", None, work / "final")
        replays = oracle.runs * per_replay + 1
        written = write_shrunk(shrinker, rows, len(all_rows), replays, work / "final", final, destination, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kept: dict[str, list[int]] = {}
    for input_name, position in rows:
        kept.setdefault(input_name, []).append(position)
    done = "minimal" if status == "shrunk" else f"not minimal: the budget of {max_replays} replays ran out"
    return ShrinkReport(
        name,
        str(against) if against is not None else None,
        str(target["name"]),
        status,
        f"kept {len(rows)} of {len(all_rows)} rows ({done}; {replays} replays); {target['name']} still "
        f"{'raises ' + error_type if mode == 'exception' else 'differs from GOOD'}",
        len(all_rows),
        len(rows),
        replays,
        kept={k: sorted(v) for k, v in kept.items()},
        output=str(written),
        steps=tuple(shrinker.steps),
    )
