"""The stage runner on in-memory tables: kinds, keyword inputs, intermediates, measurements, failures."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.pipeline import Pipeline, Stage, load_pipeline
from envsnap.pipeline.execution import StageRun, run_stages_here
from envsnap.pipeline.records import stage_record
from envsnap.snapshot.schema import validate_member

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"


def _toy(*stages: Stage, accepts: str = "pandas") -> Pipeline:
    return Pipeline("toy", stages=stages, pythonpath=[str(TOY)], root=TOY, accepts=accepts)


def _table() -> pa.Table:
    return pa.table({"a": [1.0, None, 3.0, 4.0], "b": [10, 20, 30, 40], "user": ["u1", "u2", "u1", "u3"]})


def _key(run: StageRun, index: int) -> str:
    """The intermediates are keyed by member stem ``NN-NAME``."""
    return next(k for k in run.intermediates if k.startswith(f"{index:02d}-"))


def _read(run: StageRun, index: int) -> pa.Table:
    return pq.read_table(io.BytesIO(run.intermediates[_key(run, index)].parquet))


def _check_records(run: StageRun, pipeline: Pipeline) -> list[dict[str, Any]]:
    out = []
    for outcome in run.outcomes:
        index = outcome["index"]
        record = stage_record(
            outcome,
            pipeline.stages[index - 1].to_dict(),
            received=["x"],
            intermediates=run.intermediates,
            mapping={},
            reproducible=False,
        )
        validate_member("<test>", f"pipeline/stages/{index:02d}-{outcome['name']}.json", record)
        out.append(record)
    return out


def test_the_toy_config_runs_three_stages_of_every_kind() -> None:
    pipeline = load_pipeline(TOY / "envsnap.toml")
    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "pandas"})
    assert [(o["name"], o["status"], o["returned"], o["rows"]) for o in run.outcomes] == [
        ("clean", "ok", "pandas", 3),
        ("total", "ok", "arrow", 3),
        ("label", "ok", "arrow", 3),
    ]
    final = _read(run, 3)
    assert final.column_names == ["a", "b", "user", "total", "label"]
    assert final["total"].to_pylist() == [11.0, 33.0, 44.0]
    assert final["label"].to_pylist() == ["small", "big", "big"]
    assert str(TOY) not in sys.path, "the pipeline's pythonpath is removed after the run"
    records = _check_records(run, pipeline)
    assert records[2]["command"]["returncode"] == 0
    assert records[2]["command"]["argv"][0] == sys.executable, "'python' in a command is the pipeline's interpreter"
    assert records[2]["command"]["argv"][-2:] == ["<tmp>/03-label.in.total.parquet", "<tmp>/03-label.out.parquet"]
    assert records[2]["memory"]["method"] == "child-maxrss" and records[2]["memory"]["peak_rss_bytes"] > 0
    assert records[0]["memory"]["method"] in ("vmhwm-reset", "sampled")
    assert records[0]["wall_time_s"] >= 0 and records[0]["load_time_s"] >= 0


def test_kinds_flow_from_stage_to_stage() -> None:
    seen: list[str] = []

    pipeline = _toy()

    @pipeline.stage()
    def first(frame: Any) -> Any:
        seen.append(type(frame).__module__.split(".")[0])
        return pa.Table.from_pandas(frame)

    @pipeline.stage()
    def second(table: Any) -> Any:
        seen.append(type(table).__module__.split(".")[0])
        return table.to_pandas()

    @pipeline.stage(accepts="arrow")
    def third(table: Any) -> Any:
        seen.append(type(table).__module__.split(".")[0])
        return table

    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "pandas"})
    assert seen == ["pandas", "pyarrow", "pyarrow"]
    assert [o["returned"] for o in run.outcomes] == ["arrow", "pandas", "arrow"]

    seen.clear()
    run_stages_here(pipeline, {"x": _table()}, kinds={"x": "arrow"})
    assert seen[0] == "pyarrow", "an input of kind arrow reaches the first stage as a pyarrow Table"


def test_keyword_inputs_and_earlier_stages_by_name() -> None:
    users = pd.DataFrame({"user": ["u1", "u2"], "country": ["DE", "FR"]})
    pipeline = _toy(Stage("joined", call="envsnap_toy.stages:join", inputs=("events", "users")))

    @pipeline.stage(name="again", inputs=["joined", "users"])
    def join_again(joined: Any, users: Any) -> Any:
        return joined.merge(users, on="user", how="left")

    pipeline.check_inputs(["events", "users"])
    run = run_stages_here(pipeline, {"events": _table(), "users": users}, kinds={"events": "pandas"})
    assert [o["status"] for o in run.outcomes] == ["ok", "ok"]
    assert _read(run, 1)["country"].to_pylist() == ["DE", "FR", "DE", None]
    assert _read(run, 2).column_names == ["a", "b", "user", "country_x", "country_y"]


def test_an_intermediate_is_frozen_before_the_next_stage_mutates_it() -> None:
    pipeline = _toy(
        Stage("clean", call="envsnap_toy.stages:clean"), Stage("double", call="envsnap_toy.stages:double_in_place")
    )
    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "pandas"})
    assert _read(run, 1)["a"].to_pylist() == [1.0, 3.0, 4.0]
    assert _read(run, 2)["a"].to_pylist() == [2.0, 6.0, 8.0]


def test_stats_of_an_intermediate() -> None:
    pipeline = _toy(Stage("same", call="envsnap_toy.stages:add_total"), accepts="arrow")
    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "arrow"})
    columns = {c["name"]: c for c in run.intermediates[_key(run, 1)].columns}
    assert columns["a"]["null_count"] == 1 and columns["a"]["null_rate"] == 0.25
    assert (columns["a"]["min"], columns["a"]["max"]) == (1.0, 4.0)
    assert columns["a"]["quantiles"]["p50"] == 3.0
    assert columns["user"]["distinct"] == 3
    assert columns["user"]["top"] == [{"value": "u1", "count": 2}]
    assert run.intermediates[_key(run, 1)].schema[1] == {"name": "b", "type": "int64", "nullable": True}


@pytest.mark.parametrize(
    ("call", "accepts", "missing"),
    [
        ("envsnap_toy.stages:needs_missing", None, ["tenure"]),
        ("envsnap_toy.stages:needs_missing_arrow", "arrow", ["tenure"]),
    ],
)
def test_a_missing_column_is_named_with_the_stage(call: str, accepts: str | None, missing: list[str]) -> None:
    pipeline = _toy(Stage("clean", call="envsnap_toy.stages:clean"), Stage("features", call=call, accepts=accepts))
    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "pandas"})
    assert [o["status"] for o in run.outcomes] == ["ok", "failed"]
    error = run.outcomes[1]["error"]
    assert error["kind"] == "exception" and error["type"] == "KeyError"
    assert error["missing_columns"] == missing
    assert "stage 'features' failed" in error["message"]
    assert "column 'tenure' is not in the stage's input; its columns: a, b, user" in error["message"]
    assert "stages.py" in error["traceback"] and "_runner" not in error["traceback"].splitlines()[1]
    assert set(run.intermediates) == {"01-clean"}, "the intermediates before the failure are kept"
    _check_records(run, pipeline)


def test_a_keyerror_of_the_stages_own_code_is_not_called_a_column() -> None:
    run = run_stages_here(
        _toy(Stage("f", call="envsnap_toy.stages:dict_lookup")), {"x": _table()}, kinds={"x": "pandas"}
    )
    error = run.outcomes[0]["error"]
    assert error["missing_columns"] == [] and "column" not in error["message"]
    assert "'threshold'" in error["message"]


def test_a_stage_that_returns_something_else() -> None:
    run = run_stages_here(_toy(Stage("count", call="envsnap_toy.stages:returns_number")), {"x": _table()})
    error = run.outcomes[0]["error"]
    assert error["kind"] == "output"
    assert error["message"].startswith("stage 'count' returned int, which envsnap cannot record; a stage returns")
    assert "numpy array" in error["message"] and "dict of metrics" in error["message"]
    assert run.intermediates == {}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("envsnap_toy.nothere:run", "No module named 'envsnap_toy.nothere'"),
        ("envsnap_toy.stages:nothere", "has no attribute 'nothere'"),
    ],
)
def test_a_call_target_that_cannot_be_imported(call: str, expected: str) -> None:
    run = run_stages_here(_toy(Stage("ingest", call=call)), {"x": _table()})
    error = run.outcomes[0]["error"]
    assert error["kind"] == "import"
    assert error["message"].startswith(f"stage 'ingest': cannot import {call!r}: ")
    assert expected in error["message"]


def test_a_failing_command() -> None:
    pipeline = _toy(Stage("label", run="python -m envsnap_toy.cli {input} {output} --fail"))
    run = run_stages_here(pipeline, {"x": _table()})
    outcome = run.outcomes[0]
    assert outcome["error"]["kind"] == "command"
    assert outcome["error"]["message"] == "stage 'label': command exited 4: label: refusing on purpose"
    assert outcome["command"]["returncode"] == 4
    assert outcome["command"]["stderr_tail"] == "label: refusing on purpose\n"


def test_a_command_that_does_not_exist_or_writes_nothing() -> None:
    run = run_stages_here(_toy(Stage("x", run="envsnap-no-such-command {input} {output}")), {"x": _table()})
    assert "cannot run" in run.outcomes[0]["error"]["message"]
    assert "envsnap-no-such-command" in run.outcomes[0]["error"]["message"]
    run = run_stages_here(_toy(Stage("y", run="python -c pass {input} {output}")), {"x": _table()})
    assert (
        run.outcomes[0]["error"]["message"] == "stage 'y': command exited 0 but did not write its {output} parquet file"
    )


def test_modules_imported_by_a_stage_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "envsnap_fresh_module.py"
    module.write_text("VALUE = 7\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    pipeline = _toy()

    @pipeline.stage()
    def uses(frame: Any) -> Any:
        import envsnap_fresh_module  # type: ignore[import-not-found]

        return frame.assign(v=envsnap_fresh_module.VALUE)

    run = run_stages_here(pipeline, {"x": _table()}, kinds={"x": "pandas"})
    assert "envsnap_fresh_module" in run.outcomes[0]["imported_modules"]
    assert "envsnap_fresh_module" not in run.preloaded_modules
    monkeypatch.delitem(sys.modules, "envsnap_fresh_module")
