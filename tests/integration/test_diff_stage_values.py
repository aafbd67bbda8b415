"""diff on real recorded pipelines whose stages return polars frames, numpy arrays and dicts, with params,
and on scikit-learn pipelines recorded step by step.

A source stage loads its own data (polars), the next turns it into a feature matrix (numpy), the last
scores it against a ``threshold`` param and returns metrics (a dict). Recorded twice with ``envsnap.Pipeline``,
the second time with another threshold: the param is the top suspect, named with its stage, and that stage
is the first whose output diverges, its metrics phrased key by key. Two fitted models whose scalers were
fitted on different data diff to the ``scale`` step, its ``mean_`` and ``scale_`` named.
"""

from __future__ import annotations

import copy
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


def _models() -> tuple[Any, Any, Any]:
    """A fitted imputer → scaler → logistic regression, the same with its scaler refitted on shifted data,
    and the rows both are applied to."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SklearnPipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"age": rng.normal(40, 10, 200), "income": rng.normal(50, 9, 200)})
    steps = [("impute", SimpleImputer()), ("scale", StandardScaler()), ("clf", LogisticRegression())]
    model = SklearnPipeline(steps).fit(train, (train["age"] > 40).astype(int))
    serving = copy.deepcopy(model)
    serving.named_steps["scale"].fit(train.to_numpy() * 1.5 + np.array([5.0, 3.0]))
    rows = pd.DataFrame({"age": [30.0, 45.0, None], "income": [40.0, 60.0, 55.0]})
    return model, serving, rows


def test_models_whose_scalers_were_fitted_on_other_data_diff_to_the_scale_step(tmp_path: Path) -> None:
    from envsnap.integrations.sklearn import record

    model, serving, rows = _models()
    record(model, rows, output=tmp_path / "training", git=False)
    record(serving, rows, output=tmp_path / "serving", git=False)
    result = diff(envsnap.load(tmp_path / "training"), envsnap.load(tmp_path / "serving"))
    assert result.data.first_diverging_stage == "scale"
    stages = {s.name: s for s in result.data.stages}
    assert [s.name for s in result.data.stages] == ["impute", "scale", "clf"]
    assert stages["impute"].fitted == () and not stages["impute"].table.diverged
    assert {c.name for c in stages["scale"].fitted} >= {"mean_", "scale_"}
    top = result.suspects[0]
    assert top.subject == "stage scale fitted state" and top.kind == "fitted"
    assert top.reason.startswith("fitted state of stage `scale` changed: `mean_` (first at [0]: ")
    assert "`scale_` (" in top.reason and top.reason.endswith("stage `scale` is the first to diverge")
    assert not [s for s in result.suspects if s.kind == "param"]  # the same model label, the same steps
    text = render_text(result)
    assert "fitted `mean_`: first at [0]: " in text


def test_the_scalers_parameters_and_the_feature_order_changed_between_training_and_serving(tmp_path: Path) -> None:
    """The seed incident: the serving model's scaler was fitted on other data, its features in another order."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SklearnPipeline
    from sklearn.preprocessing import StandardScaler

    from envsnap.integrations.sklearn import record

    rng = np.random.default_rng(0)

    def fitted(columns: list[str], shift: float) -> Any:
        train = pd.DataFrame({"age": rng.normal(40 + shift, 10, 200), "income": rng.normal(50 + 3 * shift, 9, 200)})
        pre = ColumnTransformer([("scale", StandardScaler(), columns)])
        steps = [("pre", pre), ("clf", LogisticRegression())]
        return SklearnPipeline(steps).fit(train, (train["age"] > 40).astype(int))

    rows = pd.DataFrame({"age": [30.0, 45.0, 50.0], "income": [40.0, 60.0, 55.0]})
    record(fitted(["age", "income"], 0.0), rows, output=tmp_path / "training", git=False)
    record(fitted(["income", "age"], 5.0), rows, output=tmp_path / "serving", git=False)
    result = diff(envsnap.load(tmp_path / "training"), envsnap.load(tmp_path / "serving"))
    assert result.data.first_diverging_stage == "pre.scale"
    top = result.suspects[0]
    assert top.subject == "stage pre.scale fitted state"
    # Each feature's mean is compared with its own (age with age), whatever position it holds.
    assert top.reason.startswith("fitted state of stage `pre.scale` changed: `mean_` (first at [age]: 40.")
    assert "`scale_` (first at [age]: " in top.reason
    assert top.reason.endswith(
        "and the feature order (income, age at other positions); stage `pre.scale` is the first to diverge"
    )
