"""The bundled churn example (fixtures/example): generated data, the five stages run plainly, the model
and its sidecar captured as artifacts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import tomllib

import envsnap
from envsnap.capture import capture

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "example"
ROWS = 4000
ROW_GROUP = 500
SEED = 11


def _load_script(name: str) -> ModuleType:
    """Import a script of the example (make_data.py, run_plain.py) under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"churn_example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generator run as users run it (a subprocess) into a temporary directory."""
    out = tmp_path_factory.mktemp("churn-data")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_data.py"), str(out), "--rows", str(ROWS), "--seed", str(SEED),
         "--row-group-size", str(ROW_GROUP)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def churn_env(example_data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``churn`` importable and pointed at the generated model."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("CHURN_ARTIFACTS", str(example_data))
    yield example_data


@pytest.fixture(scope="module")
def make_data() -> ModuleType:
    return _load_script("make_data")


@pytest.fixture(scope="module")
def run_plain() -> ModuleType:
    return _load_script("run_plain")


def _sidecar(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    return loaded


def test_generator_writes_raw_events_in_row_groups_and_a_model(example_data: Path) -> None:
    metadata = pq.ParquetFile(example_data / "events.parquet").metadata
    assert metadata.num_rows == ROWS
    assert metadata.num_row_groups == ROWS // ROW_GROUP
    assert (example_data / "model.joblib").stat().st_size > 0
    sidecar = _sidecar(example_data)
    assert len(sidecar["feature_order"]) == 13
    assert set(sidecar["scaler"]["mean"]) == set(sidecar["numeric_columns"])
    assert 0.1 < sidecar["positive_rate"] < 0.5, "a churn rate a churn model is built for"


def test_stages_run_plainly_with_realistic_outputs(churn_env: Path, run_plain: ModuleType) -> None:
    from churn import KEY_COLUMNS, NUMERIC_COLUMNS, features, ingest, predict, preprocess

    raw = pd.read_parquet(churn_env / "events.parquet")
    sidecar = _sidecar(churn_env)

    clean = ingest.run(raw)
    assert 0.85 * ROWS < len(clean) < ROWS, "duplicates, repeat customers and bad rows are dropped"
    assert clean["customer_id"].is_unique
    assert clean["customer_id"].notna().all()
    assert clean["event_time"].notna().all()
    assert set(clean["plan"]) == {"basic", "standard", "premium"}
    assert (clean["tenure_months"] >= 0).all()
    assert str(clean["event_time"].dtype).startswith("datetime64")

    scaled = preprocess.run(clean)
    assert not scaled[list(NUMERIC_COLUMNS)].isna().any().any(), "nulls are filled"
    assert scaled["tenure_months"].mean() == pytest.approx(0.0, abs=0.15), "standardised with training stats"

    table = features.run(scaled)
    assert list(table.columns) == [*KEY_COLUMNS, *sidecar["feature_order"]]
    assert len(table) == len(clean)

    scored = predict.run(table)
    assert scored["churn_probability"].between(0.0, 1.0).all()
    assert scored["churn_probability"].std() > 0.05, "the model separates customers"

    result = run_plain.run_command(scored)  # the postprocess stage as the subprocess it is in production
    assert list(result.columns) == [
        "customer_id",
        "churn_probability",
        "churn_risk",
        "contact",
        "action",
        "model_version",
    ]
    assert len(result) == len(clean)
    assert result["churn_probability"].is_monotonic_decreasing
    assert set(result["churn_risk"]) == {"low", "medium", "high"}
    assert set(result["action"]) <= {"retention_offer", "call", "none"}
    assert (result["action"] != "none").sum() == result["contact"].sum() > 0
    assert (result["model_version"] == sidecar["model_version"]).all()


def test_plain_run_is_deterministic_and_the_seed_matters(
    churn_env: Path, make_data: ModuleType, run_plain: ModuleType
) -> None:
    first = make_data.generate_events(ROWS, SEED)
    pd.testing.assert_frame_equal(first, make_data.generate_events(ROWS, SEED))
    assert not first.equals(make_data.generate_events(ROWS, SEED + 1))

    raw = pd.read_parquet(churn_env / "events.parquet")
    pd.testing.assert_frame_equal(raw, first, check_dtype=False)
    once, twice = run_plain.run(raw), run_plain.run(raw)
    pd.testing.assert_frame_equal(once, twice)


def test_config_declares_the_stages_run_plain_runs(run_plain: ModuleType) -> None:
    config = tomllib.loads((EXAMPLE / "envsnap.toml").read_text(encoding="utf-8"))["pipeline"]
    assert config["inputs"] == {"events": ".data/events.parquet"}
    stages = config["stages"]
    calls = [(s["name"], s["call"]) for s in stages if "call" in s]
    expected = [(name, f"{fn.__module__}:{fn.__name__}") for name, fn in run_plain.CALL_STAGES]
    assert calls == expected
    assert [s["name"] for s in stages] == [*(name for name, _ in expected), "postprocess"]
    assert stages[-1]["run"] == "python " + " ".join(run_plain.POSTPROCESS_COMMAND) + " {input} {output}"


def test_model_and_sidecar_captured_as_artifacts_match_the_generator(example_data: Path, tmp_path: Path) -> None:
    import joblib

    model = joblib.load(example_data / "model.joblib")
    sidecar = _sidecar(example_data)
    snap = capture(
        tmp_path / "churn.envsnap",
        git=False,
        reproducible=True,
        artifacts=[example_data / "model.joblib", example_data / "model.json"],
    )
    assert snap.manifest.probes["artifacts"].status == "ok"
    loaded = envsnap.load(tmp_path / "churn.envsnap")
    loaded.verify()  # hashes and schemas of every member

    record = loaded.read_json("artifacts/model.joblib.json")
    assert record["format"] == "joblib"
    assert record["metadata_error"] is None
    pipeline = record["metadata"]["object"]
    assert pipeline["class"] == "sklearn.pipeline.Pipeline"
    assert pipeline["feature_names_in"] == sidecar["feature_order"] == list(model.feature_names_in_)
    assert pipeline["n_features_in"] == len(sidecar["feature_order"]) == 13
    steps = {step["name"]: step["estimator"] for step in pipeline["steps"]}
    assert list(steps) == ["scaler", "classifier"]
    assert steps["scaler"]["fitted"]["mean_"] == model.named_steps["scaler"].mean_.tolist()
    assert steps["scaler"]["fitted"]["scale_"] == model.named_steps["scaler"].scale_.tolist()
    assert record["metadata"]["sklearn_version_pickled"] == sidecar["sklearn_version"]

    side = loaded.read_json("artifacts/model.json.json")
    assert side["format"] == "json"
    assert side["metadata"]["feature_order"] == sidecar["feature_order"]
    assert side["metadata"]["values"]["scaler"] == sidecar["scaler"]
    assert side["metadata"]["values"]["threshold"] == sidecar["threshold"]
