"""Deployed config vs repository: real git repositories, real captures through the CLI, ``envsnap diff
SNAP --config-against-repo`` and its one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.capture import capture
from envsnap.cli import app
from envsnap.diff.config_repo import ConfigRepoError, diff_config_against_repo

runner = CliRunner()
COMMITTED = "model:\n  normalize: true\n  threshold: 0.5\n  features: [age, income]\nserving:\n  port: 8080\n"
DEPLOYED = "model:\n  normalize: false\n  features: [age, income]\nserving:\n  port: 8080\n"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _repo(root: Path) -> Path:
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yaml").write_text(COMMITTED)
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "config")
    return root


def _one_line_error(result: object, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)  # type: ignore[attr-defined]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("envsnap: error: "), lines
    return lines[0]


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A repository whose working copy of conf/app.yaml flips a boolean and drops a key, captured."""
    repo = _repo(tmp_path / "repo")
    (repo / "conf" / "app.yaml").write_text(DEPLOYED)
    (repo / "conf" / "extra.yaml").write_text("only: deployed\n")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ENVSNAP_REDACTION_KEY", "integration-key")
    snap = tmp_path / "deployed.envsnap"
    result = runner.invoke(app, ["capture", "-q", "-o", str(snap), "--config-file", "conf/*.yaml"])
    assert result.exit_code == 0, result.output
    return repo, snap


def test_deployed_config_differs_from_the_repository(deployed: tuple[Path, Path]) -> None:
    repo, snap = deployed
    commit = _git(repo, "rev-parse", "HEAD")
    result = runner.invoke(app, ["diff", str(snap), "--config-against-repo", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [s["name"] for s in document["env"]["sections"]] == ["configs"]
    changes = {c["key"]: c for c in document["env"]["sections"][0]["changes"]}
    assert changes["conf/app.yaml:model.normalize"]["before"] is True
    assert changes["conf/app.yaml:model.normalize"]["after"] is False
    assert changes["conf/app.yaml:model.threshold"]["kind"] == "removed"
    assert changes["conf/app.yaml:model.threshold"]["before"] == 0.5
    assert changes["conf/extra.yaml"]["note"] == f"not in the repository at {commit[:12]}"
    assert set(changes) == {"conf/app.yaml:model.normalize", "conf/app.yaml:model.threshold", "conf/extra.yaml"}
    assert document["a"]["label"] == f"repository at {commit[:12]}"
    text = runner.invoke(app, ["diff", str(snap), "--config-against-repo"])
    assert "conf/app.yaml:model.normalize" in text.stdout and "conf/app.yaml:model.threshold" in text.stdout


def test_clean_deployment_has_no_config_changes(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    snap = capture(cwd=repo, config_files=["conf/app.yaml"])
    result = diff_config_against_repo(snap)
    section = result.env.section("configs")
    assert section is not None and section.changes == () and not result.env.changed


def test_commit_absent_from_the_clone(deployed: tuple[Path, Path], tmp_path: Path) -> None:
    _, snap = deployed
    other = tmp_path / "other"
    other.mkdir()
    (other / "README").write_text("another history\n")
    _git(other, "init", "-q")
    _git(other, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(other, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "another history")
    line = _one_line_error(runner.invoke(app, ["diff", str(snap), "--config-against-repo", "--repo", str(other)]), 3)
    assert "is not in the clone at" in line and "git fetch" in line


def test_recorded_repository_gone(deployed: tuple[Path, Path]) -> None:
    repo, snap = deployed
    shutil.rmtree(repo / ".git")
    line = _one_line_error(runner.invoke(app, ["diff", str(snap), "--config-against-repo"]), 3)
    assert f"{repo} is not a git clone" in line
    shutil.rmtree(repo)
    line = _one_line_error(runner.invoke(app, ["diff", str(snap), "--config-against-repo"]), 3)
    assert "does not exist here" in line and "--repo DIR" in line


def test_no_git_state_or_no_configs(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    without_git = capture(tmp_path / "nogit.envsnap", cwd=repo, git=False, config_files=["conf/app.yaml"])
    with pytest.raises(ConfigRepoError, match="has no recorded commit"):
        diff_config_against_repo(without_git)
    without_configs = tmp_path / "noconf.envsnap"
    capture(without_configs, cwd=repo)
    line = _one_line_error(runner.invoke(app, ["diff", str(without_configs), "--config-against-repo"]), 3)
    assert "has no captured config files" in line and "--config-file" in line
    usage = runner.invoke(app, ["diff", str(without_configs), str(without_configs), "--config-against-repo"])
    assert usage.exit_code == 2


def test_capture_reports_bad_configs_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "conf" / "broken.yaml").write_text("model: [unclosed\n")
    (repo / "uv.lock").write_text('version = 1\n[[package]]\nname = "typer"\nversion = "0.0.1"\n')
    monkeypatch.chdir(repo)
    snap = tmp_path / "s.envsnap"
    result = runner.invoke(app, ["capture", "-o", str(snap), "--config-file", "conf/*.yaml"])
    assert result.exit_code == 0, result.output
    assert "config conf/broken.yaml: not valid YAML at line 2" in result.stdout
    assert "uv.lock pins typer 0.0.1; the job ran " in result.stdout
    loaded = envsnap.load(snap)
    loaded.verify()
    configs = loaded.section("project/configs.json")
    assert [f["path"] for f in configs["files"]] == ["conf/app.yaml", "conf/broken.yaml"]
    assert loaded.read_bytes("project/config/app.yaml") == COMMITTED.encode()
    assert loaded.read_bytes("project/lock/uv.lock") == (repo / "uv.lock").read_bytes()
