"""The ``--python`` runner script: stdlib-only, old-Python syntax, appended last on the target's sys.path."""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.pipeline import Pipeline, Stage, _runner
from envsnap.pipeline.execution import run_stages_there

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"


def test_the_runner_parses_as_python_3_8_and_imports_only_the_stdlib_at_module_level() -> None:
    modules = sorted(Path(_runner.__file__).parent.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "main.py", "stages.py"}
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"), feature_version=(3, 8))
        top = set()
        for node in tree.body:  # module level: pyarrow and pandas are imported lazily, inside functions
            if isinstance(node, ast.Import):
                top |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top.add(node.module.split(".")[0])
        assert top <= set(sys.stdlib_module_names), (module.name, top)
        everywhere = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                everywhere |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                everywhere.add(node.module.split(".")[0])
        # Relative imports only between its own modules: it runs as envsnap.pipeline._runner here and as
        # _envsnap_stage_runner in a target where envsnap is not installed.
        assert everywhere - set(sys.stdlib_module_names) <= {"pyarrow"}, (module.name, everywhere)


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
    isolation = pq.read_table(io.BytesIO(run.intermediates[2].parquet))
    assert isolation["runner_last"].to_pylist() == [True, True], "the runner's directory is the last sys.path entry"
    assert run.intermediates[1].rows == 2 and set(run.intermediates) == {1, 2}
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
