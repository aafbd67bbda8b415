"""scikit-learn pipelines recorded step by step: ``envsnap run --sklearn`` and ``integrations.sklearn.record``.

Real models (SimpleImputer, ColumnTransformer, StandardScaler, OneHotEncoder, LogisticRegression) fitted
with this venv's scikit-learn and saved with joblib; the CLI runs them in a subprocess of the job's
interpreter, which is the only process that unpickles them.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

import envsnap
from envsnap.check import check
from envsnap.cli import app
from envsnap.integrations.sklearn import SklearnModelError, model_pipeline, record
from envsnap.snapshot.model import Snapshot
from tests.integration.conftest import make_venv, pip_install

runner = CliRunner()
STAGES = ["pre.num.impute", "pre.num.scale", "pre.cat.onehot", "pre", "clf"]
# A transformer of the job's own, importable from the job's working directory only: unpickling the model
# imports it, and the import notes which process did it.
CUSTOM_MODULE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from sklearn.base import BaseEstimator, TransformerMixin

    with open(Path(__file__).with_name("loaded-by.txt"), "a") as fh:
        fh.write(f"{os.getpid()}\\n")


    class Clip(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.n_features_in_ = X.shape[1]
            return self

        def transform(self, X):
            return X.clip(-2, 2)

        def get_feature_names_out(self, input_features=None):
            return input_features
    """
)


@dataclass(frozen=True)
class Models:
    root: Path
    rows: Path  # the input the models are applied to (parquet)
    frame: pd.DataFrame
    model: Pipeline
    model_a: Path
    model_b: Path  # model_a with its scaler refitted on other data: nothing else differs


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n),
            "income": rng.normal(50_000 + 1_000 * shift, 8_000, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )
    frame.loc[3, "age"] = np.nan
    return frame


def _fitted() -> Pipeline:
    X = _frame(300, seed=0)
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age", "income"]),
            ("cat", Pipeline([("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["city"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, (X["income"] > 50_000).astype(int))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("sklearn")
    model = _fitted()
    other = copy.deepcopy(model)
    shifted = _frame(300, seed=5, shift=8.0)[["age", "income"]].fillna(40.0).to_numpy()
    other.named_steps["pre"].named_transformers_["num"].named_steps["scale"].fit(shifted)
    # The same file name in two places, as a model in training and the one deployed to serving.
    for side, fitted in (("a", model), ("b", other)):
        (root / side).mkdir()
        joblib.dump(fitted, root / side / "model.joblib")
    frame = _frame(40, seed=1)
    rows = root / "rows.parquet"
    frame.to_parquet(rows)
    return Models(root, rows, frame, model, root / "a" / "model.joblib", root / "b" / "model.joblib")


def _stage(snap: Snapshot, index: int, name: str) -> dict[str, Any]:
    record_: dict[str, Any] = snap.read_json(f"pipeline/stages/{index:02d}-{name}.json")
    return record_


def _columns(snap: Snapshot, index: int, name: str) -> list[str]:
    return list(pq.read_schema(io.BytesIO(snap.read_bytes(f"pipeline/stages/{index:02d}-{name}.parquet"))).names)


def _run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run(
        [sys.executable, "-m", "envsnap", "run", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_record_applies_a_live_pipeline_step_by_step(models: Models, tmp_path: Path) -> None:
    out = tmp_path / "api.envsnap"
    seen: list[str] = []
    result = record(
        models.model,
        models.frame,
        output=out,
        method="predict_proba",
        git=False,
        on_stage=lambda o: seen.append(o["name"]),
    )
    assert result.ok, result.error
    assert [s.name for s in result.stages] == STAGES == seen
    snap = envsnap.load(out)
    scale = _stage(snap, 2, "pre.num.scale")
    fitted = scale["fitted"]
    assert fitted["class"] == "sklearn.preprocessing._data.StandardScaler"
    scaler = models.model.named_steps["pre"].named_transformers_["num"].named_steps["scale"]
    np.testing.assert_allclose(fitted["fitted"]["mean_"], scaler.mean_)
    np.testing.assert_allclose(fitted["fitted"]["scale_"], scaler.scale_)
    assert scale["params"]["path"] == ["pre", "num", "scale"]
    assert scale["params"]["model"].startswith("<in memory> sklearn.pipeline.Pipeline")
    assert scale["call"] == "_envsnap_target.runner.sklearn_steps:step", "recorded as a saved model's stages are"
    assert scale["files"] == [], "envsnap's own code is not the project's"
    assert _columns(snap, 2, "pre.num.scale") == ["age", "income"], "named by get_feature_names_out"
    assert _stage(snap, 1, "pre.num.impute")["fitted"]["fitted"]["statistics_"] == pytest.approx(
        models.model.named_steps["pre"].named_transformers_["num"].named_steps["impute"].statistics_.tolist()
    )
    assert "categories_" in _stage(snap, 3, "pre.cat.onehot")["fitted"]["fitted"]
    assert _columns(snap, 4, "pre")[:3] == ["num__age", "num__income", "cat__city_lyon"]
    clf = _stage(snap, 5, "clf")
    assert set(clf["fitted"]["fitted"]) >= {"coef_", "intercept_", "classes_"}
    assert clf["params"]["method"] == "predict_proba"
    proba = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/05-clf.parquet")))
    np.testing.assert_allclose(proba.to_pandas().to_numpy(), models.model.predict_proba(models.frame))


def test_record_refuses_what_is_not_a_fitted_estimator(models: Models, tmp_path: Path) -> None:
    with pytest.raises(SklearnModelError, match=r"holds a builtins\.dict, not a fitted scikit-learn"):
        record({"a": 1}, models.frame, output=tmp_path / "never.envsnap")
    with pytest.raises(SklearnModelError, match="applies a live object in this process"):
        record(models.model, models.frame, output=tmp_path / "never.envsnap", python=sys.executable)
    assert not (tmp_path / "never.envsnap").exists()


def test_run_sklearn_runs_the_steps_in_the_jobs_interpreter(models: Models, tmp_path: Path) -> None:
    (tmp_path / "custom_clip.py").write_text(CUSTOM_MODULE, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        import custom_clip

        X = _frame(200, seed=0)[["age", "income"]].fillna(40.0)
        model = Pipeline([("clip", custom_clip.Clip()), ("scale", StandardScaler())]).fit(X)
        joblib.dump(model, tmp_path / "clip.joblib")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("custom_clip", None)
    (tmp_path / "loaded-by.txt").unlink()
    models.frame[["age", "income"]].fillna(40.0).to_parquet(tmp_path / "rows.parquet")

    proc = _run_cli(
        "--sklearn", "clip.joblib", "--input", "rows=rows.parquet", "--method", "transform", "-o", "clip.envsnap",
        "--no-git", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "envsnap: scikit-learn model clip.joblib, step by step in" in proc.stderr
    assert "  01 clip" in proc.stderr and "  02 scale" in proc.stderr
    pids = {int(line) for line in (tmp_path / "loaded-by.txt").read_text(encoding="utf-8").split()}
    assert len(pids) == 2, "loaded by the planner and by the stage runner: two job processes"
    snap = envsnap.load(tmp_path / "clip.envsnap")
    document = snap.read_json("pipeline/pipeline.json")
    assert document["runner"]["mode"] == "subprocess"
    assert [s["name"] for s in document["stages"]] == ["clip", "scale"]
    assert [s["call"] for s in document["stages"]] == ["_envsnap_target.runner.sklearn_steps:step"] * 2
    scale = _stage(snap, 2, "scale")
    assert scale["params"] == {"model": "clip.joblib", "path": ["scale"], "method": "transform"}
    assert set(scale["fitted"]["fitted"]) >= {"mean_", "scale_"}
    assert _columns(snap, 2, "scale") == ["age", "income"]


def test_run_sklearn_imports_a_module_attr_model_in_the_job(models: Models, tmp_path: Path) -> None:
    (tmp_path / "serving.py").write_text(
        f"import joblib\nMODELS = {{'churn': joblib.load({str(models.model_a)!r})}}\n",
        encoding="utf-8",
    )
    proc = _run_cli(
        "--sklearn", "serving:MODELS.churn", "--input", f"rows={models.rows}", "-o", "m.envsnap", "--no-git", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "envsnap: error: scikit-learn model serving:MODELS.churn: cannot be loaded: "
        "AttributeError: 'dict' object has no attribute 'churn'"
    )
    (tmp_path / "serving.py").write_text(
        f"import joblib\nchurn = joblib.load({str(models.model_a)!r})\n",
        encoding="utf-8",
    )
    proc = _run_cli(
        "--sklearn", "serving:churn", "--input", f"rows={models.rows}", "-o", "ok.envsnap", "--no-git", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    snap = envsnap.load(tmp_path / "ok.envsnap")
    assert _stage(snap, 5, "clf")["params"] == {"model": "serving:churn", "path": ["clf"], "method": "predict"}
    predicted = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/05-clf.parquet")))
    assert predicted.column(0).to_pylist() == models.model.predict(models.frame).tolist()


# The job's own venv: another scikit-learn than envsnap's, pandas and pyarrow to read the input, no envsnap.
JOB_PINS = ("scikit-learn==1.5.2", "numpy==1.26.4", "pandas==2.2.3", "pyarrow==20.0.0")
TRAIN = textwrap.dedent(
    """
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(40, 10, 200), "city": rng.choice(["paris", "lyon"], 200)})
    X.loc[3, "age"] = np.nan
    pre = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age"]),
        ("cat", OneHotEncoder(), ["city"]),
    ])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, X["age"].fillna(40) > 40)
    joblib.dump(model, "model.joblib")
    X.head(30).to_parquet("rows.parquet")
    """
)


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = make_venv(tmp_path_factory.mktemp("sklearn-job") / "venv")
    pip_install(python, *JOB_PINS)
    return python


@pytest.fixture(scope="module")
def job_project(job_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project trained in the job's venv (model.joblib, rows.parquet) and recorded: job.envsnap."""
    project = tmp_path_factory.mktemp("sklearn-project")
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    subprocess.run([str(job_venv), "train.py"], cwd=project, check=True, capture_output=True)
    proc = _run_cli(
        "--sklearn", "model.joblib", "--input", "rows=rows.parquet", "--python", job_venv,
        "--method", "predict_proba", "-o", "job.envsnap", "--no-git", cwd=project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return project


@pytest.mark.slow
def test_run_sklearn_in_a_job_venv_of_its_own(job_venv: Path, job_project: Path) -> None:
    snap = envsnap.load(job_project / "job.envsnap")
    versions = {d["normalized_name"]: d["version"] for d in snap.section("packages")["distributions"]}
    assert versions["scikit-learn"] == "1.5.2" and "envsnap-ml" not in versions, "the job's venv is captured"
    document = snap.read_json("pipeline/pipeline.json")
    assert document["runner"]["python"].startswith(str(job_venv.parent.parent))
    assert [s["name"] for s in document["stages"]] == ["pre.num.impute", "pre.num.scale", "pre.cat", "pre", "clf"]
    assert set(_stage(snap, 2, "pre.num.scale")["fitted"]["fitted"]) >= {"mean_", "scale_"}
    assert _stage(snap, 3, "pre.cat")["fitted"]["fitted"]["categories_"] == [["lyon", "paris"]]
    proba = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/05-clf.parquet")))
    assert proba.column_names == ["False", "True"]
    assert proba.num_rows == 30


@pytest.mark.slow
def test_a_run_sklearn_snapshot_replays_step_by_step_in_a_venv(job_project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "replay", "job.envsnap", "--engine", "venv", "--source", ".", "--json"],
        cwd=job_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        (name, "match") for name in ("pre.num.impute", "pre.num.scale", "pre.cat", "pre", "clf")
    ]
    assert report["first_diverging_stage"] is None


def test_models_whose_scalers_differ_diff_to_the_scale_step(models: Models, tmp_path: Path) -> None:
    snaps = {}
    for label, model in (("a", models.model_a), ("b", models.model_b)):
        out = tmp_path / f"{label}.envsnap"
        proc = _run_cli(
            "--sklearn", "model.joblib", "--input", f"rows={models.rows}", "-o", out, "--no-git", "-q", cwd=model.parent
        )
        assert proc.returncode == 0, proc.stderr
        snaps[label] = envsnap.load(out)
    fitted = {
        name: [_stage(snaps[label], index, name).get("fitted") for label in ("a", "b")]
        for index, name in enumerate(STAGES, 1)
    }
    changed = [name for name, (a, b) in fitted.items() if a != b]
    assert changed == ["pre.num.scale"], "only the scaler's fitted state differs"
    a, b = fitted["pre.num.scale"]
    assert a is not None and b is not None
    assert {k for k in a["fitted"] if a["fitted"][k] != b["fitted"][k]} >= {"mean_", "scale_"}
    outputs = [
        name
        for index, name in enumerate(STAGES, 1)
        if snaps["a"].read_bytes(f"pipeline/stages/{index:02d}-{name}.parquet")
        != snaps["b"].read_bytes(f"pipeline/stages/{index:02d}-{name}.parquet")
    ]
    assert outputs[0] == "pre.num.scale" and "pre.num.impute" not in outputs

    result = runner.invoke(app, ["diff", str(tmp_path / "a.envsnap"), str(tmp_path / "b.envsnap"), "--json"])
    report = json.loads(result.stdout)
    assert report["data"]["first_diverging_stage"] == "pre.num.scale"
    by_stage = {stage["name"]: stage for stage in report["data"]["stages"]}
    assert [name for name, stage in by_stage.items() if stage["fitted"]] == ["pre.num.scale"]
    assert {change["name"] for change in by_stage["pre.num.scale"]["fitted"]} >= {"mean_", "scale_"}
    top = report["suspects"][0]
    assert (top["kind"], top["change"]["stage"]) == ("fitted", "pre.num.scale"), top
    assert "`mean_`" in top["reason"] and "`scale_`" in top["reason"]


def test_check_gates_a_model_against_a_run_sklearn_baseline(models: Models, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.envsnap"
    proc = _run_cli(
        "--sklearn", "model.joblib", "--input", f"rows={models.rows}", "-o", baseline, "--no-git", "-q",
        cwd=models.model_a.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    passed = {}
    for side, model in (("same", models.model_a), ("rescaled", models.model_b)):
        pipeline = model_pipeline("model.joblib", python=sys.executable, input_name="rows", cwd=model.parent)
        report = check(baseline, pipeline=pipeline, python=sys.executable, git=False)
        passed[side] = [(stage.name, stage.passed) for stage in report.stages]
    assert passed["same"] == [(name, True) for name in STAGES]
    assert passed["rescaled"] == [
        ("pre.num.impute", True),
        ("pre.num.scale", False),
        ("pre.cat.onehot", True),
        ("pre", False),
        ("clf", False),
    ]


def test_a_model_whose_feature_order_changed_diffs_to_its_first_step(tmp_path: Path) -> None:
    X = _frame(80, seed=2)[["age", "income"]].fillna(40.0)
    y = (X["income"] > 50_000).astype(int)
    snaps = []
    for label, columns in (("train", ["age", "income"]), ("serve", ["income", "age"])):
        pre = ColumnTransformer(
            [("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), columns)]
        )
        model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)
        out = tmp_path / f"{label}.envsnap"
        assert record(model, X, output=out, git=False).ok
        snaps.append(out)
    fitted = [envsnap.load(p).read_json("pipeline/stages/01-pre.num.impute.json")["fitted"] for p in snaps]
    assert [f["feature_names_in"] for f in fitted] == [["age", "income"], ["income", "age"]]
    report = json.loads(runner.invoke(app, ["diff", *map(str, snaps), "--json"]).stdout)
    assert report["data"]["first_diverging_stage"] == "pre.num.impute"
    top = report["suspects"][0]
    assert (top["kind"], top["change"]["stage"], top["change"]["name"]) == (
        "fitted",
        "pre.num.impute",
        "feature_names_in",
    )
    assert "feature order" in top["reason"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("dict", "holds a builtins.dict, not a fitted scikit-learn Pipeline or estimator"),
        ("garbage", "cannot be loaded: "),
        ("missing-module", "cannot be loaded: ModuleNotFoundError: No module named 'gone_module'"),
        ("absent", "no such file; give a joblib/pickle file or module:attr"),
    ],
)
def test_a_model_that_cannot_be_planned_is_one_line_and_exit_3(make: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / f"{make}.joblib"
    if make == "dict":
        joblib.dump({"weights": [1, 2, 3]}, path)
    elif make == "garbage":
        path.write_bytes(b"\x80\x04this is not a pickle")
    elif make == "missing-module":
        (tmp_path / "gone_module.py").write_text("class Thing:\n    pass\n", encoding="utf-8")
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import joblib, gone_module; joblib.dump(gone_module.Thing(), 'missing-module.joblib')",
            ],
            cwd=tmp_path,
            check=True,
        )
        (tmp_path / "gone_module.py").unlink()
    (tmp_path / "rows.parquet").write_bytes(b"")
    proc = _run_cli("--sklearn", path, "--input", "rows=rows.parquet", "-o", "never.envsnap", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"envsnap: error: scikit-learn model {path}: "), lines
    assert message in lines[-1]
    assert "Traceback" not in proc.stderr
    if make == "missing-module":
        assert "cannot import 'gone_module': install the packages the model was pickled with there" in lines[-1]
    assert not (tmp_path / "never.envsnap").exists()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--method", "score"], 2, "--method 'score' is not one of predict, predict_proba, transform"),
        (["--input", "more=rows.parquet"], 3, "needs exactly one input, the X it is applied to (got 2)"),
        (
            ["--method", "transform"],
            3,
            "step 'clf' (sklearn.linear_model._logistic.LogisticRegression) has no transform()",
        ),
    ],
)
def test_run_sklearn_usage(models: Models, args: list[str], status: int, message: str) -> None:
    base = ["run", "--sklearn", str(models.model_a), "--input", f"rows={models.rows}", "--no-git", "-q"]
    result = runner.invoke(app, [*base, *args, "-o", str(models.root / "never.envsnap")])
    assert result.exit_code == status, result.output
    assert message in result.stderr
    assert not (models.root / "never.envsnap").exists()


def test_method_without_sklearn_is_a_usage_error() -> None:
    result = runner.invoke(app, ["run", "--method", "predict"])
    assert result.exit_code == 2
    assert "--method predict goes with --sklearn MODEL" in result.stderr
