"""diff on real recorded pipelines whose stages return polars frames, numpy arrays and dicts, with params.

A source stage loads its own data (polars), the next turns it into a feature matrix (numpy), the last
scores it against a ``threshold`` param and returns metrics (a dict). Recorded twice with ``envsnap.Pipeline``,
the second time with another threshold: the param is the top suspect, named with its stage, and that stage
is the first whose output diverges, its metrics phrased key by key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import envsnap
from envsnap.diff import diff
from envsnap.diff.render.json import diff_document
from envsnap.diff.render.text import render_text
from envsnap.pipeline import Pipeline, run_pipeline

pl = pytest.importorskip("polars")  # a dev dependency: installed by the lock, never skipped in CI
SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"


def load(rows: int) -> Any:
    return pl.DataFrame({"x": [float(i % 7) for i in range(rows)], "y": [float(i % 3) for i in range(rows)]})


def features(frame: Any) -> Any:
    return frame.select((pl.col("x") / 6.0).alias("x"), (pl.col("y") / 2.0).alias("y")).to_numpy()


def score(matrix: Any, threshold: float) -> dict[str, Any]:
    hits = matrix[:, 0] > threshold
    return {"metrics": {"positive_rate": float(hits.mean()), "rows": len(matrix)}, "threshold": threshold}


def _pipeline(threshold: float) -> Pipeline:
    pipeline = Pipeline("values")
    pipeline.stage(name="load", params={"rows": 60})(load)
    pipeline.stage(name="features", accepts="polars")(features)
    pipeline.stage(name="score", params={"threshold": threshold})(score)
    return pipeline


def _record(tmp_path: Path, name: str, threshold: float) -> envsnap.Snapshot:
    result = run_pipeline(_pipeline(threshold), git=False, output=tmp_path / name)
    assert [s.status for s in result.stages] == ["ok", "ok", "ok"], result
    return envsnap.load(tmp_path / name)


def test_a_changed_param_is_the_top_suspect_and_its_stage_diverges_first(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 0.5)
    b = _record(tmp_path, "b.envsnap", 0.7)
    result = diff(a, b)
    assert result.data.first_diverging_stage == "score"
    stages = {s.name: s for s in result.data.stages}
    assert stages["load"].kinds == ("polars", "polars") and stages["load"].table.status == "identical"
    assert stages["features"].kinds == ("numpy", "numpy") and not stages["features"].table.diverged
    assert stages["score"].kinds == ("dict", "dict")
    keys = {k.name: (k.before, k.after) for k in stages["score"].keys}
    assert keys["threshold"] == (0.5, 0.7)
    assert "metrics.positive_rate" in keys and "metrics.rows" not in keys
    top = result.suspects[0]
    assert top.subject == "stage score param threshold"
    assert top.reason == "param `threshold` of stage `score`: 0.5 → 0.7; stage `score` is the first to diverge"
    text = render_text(result)
    assert "Verdict: outputs first diverge at stage score" in text
    assert "param `threshold`: 0.5 → 0.7" in text
    before, after = keys["metrics.positive_rate"]
    assert f"key `metrics.positive_rate`: {before:.6g} → {after:.6g}" in text
    import jsonschema

    jsonschema.validate(diff_document(result), json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_the_same_params_diff_to_nothing(tmp_path: Path) -> None:
    result = diff(_record(tmp_path, "a", 0.5), _record(tmp_path, "b", 0.5))
    assert result.data.first_diverging_stage is None
    assert not [s for s in result.suspects if s.kind in ("param", "fitted")]
    assert all(not s.table.diverged for s in result.data.stages)
