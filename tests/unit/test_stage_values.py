"""Stage values of any shape: each kind's table form, its native hand-over form, and what is refused."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import sparse
from sklearn.preprocessing import StandardScaler

from envsnap._target.runner import values
from envsnap.pipeline import Pipeline
from envsnap.pipeline.execution import run_stages_here
from envsnap.pipeline.values import normalize


@pytest.mark.parametrize(
    ("value", "kind", "names", "rows"),
    [
        (pd.DataFrame({"a": [1, 2]}), "pandas", ["a"], 2),
        (pd.Series([1.0, 2.0, 3.0], name="score"), "series", ["score"], 3),
        (pa.table({"a": [1]}), "arrow", ["a"], 1),
        (pl.DataFrame({"a": [1, 2], "s": ["x", "y"]}), "polars", ["a", "s"], 2),
        (pl.DataFrame({"a": [1]}).lazy(), "polars", ["a"], 1),
        (np.arange(6).reshape(3, 2), "numpy", ["c0", "c1"], 3),
        (np.arange(4.0), "numpy", ["value"], 4),
        (np.zeros((2, 3, 4)), "numpy", ["value"], 2),
        (sparse.csr_matrix(np.eye(3)), "sparse", ["row", "col", "value"], 3),
        ([{"id": 1, "x": 0.5}, {"id": 2, "x": 1.5}], "records", ["id", "x"], 2),
        ({"auc": 0.91, "per_class": {"a": 1, "b": np.array([1, 2])}}, "dict", ["auc", "per_class.a", "per_class.b"], 1),
    ],
)
def test_each_kind_has_one_table_form(value: Any, kind: str, names: list[str], rows: int) -> None:
    assert values.kind_of(value) == kind
    settled = values.settle(value, kind)
    table = values.to_arrow(settled, kind)
    assert table.column_names == names and table.num_rows == rows
    assert values.describe(settled, kind)["kind"] == kind


@pytest.mark.parametrize(
    ("value", "facts"),
    [
        (np.arange(12, dtype="int32").reshape(4, 3), {"dtype": "int32", "shape": [4, 3]}),
        (np.arange(5.0), {"dtype": "float64", "shape": [5]}),
        (np.arange(24.0).reshape(2, 3, 4), {"dtype": "float64", "shape": [2, 3, 4]}),
    ],
)
def test_a_recorded_array_comes_back_as_the_same_array(value: Any, facts: dict[str, Any]) -> None:
    described = values.describe(value, "numpy")
    assert {k: described[k] for k in facts} == facts
    back = values.KINDS["numpy"].from_arrow(values.to_arrow(value, "numpy"), described)
    assert back.dtype == value.dtype and back.shape == value.shape and (back == value).all()


def test_stage_columns_name_a_2d_array_and_a_wrong_count_is_refused() -> None:
    assert values.to_arrow(np.ones((2, 2)), "numpy", ["age", "income"]).column_names == ["age", "income"]
    with pytest.raises(TypeError, match="the stage names 3 columns, but the array has 2"):
        values.describe(np.ones((2, 2)), "numpy", ["a", "b", "c"])


def test_an_estimator_is_recorded_by_its_fitted_attributes() -> None:
    scaler = StandardScaler().fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    assert values.kind_of(scaler) == "estimator"
    described = values.describe(scaler, "estimator")["description"]
    assert described["class"] == "sklearn.preprocessing._data.StandardScaler"
    assert described["fitted"]["mean_"] == [2.0, 20.0] and described["fitted"]["scale_"] == [1.0, 10.0]
    row = values.to_arrow(scaler, "estimator").to_pylist()[0]
    assert json.loads(row["mean_"]) == [2.0, 20.0] and row["params.with_mean"] == "true"


def test_unfitted_estimators_and_unknown_objects_are_refused_naming_type_and_kinds(tmp_path: Path) -> None:
    for value, shown in (
        ((i for i in range(3)), "generator"),
        (StandardScaler(), "sklearn.preprocessing._data.StandardScaler"),
        (object(), "object"),
        (3, "int"),
    ):
        with pytest.raises(values.UnsupportedValue) as caught:
            values.kind_of(value)
        assert str(caught.value).startswith(f"{shown}, which envsnap cannot record; a stage returns a table")
    with (tmp_path / "f.txt").open("w") as fh, pytest.raises(values.UnsupportedValue, match="TextIOWrapper"):
        values.kind_of(fh)


def test_bad_values_inside_a_kind_name_the_column_or_key() -> None:
    mixed = np.array([["a", 1], ["b", 2]], dtype=object)
    with pytest.raises(TypeError, match=r"dtype object \(column c1 holds int\)"):
        values.describe(mixed, "numpy")
    assert values.to_arrow(np.array(["a", None], dtype=object), "numpy").column("value").to_pylist() == ["a", ""]
    with pytest.raises(TypeError, match=r"key 'model\.fitted' holds sklearn"):
        values.describe({"model": {"fitted": StandardScaler()}}, "dict")
    with pytest.raises(TypeError, match="column 'o' has polars dtype Object"):
        values.describe(pl.DataFrame({"o": [object()]}, schema={"o": pl.Object}), "polars")


def test_metrics_keep_non_finite_numbers_as_text() -> None:
    described = values.describe({"loss": float("nan"), "n": np.int64(3)}, "dict")
    assert described["data"] == {"loss": "nan", "n": 3}


@pytest.mark.parametrize(
    ("value", "kind", "form"),
    [
        (np.arange(6.0).reshape(3, 2), "numpy", "npy"),
        (
            pd.DataFrame({"x": [1.5, 2.5], "s": ["a", None], "t": pd.to_datetime(["2026-01-01", "2026-01-02"])}),
            "pandas",
            "columns",
        ),
        (sparse.csr_matrix(np.eye(2)), "sparse", "npz"),
        ([{"a": 1}], "records", "json"),
        ({"acc": 0.5}, "dict", "json"),
        (StandardScaler().fit([[1.0], [2.0]]), "estimator", "json"),
        (pl.DataFrame({"a": [1]}), "polars", "parquet"),
    ],
)
def test_without_pyarrow_each_kind_has_a_native_form_the_host_reads(
    value: Any, kind: str, form: str, tmp_path: Path
) -> None:
    """What the runner writes in a job venv without pyarrow, converted here to the same table."""
    path, written = values.KINDS[kind].write(value, str(tmp_path / f"01-{kind}"), None)
    assert written == form
    facts = dict(values.describe(value, kind), file=Path(path).name, form=form)
    outcome = {"index": 1, "name": kind, "status": "ok", "value": facts}
    (output,) = normalize(tmp_path, outcome)
    assert output.path == tmp_path / f"01-{kind}.parquet" and "file" not in output.value
    expected = values.to_arrow(values.settle(value, kind), kind)
    got = pq.read_table(output.path)
    assert got.column_names == expected.column_names
    assert got.to_pylist() == expected.to_pylist()


def test_a_pipeline_of_polars_numpy_tuple_none_and_dict_with_params_and_a_source_stage() -> None:
    pipeline = Pipeline("shapes")
    seen: list[Any] = []

    @pipeline.stage(params={"n": 6})
    def load(n: int) -> Any:
        return pl.DataFrame({"x": list(range(n)), "y": [v * 2.0 for v in range(n)]})

    @pipeline.stage()
    def matrix(frame: Any) -> Any:
        return frame.to_numpy()

    @pipeline.stage()
    def log(m: Any) -> None:
        seen.append(m.shape)

    @pipeline.stage()
    def split(m: Any) -> Any:
        return m[:2], m[2:]

    @pipeline.stage(inputs=["split.1"], params={"scale": 0.5})
    def score(split_1: Any, scale: float) -> Any:
        return {"total": float(split_1.sum()) * scale, "rows": int(split_1.shape[0])}

    run = run_stages_here(pipeline, {})
    assert [(o["name"], o["status"], o["returned"]) for o in run.outcomes] == [
        ("load", "ok", "polars"),
        ("matrix", "ok", "numpy"),
        ("log", "ok", "none"),
        ("split", "ok", "tuple"),
        ("score", "ok", "dict"),
    ], [o["error"] for o in run.outcomes]
    assert seen == [(6, 2)], "the side-effect stage got the array, and it flowed on past it"
    assert set(run.intermediates) == {"01-load", "02-matrix", "04-split.0", "04-split.1", "05-score"}
    assert run.outcomes[4]["value"]["data"] == {"total": (2 + 3 + 4 + 5 + 2 * (2 + 3 + 4 + 5)) * 0.5, "rows": 4}
    assert run.outcomes[4]["params"] == {"scale": 0.5}
    metrics = pq.read_table(io.BytesIO(run.intermediates["05-score"].parquet))
    assert metrics.column_names == ["total", "rows"] and metrics.num_rows == 1


def test_a_list_of_values_is_recorded_element_by_element_and_flows_on_as_a_list() -> None:
    """``train_test_split`` returns a list of four: each element is recorded, the list flows on."""
    pipeline = Pipeline("split")

    @pipeline.stage()
    def split(frame: Any) -> Any:
        return [frame.iloc[:2], frame.iloc[2:], frame["y"].iloc[:2], frame["y"].iloc[2:]]

    @pipeline.stage(inputs=["split.1", "split"])
    def check(split_1: Any, split: Any) -> Any:
        return {"rows": len(split_1), "is_list": isinstance(split, list)}

    run = run_stages_here(pipeline, {"x": pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]})})
    assert [o["returned"] for o in run.outcomes] == ["tuple", "dict"], [o["error"] for o in run.outcomes]
    assert [e["kind"] for e in run.outcomes[0]["value"]["elements"]] == ["pandas", "pandas", "series", "series"]
    assert run.outcomes[1]["value"]["data"] == {"rows": 2, "is_list": True}
    with pytest.raises(values.UnsupportedValue, match=r"^list, which envsnap cannot record"):
        values.kind_of([1, "a"])


def test_in_memory_numpy_inputs_keep_their_dimensions() -> None:
    """A 2-D X and a 1-D y given in memory reach the stages as arrays of the same shape (sampled rows)."""
    from envsnap.pipeline import run_pipeline

    pipeline = Pipeline("xy")

    @pipeline.stage(inputs=["X", "y"])
    def shapes(X: Any, y: Any) -> Any:
        return {"X": list(X.shape), "y": list(y.shape), "kinds": [type(X).__name__, type(y).__name__]}

    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    result = run_pipeline(pipeline, inputs={"X": X, "y": y}, git=False)
    assert result.status == "ok", result.error
    data = result.snapshot.read_json("pipeline/stages/01-shapes.json")["value"]["data"]
    assert data == {"X": [10, 2], "y": [10], "kinds": ["ndarray", "ndarray"]}
