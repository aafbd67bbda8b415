"""``envsnap diff`` end to end on real snapshots: two real ``run_pipeline`` runs whose stage reads
OMP_NUM_THREADS, so the second run's `scale` stage diverges and the thread setting is the top suspect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.capture import capture
from envsnap.cli import app
from envsnap.pipeline import Pipeline, Stage, run_pipeline
from envsnap.snapshot import canonical
from envsnap.snapshot.manifest import manifest_checksum

TOY = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"
runner = CliRunner()

STAGE_MODULE = '''\
import os


def scale(frame):
    """Multiplies by the thread count: a stand-in for a reduction whose result depends on it."""
    frame = frame.copy()
    frame["scaled"] = frame["a"] * float(os.environ.get("OMP_NUM_THREADS", "1"))
    return frame
'''


def _pipeline(stages_dir: Path, *, extra_stage: bool = False) -> Pipeline:
    stages = [Stage("clean", call="envsnap_toy.stages:clean"), Stage("scale", call="diffcli_stages:scale")]
    if extra_stage:
        stages.append(Stage("total", call="envsnap_toy.stages:add_total", accepts="arrow"))
    return Pipeline("t", stages=stages, pythonpath=[str(TOY), str(stages_dir)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """a: OMP_NUM_THREADS=1; b: OMP_NUM_THREADS=2 (scale diverges); c: like b plus a stage `total`;
    plain: a capture without data."""
    root = tmp_path_factory.mktemp("diffcli")
    (root / "diffcli_stages.py").write_text(STAGE_MODULE, encoding="utf-8")
    events = pd.DataFrame({"a": [1.0, None, 3.0, 4.0, 0.5], "b": [10, 20, 30, 40, 50], "user": list("xyzxy")})
    saved = os.environ.get("OMP_NUM_THREADS")
    out: dict[str, Path] = {}
    try:
        for name, threads, extra in (("a", "1", False), ("b", "2", False), ("c", "2", True)):
            os.environ["OMP_NUM_THREADS"] = threads
            result = run_pipeline(
                _pipeline(root, extra_stage=extra),
                inputs={"events": events},
                git=False,
                output=root / name,
                reproducible=True,
                label=f"run-{name}",
            )
            assert result.status == "ok", result.error
            out[name] = root / name
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    out["plain"] = root / "plain.envsnap"
    capture(out["plain"], git=False, label="plain")
    yield out


def test_text_report_leads_with_verdict(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["a"]), str(runs["b"])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "envsnap diff"
    assert "Verdict: outputs first diverge at stage scale" in lines[4]
    assert lines[5] == "Top suspects:"
    assert lines[6].startswith("  1. OMP_NUM_THREADS — ")
    assert "\x1b[" not in result.stdout  # not a TTY: plain text


def test_json_validates_and_names_the_stage(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["a"]), str(runs["b"]), "--json", "--max-rows", "2"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(document)
    assert document["schema_version"] == 1
    assert document["data"]["first_diverging_stage"] == "scale"
    assert document["suspects"][0]["subject"] == "OMP_NUM_THREADS"
    assert document["options"]["max_rows"] == 2
    scale = next(s for s in document["data"]["stages"] if s["name"] == "scale")
    assert len(scale["table"]["sample_rows"]) == 2
    assert {c["column"] for c in scale["table"]["columns"] if c["status"] == "different"} == {"scaled"}


def test_tolerance_makes_the_stage_match(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["a"]), str(runs["b"]), "--json", "--rtol", "1.0"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["data"]["first_diverging_stage"] is None


def test_markdown_and_html(runs: dict[str, Path], tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["diff", str(runs["a"]), str(runs["b"]), "--markdown", "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("## envsnap diff\n\n**Verdict:** ❌ outputs first diverge at stage `scale`")
    assert "<details>" in result.stdout
    page = html.read_text(encoding="utf-8")
    assert '<section id="verdict"' in page and 'id="first-diverging-stage">scale</code>' in page
    assert f"wrote {html}" in result.stderr


def test_fail_on(runs: dict[str, Path]) -> None:
    a, b = str(runs["a"]), str(runs["b"])
    assert runner.invoke(app, ["diff", a, b, "--fail-on", "data"]).exit_code == 1
    assert runner.invoke(app, ["diff", a, b, "--fail-on", "env"]).exit_code == 1
    assert runner.invoke(app, ["diff", a, b, "--fail-on", "any"]).exit_code == 1
    same = runner.invoke(app, ["diff", a, a, "--fail-on", "any"])
    assert same.exit_code == 0, same.output
    assert "every stage output matches" in same.stdout


def test_usage_errors_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    a, b = str(runs["a"]), str(runs["b"])
    only_a = runner.invoke(app, ["diff", a])
    assert only_a.exit_code == 2
    assert "give exactly one of B, --current or --requirements FILE" in only_a.stderr
    assert runner.invoke(app, ["diff", a, b, "--current"]).exit_code == 2
    req = tmp_path / "r.txt"
    req.write_text("six==1.16.0\n", encoding="utf-8")
    assert runner.invoke(app, ["diff", a, "--current", "--requirements", str(req)]).exit_code == 2
    assert runner.invoke(app, ["diff", a, b, "--fail-on", "sometimes"]).exit_code == 2
    assert runner.invoke(app, ["diff", a, b, "--json", "--markdown"]).exit_code == 2
    assert runner.invoke(app, ["diff", a, b, "--python", sys.executable]).exit_code == 2


def test_unreadable_snapshot_exits_3(runs: dict[str, Path], tmp_path: Path) -> None:
    missing = runner.invoke(app, ["diff", str(runs["a"]), str(tmp_path / "nope.envsnap")])
    assert missing.exit_code == 3
    assert missing.stderr.startswith("envsnap: error: ")
    garbage = tmp_path / "garbage.envsnap"
    garbage.write_bytes(b"not a zip at all")
    assert runner.invoke(app, ["diff", str(garbage), str(runs["b"])]).exit_code == 3


def test_one_snapshot_without_data_is_stated(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["plain"]), str(runs["b"]), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["data"]["stages"] == []
    assert any("holds data" in n or "has no data" in n for n in document["notes"])


def test_stage_missing_on_one_side_is_stated(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["b"]), str(runs["c"]), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    total = next(s for s in document["data"]["stages"] if s["name"] == "total")
    assert total["table"]["status"] == "incomparable"
    assert any(n.startswith("stage total cannot be compared") for n in document["notes"])
    text = runner.invoke(app, ["diff", str(runs["b"]), str(runs["c"])]).stdout
    assert "stage total cannot be compared" in text


def test_different_format_minors_are_stated(runs: dict[str, Path], tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(runs["b"], newer)
    manifest = json.loads((newer / "manifest.json").read_text(encoding="utf-8"))
    manifest["minor"] += 1
    manifest["checksum"] = manifest_checksum(manifest)  # as a newer writer would
    (newer / "manifest.json").write_bytes(canonical.dumps(manifest))
    result = runner.invoke(app, ["diff", str(runs["a"]), str(newer), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["b"]["format_minor"] == document["a"]["format_minor"] + 1
    assert any(n.startswith("different format minors") for n in document["notes"])
    assert "written by a newer envsnap" in result.stderr


def test_requirements_file(runs: dict[str, Path], tmp_path: Path) -> None:
    snap = envsnap.load(runs["a"])
    pandas = next(d for d in snap.read_json("env/packages.json")["distributions"] if d["normalized_name"] == "pandas")
    req = tmp_path / "requirements.txt"
    req.write_text(f"pandas=={pandas['version']}\nnumpy==1.0.0\n", encoding="utf-8")
    result = runner.invoke(app, ["diff", str(runs["a"]), "--requirements", str(req), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    deltas = {d["name"]: d for d in document["env"]["packages"]}
    assert "pandas" not in deltas
    assert deltas["numpy"]["after"] == "1.0.0"
    assert document["b"]["path"] == str(req)


def test_current_environment(runs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["diff", str(runs["a"]), "--current", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["notes"][0].startswith("b is the current environment")
    assert document["data"]["stages"] == []


def test_through_a_real_subprocess(runs: dict[str, Path]) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "diff", str(runs["a"]), str(runs["b"]), "--fail-on", "data"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Verdict: outputs first diverge at stage scale" in proc.stdout
    assert "\x1b[" not in proc.stdout
