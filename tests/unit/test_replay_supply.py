"""The replay's supply notes, on real captures: every captured thing a replay cannot supply is named."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from envsnap.capture import capture
from envsnap.replay.fidelity import SHOWN_NAMES, supply_notes
from envsnap.replay.plan import ReplayPlan
from envsnap.replay.source import SourceTree, prepare_source
from envsnap.snapshot.model import Snapshot


def _plan(**changes: object) -> ReplayPlan:
    plan = ReplayPlan(
        snapshot="snap.envsnap",
        snapshot_id="id",
        label=None,
        fingerprint="sha256:" + "0" * 64,
        python_version="3.11.0",
        python_implementation="cpython",
        platform="linux-x86_64",
        glibc=None,
        base_image="python:3.11-slim",
        base_image_source="--base-image",
        packages=(),
        excluded=(),
        env={},
        env_not_applied={},
        cpus=None,
        memory_bytes=None,
        match_resources=True,
        stages=(),
        inputs=(),
        pipeline_root=None,
        pythonpath=(),
    )
    return dataclasses.replace(plan, **changes)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository: a tracked job and config, 25 untracked files, an untracked config and model."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "job.py").write_text("print('job')\n")
    (root / "tracked.yaml").write_text("threshold: 0.5\n")
    _git(root, "add", "job.py", "tracked.yaml")
    _git(root, "commit", "-qm", "init")
    for i in range(25):
        (root / f"notes{i:02d}.txt").write_text(f"{i}\n")
    (root / "local.yaml").write_text("rows: 10\n")
    (root / "model.bin").write_bytes(b"weights")
    return root


def _capture(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    for key in list(os.environ):  # the capture's environment: a login shell's, and the job's own variables
        if key not in ("PATH", "HOME", "LANG"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SHLVL", "1")
    outside = tmp_path / "etc-job.toml"
    outside.write_text("mode = 'batch'\n")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SCORE_CONFIG", "weights=v3")
    monkeypatch.setenv("SCORE_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/wheels")
    return capture(
        tmp_path / "s.envsnap",
        argv=["job.py"],
        config_files=["tracked.yaml", "local.yaml", str(outside)],
        artifacts=["model.bin"],
        lockfiles=[],
    )


def test_a_replay_from_the_commit_names_what_it_lacks(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = _capture(repo, tmp_path, monkeypatch)
    (repo / "model.bin").unlink()  # gone from the machine that replays
    work = tmp_path / "work"
    work.mkdir()
    tree = prepare_source(snap, work)
    notes = supply_notes(snap, _plan(env={"OMP_NUM_THREADS": "2"}), tree)
    text = "\n".join(notes)

    assert (
        "SCORE_CONFIG was redacted at capture; the replay runs without it; recapture with --env-allow SCORE_CONFIG"
        in notes
    )
    assert any(n.startswith("SCORE_API_TOKEN was redacted at capture (a credential)") for n in notes)
    assert "s3cr3t" not in text and "weights=v3" not in text
    assert "OMP_NUM_THREADS" not in text  # its value was kept and is applied
    assert "--env-allow HOME" not in text  # the shell's own variables: one line, no advice
    # tool settings (installers, certificates) are named together, not one line each
    assert not any(n.startswith("PIP_FIND_LINKS was redacted") for n in notes)
    assert any(n.startswith("tool settings redacted at capture") and "PIP_FIND_LINKS" in n for n in notes)
    # configs: the tracked one comes with the commit; the untracked one and the one outside the code do not
    assert "tracked.yaml" not in text.replace("local.yaml", "")
    assert any(n.startswith(f"config file local.yaml ({repo}/local.yaml)") for n in notes)
    assert any("etc-job.toml" in n and "outside the recorded code" in n for n in notes)
    # the artifact: the code tree's own note says it no longer exists, not repeated here
    assert any(n.startswith("artifact model.bin:") and "no longer exists" in n for n in tree.notes)
    assert not any(n.startswith("artifact model.bin") for n in notes)
    # untracked files: the first 20 by name, then a count
    (untracked,) = [n for n in notes if "git did not track" in n]
    assert untracked.startswith("27 file(s) git did not track at capture are not in the replay: local.yaml, model.bin")
    assert untracked.endswith(" and 7 more")
    assert untracked.count(", ") == SHOWN_NAMES - 1


def test_a_replay_of_the_directory_as_it_is_lacks_nothing_of_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = _capture(repo, tmp_path, monkeypatch)
    (repo / "local.yaml").write_text("rows: 99\n")  # edited since the capture
    tree = SourceTree(repo, str(repo), f"--source {repo}")
    notes = supply_notes(snap, _plan(set_env={"SCORE_CONFIG": "x"}, env={"SCORE_CONFIG": "x"}), tree)
    text = "\n".join(notes)
    assert "SCORE_CONFIG" not in text  # --set-env supplies it
    assert "git did not track" not in text
    assert any(n.startswith("config file local.yaml") and "differs in the replay" in n for n in notes)
    assert not any("model.bin" in n for n in notes)


def test_the_files_a_replay_puts_in_place_are_not_named(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = _capture(repo, tmp_path, monkeypatch)
    outside = str(tmp_path / "etc-job.toml")
    assert any(outside in n for n in supply_notes(snap, _plan(), None))
    notes = supply_notes(snap, _plan(), None, placed=[outside])
    assert not any(outside in n for n in notes)
    # no code at all: every untracked file is named missing
    assert any(n.startswith("27 file(s) git did not track") for n in notes), notes
