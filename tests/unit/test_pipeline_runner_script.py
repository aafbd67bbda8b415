"""The stage runner in another interpreter (``--python``): appended last on the target's sys.path.

That it is stdlib-only Python 3.8 is checked with the rest of the shipped code (test_target_code.py).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.pipeline import Pipeline, Stage
from envsnap.pipeline.execution import run_stages_there

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"


def test_stages_run_through_the_runner_script_in_a_child_interpreter() -> None:
    pipeline = Pipeline(
        "child",
        stages=[
            Stage("clean", call="envsnap_toy.stages:clean"),
            Stage("isolation", call="envsnap_toy.stages:runner_isolation", accepts="arrow"),
            Stage("broken", call="envsnap_toy.stages:needs_missing", accepts="pandas"),
        ],
        pythonpath=[str(TOY)],
        root=TOY,
    )
    table = pa.table({"a": [1.0, None, 2.0], "b": [1, 2, 3], "user": ["u1", "u2", "u3"]})
    run = run_stages_there(pipeline, sys.executable, {"x": table}, {"x": "pandas"}, cwd=str(TOY))
    assert [(o["name"], o["status"], o["returned"]) for o in run.outcomes] == [
        ("clean", "ok", "pandas"),
        ("isolation", "ok", "arrow"),
        ("broken", "failed", None),
    ]
    assert run.outcomes[2]["error"]["missing_columns"] == ["tenure"]
    assert "needs_missing" in run.outcomes[2]["error"]["traceback"]
    isolation = pq.read_table(io.BytesIO(run.intermediates["02-isolation"].parquet))
    assert isolation["runner_last"].to_pylist() == [True, True], "the runner's directory is the last sys.path entry"
    assert run.intermediates["01-clean"].rows == 2 and set(run.intermediates) == {"01-clean", "02-isolation"}
    assert run.runner["mode"] == "subprocess" and run.runner["added_by_runner"]
    assert "pyarrow" in run.preloaded_modules and "envsnap_toy" not in run.preloaded_modules


def test_python_stages_must_be_importable_for_another_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from envsnap.pipeline import PipelineError
    from envsnap.pipeline.remote import stage_specs

    pipeline = Pipeline("p")

    @pipeline.stage()
    def local(frame: object) -> object:
        return frame

    with pytest.raises(PipelineError, match=r"stage 'local' is .*<locals>.local, which another interpreter cannot"):
        stage_specs(pipeline, importable=True)
    assert stage_specs(pipeline, importable=False)[0]["func"] is local
    monkeypatch.syspath_prepend(str(TOY))
    clean = importlib.import_module("envsnap_toy.stages").clean
    importable = Pipeline("q", stages=[Stage("clean", func=clean)])
    assert stage_specs(importable, importable=True)[0]["call"] == "envsnap_toy.stages:clean"
