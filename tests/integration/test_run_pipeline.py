"""``envsnap run`` / ``run_pipeline`` end to end: one snapshot with inputs, intermediates and their records."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.cli import app
from envsnap.pipeline import Pipeline, Stage, load_pipeline, run_pipeline
from envsnap.snapshot.model import Snapshot

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
runner = CliRunner()


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {"a": [1.0, None, 3.0, 4.0, 0.5], "b": [10, 20, 30, 40, 50], "user": ["u1", "u2", "u1", "u3", "u2"]}
    )
    pq.write_table(table, path)
    return path


def _config(tmp_path: Path, *stages: str, extra: str = "") -> Path:
    body = f'[pipeline]\nname = "t"\npythonpath = ["{TOY}"]\n{extra}\n'
    for stage in stages:
        body += f"[[pipeline.stages]]\n{stage}\n"
    path = tmp_path / "envsnap.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _parquet(snap: Snapshot, member: str) -> pa.Table:
    return pq.read_table(io.BytesIO(snap.read_bytes(member)))


def _stage_members(snap: Snapshot) -> list[str]:
    return [m for m in snap.members() if m.startswith("pipeline/")]


@pytest.fixture
def fresh_toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """``envsnap_toy`` not yet imported in this process (an earlier test may have), so a stage imports it."""
    for name in [m for m in sys.modules if m == "envsnap_toy" or m.startswith("envsnap_toy.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.usefixtures("fresh_toy")
def test_cli_run_writes_one_snapshot_with_every_intermediate(tmp_path: Path, events: Path) -> None:
    out = tmp_path / "run.envsnap"
    result = runner.invoke(
        app, ["run", "--config", str(TOY / "envsnap.toml"), "-i", f"x={events}", "-o", str(out), "--no-git"]
    )
    assert result.exit_code == 0, result.output
    assert "3/3 stages ok" in result.stdout
    assert "01 clean" in result.stderr and "03 label" in result.stderr
    snap = envsnap.load(out)
    snap.verify()  # every JSON member validated against its schema, every hash checked
    assert _stage_members(snap) == [
        "pipeline/pipeline.json",
        "pipeline/stages/01-clean.json",
        "pipeline/stages/01-clean.parquet",
        "pipeline/stages/02-total.json",
        "pipeline/stages/02-total.parquet",
        "pipeline/stages/03-label.json",
        "pipeline/stages/03-label.parquet",
    ]
    assert {"env/packages.json", "job/command.json", "data/inputs.json"} <= set(snap.members())
    assert any(m.startswith("data/inputs/x") for m in snap.members())
    document = snap.read_json("pipeline/pipeline.json")
    assert document["status"] == "ok" and document["failed_stage"] is None
    assert [s["status"] for s in document["stages"]] == ["ok", "ok", "ok"]
    assert document["runner"]["mode"] == "in-process"
    final = _parquet(snap, "pipeline/stages/03-label.parquet")
    assert final.column_names == ["a", "b", "user", "total", "label"]
    assert sorted(final["total"].to_pylist()) == [11.0, 33.0, 44.0, 50.5]
    clean = snap.read_json("pipeline/stages/01-clean.json")
    assert clean["rows"] == 4 and clean["returned"] == "pandas" and clean["inputs"] == ["x"]
    assert {"module": "envsnap_toy", "distributions": []} in clean["imports"]
    assert clean["wall_time_s"] is not None and clean["memory"]["peak_rss_bytes"] > 0
    assert snap.read_json("pipeline/stages/02-total.json")["returned"] == "arrow"
    assert snap.section("job")["exception"] is None
    assert snap.manifest.probes["pipeline"].status == "ok"


def test_a_failing_stage_is_recorded_and_exits_1(tmp_path: Path, events: Path) -> None:
    config = _config(
        tmp_path,
        'name = "clean"\ncall = "envsnap_toy.stages:clean"',
        'name = "features"\ncall = "envsnap_toy.stages:needs_missing"',
        'name = "after"\ncall = "envsnap_toy.stages:clean"',
    )
    out = tmp_path / "fail.envsnap"
    result = runner.invoke(app, ["run", "-c", str(config), "-i", f"x={events}", "-o", str(out), "--no-git"])
    assert result.exit_code == 1, result.output
    assert "stage features failed" in result.stderr
    assert "Traceback" not in result.output
    snap = envsnap.load(out)
    snap.verify()
    assert _stage_members(snap) == [
        "pipeline/pipeline.json",
        "pipeline/stages/01-clean.json",
        "pipeline/stages/01-clean.parquet",
        "pipeline/stages/02-features.json",
    ]
    document = snap.read_json("pipeline/pipeline.json")
    assert document["status"] == "failed" and document["failed_stage"] == "features"
    assert [s["status"] for s in document["stages"]] == ["ok", "failed", "not-run"]
    record = snap.read_json("pipeline/stages/02-features.json")
    assert record["error"]["missing_columns"] == ["tenure"]
    assert "stage 'features' failed" in record["error"]["message"]
    assert "needs_missing" in record["error"]["traceback"]
    job = snap.section("job")["exception"]
    assert job["type"] == "KeyError" and "tenure" in job["message"] and "needs_missing" in job["traceback"]
    assert snap.manifest.probes["pipeline"].status == "error"


@pytest.mark.parametrize(
    ("stage", "kind", "fragment"),
    [
        (
            Stage("ingest", call="envsnap_toy.nope:run"),
            "import",
            "stage 'ingest': cannot import 'envsnap_toy.nope:run'",
        ),
        (
            Stage("count", call="envsnap_toy.stages:returns_number"),
            "output",
            "stage 'count' returned int, which envsnap cannot record; a stage returns a table",
        ),
        (Stage("label", run="python -m envsnap_toy.cli {input} {output} --fail"), "command", "command exited 4"),
    ],
)
def test_each_kind_of_stage_failure_names_the_stage(tmp_path: Path, stage: Stage, kind: str, fragment: str) -> None:
    pipeline = Pipeline("t", stages=[stage], pythonpath=[str(TOY)], root=TOY)
    result = run_pipeline(pipeline, inputs={"x": pa.table({"a": [1.0, 2.0]})}, git=False, output=tmp_path / "s")
    # A value envsnap cannot record is bad input (exit 3); the others are the pipeline's own failure (exit 1).
    assert result.exit_code == (3 if kind == "output" else 1), result.error
    assert result.status == "failed" and result.failed_stage == stage.name
    assert fragment in (result.error or "")
    record = result.snapshot.read_json(f"pipeline/stages/01-{stage.name}.json")
    assert record["error"]["kind"] == kind
    envsnap.load(tmp_path / "s").verify()


def test_an_input_that_is_not_a_table_writes_the_snapshot_and_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "events.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    out = tmp_path / "bad.envsnap"
    result = runner.invoke(
        app, ["run", "-c", str(TOY / "envsnap.toml"), "-i", f"events={bad}", "-o", str(out), "--no-git"]
    )
    assert result.exit_code == 3, result.output
    assert "'events'" in result.stderr and "no stage ran" in result.stderr
    snap = envsnap.load(out)
    snap.verify()
    document = snap.read_json("pipeline/pipeline.json")
    assert document["status"] == "not-run"
    assert document["error"].startswith("input 'events' could not be sampled")
    assert [s["status"] for s in document["stages"]] == ["not-run"] * 3
    assert snap.manifest.probes["data"].status == "error"


def test_secrets_in_a_stage_failure_are_scrubbed(tmp_path: Path) -> None:
    pipeline = Pipeline("t", stages=[Stage("boom", call="envsnap_toy.stages:raises")], pythonpath=[str(TOY)])
    result = run_pipeline(pipeline, inputs={"x": pa.table({"a": [1]})}, git=False, output=tmp_path / "s.envsnap")
    assert result.status == "failed"
    raw = b"".join(data for _, data in envsnap.load(tmp_path / "s.envsnap").iter_member_bytes())
    assert b"A1b2" * 9 not in raw
    assert b"upstream refused" in raw


def test_python_api_with_decorated_stages_and_in_memory_inputs() -> None:
    pipeline = Pipeline("api")

    @pipeline.stage(inputs=["events", "users"])
    def joined(events: Any, users: Any) -> Any:
        assert isinstance(users, pa.Table), "each input keeps its own kind"
        return events.merge(users.to_pandas(), on="user")

    @pipeline.stage(accepts="arrow")
    def count(table: Any) -> Any:
        return table.group_by("country").aggregate([("a", "count")])

    events_df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "user": ["u1", "u2", "u1"]})
    users = pa.table({"user": ["u1", "u2"], "country": ["DE", "FR"]})
    result = pipeline.run(inputs={"events": events_df, "users": users}, git=False)
    assert result.ok and result.exit_code == 0
    assert [s.status for s in result.stages] == ["ok", "ok"]
    snap = result.snapshot
    assert snap.path == "<memory>"
    first = snap.read_json("pipeline/stages/01-joined.json")
    assert first["inputs"] == ["events", "users"] and first["returned"] == "pandas"
    counts = _parquet(snap, "pipeline/stages/02-count.parquet").sort_by("country")
    assert counts.to_pydict() == {"country": ["DE", "FR"], "a_count": [2, 1]}
    assert snap.read_json("pipeline/pipeline.json")["stages"][0]["call"].endswith("<locals>.joined")


def test_reproducible_runs_are_byte_identical(tmp_path: Path, events: Path) -> None:
    args = ["run", "-c", str(TOY / "envsnap.toml"), "-i", f"x={events}", "--no-git", "--reproducible", "-q"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a.envsnap")])
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "b.envsnap")])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert (tmp_path / "a.envsnap").read_bytes() == (tmp_path / "b.envsnap").read_bytes()
    record = envsnap.load(tmp_path / "a.envsnap").read_json("pipeline/stages/01-clean.json")
    assert record["wall_time_s"] is None and record["memory"] is None


def test_definition_errors_are_usage_errors_and_write_nothing(tmp_path: Path, events: Path) -> None:
    out = tmp_path / "never.envsnap"
    result = runner.invoke(app, ["run", "-c", str(tmp_path / "missing.toml"), "-o", str(out)])
    assert result.exit_code == 2 and "no such config file" in result.stderr
    config = _config(tmp_path, 'name = "a"\ncall = "envsnap_toy.stages:clean"', extra='inputs = {x = "x.parquet"}')
    result = runner.invoke(app, ["run", "-c", str(config), "-i", f"y={events}", "-o", str(out)])
    assert result.exit_code == 2 and "has no input 'y' (its inputs: x)" in result.stderr
    assert not out.exists()
    # No inputs: the first stage is called as a source stage; one that needs a table fails saying so.
    result = run_pipeline(load_pipeline(TOY / "envsnap.toml"), git=False)
    assert result.exit_code == 1 and result.failed_stage == result.pipeline.stages[0].name
    assert "the pipeline has no inputs" in (result.error or ""), result.error


def test_run_through_a_real_subprocess(tmp_path: Path, events: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "run", "-i", f"x={events}", "-o", str(tmp_path / "s.envsnap"), "--no-git"],
        cwd=TOY,  # the config is found from the working directory
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {tmp_path / 's.envsnap'}")
    envsnap.load(tmp_path / "s.envsnap").verify()
