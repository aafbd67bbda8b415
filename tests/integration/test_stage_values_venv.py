"""Stages of any shape in a real job venv that has polars and numpy, and neither pyarrow nor pandas."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.cli import app

runner = CliRunner()

JOB = """
import numpy as np
import polars as pl


def load(n_rows, seed):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"x": rng.normal(size=n_rows), "k": rng.integers(0, 3, n_rows), "tag": ["t"] * n_rows})


def clean(df, threshold):
    return df.filter(pl.col("x") > threshold)


def matrix(df):
    return df.select(["x", "k"]).to_numpy()


def split(m):
    return m[: len(m) // 2], m[len(m) // 2 :]


def metrics(split_1, scale):
    return {"mean_x": float(split_1[:, 0].mean()) * scale, "n": int(split_1.shape[0]),
            "per_k": np.bincount(split_1[:, 1].astype(int), minlength=3)}


def gen(clean):
    return (row for row in clean.iter_rows())
"""

CONFIG = """
[pipeline]
name = "shapes"
pythonpath = ["."]

[[pipeline.stages]]
name = "load"
call = "shapesjob:load"
params = {{ n_rows = 400, seed = 7 }}

[[pipeline.stages]]
name = "clean"
call = "shapesjob:clean"
params = {{ threshold = {threshold} }}

[[pipeline.stages]]
name = "matrix"
call = "shapesjob:matrix"
columns = ["x", "k"]

[[pipeline.stages]]
name = "split"
call = "shapesjob:split"

[[pipeline.stages]]
name = "metrics"
call = "shapesjob:metrics"
inputs = ["split.1"]
params = {{ scale = 2.0 }}
"""


@pytest.fixture(scope="module")
def polars_venv(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> Path:
    python: Path = venv_tools.make_venv(tmp_path_factory.mktemp("polars") / "venv")
    venv_tools.pip_install(python, "polars", "numpy")
    installed = {item.split("==")[0] for item in venv_tools.installed_set(python)}
    assert "polars" in installed and "pyarrow" not in installed and "pandas" not in installed
    return python


def _project(root: Path, threshold: float = 0.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "shapesjob.py").write_text(JOB, encoding="utf-8")
    config = root / "envsnap.toml"
    config.write_text(CONFIG.format(threshold=threshold), encoding="utf-8")
    return config


def _table(snap: Any, member: str) -> Any:
    return pq.read_table(io.BytesIO(snap.read_bytes(member)))


@pytest.mark.slow
def test_a_polars_numpy_dict_pipeline_runs_in_a_venv_without_pyarrow_or_pandas(
    polars_venv: Path, tmp_path: Path
) -> None:
    config = _project(tmp_path / "job")
    there = tmp_path / "there.envsnap"
    here = tmp_path / "here.envsnap"
    result = runner.invoke(app, ["run", "-c", str(config), "-o", str(there), "--python", str(polars_venv)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", "-c", str(config), "-o", str(here)])
    assert result.exit_code == 0, result.output
    a, b = envsnap.load(there), envsnap.load(here)
    assert a.read_json("pipeline/pipeline.json")["runner"]["python"].startswith(str(polars_venv.parent.parent))
    packages = {d["normalized_name"] for d in a.section("packages")["distributions"]}
    assert "polars" in packages and "pyarrow" not in packages, "the job venv's own packages are what is recorded"
    records = {s: a.read_json(f"pipeline/stages/{s}.json") for s in ("01-load", "03-matrix", "04-split", "05-metrics")}
    assert records["01-load"]["params"] == {"n_rows": 400, "seed": 7} and records["01-load"]["returned"] == "polars"
    assert records["03-matrix"]["value"]["shape"][1] == 2 and records["03-matrix"]["value"]["columns"] == ["x", "k"]
    assert [e["label"] for e in records["04-split"]["value"]["elements"]] == ["split.0", "split.1"]
    data = records["05-metrics"]["value"]["data"]
    assert set(data) == {"mean_x", "n", "per_k"} and len(data["per_k"]) == 3
    # The same values, whichever interpreter and library wrote them.
    for member in ("01-load", "02-clean", "03-matrix", "04-split.0", "04-split.1", "05-metrics"):
        ta, tb = _table(a, f"pipeline/stages/{member}.parquet"), _table(b, f"pipeline/stages/{member}.parquet")
        assert ta.column_names == tb.column_names and ta.to_pylist() == tb.to_pylist(), member
    assert b.read_json("pipeline/stages/05-metrics.json")["value"]["data"] == data


@pytest.mark.slow
def test_a_stage_returning_a_generator_is_one_line_and_exit_3(polars_venv: Path, tmp_path: Path) -> None:
    config = _project(tmp_path / "job")
    config.write_text(
        config.read_text(encoding="utf-8")
        + '\n[[pipeline.stages]]\nname = "rows"\ncall = "shapesjob:gen"\ninputs = ["clean"]\n',
        encoding="utf-8",
    )
    out = tmp_path / "gen.envsnap"
    result = runner.invoke(app, ["run", "-c", str(config), "-o", str(out), "--python", str(polars_venv)])
    assert result.exit_code == 3, result.output
    record = envsnap.load(out).read_json("pipeline/stages/06-rows.json")
    assert record["error"]["kind"] == "output"
    message = record["error"]["message"]
    assert message.startswith("stage 'rows' returned generator, which envsnap cannot record; a stage returns")
    assert "\n" not in message and message in result.output
    assert json.loads(json.dumps(record["value"])) is None


@pytest.mark.slow
def test_a_file_input_reaches_a_venv_without_pandas_as_polars(polars_venv: Path, tmp_path: Path) -> None:
    """The pipeline-wide default (pandas) gives way where the job has no pandas; nothing is installed."""
    import pyarrow as pa

    root = tmp_path / "job"
    root.mkdir()
    (root / "countjob.py").write_text(
        "def count(df):\n    return {'rows': df.height, 'module': type(df).__module__.split('.')[0]}\n",
        encoding="utf-8",
    )
    (root / "envsnap.toml").write_text(
        '[pipeline]\nname = "count"\npythonpath = ["."]\n\n'
        '[[pipeline.stages]]\nname = "count"\ncall = "countjob:count"\n',
        encoding="utf-8",
    )
    source = tmp_path / "events.parquet"
    pq.write_table(pa.table({"a": list(range(50)), "s": ["x"] * 50}), source)
    out = tmp_path / "count.envsnap"
    args = ["run", "-c", str(root / "envsnap.toml"), "-i", f"events={source}", "-o", str(out)]
    result = runner.invoke(app, [*args, "--python", str(polars_venv)])
    assert result.exit_code == 0, result.output
    value = envsnap.load(out).read_json("pipeline/stages/01-count.json")["value"]
    assert value["data"] == {"rows": 50, "module": "polars"}
