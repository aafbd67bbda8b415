"""The ``--python`` runner script: stdlib-only, old-Python syntax, appended last on the target's sys.path."""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.pipeline import Pipeline, Stage, _execute
from envsnap.pipeline.runner import run_stages_there

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"


def test_the_runner_script_parses_as_python_3_8_and_imports_only_the_stdlib() -> None:
    source = Path(_execute.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in tree.body:  # module level only: pyarrow and pandas are imported lazily, inside functions
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    everywhere = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) else []
        )
    }  # fmt: skip
    assert "envsnap" not in everywhere, "the runner must work where envsnap is not installed"
    assert everywhere - set(sys.stdlib_module_names) == {"pyarrow"}, everywhere


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
