"""``envsnap run --python``: the stages run in the job's own venv, with nothing of envsnap installed there."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.cli import app

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
runner = CliRunner()

CONFIG = """
[pipeline]
name = "in-venv"
accepts = "arrow"
pythonpath = ["{toy}"]

[[pipeline.stages]]
name = "total"
call = "envsnap_toy.stages:add_total"

[[pipeline.stages]]
name = "six"
call = "envsnap_toy.stages:uses_six"

[[pipeline.stages]]
name = "isolation"
call = "envsnap_toy.stages:runner_isolation"

[[pipeline.stages]]
name = "label"
run = "python -m envsnap_toy.cli {{input}} {{output}}"
"""


@pytest.fixture(scope="module")
def arrow_venv(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> Path:
    """A real venv with pyarrow and six from the index, and nothing of envsnap."""
    python: Path = venv_tools.make_venv(tmp_path_factory.mktemp("arrow") / "venv")
    venv_tools.pip_install(python, "pyarrow", "six==1.16.0")
    return python


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "envsnap.toml"
    config.write_text(CONFIG.format(toy=TOY), encoding="utf-8")
    events = tmp_path / "events.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": [1, 2, 3]}), events)
    return config, events


@pytest.mark.slow
def test_stages_run_in_the_target_venv(arrow_venv: Path, setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, events = setup
    out = tmp_path / "venv.envsnap"
    args = ["run", "-c", str(config), "-i", f"x={events}", "-o", str(out), "--python", str(arrow_venv), "--no-git"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    snap = envsnap.load(out)
    snap.verify()
    names = {d["normalized_name"]: d["version"] for d in snap.section("packages")["distributions"]}
    assert names["six"] == "1.16.0" and "pyarrow" in names
    assert "envsnap" not in names and "typer" not in names, "the environment captured is the target's"
    document = snap.read_json("pipeline/pipeline.json")
    assert document["runner"]["mode"] == "subprocess"
    assert document["runner"]["python"].startswith(str(arrow_venv.parent.parent))
    assert document["runner"]["added_by_runner"] == [
        "_envsnap_target (the stage runner, stdlib only; its private directory is appended at the end of sys.path)"
    ]
    assert document["runner"]["preloaded_distributions"] == ["pyarrow"]
    six_stage = snap.read_json("pipeline/stages/02-six.json")
    assert {"module": "six", "distributions": [{"name": "six", "version": "1.16.0"}]} in six_stage["imports"]
    isolation = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/03-isolation.parquet")))
    assert isolation["runner_last"].to_pylist() == [True] * 3, "the runner sits at the very end of sys.path"
    assert isolation["envsnap_importable"].to_pylist() == [False] * 3, "envsnap is not importable by the stages"
    label = snap.read_json("pipeline/stages/04-label.json")
    assert label["command"]["argv"][0].startswith(str(arrow_venv.parent.parent)), "'python' is the target's"
    final = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/04-label.parquet")))
    assert final["six"].to_pylist() == ["1.16.0"] * 3 and final["label"].to_pylist() == ["small", "big", "big"]


@pytest.mark.slow
def test_a_target_with_nothing_installed_runs_its_stages(fresh_venv: Path, tmp_path: Path) -> None:
    """No pyarrow, no pandas, no numpy in the job's venv: its values travel as JSON and become parquet here."""
    project = tmp_path / "plain"
    project.mkdir()
    (project / "plainjob.py").write_text(
        "def load(n=4):\n"
        "    return [{'id': i, 'score': i * 0.5} for i in range(n)]\n\n"
        "def summary(rows, scale=1.0):\n"
        "    return {'rows': len(rows), 'total': sum(r['score'] for r in rows) * scale}\n",
        encoding="utf-8",
    )
    config = project / "envsnap.toml"
    config.write_text(
        '[pipeline]\nname = "plain"\n\n[[pipeline.stages]]\nname = "load"\ncall = "plainjob:load"\n'
        "params = { n = 5 }\n\n"
        '[[pipeline.stages]]\nname = "summary"\ncall = "plainjob:summary"\nparams = { scale = 2.0 }\n',
        encoding="utf-8",
    )
    out = tmp_path / "plain.envsnap"
    result = runner.invoke(app, ["run", "-c", str(config), "-o", str(out), "--python", str(fresh_venv)])
    assert result.exit_code == 0, result.output
    snap = envsnap.load(out)
    load = snap.read_json("pipeline/stages/01-load.json")
    assert load["returned"] == "records" and load["params"] == {"n": 5} and load["rows"] == 5
    rows = pq.read_table(io.BytesIO(snap.read_bytes("pipeline/stages/01-load.parquet")))
    assert rows.column("score").to_pylist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    summary = snap.read_json("pipeline/stages/02-summary.json")
    assert summary["value"] == {"kind": "dict", "data": {"rows": 5, "total": 10.0}, "rows": 1}
    assert snap.read_json("pipeline/pipeline.json")["runner"]["python"].startswith(str(fresh_venv.parent.parent))
