"""``envsnap check`` / ``envsnap baseline update`` end to end on a real three-stage pipeline in a real git repo.

Every run that must see edited stage code goes through a real subprocess (a fresh interpreter imports the
edited module); the bad-input cases, which never run a stage, go through typer's CliRunner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.capture import capture
from envsnap.check import check
from envsnap.check.render import render_text
from envsnap.cli import app
from envsnap.diff import diff

runner = CliRunner()

STAGES = '''"""A tiny pipeline: clean -> scale -> total (Arrow tables)."""
import pyarrow.compute as pc


def clean(t):
    return t.filter(pc.is_valid(t["x"]))


def scale(t):
    return t.append_column("y", pc.multiply(t["x"], 2.0))


def total(t):
    return t.append_column("z", pc.add(t["y"], t["x"]))
'''

CONFIG = """[pipeline]
name = "gate"
accepts = "arrow"
inputs = {{events = "events.parquet"}}

[[pipeline.stages]]
name = "clean"
call = "{pkg}.stages:clean"

[[pipeline.stages]]
name = "scale"
call = "{pkg}.stages:scale"

[[pipeline.stages]]
name = "total"
call = "{pkg}.stages:total"
"""


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def make_project(root: Path, pkg: str = "gate") -> Path:
    """A git repo holding the pipeline, its config and its input data, with one commit."""
    root.mkdir(parents=True, exist_ok=True)
    (root / pkg).mkdir()
    (root / pkg / "__init__.py").write_text("", encoding="utf-8")
    (root / pkg / "stages.py").write_text(STAGES, encoding="utf-8")
    (root / "envsnap.toml").write_text(CONFIG.format(pkg=pkg), encoding="utf-8")
    xs = [1.0, None, 3.0, 4.5, 0.25, 7.0] * 20
    pq.write_table(pa.table({"x": xs, "k": list(range(len(xs)))}), root / "events.parquet")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Ada Lovelace")
    git(root, "config", "user.email", "ada@example.invalid")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "pipeline")
    return root


def envsnap_cli(cwd: Path, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``envsnap ARGS`` in a fresh interpreter, outside any activated virtualenv."""
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GITHUB_STEP_SUMMARY")}
    environ.update(env or {})
    argv = [sys.executable, "-m", "envsnap", *map(str, args)]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=environ)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project with a baseline made by ``envsnap run`` at its first commit (outside the repo)."""
    root = make_project(tmp_path / "repo")
    proc = envsnap_cli(root, "run", "-o", tmp_path / "baseline.envsnap", "-q")
    assert proc.returncode == 0, proc.stderr
    return root


def baseline_of(project: Path) -> Path:
    return project.parent / "baseline.envsnap"


def test_unchanged_code_passes_and_reports_every_stage(project: Path) -> None:
    proc = envsnap_cli(project, "check", baseline_of(project))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
    for stage in ("clean", "scale", "total"):
        assert f" {stage} " in proc.stdout
    assert "runtime fingerprint: unchanged" in proc.stdout


def test_code_change_in_a_stage_fails_naming_the_stage_in_every_output(project: Path, tmp_path: Path) -> None:
    edit(project / "gate" / "stages.py", 'pc.multiply(t["x"], 2.0)', 'pc.multiply(t["x"], 2.0000001)')
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    junit = tmp_path / "check.xml"
    run = tmp_path / "check-run.envsnap"
    proc = envsnap_cli(
        project,
        "check",
        baseline_of(project),
        "--json",
        "--junit",
        junit,
        "-o",
        run,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert proc.returncode == 1, proc.stderr
    # The failing run's own snapshot, for the CI artifact: envsnap diff against the baseline agrees.
    written = envsnap.load(run)
    assert written.label == f"envsnap check against {envsnap.load(baseline_of(project)).id}"
    assert diff(baseline_of(project), written).data.first_diverging_stage == "scale"
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    assert report["first_diverging_stage"] == "scale"
    statuses = {s["name"]: s["status"] for s in report["stages"]}
    assert statuses == {"clean": "identical", "scale": "regressed", "total": "regressed"}
    scale = next(s for s in report["stages"] if s["name"] == "scale")
    assert [c["column"] for c in scale["table"]["columns"] if c["status"] == "different"] == ["y"]
    assert report["verdict"].startswith("regression: stage scale")
    # The stage's code changed in the working tree: the git state is the suspect.
    assert report["suspects"][0]["subject"] == "git code"

    cases = ET.parse(junit).getroot()  # noqa: S314 - our own output, written by this test
    assert cases.get("tests") == "3" and cases.get("failures") == "2"
    by_name = {c.get("name"): c for c in cases.iter("testcase")}
    assert by_name["clean"].find("failure") is None
    failure = by_name["scale"].find("failure")
    assert failure is not None and "column y: different" in (failure.text or "")

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n"), "the summary is appended to, never replaced"
    assert "❌ envsnap check: gate" in text and "| 2 | scale | ❌ regressed |" in text


def test_tolerance_from_the_command_line_or_the_config_absorbs_a_tiny_change(project: Path) -> None:
    edit(project / "gate" / "stages.py", 'pc.multiply(t["x"], 2.0)', 'pc.multiply(t["x"], 2.0000001)')
    assert envsnap_cli(project, "check", baseline_of(project), "--rtol", "1e-6", "-q").returncode == 0
    with (project / "envsnap.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[check.tolerances.scale]\ncolumns = { y = { rtol = 1e-6 } }\n")
    proc = envsnap_cli(project, "check", baseline_of(project), "--json")
    # scale's y is within its column tolerance; total's z has no tolerance and still differs.
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert [(s["name"], s["status"]) for s in report["stages"]][1:] == [
        ("scale", "within_tolerance"),
        ("total", "regressed"),
    ]
    assert report["first_diverging_stage"] == "total"


def test_a_new_column_passes_only_when_the_config_ignores_it(project: Path) -> None:
    edit(
        project / "gate" / "stages.py",
        'return t.append_column("y", pc.multiply(t["x"], 2.0))',
        'return t.append_column("y", pc.multiply(t["x"], 2.0)).append_column("debug", pc.negate(t["x"]))',
    )
    proc = envsnap_cli(project, "check", baseline_of(project), "--json")
    assert proc.returncode == 1
    scale = json.loads(proc.stdout)["stages"][1]
    assert scale["table"]["schema"][0]["column"] == "debug" and scale["table"]["schema"][0]["kind"] == "added"
    with (project / "envsnap.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[check]\nignore_added_columns = true\n")
    proc = envsnap_cli(project, "check", baseline_of(project))
    assert proc.returncode == 0, proc.stdout
    assert "ignored column: debug" in proc.stdout


def test_a_removed_column_is_a_regression_even_when_added_ones_are_ignored(project: Path) -> None:
    edit(project / "gate" / "stages.py", 'return t.append_column("z", pc.add(t["y"], t["x"]))', "return t")
    proc = envsnap_cli(project, "check", baseline_of(project), "--ignore-added-columns", "--json")
    assert proc.returncode == 1
    total = json.loads(proc.stdout)["stages"][2]
    assert total["table"]["schema"] == [{"after": None, "before": "double", "column": "z", "kind": "removed"}]


def test_stage_option_gates_only_that_stage_and_stops_the_run_there(project: Path) -> None:
    edit(project / "gate" / "stages.py", 'pc.add(t["y"], t["x"])', 'pc.subtract(t["y"], t["x"])')
    proc = envsnap_cli(project, "check", baseline_of(project), "--stage", "scale", "--json")
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    assert [(s["name"], s["status"]) for s in report["stages"]] == [("clean", "not-compared"), ("scale", "identical")]
    assert envsnap_cli(project, "check", baseline_of(project), "--stage", "total").returncode == 1


def test_a_failing_stage_is_a_regression_with_its_error(project: Path) -> None:
    edit(project / "gate" / "stages.py", "def total(t):\n", "def total(t):\n    raise RuntimeError('boom')\n")
    proc = envsnap_cli(project, "check", baseline_of(project))
    assert proc.returncode == 1
    assert "FAILED — regression: stage total failed" in proc.stdout and "boom" in proc.stdout


def test_baseline_update_records_who_when_why_and_the_check_passes_again(project: Path) -> None:
    edit(project / "gate" / "stages.py", 'pc.multiply(t["x"], 2.0)', 'pc.multiply(t["x"], 3.0)')
    baseline = baseline_of(project)
    old_id = envsnap.load(baseline).id
    assert envsnap_cli(project, "check", baseline, "-q").returncode == 1
    proc = envsnap_cli(project, "baseline", "update", baseline, "--reason", "scale triples now (ticket 42)")
    assert proc.returncode == 0, proc.stderr
    snap = envsnap.load(baseline)
    snap.verify()
    assert snap.id != old_id
    assert snap.label is not None
    assert "by Ada Lovelace" in snap.label and "scale triples now (ticket 42)" in snap.label
    assert snap.label.startswith("baseline updated 20")
    assert envsnap_cli(project, "check", baseline, "-q").returncode == 0


def test_baseline_update_with_a_failing_stage_writes_nothing(project: Path) -> None:
    baseline = baseline_of(project)
    before = baseline.read_bytes()
    edit(project / "gate" / "stages.py", "def clean(t):\n", "def clean(t):\n    raise ValueError('no')\n")
    proc = envsnap_cli(project, "baseline", "update", baseline, "--reason", "try")
    assert proc.returncode == 3
    assert "the baseline was not replaced" in proc.stderr
    assert baseline.read_bytes() == before


def test_library_check_returns_a_report_and_envsnap_check_stays_the_package(tmp_path: Path) -> None:
    root = make_project(tmp_path / "lib", pkg="gate_lib")
    from envsnap.pipeline import load_pipeline

    result = envsnap.run_pipeline(load_pipeline(root / "envsnap.toml"), git=False)
    baseline = result.snapshot.write(tmp_path / "b.envsnap")
    report = check(baseline, config=root / "envsnap.toml", git=False)
    assert report.passed and report.exit_code == 0
    assert [s.status for s in report.stages] == ["identical"] * 3
    # the function lives in its package: loading the package's submodules rebinds neither name
    assert "envsnap.check.baseline" in sys.modules
    assert envsnap.check is sys.modules["envsnap.check"] and envsnap.check.check is check
    again = check(baseline, config=root / "envsnap.toml", git=False, stages=["clean"])
    assert [s.name for s in again.stages] == ["clean"]


def test_check_records_the_baselines_config_files_again(tmp_path: Path) -> None:
    root = make_project(tmp_path / "cfg", pkg="gate_cfg")
    (root / "conf").mkdir()
    (root / "conf" / "app.yaml").write_text("model:\n  threshold: 0.5\n  lr: 0.1\n", encoding="utf-8")
    (root / "conf" / "serving.yaml").write_text("replicas: 2\n", encoding="utf-8")
    git(root, "add", "conf")
    git(root, "commit", "-q", "-m", "configs")
    from envsnap.pipeline import load_pipeline

    config = root / "envsnap.toml"
    made = envsnap.run_pipeline(load_pipeline(config), config_files=["conf/app.yaml", "conf/s*.yaml"], cwd=str(root))
    baseline = made.snapshot.write(tmp_path / "b.envsnap")

    report = check(baseline, config=config, cwd=str(root / "gate_cfg"))  # from another directory of the clone
    configs = report.diff.env.section("configs")
    assert configs is not None and configs.changes == () and configs.note is None
    assert report.passed

    (root / "conf" / "app.yaml").write_text("model:\n  threshold: 0.7\n  lr: 0.1\n", encoding="utf-8")
    (root / "conf" / "staging.yaml").write_text("replicas: 1\n", encoding="utf-8")
    (root / "extra.toml").write_text("[x]\ny = 1\n", encoding="utf-8")
    report = check(baseline, config=config, cwd=str(root), config_files=["extra.toml"])
    configs = report.diff.env.section("configs")
    assert configs is not None
    changes = {c.key: (c.kind, c.before, c.after) for c in configs.changes}
    assert changes == {
        "conf/app.yaml:model.threshold": ("changed", 0.5, 0.7),
        "conf/staging.yaml": ("added", None, "yaml"),  # the baseline's glob matches it now
        "extra.toml": ("added", None, "toml"),
    }
    assert report.passed  # a config change is reported, the stages decide
    assert "conf/app.yaml:model.threshold" in render_text(report)


# --- bad input: one line, exit 3 ----------------------------------------------------------------------------


def test_a_baseline_without_intermediates_is_refused(project: Path, tmp_path: Path) -> None:
    captured = capture(tmp_path / "plain.envsnap", git=False)
    result = runner.invoke(app, ["check", str(captured.path), "--config", str(project / "envsnap.toml")])
    assert result.exit_code == 3
    assert "has no stage intermediates" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_stages_that_no_longer_match_are_listed(project: Path) -> None:
    config = project / "envsnap.toml"
    edit(config, 'name = "total"', 'name = "summed"')
    text = config.read_text(encoding="utf-8") + '\n[[pipeline.stages]]\nname = "extra"\ncall = "gate.stages:scale"\n'
    config.write_text(
        text.replace('[[pipeline.stages]]\nname = "clean"\ncall = "gate.stages:clean"\n\n', "", 1), encoding="utf-8"
    )
    result = runner.invoke(app, ["check", str(baseline_of(project)), "--config", str(config)])
    assert result.exit_code == 3
    message = result.stderr.strip()
    assert "renamed total -> summed" in message and "added extra" in message and "removed clean" in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_an_unreadable_baseline_is_refused_and_skipped_under_git_bisect(
    project: Path, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.envsnap"
    bad.write_bytes(content)
    result = runner.invoke(app, ["check", str(bad), "--config", str(project / "envsnap.toml")])
    assert result.exit_code == 3
    assert result.stderr.startswith("envsnap: error: ") and len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["check", str(bad), "--git-bisect"])
    assert result.exit_code == 125


def test_a_config_naming_an_unknown_stage_is_refused(project: Path) -> None:
    with (project / "envsnap.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[check.tolerances.scael]\nrtol = 0.1\n")
    result = runner.invoke(app, ["check", str(baseline_of(project)), "--config", str(project / "envsnap.toml")])
    assert result.exit_code == 3
    assert "check.tolerances.scael: the pipeline has no stage 'scael'" in result.stderr


# --- git bisect run -----------------------------------------------------------------------------------------


def test_git_bisect_run_finds_the_bad_commit(project: Path) -> None:
    baseline = baseline_of(project)
    stages = project / "gate" / "stages.py"
    commits = [git(project, "rev-parse", "HEAD")]

    def commit(message: str) -> None:
        git(project, "commit", "-q", "-am", message)
        commits.append(git(project, "rev-parse", "HEAD"))

    edit(stages, '"""A tiny pipeline', '"""A tiny (documented) pipeline')
    commit("docs: harmless")
    edit(stages, "def clean(t):\n", "def clean(t):\n    # keep the valid rows only\n")
    commit("comment: harmless")
    edit(stages, 'pc.multiply(t["x"], 2.0)', 'pc.multiply(t["x"], 2.5)')
    commit("scale: the bad commit")
    edit(stages, "def total(t):\n", "def total(t):\n    # the sum\n")
    commit("comment after the bad one")
    edit(project / "envsnap.toml", 'name = "gate"', 'name = "gate"\nbogus = 1')
    commit("a broken config: a commit that cannot be judged")
    edit(project / "envsnap.toml", 'name = "gate"\nbogus = 1', 'name = "gate"')
    commit("config fixed")
    bad_commit = commits[3]

    # The broken commit on its own: skipped (125), never "bad".
    git(project, "checkout", "-q", commits[5])
    assert envsnap_cli(project, "check", "--git-bisect", baseline).returncode == 125
    git(project, "checkout", "-q", "main")

    check_cmd = [sys.executable, "-m", "envsnap", "check", "--git-bisect", "-q", str(baseline)]
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    git(project, "bisect", "start", commits[-1], commits[0])
    proc = subprocess.run(
        ["git", "bisect", "run", *check_cmd], cwd=project, capture_output=True, text=True, env=environ, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{bad_commit} is the first bad commit" in proc.stdout
    assert "scale: the bad commit" in proc.stdout
    git(project, "bisect", "reset")
