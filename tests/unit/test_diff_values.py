"""The diff of stage values of every kind (format minor 4), on snapshots built in memory.

Params and fitted state are suspects named with their stage; dict outputs are phrased key by key; tuple
elements are compared one by one; a stage that returned nothing on both sides is no difference; a stage
that returned another kind of value is. Records from before minor 4 still diff as they did.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.diff import diff
from envsnap.diff.data import diff_data
from envsnap.diff.model import StageDiff
from envsnap.diff.render.json import diff_document
from envsnap.diff.render.markdown import render_markdown
from envsnap.diff.render.text import render_text
from envsnap.diff.stage_values import fitted_changes, flatten, param_changes, summary
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot

SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"
FINGERPRINT = "sha256:" + "0" * 64


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _one_row(data: dict[str, Any]) -> pa.Table:
    """The table form of a dict or an estimator: one row, one column per flattened key."""
    row = {}
    for key, value in flatten(data).items():
        row[key] = [value if isinstance(value, (int, float)) and not isinstance(value, bool) else json.dumps(value)]
    return pa.table(row)


class Out:
    """One stage as a test writes it: its returned value (kind + extras) and the table form of it."""

    def __init__(self, kind: str, table: pa.Table | None = None, **extra: Any) -> None:
        self.kind, self.table, self.extra = kind, table, extra


def dict_out(data: dict[str, Any]) -> Out:
    return Out("dict", _one_row(data), data=data)


def numpy_out(columns: dict[str, list[float]]) -> Out:
    table = pa.table(columns)
    return Out("numpy", table, dtype="float64", shape=[table.num_rows, table.num_columns])


def estimator_out(description: dict[str, Any]) -> Out:
    return Out("estimator", _one_row(description.get("fitted") or {}), description=description)


def _stage_files(index: int, name: str, out: Out | tuple[Out, ...]) -> tuple[dict[str, bytes], dict[str, Any], Any]:
    """(parquet members, value object, record parquet member) of one stage's output."""
    stem = f"pipeline/stages/{index:02d}-{name}"
    members: dict[str, bytes] = {}
    if isinstance(out, tuple):
        elements = []
        for i, element in enumerate(out):
            member = f"{stem}.{i}.parquet"
            assert element.table is not None
            members[member] = _parquet(element.table)
            value = {"kind": element.kind, **element.extra}
            elements.append(
                {
                    "index": i,
                    "label": f"{name}.{i}",
                    "parquet": member,
                    "rows": element.table.num_rows,
                    "schema": None,
                    "columns": None,
                    "value": value,
                }
            )
        return members, {"kind": "tuple", "elements": elements}, None
    if out.table is None:
        return members, {"kind": out.kind, **out.extra}, None
    members[f"{stem}.parquet"] = _parquet(out.table)
    return members, {"kind": out.kind, **out.extra}, f"{stem}.parquet"


def snapshot(
    *stages: tuple[str, Out | tuple[Out, ...], dict[str, Any] | None],
    fitted: Any = None,
    old: bool = False,
    call: str | None = None,
    failed: str | None = None,
) -> Snapshot:
    """A minor-4 snapshot whose pipeline ran ``stages`` (name, output, params); ``fitted``: {stage: state}.

    ``old``: records as minor 3 wrote them (no ``value``, ``params``, ``fitted``; ``returned`` pandas).
    ``failed``: the stage that raised (no value, no fitted state recorded)."""
    members: dict[str, bytes] = {}
    entries = []
    for index, (name, out, params) in enumerate(stages, 1):
        files, value, parquet = _stage_files(index, name, out)
        members.update(files)
        rows = out.table.num_rows if isinstance(out, Out) and out.table is not None else None
        record = {
            "index": index,
            "name": name,
            "kind": "call",
            "status": "ok",
            "call": call or f"job:{name}",
            "run": None,
            "inputs": [],
            "returned": value["kind"],
            "parquet": parquet,
            "rows": rows,
            "schema": None,
            "columns": None,
            "load_time_s": None,
            "wall_time_s": None,
            "memory": None,
            "imports": [],
            "command": None,
            "error": None,
            "params": params,
            "value": value,
            "fitted": (fitted or {}).get(name),
        }
        member = f"pipeline/stages/{index:02d}-{name}.json"
        entry = {
            "name": name,
            "kind": "call",
            "call": call or f"job:{name}",
            "inputs": None,
            "accepts": None,
            "params": params,
            "columns": None,
            "index": index,
            "status": "ok",
            "record": member,
        }
        if name == failed:
            error = {"kind": "exception", "type": "ValueError", "message": "boom", "traceback": "ValueError: boom"}
            record.update(status="failed", value=None, fitted=None, parquet=None, returned=None, rows=None, error=error)
            entry["status"] = "failed"
            members.pop(f"pipeline/stages/{index:02d}-{name}.parquet", None)
        if old:
            for key in ("value", "params", "fitted"):
                record.pop(key)
                entry.pop(key, None)
            entry.pop("columns")
            record["returned"] = "pandas"
        members[member] = canonical.dumps(record)
        entries.append(entry)
    pipeline = {
        "name": "values",
        "source": "test",
        "accepts": "pandas",
        "inputs": [],
        "stages": entries,
        "status": "ok",
        "failed_stage": None,
        "error": None,
        "runner": {"mode": "in-process", "python": None, "added_by_runner": [], "preloaded_distributions": []},
        "root": None,
        "pythonpath": [],
    }
    members["pipeline/pipeline.json"] = canonical.dumps(pipeline)
    return assemble_snapshot(members, fingerprint=FINGERPRINT, reproducible=True)


def _stage(result: Any, name: str) -> StageDiff:
    return next(s for s in result.stages if s.name == name)


LOAD = numpy_out({"c0": [1.0, 2.0, 3.0], "c1": [0.5, 0.25, 0.125]})


def test_a_changed_param_is_the_top_suspect_named_with_its_stage() -> None:
    a = snapshot(("load", LOAD, None), ("score", dict_out({"metrics": {"auc": 0.91, "n": 3}}), {"threshold": 0.5}))
    b = snapshot(("load", LOAD, None), ("score", dict_out({"metrics": {"auc": 0.88, "n": 3}}), {"threshold": 0.7}))
    result = diff(a, b)
    assert result.data.first_diverging_stage == "score"
    score = _stage(result.data, "score")
    assert [(c.name, c.before, c.after) for c in score.params] == [("threshold", 0.5, 0.7)]
    top = result.suspects[0]
    assert top.kind == "param" and top.subject == "stage score param threshold"
    assert top.reason == "param `threshold` of stage `score`: 0.5 → 0.7; stage `score` is the first to diverge"
    assert top.evidence == "read"
    document = diff_document(result)
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert document["suspects"][0]["change"]["name"] == "threshold"
    assert document["data"]["stages"][1]["params"][0]["after"] == 0.7
    text = render_text(result)
    assert "param `threshold`: 0.5 → 0.7" in text
    assert "key `metrics.auc`: 0.91 → 0.88" in text
    assert "score: different; a dict; 1 key differs" in text
    assert "param `threshold`: 0.5 → 0.7" in render_markdown(result)


def test_a_param_upstream_of_the_first_diverging_stage_still_leads_one_downstream_does_not() -> None:
    a = snapshot(("load", LOAD, {"rows": 3}), ("score", dict_out({"auc": 0.9}), {"k": 1}))
    b = snapshot(("load", LOAD, {"rows": 4}), ("score", dict_out({"auc": 0.8}), {"k": 2}))
    suspects = diff(a, b).suspects
    by_subject = {s.subject: s for s in suspects}
    # load's output is identical: score diverges first; load runs before it, score is it.
    assert by_subject["stage load param rows"].reason.endswith("runs before `score`, the first to diverge")
    assert [s.subject for s in suspects[:2]] == ["stage score param k", "stage load param rows"]
    c = snapshot(("load", numpy_out({"c0": [9.0]}), {"rows": 3}), ("score", dict_out({"auc": 0.9}), {"k": 1}))
    d = snapshot(("load", numpy_out({"c0": [8.0]}), {"rows": 3}), ("score", dict_out({"auc": 0.9}), {"k": 2}))
    late = next(s for s in diff(c, d).suspects if s.subject == "stage score param k")
    assert "runs after `load`, the first to diverge" in late.reason
    assert late.score < 9


def test_dict_keys_are_phrased_as_keys_and_tolerances_apply() -> None:
    a = snapshot(("metrics", dict_out({"auc": 0.91, "loss": 0.3, "labels": ["a", "b"]}), None))
    b = snapshot(("metrics", dict_out({"auc": 0.91 + 1e-12, "loss": 0.35, "f1": 0.5, "labels": ["a", "c"]}), None))
    stage = _stage(diff_data(a, b), "metrics")
    keys = {c.name: c for c in stage.keys}
    assert keys["loss"].change == "changed" and (keys["loss"].before, keys["loss"].after) == (0.3, 0.35)
    assert keys["f1"].change == "added" and keys["f1"].after == 0.5
    assert keys["labels"].before == ["a", "b"] and keys["labels"].after == ["a", "c"]
    assert "auc" in keys  # compared exactly by default
    loose = _stage(diff_data(a, b, rtol=1e-9), "metrics")
    assert "auc" not in {c.name for c in loose.keys}
    text = render_text(diff(a, b, rtol=1e-9))
    assert "key `loss`: 0.3 → 0.35" in text and "key `f1`: added 0.5" in text


def test_array_values_of_a_dict_are_compared_number_by_number_with_the_tolerances() -> None:
    a = snapshot(("metrics", dict_out({"probs": [0.1, 0.2], "n": 2}), None))
    b = snapshot(("metrics", dict_out({"probs": [0.1, 0.2 + 1e-12], "n": 2}), None))
    exact = _stage(diff_data(a, b), "metrics")
    assert exact.table.status == "different"
    assert [k.name for k in exact.keys] == ["probs"]
    assert exact.keys[0].note == "first at [1]: 0.2 → 0.20000000000100002; max abs diff 1.00001e-12"
    loose = _stage(diff_data(a, b, atol=1e-9), "metrics")
    assert loose.table.status == "within_tolerance" and loose.keys == ()
    assert loose.table.sample_rows == ()
    probs = next(c for c in loose.table.columns if c.column == "probs")
    assert probs.status == "within_tolerance" and probs.max_abs_diff == pytest.approx(1e-12)


def test_nothing_returned_on_both_sides_is_no_difference() -> None:
    a = snapshot(("load", LOAD, None), ("log", Out("none", flows="load"), None))
    b = snapshot(("load", LOAD, None), ("log", Out("none", flows="load"), None))
    result = diff_data(a, b)
    log = _stage(result, "log")
    assert log.table.status == "equal" and not log.table.diverged
    assert log.table.note == "returned nothing on both sides (the previous value flowed on)"
    assert result.first_diverging_stage is None and not result.changed


def test_a_kind_change_is_a_difference() -> None:
    a = snapshot(("score", dict_out({"auc": 0.9}), None))
    b = snapshot(("score", numpy_out({"c0": [0.9]}), None))
    stage = _stage(diff_data(a, b), "score")
    assert stage.kinds == ("dict", "numpy")
    assert stage.table.status == "different"
    assert stage.table.note == "returned a dict in a, a numpy array in b"
    none = _stage(diff_data(snapshot(("s", Out("none", flows=None), None)), a), "score")
    assert none.table.note == "stage missing in a"


def test_tuple_elements_are_compared_one_by_one() -> None:
    x = numpy_out({"c0": [1.0, 2.0]})
    a = snapshot(("split", (x, dict_out({"n": 2, "seed": 1})), None))
    b = snapshot(("split", (x, dict_out({"n": 2, "seed": 7})), None))
    result = diff_data(a, b)
    split = _stage(result, "split")
    assert [(t.name, t.status) for t in split.elements] == [("split.0", "identical"), ("split.1", "different")]
    assert split.table.status == "different" and split.table.note == "1 of 2 elements differ: split.1"
    assert [(k.element, k.name, k.before, k.after) for k in split.keys] == [("split.1", "seed", 1, 7)]
    assert result.first_diverging_stage == "split"
    longer = snapshot(("split", (x, dict_out({"n": 2, "seed": 1}), x), None))
    extra = _stage(diff_data(a, longer), "split")
    assert extra.elements[-1].status == "incomparable" and extra.elements[-1].note == "element split.2 only in b"


SCALER = {
    "class": "sklearn.preprocessing._data.StandardScaler",
    "params": {"with_mean": True, "copy": True},
    "feature_names_in": ["age", "income", "tenure"],
    "n_features_in": 3,
    "fitted": {"mean_": [40.0, 52000.0, 12.0], "scale_": [10.0, 9000.0, 4.0], "n_samples_seen_": 100},
}


def _serving() -> dict[str, Any]:
    return {
        **SCALER,
        "feature_names_in": ["income", "age", "tenure"],
        "fitted": {"mean_": [52000.0, 40.0, 12.5], "scale_": [9000.0, 10.0, 5.0], "n_samples_seen_": 100},
    }


def test_the_scalers_parameters_and_the_feature_order_changed() -> None:
    """The seed incident: a step stage whose scaler was fitted on other data, with the features reordered."""
    frame = pa.table({"age": [1.0, 2.0], "income": [3.0, 4.0], "tenure": [5.0, 6.0]})
    scaled_a = pa.table({"age": [0.1, 0.2], "income": [0.3, 0.4], "tenure": [0.5, 0.6]})
    scaled_b = pa.table({"age": [0.1, 0.2], "income": [0.3, 0.4], "tenure": [0.5, 0.7]})
    a = snapshot(
        ("impute", Out("pandas", frame), None), ("scale", Out("pandas", scaled_a), None), fitted={"scale": SCALER}
    )
    b = snapshot(
        ("impute", Out("pandas", frame), None), ("scale", Out("pandas", scaled_b), None), fitted={"scale": _serving()}
    )
    result = diff(a, b)
    assert result.data.first_diverging_stage == "scale"
    names = [c.name for c in _stage(result.data, "scale").fitted]
    assert names == ["feature_names_in", "mean_", "scale_"]
    top = result.suspects[0]
    assert top.subject == "stage scale fitted state" and top.kind == "fitted"
    assert top.reason == (
        "fitted state of stage `scale` changed: `mean_` (first at [tenure]: 12 → 12.5, max abs diff 0.5), "
        "`scale_` (first at [tenure]: 4 → 5, max abs diff 1) and the feature order (income, age at other "
        "positions); stage `scale` is the first to diverge"
    )
    text = render_text(result)
    assert "fitted `mean_`: first at [tenure]: 12 → 12.5; max abs diff 0.5" in text
    # Each feature's value is compared with its own: only the order of age and income moved, not their values.
    fitted = {"mean_": [52000.0, 40.0, 12.0], "scale_": [9000.0, 10.0, 4.0], "n_samples_seen_": 100}
    only_order = fitted_changes("scale", SCALER, {**_serving(), "fitted": fitted})
    assert [c.name for c in only_order] == ["feature_names_in"]


def test_fitted_state_is_compared_only_where_both_sides_recorded_it() -> None:
    frame = Out("pandas", pa.table({"a": [1.0]}))
    a = snapshot(("scale", frame, None), fitted={"scale": SCALER})
    assert _stage(diff_data(a, snapshot(("other", frame, None))), "scale").fitted == ()
    assert [c.change for c in _stage(diff_data(a, snapshot(("scale", frame, None))), "scale").fitted] == ["removed"]
    failed = _stage(diff_data(a, snapshot(("scale", frame, None), failed="scale")), "scale")
    assert failed.status == ("ok", "failed") and failed.fitted == ()


def test_a_returned_estimator_is_diffed_by_its_description() -> None:
    model = {
        "class": "sklearn.pipeline.Pipeline",
        "params": {},
        "feature_names_in": None,
        "n_features_in": None,
        "fitted": {},
        "steps": [
            {"name": "scaler", "estimator": SCALER},
            {"name": "clf", "estimator": {"class": "X", "params": {"C": 1.0}}},
        ],
    }
    other = {
        **model,
        "steps": [
            {"name": "scaler", "estimator": _serving()},
            {"name": "clf", "estimator": {"class": "X", "params": {"C": 0.5}}},
        ],
    }
    a = snapshot(("train", estimator_out(model), None))
    b = snapshot(("train", estimator_out(other), None))
    train = _stage(diff_data(a, b), "train")
    assert train.kinds == ("estimator", "estimator")
    names = [c.name for c in train.fitted]
    assert names == ["scaler/feature_names_in", "scaler/mean_", "scaler/scale_", "clf/params.C"]


def test_the_model_name_of_a_sklearn_step_is_no_param_change() -> None:
    """``run --sklearn a/model.joblib`` against ``b/model.joblib``: the steps' fitted state tells what differs."""
    step = "_envsnap_target.runner.sklearn_steps:step"
    frame = Out("pandas", pa.table({"a": [1.0]}))
    a = snapshot(("scale", frame, {"model": "a/model.joblib", "path": ["scale"], "method": None}), call=step)
    b = snapshot(("scale", frame, {"model": "b/model.joblib", "path": ["scale"], "method": "transform"}), call=step)
    scale = _stage(diff_data(a, b), "scale")
    assert [(c.name, c.before, c.after) for c in scale.params] == [("method", None, "transform")]


def test_fitted_arrays_within_the_tolerances_are_the_same_fit() -> None:
    noisy = {**SCALER, "fitted": {**SCALER["fitted"], "mean_": [40.0, 52000.0 + 1e-9, 12.0]}}
    a, b = snapshot(("train", estimator_out(SCALER), None)), snapshot(("train", estimator_out(noisy), None))
    exact = _stage(diff_data(a, b), "train")
    assert [c.name for c in exact.fitted] == ["mean_"] and exact.table.status == "different"
    loose = _stage(diff_data(a, b, rtol=1e-9), "train")
    assert loose.fitted == () and loose.table.status == "within_tolerance"


def test_pure_helpers() -> None:
    assert summary([1.0, 2.0, 3.0], [1.0, 2.5, 3.25]) == "first at [1]: 2 → 2.5; max abs diff 0.5"
    assert summary([[1, 2]], [[1, 2], [3, 4]]).startswith("shape [1, 2] → [2, 2]; first at [1]")
    assert summary(["a", "b"], ["a", "c"]) == "first at [1]: b → c"
    assert summary([9.611790001], [9.611790002]).startswith("first at [0]: 9.611790001 → 9.611790002;")
    assert [(c.name, c.change) for c in param_changes("s", {"a": {"b": 1}, "c": 2}, {"a": {"b": 2}})] == [
        ("a.b", "changed"),
        ("c", "removed"),
    ]
    assert param_changes("s", {"flag": True}, {"flag": 1})  # a flag is not a count
    assert not param_changes("s", {"n": 1}, {"n": 1.0})
    assert param_changes("s", None, None) == ()
    assert [c.change for c in fitted_changes("s", None, SCALER)] == ["added"]


def test_records_from_before_minor_4_still_diff() -> None:
    """No ``value``, ``params`` or ``fitted``: the record's one parquet member is its output."""
    a = snapshot(("clean", Out("pandas", pa.table({"a": [1, 2]})), None), old=True)
    b = snapshot(("clean", Out("pandas", pa.table({"a": [1, 3]})), None), old=True)
    result = diff_data(a, b)
    clean = _stage(result, "clean")
    assert clean.table.status == "different" and clean.params == () and clean.fitted == ()
    assert clean.kinds == ("pandas", "pandas")
    assert result.first_diverging_stage == "clean"
    mixed = _stage(diff_data(a, snapshot(("clean", Out("pandas", pa.table({"a": [1, 2]})), {"k": 1}))), "clean")
    assert mixed.table.status == "identical"
    assert [(c.name, c.change) for c in mixed.params] == [("k", "added")]


@pytest.mark.parametrize("kind", ["polars", "arrow", "records"])
def test_a_move_between_table_kinds_is_compared(kind: str) -> None:
    table = pa.table({"a": [1, 2]})
    stage = _stage(diff_data(snapshot(("t", Out("pandas", table), None)), snapshot(("t", Out(kind, table), None))), "t")
    assert stage.table.status == "identical" and stage.kinds == ("pandas", kind)
