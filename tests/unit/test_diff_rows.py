"""First differing rows of a wide table: key columns, then the differing ones, never cut before them."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.check.tolerance import Tolerance, compare_intermediate
from envsnap.diff.model import SnapshotDiff
from envsnap.diff.render.rows import VALUE_LIMIT, row_columns, row_text
from envsnap.diff.tables import diff_parquet

WIDE = 40  # columns named so that the differing one sorts, and sits, last


def _wide(path: Path, last: list[float]) -> Path:
    columns: dict[str, list[object]] = {"id": [10, 11, 12, 13]}
    for i in range(WIDE):
        columns[f"feature_{i:02d}_description"] = [f"value {i} of row {r}" for r in range(4)]
    columns["zz_score"] = last
    pq.write_table(pa.table(columns), path)
    return path


def test_the_differing_column_shows_first_in_every_view(tmp_path: Path) -> None:
    a = _wide(tmp_path / "a.parquet", [0.1, 0.2, 0.3, 0.4])
    b = _wide(tmp_path / "b.parquet", [0.1, 0.25, 0.3, 0.45])
    table = diff_parquet(a, b, name="score")
    assert [(r["position"], r["differing"]) for r in table.sample_rows] == [(1, ["zz_score"]), (3, ["zz_score"])]
    row = table.sample_rows[0]
    line_a, line_b = row_text(row, "a", limit=120), row_text(row, "b", limit=120)
    assert line_a.startswith('{"zz_score": 0.2, "id": 11, ') and line_b.startswith('{"zz_score": 0.25, "id": 11, ')
    shown, left = line_a.count('": '), int(re.fullmatch(r".*, …\+(\d+)\}", line_a).group(1))  # type: ignore[union-attr]
    assert len(line_a) <= 120 and shown + left == WIDE + 2

    keyed = diff_parquet(a, b, name="score", keys=["id"])
    row = keyed.sample_rows[0]
    assert row["key"] == {"id": 11} and row["differing"] == ["zz_score"]
    assert row_columns(row)[0] == ["id", "zz_score"]
    assert row_text(row, "b", limit=60).startswith('{"id": 11, "zz_score": 0.25, ')

    from envsnap.check.render import table_details
    from envsnap.diff.render import render
    from envsnap.diff.render.rows import differing_columns

    assert differing_columns({"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}) == ["y"]  # rows without the field
    details = "\n".join(table_details(table))
    assert 'baseline {"zz_score": 0.2,' in details and 'current  {"zz_score": 0.25,' in details
    checked = compare_intermediate(a.read_bytes(), b.read_bytes(), name="score", tolerance=Tolerance())
    assert checked.sample_rows[0]["differing"] == ["zz_score"]
    diff = _with_stage(keyed)
    for fmt in ("text", "markdown", "html"):
        assert '"zz_score": 0.25' in render(diff, fmt).replace("&quot;", '"'), fmt


def _with_stage(table: object) -> SnapshotDiff:
    from envsnap.diff.model import DataDiff, EnvDiff, SnapshotRef, StageDiff

    ref = SnapshotRef(path="x", id="x", label="x", created_at=None, fingerprint="f", format_minor=0)
    stage = StageDiff(1, "score", ("ok", "ok"), table)  # type: ignore[arg-type]
    data = DataDiff(stages=(stage,), first_diverging_stage="score")
    return SnapshotDiff(a=ref, b=ref, env=EnvDiff((), (), False), data=data, suspects=(), notes=(), options={})


def test_key_and_differing_cells_are_never_dropped_only_capped() -> None:
    long = "x" * 500
    row = {
        "key": {"id": 1},
        "a": {"id": 1, "note": long, "other": 1, "v": 1.0},
        "b": {"id": 1, "note": long + "y", "other": 1, "v": 2.0},
        "differing": ["note", "v"],
    }
    text = row_text(row, "b", limit=40)
    assert text.startswith('{"id": 1, "note": "xxx') and '"v": 2.0' in text and text.endswith(", …+1}")
    assert len(text) < 2 * VALUE_LIMIT
    assert row_text({"position": 1, "a": None, "b": {"k": 1}}, "a") == "-"
    assert row_text({"position": 1, "a": {"k": 1, "j": 2}, "b": None, "differing": []}, "a") == '{"k": 1, "j": 2}'
