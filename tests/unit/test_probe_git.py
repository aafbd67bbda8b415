"""The git probe against real repositories: commit, branch, remotes, dirty patch, untracked files, absences."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.git import PATCH_MEMBER, GitProbe, collect_git, public_remote
from envsnap.snapshot.schema import validate_member

GHP = "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"
_GIT = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main"]


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run([*_GIT, *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit of ``app.py`` and ``config.ini``."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "app.py").write_text("print('hello')\n")
    (root / "config.ini").write_text("[server]\nport = 8080\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    return root


def state(cwd: Path, **caps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(env/git.json data, side members), both checked against the schema."""
    result = collect_git(str(cwd), **caps)
    if isinstance(result, ProbeOutput):
        data, extra = result.data, result.extra
    else:
        data, extra = result, {}
    validate_member("<test>", "env/git.json", data)
    return data, extra


def test_clean_repository(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    data, extra = state(repo)
    assert data["present"] is True
    assert data["root"] == str(repo)
    assert data["commit"] == git(repo, "rev-parse", "HEAD")
    assert data["branch"] == "main"
    assert data["describe"] == "v1.0"
    assert data["dirty"] is False
    assert (data["patch_size"], data["patch_sha256"], data["patch_truncated"]) == (0, None, False)
    assert data["untracked"] == []
    assert extra == {}
    nested = repo / "pkg" / "sub"
    nested.mkdir(parents=True)
    assert state(nested)[0]["root"] == str(repo)  # found from a subdirectory too


def test_dirty_patch_untracked_files_and_scrubbing(repo: Path) -> None:
    (repo / "app.py").write_text(f"print('hello')\nTOKEN = '{GHP}'\n")
    (repo / "config.ini").write_text("[server]\nport = 9090\npassword = hunter22\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("1\n")
    (repo / "data" / "b.csv").write_text("2\n")
    data, extra = state(repo)
    patch = extra[PATCH_MEMBER]
    assert data["dirty"] is True
    assert "+port = 9090" in patch and "-port = 8080" in patch
    assert GHP not in patch and "hunter22" not in patch
    assert "<redacted:" in patch
    assert data["patch_size"] == len(patch.encode())
    assert len(data["patch_sha256"]) == 64
    assert data["untracked"] == ["data/", "notes.txt"]  # an untracked directory is listed once
    git(repo, "add", "app.py")
    staged, _ = state(repo)
    assert staged["dirty"] is True  # staged changes count too


def test_caps_on_patch_and_untracked_list(repo: Path) -> None:
    (repo / "app.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    for i in range(12):
        (repo / f"u{i:02d}.txt").write_text("x")
    data, extra = state(repo, patch_cap=4096, untracked_cap=5)
    assert data["patch_truncated"] is True
    assert len(extra[PATCH_MEMBER].encode()) <= 4096
    assert extra[PATCH_MEMBER].endswith("\n")  # cut at a line end
    assert data["untracked"] == [f"u{i:02d}.txt" for i in range(5)]
    assert data["untracked_truncated"] is True


def test_remotes_lose_their_credentials(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://deploy:s3cr3t-pa55@github.com/org/repo.git")
    git(repo, "remote", "add", "token", f"https://{GHP}@github.com/org/repo.git")
    git(repo, "remote", "add", "oauth", f"https://x-access-token:{GHP}@github.com/org/repo.git")
    git(repo, "remote", "add", "ssh", "ssh://git@github.com/org/repo.git")
    git(repo, "remote", "add", "scp", "git@github.com:org/repo.git")
    git(repo, "remote", "add", "scpcreds", "bot:pw@example.com:org/repo.git")
    git(repo, "remote", "add", "dotted.name", "/srv/mirror/repo.git")
    data, _ = state(repo)
    assert data["remotes"] == {
        "dotted.name": "/srv/mirror/repo.git",
        "oauth": "https://github.com/org/repo.git",
        "origin": "https://github.com/org/repo.git",
        "scp": "git@github.com:org/repo.git",
        "scpcreds": "example.com:org/repo.git",
        "ssh": "ssh://git@github.com/org/repo.git",
        "token": "https://github.com/org/repo.git",
    }
    assert public_remote("https://h/r?private_token=abc123") == "https://h/r?private_token=<redacted>"


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    data, _ = state(repo)
    assert data["branch"] is None
    assert data["commit"] == git(repo, "rev-parse", "HEAD")


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "new.py").write_text("x = 1\n")
    data, extra = state(tmp_path)
    assert (data["commit"], data["branch"], data["describe"]) == (None, "main", None)
    assert data["untracked"] == ["new.py"]
    assert data["dirty"] is False and extra == {}


def test_absences_are_values(tmp_path: Path) -> None:
    not_repo = tmp_path / "plain"
    not_repo.mkdir()
    data, _ = state(not_repo)
    assert data == {"present": False, "reason": "not a git repository (or any of the parent directories): .git"}
    assert state(tmp_path / "missing")[0]["present"] is False
    no_git = collect_git(str(not_repo), env={"PATH": str(tmp_path / "empty-bin")})
    assert no_git == {"present": False, "reason": "git is not installed"}


def test_probe_obeys_no_git(repo: Path) -> None:
    probe = GitProbe()
    on = CaptureContext(CaptureOptions(cwd=str(repo), argv=("t",), environ={}), target.in_process)
    off = CaptureContext(CaptureOptions(cwd=str(repo), git=False, argv=("t",), environ={}), target.in_process)
    assert probe.enabled(on) is True
    assert probe.enabled(off) is False
    result = probe.collect(on)
    assert isinstance(result, ProbeOutput) and result.data["present"] is True
