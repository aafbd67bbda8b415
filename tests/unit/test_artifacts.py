"""The artifacts probe on real files: hashes, names, JSON sidecars, models loaded in a real interpreter."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

import envsnap
from envsnap.capture import capture, target
from envsnap.capture.artifacts import ArtifactError, ArtifactsProbe, artifact_names, detect_format
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.core.hashing import hash_file
from envsnap.errors import EnvsnapError
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member


def _collect(tmp_path: Path, *paths: str, **options: Any) -> ProbeOutput:
    ctx = CaptureContext(CaptureOptions(artifacts=paths, cwd=str(tmp_path), **options), target.in_process)
    out = ArtifactsProbe().collect(ctx)
    validate_member("<test>", "artifacts/index.json", out.data)
    for member, record in out.extra.items():
        validate_member("<test>", member, record)
    return out


def _record(out: ProbeOutput, name: str) -> dict[str, Any]:
    member = out.data["artifacts"][name]["member"]
    record: dict[str, Any] = out.extra[member]
    return record


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A scikit-learn Pipeline (StandardScaler -> LogisticRegression) on named columns, saved with joblib."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(300, 3)), columns=["a", "b", "c"]
    )
    labels = (frame["a"] + frame["b"] > 0).astype(int)
    model = Pipeline([("scaler", StandardScaler()), ("classifier", LogisticRegression())]).fit(frame, labels)
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(model, path)
    return path, model


def test_names_are_unique_safe_and_never_the_index() -> None:
    names = artifact_names(
        ["model.joblib", "other/model.joblib", "index", ".hidden.json", "we ird/na:me?.pkl", "dir/", "MODEL.joblib"]
    )
    assert names == ["model.joblib", "model-2.joblib", "index-2", "hidden.json", "na_me_.pkl", "dir", "MODEL-3.joblib"]
    assert len({n.lower() for n in names}) == len(names)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("m.joblib", "joblib"),
        ("m.joblib.gz", "joblib"),
        ("m.PKL", "pickle"),
        ("m.pickle.xz", "pickle"),
        ("sidecar.json", "json"),
        ("model.onnx", "onnx"),
        ("weights.safetensors", "safetensors"),
        ("README", "unknown"),
        ("model.bin", "unknown"),
    ],
)
def test_format_comes_from_the_file_name(path: str, expected: str) -> None:
    assert detect_format(path) == expected


def test_hash_streams_and_matches_hashlib(tmp_path: Path) -> None:
    blob = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB and change: several 1 MiB chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    assert hash_file(str(path)) == (hashlib.sha256(blob).hexdigest(), len(blob))


def test_unknown_file_gets_hash_and_size_only(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    record = _record(_collect(tmp_path, "vocab.txt"), "vocab.txt")
    assert record["path"] == "vocab.txt"
    assert record["resolved"] == str((tmp_path / "vocab.txt").resolve())
    assert record["size"] == 4
    assert record["sha256"] == hashlib.sha256(b"a\nb\n").hexdigest()
    assert record["format"] == "text"
    assert record["metadata"] is None
    assert record["metadata_error"] is None


def test_json_sidecar_records_feature_order_and_small_values(tmp_path: Path) -> None:
    sidecar = {
        "feature_order": ["tenure", "charges", "sessions"],
        "threshold": 0.4,
        "scaler": {"mean": {"tenure": 20.5}, "scale": {"tenure": 12.0}},
        "embedding": [0.5] * 5000,
        "drift": float("nan"),  # Python's json writes NaN; canonical JSON cannot hold it
        "api_key": "not-for-a-snapshot",
        "db": {"host": "db.internal", "password": "hunter2"},
    }
    (tmp_path / "model.json").write_text(json.dumps(sidecar), encoding="utf-8")
    metadata = _record(_collect(tmp_path, "model.json"), "model.json")["metadata"]
    assert metadata["feature_order"] == ["tenure", "charges", "sessions"]
    assert metadata["values"]["threshold"] == 0.4
    assert metadata["values"]["scaler"] == sidecar["scaler"]
    assert metadata["omitted"] == ["drift", "embedding"], "a large blob must not be copied into the snapshot"
    assert metadata["values"]["api_key"] == "<redacted:key>"
    assert metadata["values"]["db"] == {"host": "db.internal", "password": "<redacted:key>"}
    assert "hunter2" not in json.dumps(metadata)
    assert metadata["keys"] == sorted(sidecar)


def test_json_that_is_not_an_object_or_not_json(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2, 3]", encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    out = _collect(tmp_path, "list.json", "broken.json")
    assert _record(out, "list.json")["metadata"] == {"type": "list", "length": 3}
    broken = _record(out, "broken.json")
    assert broken["metadata"] is None
    assert broken["metadata_error"].startswith("not read as JSON")
    assert broken["sha256"] == hashlib.sha256(b"{not json").hexdigest()


def test_sklearn_pipeline_metadata(tmp_path: Path, fitted_model: tuple[Path, Any]) -> None:
    import sklearn

    path, model = fitted_model
    record = _record(_collect(tmp_path, str(path)), "model.joblib")
    assert record["format"] == "joblib"
    assert record["metadata_error"] is None
    metadata = record["metadata"]
    assert metadata["sklearn_version_pickled"] == sklearn.__version__
    assert metadata["loaded_by"]["python"] == sys.executable
    assert metadata["loaded_by"]["sklearn"] == sklearn.__version__
    top = metadata["object"]
    assert top["class"] == "sklearn.pipeline.Pipeline"
    assert top["feature_names_in"] == ["a", "b", "c"]
    assert top["n_features_in"] == 3
    assert [step["name"] for step in top["steps"]] == ["scaler", "classifier"]
    scaler = top["steps"][0]["estimator"]
    assert scaler["class"].endswith("StandardScaler")
    assert scaler["params"]["with_mean"] is True
    assert scaler["fitted"]["mean_"] == model.named_steps["scaler"].mean_.tolist()
    assert scaler["fitted"]["scale_"] == model.named_steps["scaler"].scale_.tolist()
    classifier = top["steps"][1]["estimator"]
    assert classifier["fitted"]["classes_"] == [0, 1]
    assert classifier["fitted"]["coef_"] == model.named_steps["classifier"].coef_.tolist()


def test_compressed_joblib_and_plain_pickle_load(tmp_path: Path, fitted_model: tuple[Path, Any]) -> None:
    import joblib

    _, model = fitted_model
    joblib.dump(model, tmp_path / "model.joblib.gz")
    with open(tmp_path / "scaler.pkl", "wb") as fh:
        pickle.dump(model.named_steps["scaler"], fh)
    out = _collect(tmp_path, "model.joblib.gz", "scaler.pkl")
    assert _record(out, "model.joblib.gz")["metadata"]["object"]["n_features_in"] == 3
    scaler = _record(out, "scaler.pkl")["metadata"]["object"]
    assert scaler["feature_names_in"] == ["a", "b", "c"]
    assert scaler["fitted"]["mean_"] == model.named_steps["scaler"].mean_.tolist()


def test_the_sklearn_version_a_model_was_pickled_with_is_recorded(
    tmp_path: Path, fitted_model: tuple[Path, Any]
) -> None:
    import sklearn

    _, model = fitted_model
    current = sklearn.__version__
    older = ("0.0." + "0" * 20)[: len(current)]  # same length: the pickle's string header stays valid
    data = pickle.dumps(model.named_steps["scaler"])
    assert data.count(current.encode()) == 1
    (tmp_path / "old.pkl").write_bytes(data.replace(current.encode(), older.encode()))
    metadata = _record(_collect(tmp_path, "old.pkl"), "old.pkl")["metadata"]
    assert metadata["sklearn_version_pickled"] == older
    assert metadata["loaded_by"]["sklearn"] == current
    assert any(w.startswith("InconsistentVersionWarning") and older in w for w in metadata["warnings"])


def test_loader_imports_the_jobs_own_modules_and_ignores_their_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A custom class from the job's code base, which prints while it is unpickled.
    (tmp_path / "noisy_model.py").write_text(
        "class Noisy:\n"
        "    def __init__(self, weights):\n"
        "        self.weights = weights\n"
        "    def __setstate__(self, state):\n"
        "        print('loading weights...')\n"
        "        self.__dict__.update(state)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import noisy_model

    with open(tmp_path / "noisy.pkl", "wb") as fh:
        pickle.dump({"model": noisy_model.Noisy([1, 2]), "feature_order": ["x"]}, fh)
    record = _record(_collect(tmp_path, "noisy.pkl"), "noisy.pkl")
    assert record["metadata_error"] is None
    assert record["metadata"]["object"] == {"class": "builtins.dict", "keys": ["feature_order", "model"]}
    assert record["metadata"]["sklearn_version_pickled"] is None


def test_a_pickle_that_does_not_load_is_a_value_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "truncated.pkl").write_bytes(pickle.dumps(list(range(100)))[:20])
    record = _record(_collect(tmp_path, "truncated.pkl"), "truncated.pkl")
    assert record["metadata"] is None
    assert "cannot load with" in record["metadata_error"]
    assert record["size"] == 20


@pytest.mark.slow
def test_target_without_sklearn_or_joblib_gets_a_clear_error(tmp_path: Path, fitted_model: tuple[Path, Any]) -> None:
    import joblib

    path, model = fitted_model
    joblib.dump(model, tmp_path / "model.joblib.gz")
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    out = _collect(tmp_path, str(path), "model.joblib.gz", python=str(bare / "bin" / "python"))
    plain = _record(out, "model.joblib")
    assert plain["metadata"] is None
    assert "has no module 'sklearn'" in plain["metadata_error"]
    assert str(bare) in plain["metadata_error"]
    assert plain["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), "the hash does not need the loader"
    compressed = _record(out, "model.joblib.gz")
    assert "joblib is not installed" in compressed["metadata_error"]


def test_missing_and_unreadable_paths_fail_the_probe_naming_each(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text("{}", encoding="utf-8")
    (tmp_path / "models").mkdir()
    with pytest.raises(ArtifactError) as info:
        _collect(tmp_path, "ok.json", "gone.joblib", "models")
    assert isinstance(info.value, EnvsnapError)
    assert isinstance(info.value, ValueError)
    assert info.value.problems == {"gone.joblib": "does not exist", "models": "is a directory"}
    assert "artifact gone.joblib: does not exist" in str(info.value)


def test_capture_records_a_bad_artifact_and_still_writes_the_snapshot(tmp_path: Path) -> None:
    snap = capture(tmp_path / "s.envsnap", git=False, artifacts=[tmp_path / "missing.joblib"])
    status = snap.manifest.probes["artifacts"]
    assert status.status == "error"
    assert "missing.joblib: does not exist" in (status.error or "")
    loaded = envsnap.load(tmp_path / "s.envsnap")
    assert loaded.verify().members == len(loaded.members())
    assert "error" in loaded.read_json("artifacts/index.json")


def test_capture_writes_index_and_records_that_the_reader_validates(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"feature_order": ["a"]}), encoding="utf-8")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "model.json").write_text("{}", encoding="utf-8")
    capture(
        tmp_path / "s.envsnap", git=False, cwd=tmp_path, artifacts=["model.json", "conf/model.json"], reproducible=True
    )
    loaded = envsnap.load(tmp_path / "s.envsnap")
    loaded.verify()
    index = loaded.read_json("artifacts/index.json")["artifacts"]
    assert index == {
        "model.json": {"path": "model.json", "member": "artifacts/model.json.json"},
        "model-2.json": {"path": "conf/model.json", "member": "artifacts/model-2.json.json"},
    }
    assert loaded.read_json("artifacts/model.json.json")["metadata"]["feature_order"] == ["a"]


def test_two_collections_of_the_same_files_are_byte_identical(tmp_path: Path, fitted_model: tuple[Path, Any]) -> None:
    path, _ = fitted_model
    (tmp_path / "model.json").write_text(json.dumps({"feature_order": ["a", "b", "c"]}), encoding="utf-8")
    first = _collect(tmp_path, str(path), "model.json")
    second = _collect(tmp_path, str(path), "model.json")
    assert canonical.dumps(first.data) == canonical.dumps(second.data)
    assert {m: canonical.dumps(r) for m, r in first.extra.items()} == {
        m: canonical.dumps(r) for m, r in second.extra.items()
    }
