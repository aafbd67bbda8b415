"""The code map on real git repositories: what a pipeline's stages imported is recorded with its text,
and ``envsnap diff`` names the changed file, line, hunk and importing stage.

A small pyarrow pipeline (``steps/``: clean -> scale) lives in a scratch git repository; each test moves
the repository through real states (a commit, a dirty tree, a rename, a deleted module, an untracked
module) and records each with ``envsnap run`` in a subprocess, as a user would. The churn example's
one-line change (the demo) is the slow test at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}
TOML = """[pipeline]
name = "toy"
accepts = "arrow"
inputs = {events = "events.parquet"}

[[pipeline.stages]]
name = "clean"
call = "steps.clean:run"

[[pipeline.stages]]
name = "scale"
call = "steps.scale:run"
"""
CLEAN = """import pyarrow.compute as pc


def run(table):
    return table.filter(pc.greater_equal(table["x"], 0))
"""
HELPERS = """FACTOR = 2.0


def factor():
    return FACTOR
"""
SCALE = """import pyarrow.compute as pc

from steps.helpers import factor


def run(table):
    scaled = pc.multiply(table["x"], factor())
    return table.set_column(0, "x", scaled)
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return done.stdout


def write(repo: Path, path: str, text: str | bytes) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = tmp_path / "proj"
    repo.mkdir()
    write(repo, "envsnap.toml", TOML)
    write(repo, "steps/__init__.py", "")
    write(repo, "steps/clean.py", CLEAN)
    write(repo, "steps/helpers.py", HELPERS)
    write(repo, "steps/scale.py", SCALE)
    write(repo, ".gitignore", "*.parquet\n*.envsnap\n__pycache__/\n")
    pq.write_table(pa.table({"x": [1.0, -1.0, 2.0, 3.0]}), repo / "events.parquet")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "toy pipeline")
    return repo


def record(repo: Path, name: str, *flags: str) -> Path:
    out = repo.parent / f"{name}.envsnap"
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "run", "-c", str(repo / "envsnap.toml"), "-o", str(out), "--force", "-q",
         *flags],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    return out


def diff(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envsnap", "diff", str(a), str(b), *args], capture_output=True, text=True, check=False
    )


def diff_json(a: Path, b: Path) -> dict[str, Any]:
    proc = diff(a, b, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def files_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in document["code"]["files"]}


def test_a_committed_one_line_change_is_named_with_its_line_hunk_and_stage(repo: Path) -> None:
    good = record(repo, "good")
    import envsnap

    snap = envsnap.load(good)
    index = snap.read_json("code/index.json")
    stored = {f["path"]: f for f in index["files"]}
    assert set(stored) == {"steps/__init__.py", "steps/clean.py", "steps/helpers.py", "steps/scale.py"}
    assert stored["steps/helpers.py"]["stages"] == ["scale"] and stored["steps/helpers.py"]["tracked"] is True
    assert snap.read_text("code/files/steps/helpers.py") == HELPERS
    scale_record = snap.read_json("pipeline/stages/02-scale.json")
    assert {f["path"] for f in scale_record["files"]} == {"steps/helpers.py", "steps/scale.py"}
    assert snap.verify().members == len(snap.members())  # every member hash- and schema-checked

    write(repo, "steps/helpers.py", HELPERS.replace("FACTOR = 2.0", "FACTOR = 2.5"))
    git(repo, "commit", "-q", "-am", "scale harder")
    bad = record(repo, "bad")
    document = diff_json(good, bad)
    assert document["data"]["first_diverging_stage"] == "scale"
    top = document["suspects"][0]
    assert top["subject"] == "git code"
    assert top["reason"].startswith(
        "steps/helpers.py:1 `FACTOR = 2.5`, imported by stage `scale`, the first to diverge"
    )
    changed = files_of(document)
    assert list(changed) == ["steps/helpers.py"]
    helpers = changed["steps/helpers.py"]
    assert (helpers["status"], helpers["source"], helpers["line"]) == ("modified", "stored", 1)
    assert helpers["hunks"][0]["lines"][:2] == ["-FACTOR = 2.0", "+FACTOR = 2.5"]

    text = diff(good, bad).stdout
    assert "Code: 1 file changed (hunks from the snapshots)" in text
    assert "steps/helpers.py (modified; imported by stage scale, the first to diverge)" in text
    assert "    -FACTOR = 2.0\n    +FACTOR = 2.5\n" in text
    markdown = diff(good, bad, "--markdown").stdout
    assert "```diff" in markdown and "+FACTOR = 2.5" in markdown
    page = repo.parent / "diff.html"
    diff(good, bad, "--html", str(page))
    html = page.read_text(encoding="utf-8")
    assert 'class="code-file"' in html and "+FACTOR = 2.5" in html


def test_dirty_patch_untracked_rename_and_delete_are_named(repo: Path) -> None:
    good = record(repo, "good")
    # A dirty working tree: the patch is named by its file.
    write(repo, "steps/helpers.py", HELPERS.replace("2.0", "3.0"))
    dirty = record(repo, "dirty")
    document = diff_json(good, dirty)
    assert document["code"]["dirty"] == {"b": ["steps/helpers.py"]}
    assert files_of(document)["steps/helpers.py"]["line"] == 1
    assert document["suspects"][0]["reason"].startswith("steps/helpers.py:1 `FACTOR = 3.0`")
    git(repo, "checkout", "-q", "--", "steps/helpers.py")

    # An untracked module a stage imported.
    write(repo, "steps/extra.py", "OFFSET = 1.0\n")
    write(repo, "steps/scale.py", SCALE.replace("factor())", "factor() + __import__('steps.extra').extra.OFFSET)"))
    untracked = record(repo, "untracked")
    document = diff_json(good, untracked)
    assert document["code"]["untracked"] == {"b": ["steps/extra.py"]}
    extra = files_of(document)["steps/extra.py"]
    assert (extra["status"], extra["untracked"], extra["stages"]) == ("added", ["b"], ["scale"])
    assert "imported but untracked by git (b): steps/extra.py" in diff(good, untracked).stdout

    # A rename (the same text under a new name) and a deleted module, committed.
    git(repo, "checkout", "-q", "--", "steps/scale.py")
    (repo / "steps" / "extra.py").unlink()
    git(repo, "mv", "steps/helpers.py", "steps/factors.py")
    write(repo, "steps/scale.py", SCALE.replace("steps.helpers", "steps.factors"))
    moved = record(repo, "moved")
    document = diff_json(good, moved)
    changed = files_of(document)
    assert changed["steps/factors.py"]["status"] == "renamed"
    assert changed["steps/factors.py"]["old_path"] == "steps/helpers.py"
    assert changed["steps/scale.py"]["status"] == "modified"
    git(repo, "commit", "-q", "-am", "rename helpers")
    write(repo, "steps/clean.py", "import steps.gone\n" + CLEAN)
    write(repo, "steps/gone.py", "X = 1\n")
    git(repo, "add", "steps/gone.py")
    git(repo, "commit", "-q", "-am", "clean imports gone")
    with_gone = record(repo, "with-gone")
    write(repo, "steps/clean.py", CLEAN)
    git(repo, "rm", "-q", "steps/gone.py")
    git(repo, "commit", "-q", "-am", "drop gone")
    without = record(repo, "without-gone")
    gone = files_of(diff_json(with_gone, without))["steps/gone.py"]
    assert (gone["status"], gone["stages"]) == ("removed", ["clean"])


def test_no_source_falls_back_to_the_clone_and_a_missing_commit_is_named(repo: Path) -> None:
    good = record(repo, "good", "--no-source")
    import envsnap

    snap = envsnap.load(good)
    assert not [m for m in snap.members() if m.startswith("code/files/")]
    assert {f["not_stored"] for f in snap.read_json("code/index.json")["files"]} == {"--no-source"}
    write(repo, "steps/helpers.py", HELPERS.replace("2.0", "4.0"))
    git(repo, "commit", "-q", "-am", "four")
    bad = record(repo, "bad", "--no-source")
    helpers = files_of(diff_json(good, bad))["steps/helpers.py"]
    assert (helpers["source"], helpers["line"]) == ("clone", 1)

    # The clone loses the good commit (a fresh history): the diff names the commit and keeps the hashes.
    good_commit = snap.read_json("env/git.json")["commit"]
    git(repo, "checkout", "-q", "--orphan", "fresh")
    git(repo, "commit", "-q", "-m", "fresh history")
    git(repo, "branch", "-q", "-D", "main")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    document = diff_json(good, bad)
    helpers = files_of(document)["steps/helpers.py"]
    assert helpers["source"] == "hashes" and helpers["hunks"] == []
    assert helpers["sha256"][0] != helpers["sha256"][1]
    assert any(f"has no commit {good_commit[:12]} (a)" in note for note in document["notes"])


def test_non_utf8_and_huge_sources_are_named_not_stored(repo: Path) -> None:
    write(repo, "steps/latin.py", b"# -*- coding: latin-1 -*-\nNAME = '\xe9t\xe9'\n")
    write(repo, "steps/huge.py", "TABLE = [\n" + "    0.5,\n" * 40_000 + "]\n")
    write(repo, "steps/clean.py", "import steps.huge\nimport steps.latin\n" + CLEAN)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "odd sources")
    good = record(repo, "good")
    import envsnap

    index = {f["path"]: f for f in envsnap.load(good).read_json("code/index.json")["files"]}
    assert index["steps/latin.py"]["not_stored"].startswith("not UTF-8")
    assert index["steps/huge.py"]["not_stored"].startswith("huge: ")
    assert index["steps/latin.py"]["member"] is None and index["steps/latin.py"]["sha256"]
    write(repo, "steps/latin.py", b"# -*- coding: latin-1 -*-\nNAME = '\xe9t\xe9!'\n")
    bad = record(repo, "bad")  # not committed: the clone's commit text is not what ran
    latin = files_of(diff_json(good, bad))["steps/latin.py"]
    assert latin["source"] == "hashes"
    assert latin["note"] == "no hunk: a: not UTF-8 (byte 34); b: not UTF-8 (byte 34)"


@pytest.mark.slow
def test_the_demo_one_line_change_names_file_line_and_stage(tmp_path: Path) -> None:
    """The churn example's scenario (``make demo``): the top suspect is the changed line of preprocess."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fixtures/scenarios/normalization-change/scenario.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = diff_json(tmp_path / "good.envsnap", tmp_path / "bad.envsnap")
    top = document["suspects"][0]
    assert top["subject"] == "git code"
    assert top["reason"].startswith(
        "churn/preprocess.py:24 `out[column] = (values - mean[column]) / values.std(ddof=1)`, "
        "imported by stage `preprocess`, the first to diverge; commit "
    )
    (changed,) = document["code"]["files"]
    assert (changed["path"], changed["stages"], changed["source"]) == ("churn/preprocess.py", ["preprocess"], "stored")
    assert "-        out[column] = (values - mean[column]) / scale[column]" in changed["hunks"][0]["lines"]


def test_a_command_job_maps_its_script_and_its_traceback(tmp_path: Path) -> None:
    """``envsnap run -- python job.py``: the script and the project frames of its failure are the code map;
    a file only the failing side's traceback listed is not reported as removed when the clone has it."""
    repo = tmp_path / "job"
    write(repo, "pkg/__init__.py", "")
    write(repo, "pkg/mod.py", "def f(x):\n    return 1 / x\n")
    write(repo, "job.py", "import pkg.mod\nprint(pkg.mod.f(0))\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "job")

    def run(name: str) -> Path:
        out = tmp_path / f"{name}.envsnap"
        subprocess.run(
            [sys.executable, "-m", "envsnap", "run", "-o", str(out), "-q", "--", sys.executable, "job.py"],
            cwd=repo, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return out

    failing = run("failing")
    import envsnap

    index = envsnap.load(failing).read_json("code/index.json")
    assert index["origin"] == "command"
    assert {f["path"]: f["why"] for f in index["files"]} == {
        "job.py": ["entry", "traceback"],
        "pkg/mod.py": ["traceback"],
    }
    write(repo, "job.py", "import pkg.mod\nprint(pkg.mod.f(2))\n")
    git(repo, "commit", "-q", "-am", "divide by two")
    fixed = run("fixed")
    document = diff_json(failing, fixed)
    assert list(files_of(document)) == ["job.py"]
    assert document["suspects"][0]["reason"].startswith("job.py:2 `print(pkg.mod.f(2))`; commit ")


def test_without_git_the_paths_are_relative_to_the_working_directory(repo: Path) -> None:
    import envsnap

    snap = envsnap.load(record(repo, "nogit", "--no-git"))
    index = snap.read_json("code/index.json")
    assert index["root"] == str(repo)
    assert {f["path"] for f in index["files"]} >= {"steps/clean.py", "steps/scale.py"}
    assert {f["tracked"] for f in index["files"]} == {None}
    clean = snap.read_json("pipeline/stages/01-clean.json")["files"]
    assert [f["path"] for f in clean] == ["steps/__init__.py", "steps/clean.py"]
