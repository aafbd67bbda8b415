"""Replay and shrink with stage values of any shape, their pure parts: which files are a stage's outputs, and
how a stage with several outputs (a tuple) or another kind of value reads in the report."""

from __future__ import annotations

from pathlib import Path

from envsnap.diff.model import TableDiff
from envsnap.replay.execute import StageReplay
from envsnap.replay.render import _stage_line, _table_lines
from envsnap.shrink.candidates import Shrinker


def test_a_stage_outputs_are_its_own_file_or_one_per_tuple_element(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("02-pre.scale.parquet", "02-pre.scale.0.parquet", "03-pre.parquet", "02-pre.scale.npy", "x.parquet"):
        (out / name).write_bytes(b"")
    assert Shrinker.produced(tmp_path, {"index": 2, "name": "pre.scale"}) == {
        "pre.scale": out / "02-pre.scale.parquet",
        "pre.scale.0": out / "02-pre.scale.0.parquet",
    }
    # A dotted name is not mistaken for a tuple element of a shorter one.
    assert Shrinker.produced(tmp_path, {"index": 2, "name": "pre"}) == {}
    assert Shrinker.produced(tmp_path, {"index": 3, "name": "pre"}) == {"pre": out / "03-pre.parquet"}
    assert Shrinker.produced(tmp_path / "nowhere", {"index": 3, "name": "pre"}) == {}


def test_a_tuple_reads_element_by_element() -> None:
    outputs = (TableDiff("split.0", "identical"), TableDiff("split.1", "equal"))
    match = StageReplay(5, "split", "match", table=outputs[0], outputs=outputs, returned="tuple")
    assert _stage_line(match).endswith("split.0 identical, split.1 equal")
    differs = (TableDiff("split.0", "identical"), TableDiff("split.1", "different", rows=(16, 15)))
    diverged = StageReplay(5, "split", "diverged", table=differs[1], outputs=differs, returned="tuple")
    assert "diverged: split.1: " in _stage_line(diverged)
    lines = _table_lines(diverged)
    assert lines[0].strip().startswith("split.0: ") and lines[1].strip().startswith("split.1: ")


def test_another_kind_and_none() -> None:
    other = StageReplay(4, "summary", "diverged", error="returned numpy, recorded dict", returned="numpy")
    assert _stage_line(other).endswith("diverged: returned numpy, recorded dict")
    assert _table_lines(other) == []
    quiet = StageReplay(3, "log", "match", returned="none")
    assert _stage_line(quiet).endswith("returned None, as recorded")
