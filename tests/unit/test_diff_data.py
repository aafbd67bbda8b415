"""diff_data on real snapshots from envsnap.run_pipeline: first diverging stage, fast path, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import envsnap
from envsnap.capture import capture
from envsnap.diff.data import diff_data
from envsnap.pipeline import Pipeline, run_pipeline
from envsnap.snapshot.model import Snapshot

#: Read by the ``scale`` stage at call time: the second run changes it, so ``scale`` diverges.
SETTINGS: dict[str, float] = {"factor": 1.0}


def _clean(events: Any) -> Any:
    return events.filter(pc.is_valid(events["a"]))


def _scale(table: Any) -> Any:
    return table.set_column(0, "a", pc.multiply(table["a"], SETTINGS["factor"]))


def _total(table: Any) -> Any:
    return table.append_column("total", pc.add(table["a"], table["b"]))


def _boom(table: Any) -> Any:
    raise RuntimeError("stage failed on purpose")


def _pipeline(*extra: tuple[str, Any]) -> Pipeline:
    pipeline = Pipeline("diffy", accepts="arrow")
    pipeline.stage(name="clean", inputs=["events"])(_clean)
    for name, func in (("scale", _scale), ("total", _total), *extra):
        pipeline.stage(name=name)(func)
    return pipeline


INPUT = pa.table({"a": [1.0, None, 3.0, 4.0, 5.0], "b": [10, 20, 30, 40, 50]})


def _run(tmp_path: Path, name: str, factor: float, pipeline: Pipeline | None = None, **inputs: Any) -> Snapshot:
    SETTINGS["factor"] = factor
    try:
        result = run_pipeline(
            pipeline or _pipeline(), inputs=inputs or {"events": INPUT}, git=False, output=tmp_path / name
        )
    finally:
        SETTINGS["factor"] = 1.0
    return envsnap.load(result.snapshot.path if result.snapshot.path != "<memory>" else tmp_path / name)


def _stage(diff: Any, name: str) -> Any:
    return next(s for s in diff.stages if s.name == name)


def test_first_diverging_stage_and_fast_path(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b.envsnap", 2.0)  # a zip: its parquet members are read through a window
    diff = diff_data(a, b)
    assert diff.note is None
    assert [t.status for t in diff.inputs] == ["identical"]
    assert _stage(diff, "clean").table.status == "identical"
    assert _stage(diff, "clean").table.rows == (4, 4)
    scale = _stage(diff, "scale")
    assert scale.status == ("ok", "ok") and scale.table.status == "different"
    column = next(c for c in scale.table.columns if c.column == "a")
    assert column.differing == 4 and column.max_abs_diff == pytest.approx(5.0)
    assert diff.first_diverging_stage == "scale"
    assert _stage(diff, "total").table.diverged
    assert diff.changed
    same = diff_data(a, _run(tmp_path, "a2", 1.0))
    assert same.first_diverging_stage is None and not same.changed
    assert {s.table.status for s in same.stages} == {"identical"}


def test_tolerance_makes_the_stage_match(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b", 1.0 + 1e-12)
    assert diff_data(a, b).first_diverging_stage == "scale"
    loose = diff_data(a, b, rtol=1e-9)
    assert loose.first_diverging_stage is None
    assert _stage(loose, "scale").table.status == "within_tolerance"


def test_keys_that_a_table_lacks_fall_back_to_position(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b", 2.0)
    diff = diff_data(a, b, keys=["b"], max_rows=1)
    scale = _stage(diff, "scale").table
    assert scale.matched_by == "key" and scale.sample_rows[0]["key"] == {"b": 10}
    diff = diff_data(a, b, keys=["nope"])
    assert "rows matched by position" in (_stage(diff, "scale").table.note or "")


def test_stage_missing_or_failed_on_one_side_is_incomparable(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b", 1.0, _pipeline(("extra", _total), ("boom", _boom)))
    diff = diff_data(a, b)
    extra, boom = _stage(diff, "extra"), _stage(diff, "boom")
    assert extra.table.status == "incomparable" and extra.table.note == "stage missing in a"
    assert boom.status == (None, "failed") and boom.table.status == "incomparable"
    assert diff.first_diverging_stage == "extra"
    failed = diff_data(b, a)  # a stage only in a comes after b's stages
    assert [s.name for s in failed.stages][-2:] == ["extra", "boom"]


def test_inputs_only_on_one_side_and_a_snapshot_without_data(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b", 1.0, None, events=INPUT, users=pa.table({"u": [1]}))
    diff = diff_data(a, b)
    users = next(t for t in diff.inputs if t.name == "users")
    assert users.status == "incomparable" and users.note == "input only in b"
    plain = capture(git=False)
    empty = diff_data(a, plain)
    assert empty.note is not None and "only a holds data" in empty.note
    assert empty.stages == () and empty.first_diverging_stage is None


def test_an_altered_member_is_refused_not_trusted(tmp_path: Path) -> None:
    """A tampered intermediate makes the whole snapshot untrustworthy: the diff refuses it (exit 3)."""
    from envsnap.errors import IntegrityError

    a = _run(tmp_path, "a", 1.0)
    _run(tmp_path, "b", 2.0)
    member = tmp_path / "b" / "pipeline" / "stages" / "02-scale.parquet"
    pq.write_table(pa.table({"a": [9.0]}), member)
    with pytest.raises(IntegrityError, match=r"02-scale\.parquet"):
        diff_data(a, envsnap.load(tmp_path / "b"))
