"""The code map's pieces without git or a pipeline: the index and its limits, hunks, patch files, the
suspect's lead, a run stage's source."""

from __future__ import annotations

from pathlib import Path

from envsnap._target.runner.measure import command_source_files
from envsnap.capture.source_files import code_index
from envsnap.diff.code_map import hunks_of, patch_files, suspect_text
from envsnap.diff.model import CodeDiff, CodeFile


def _wanted(*paths: str) -> dict[str, dict[str, object]]:
    return {p: {"stages": {"s"}, "why": {"imported"}, "order": [i]} for i, p in enumerate(paths)}


def test_the_index_names_what_it_does_not_store_and_keeps_the_budget(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("X = 'token'\n", encoding="utf-8")
    (tmp_path / "binary.py").write_bytes(b"X = 1\x00\x01\n")
    (tmp_path / "latin.py").write_bytes(b"# \xe9\n")
    (tmp_path / "big.py").write_text("Y = 1\n" * 30, encoding="utf-8")
    (tmp_path / "late.py").write_text("Z = 2\n" * 15, encoding="utf-8")
    index, texts = code_index(
        _wanted("ok.py", "binary.py", "latin.py", "big.py", "late.py", "missing.py"),
        root=str(tmp_path),
        origin="pipeline",
        budget=100,
    )
    files = {f["path"]: f for f in index["files"]}
    assert files["ok.py"]["member"] == "code/files/ok.py" and texts == {"code/files/ok.py": "X = 'token'\n"}
    assert files["binary.py"]["not_stored"] == "binary"
    assert files["latin.py"]["not_stored"] == "not UTF-8 (byte 2)"
    assert files["big.py"]["not_stored"] == "huge: 180 bytes, more than the 100-byte budget"
    assert files["late.py"]["not_stored"] == "the 100-byte budget was spent on earlier files"
    assert files["missing.py"]["sha256"] is None and files["missing.py"]["not_stored"].startswith("unreadable")
    assert all(f["sha256"] for p, f in files.items() if p != "missing.py")
    assert index["stored_bytes"] == len("X = 'token'\n")

    kept_none, no_texts = code_index(_wanted("ok.py"), root=str(tmp_path), origin="pipeline", keep_text=False)
    assert no_texts == {} and kept_none["files"][0]["not_stored"] == "--no-source"


def test_hunks_first_changed_line_and_suspect_lead() -> None:
    before = "a\nb\nc\nd\n"
    after = "a\nb\nC\nd\n"
    (hunk,) = hunks_of(before, after)
    assert hunk.header == "@@ -1,4 +1,4 @@" and "-c" in hunk.lines and "+C" in hunk.lines
    changed = CodeFile("pkg/m.py", "modified", stages=("clean", "score"), first_diverging=True, line=3, snippet="C")
    other = CodeFile("pkg/n.py", "removed", stages=("clean",))
    lead = suspect_text(CodeDiff(files=(changed, other)), "score")
    assert lead == "pkg/m.py:3 `C`, imported by stages `clean`, `score`; `score` is the first to diverge, +1 more file"
    dirty = suspect_text(CodeDiff(dirty={"b": ("pkg/m.py",)}), None)
    assert dirty == "dirty patch (b) touches pkg/m.py"


def test_patch_files_names_each_file_once() -> None:
    patch = (
        "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-a\n+b\n"
        "diff --git a/old.py b/new.py\nsimilarity index 100%\n"
    )
    assert patch_files(patch) == ("pkg/m.py", "new.py")


def test_a_run_stage_maps_its_module_or_script(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tool.py").write_text("print(1)\n", encoding="utf-8")
    (tmp_path / "script.py").write_text("print(2)\n", encoding="utf-8")
    tool = str(tmp_path / "pkg" / "tool.py")
    assert command_source_files(["python", "-m", "pkg.tool", "{input}"], str(tmp_path), []) == [tool]
    assert command_source_files(["python", "script.py"], str(tmp_path), []) == [str(tmp_path / "script.py")]
    assert command_source_files(["sh", "-c", "true"], str(tmp_path), []) == []
