"""The scikit-learn step plan and step function (``_target/runner/sklearn_steps.py``) on real fitted models.

The shipped module runs in the job's interpreter; here it is exercised on live objects in the test
process: which stages a model becomes, what each stage's input is, that applying the stages in order
gives what the model itself gives, and the one-line errors for what is not a fitted estimator.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from envsnap._target.runner import annotate, sklearn_steps


def _frame(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50_000, 8_000, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )
    X.loc[3, "age"] = np.nan
    return X, (X["income"] > 50_000).astype(int)


def _churn_model() -> Pipeline:
    X, y = _frame()
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age", "income"]),
            ("cat", Pipeline([("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["city"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)


def _run(model: Any, plan: list[dict[str, Any]], X: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Apply every stage in order as the runner would; name -> (value, annotations)."""
    values: dict[str, Any] = {plan[0]["inputs"][0]: X}
    out = {}
    for stage in plan:
        (source,) = stage["inputs"]
        params = stage["params"]
        value = sklearn_steps.apply(
            model, params["path"], params["method"], (), {source.replace(".", "_"): values[source]}
        )
        values[stage["name"]] = value
        out[stage["name"]] = (value, annotate.take())
    return out


def test_a_fitted_pipeline_becomes_one_stage_per_step_with_branches_flattened() -> None:
    plan = sklearn_steps.stages_of(_churn_model(), model="m.joblib", method="predict_proba", input_name="X")
    assert [(s["name"], s["inputs"], s["params"]["path"], s["params"]["method"]) for s in plan] == [
        ("pre.num.impute", ["X"], ["pre", "num", "impute"], None),
        ("pre.num.scale", ["pre.num.impute"], ["pre", "num", "scale"], None),
        ("pre.cat.onehot", ["X"], ["pre", "cat", "onehot"], None),
        ("pre", ["X"], ["pre"], None),
        ("clf", ["pre"], ["clf"], "predict_proba"),
    ]
    assert {s["call"] for s in plan} == {"_envsnap_target.runner.sklearn_steps:step"}
    assert {s["params"]["model"] for s in plan} == {"m.joblib"}


def test_the_stages_applied_in_order_give_what_the_model_gives() -> None:
    model = _churn_model()
    X, _ = _frame(25, seed=1)
    plan = sklearn_steps.stages_of(model, model="m", method="predict_proba", input_name="X")
    stages = _run(model, plan, X)
    np.testing.assert_allclose(stages["clf"][0], model.predict_proba(X))
    np.testing.assert_allclose(stages["pre"][0], model.named_steps["pre"].transform(X))
    scaled, notes = stages["pre.num.scale"]
    np.testing.assert_allclose(
        scaled, model.named_steps["pre"].named_transformers_["num"].transform(X[["age", "income"]])
    )
    # the scaler's columns are named through its pipeline (age, income), not x0, x1
    assert notes["columns"] == ["age", "income"]
    assert set(notes["fitted"]["fitted"]) >= {"mean_", "scale_"}
    assert stages["pre.cat.onehot"][1]["columns"] == ["city_lyon", "city_nice", "city_paris"]
    assert stages["pre"][1]["columns"][:2] == ["num__age", "num__income"]
    assert stages["clf"][1]["columns"] == ["0", "1"]
    assert "coef_" in stages["clf"][1]["fitted"]["fitted"]


def test_a_container_names_its_children_without_describing_them_again() -> None:
    model = _churn_model()
    state = sklearn_steps.fitted_state(model.named_steps["pre"])
    assert [(t["name"], t["estimator"], t["columns"]) for t in state["transformers"][:2]] == [
        ("num", {"class": "sklearn.pipeline.Pipeline"}, ["age", "income"]),
        ("cat", {"class": "sklearn.pipeline.Pipeline"}, ["city"]),
    ]


@pytest.mark.parametrize(
    "columns",
    [[0, 1], slice(0, 2), np.array([True, True, False]), make_column_selector(pattern="^[ab]$")],
    ids=["indices", "slice", "mask", "callable"],
)
def test_column_specs_select_what_the_transformer_selects(columns: Any) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    given = frame if callable(columns) else X
    ct = ColumnTransformer([("scale", MinMaxScaler(), columns)], remainder=StandardScaler()).fit(given)
    model = Pipeline([("ct", ct)])
    plan = sklearn_steps.stages_of(model, model="m", method="transform", input_name="X")
    assert [s["name"] for s in plan] == ["ct.scale", "ct.remainder", "ct"]
    stages = _run(model, plan, given)
    np.testing.assert_allclose(stages["ct.scale"][0], MinMaxScaler().fit_transform(X[:, :2]))
    np.testing.assert_allclose(stages["ct.remainder"][0], StandardScaler().fit_transform(X[:, 2:]))
    np.testing.assert_allclose(stages["ct"][0], ct.transform(given))


def test_a_feature_union_feeds_every_branch_the_same_input() -> None:
    X = np.random.default_rng(3).normal(size=(20, 2))
    model = Pipeline([("union", FeatureUnion([("std", StandardScaler()), ("mm", MinMaxScaler())]))]).fit(X)
    plan = sklearn_steps.stages_of(model, model="m", method="transform", input_name="X")
    assert [(s["name"], s["inputs"]) for s in plan] == [
        ("union.std", ["X"]),
        ("union.mm", ["X"]),
        ("union", ["X"]),
    ]
    np.testing.assert_allclose(_run(model, plan, X)["union"][0], model.transform(X))


def test_a_lone_estimator_is_one_stage_named_after_its_class() -> None:
    X = np.arange(12.0).reshape(6, 2)
    plan = sklearn_steps.stages_of(StandardScaler().fit(X), model="m", method="transform", input_name="X")
    assert [(s["name"], s["params"]["path"], s["params"]["method"]) for s in plan] == [
        ("standardscaler", [], "transform")
    ]


def test_step_names_become_stage_names_and_passthrough_steps_are_skipped() -> None:
    X = np.arange(12.0).reshape(6, 2)
    model = Pipeline([("my scaler!", StandardScaler()), ("noop", "passthrough"), ("mm", MinMaxScaler())]).fit(X)
    plan = sklearn_steps.stages_of(model, model="m", method="transform", input_name="X")
    assert [(s["name"], s["params"]["path"], s["inputs"]) for s in plan] == [
        ("my_scaler", ["my scaler!"], ["X"]),
        ("mm", ["mm"], ["my_scaler"]),
    ]
    np.testing.assert_allclose(_run(model, plan, X)["mm"][0], model.transform(X))


@pytest.mark.parametrize(
    ("obj", "method", "message"),
    [
        ({"a": 1}, "predict", "holds a builtins.dict, not a fitted scikit-learn Pipeline or estimator"),
        (Pipeline([("scale", StandardScaler())]), "transform", "that is not fitted"),
        (Pipeline([("s", "passthrough")]), "transform", "whose steps are all 'passthrough'"),
        (StandardScaler().fit([[0.0], [1.0]]), "predict", "step 'StandardScaler' (sklearn.preprocessing._data"),
        (StandardScaler().fit([[0.0], [1.0]]), "score", "method 'score' is not one of predict, predict_proba"),
    ],
    ids=["dict", "unfitted", "passthrough", "no-method", "bad-method"],
)
def test_what_is_not_a_fitted_estimator_is_one_line(obj: Any, method: str, message: str) -> None:
    with pytest.raises(sklearn_steps.ModelError) as caught:
        sklearn_steps.stages_of(obj, model="m", method=method, input_name="X")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_plan_program_answers_json_for_a_file_and_for_its_errors(tmp_path: Path) -> None:
    good, bad, holds_dict = tmp_path / "model.joblib", tmp_path / "bad.joblib", tmp_path / "dict.joblib"
    joblib.dump(_churn_model(), good)
    bad.write_bytes(b"\x80\x04not a pickle at all")
    joblib.dump({"weights": [1, 2]}, holds_dict)
    answers = {}
    for path in (good, bad, holds_dict, tmp_path / "missing.joblib"):
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert sklearn_steps.main([str(path), "predict", "rows"]) == 0
        answers[path.name] = json.loads(printed.getvalue())
    assert answers["model.joblib"]["error"] is None
    assert answers["model.joblib"]["model"]["class"] == "sklearn.pipeline.Pipeline"
    assert answers["model.joblib"]["stages"][0]["inputs"] == ["rows"]
    assert answers["bad.joblib"]["error"].startswith("cannot be loaded: ")
    assert answers["dict.joblib"]["error"] == "holds a builtins.dict, not a fitted scikit-learn Pipeline or estimator"
    assert answers["missing.joblib"]["error"].startswith("no such file")


def test_a_model_file_is_loaded_once_and_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(StandardScaler().fit([[0.0], [2.0]]), path)
    first = sklearn_steps.load(str(path))
    assert sklearn_steps.load(str(path)) is first
    joblib.dump(StandardScaler().fit([[0.0], [4.0]]), path)
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    assert sklearn_steps.load(str(path)).mean_.tolist() == [2.0]


def test_a_live_model_label_cannot_be_loaded() -> None:
    with pytest.raises(sklearn_steps.ModelError, match=r"joblib\.dump"):
        sklearn_steps.load(f"{sklearn_steps.IN_MEMORY} sklearn.pipeline.Pipeline")


def test_a_branch_that_selects_no_column_is_no_stage() -> None:
    X = np.random.default_rng(4).normal(size=(20, 2))
    ct = ColumnTransformer(
        [
            ("none", StandardScaler(), []),
            ("masked", MinMaxScaler(), np.array([False, False])),
            ("all", MinMaxScaler(), [0, 1]),
        ]
    ).fit(X)
    plan = sklearn_steps.stages_of(Pipeline([("ct", ct)]), model="m", method="transform", input_name="X")
    assert [s["name"] for s in plan] == ["ct.all", "ct"]
    np.testing.assert_allclose(_run(Pipeline([("ct", ct)]), plan, X)["ct"][0], ct.transform(X))
