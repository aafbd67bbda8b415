"""The project's code, a against b: which files changed, a unified hunk for each, which stages import them.

Sources, best first, per file:

1. **stored** — the text each snapshot kept (``code/files/PATH``, listed in ``code/index.json``; format
   minor 3). No clone needed.
2. **clone** — the local git repository (the root ``env/git.json`` recorded, when it exists here) at each
   side's commit, used for a side whose text was not kept, when the blob there has the recorded sha256 (a
   dirty working tree ran other text than its commit). Snapshots without a code map get the whole
   ``git diff A B`` from the clone.
3. **hashes** — neither: the file is named as changed, with the reason the hunk is missing (not stored:
   binary, huge, not UTF-8; the clone lacks a commit: which one).

Also named: the files each side's dirty patch (``env/git.patch``) touches, and the imported files git does
not track. Everything here reads the snapshots (and at most a few ``git`` processes when a text is
missing); nothing is written.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import subprocess
from typing import TYPE_CHECKING, Any

from envsnap.diff.model import CodeDiff, CodeFile, CodeHunk

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["MAX_HUNK_LINES", "code_diff", "hunks_of", "patch_files", "suspect_text"]

INDEX = "code/index.json"
#: Lines shown per file (the JSON holds the same; a rewrite of a whole module is not read line by line).
MAX_HUNK_LINES = 80
#: Files named from a clone's ``git diff`` when the snapshots have no code map.
MAX_CLONE_FILES = 50
GIT_TIMEOUT_S = 10.0
_PATCH_FILE = re.compile(r"^diff --git a/(.+?) b/(.+)$", re.MULTILINE)
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def _json(snap: Snapshot, member: str) -> Any:
    if member not in snap:
        return None
    try:
        return snap.read_json(member)
    except Exception:  # noqa: BLE001 - an unreadable member is reported by its own section; here it is absent
        return None


def _text(snap: Snapshot, member: str | None) -> str | None:
    if not member or member not in snap:
        return None
    try:
        return snap.read_bytes(member).decode("utf-8")
    except Exception:  # noqa: BLE001 - a damaged member only costs the hunk
        return None


def patch_files(patch: str) -> tuple[str, ...]:
    """The files a unified git patch touches (b's names; a's for deletions), in patch order."""
    names = []
    for old, new in _PATCH_FILE.findall(patch):
        names.append(new if new != "/dev/null" else old)
    return tuple(dict.fromkeys(names))


def hunks_of(before: str, after: str, context: int = 3) -> tuple[CodeHunk, ...]:
    """Unified hunks turning ``before`` into ``after``."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=context))
    return _parse_hunks(lines[2:] if len(lines) >= 2 else [])


def _parse_hunks(lines: list[str]) -> tuple[CodeHunk, ...]:
    hunks: list[CodeHunk] = []
    header: str | None = None
    starts = (0, 0)
    body: list[str] = []
    for line in lines:
        match = _HUNK.match(line)
        if match:
            if header is not None:
                hunks.append(CodeHunk(header, starts[0], starts[1], tuple(body)))
            header, starts, body = line.split(" @@", 1)[0] + " @@", (int(match[1]), int(match[2])), []
        elif header is not None and line[:1] in (" ", "-", "+", "\\"):
            body.append(line)
    if header is not None:
        hunks.append(CodeHunk(header, starts[0], starts[1], tuple(body)))
    return _capped(hunks)


def _capped(hunks: list[CodeHunk]) -> tuple[CodeHunk, ...]:
    out = []
    budget = MAX_HUNK_LINES
    for hunk in hunks:
        if budget <= 0:
            break
        lines = hunk.lines[:budget]
        if len(lines) < len(hunk.lines):
            lines = (*lines, f"… {len(hunk.lines) - len(lines)} more lines")
        budget -= len(lines)
        out.append(CodeHunk(hunk.header, hunk.old_start, hunk.new_start, lines))
    return tuple(out)


def _first_change(hunks: tuple[CodeHunk, ...]) -> tuple[int | None, str | None]:
    """The first changed line: b's number and text of the first ``+``, else a's of the first ``-``."""
    for hunk in hunks:
        old, new = hunk.old_start, hunk.new_start
        removed: tuple[int, str] | None = None
        for line in hunk.lines:
            mark, text = line[:1], line[1:]
            if mark == "+":
                return new, text.strip()
            if mark == "-":
                removed = removed or (old, text.strip())
                old += 1
            elif mark == " ":
                if removed is not None:
                    return removed
                old += 1
                new += 1
        if removed is not None:
            return removed
    return None, None


class _Clone:
    """The local git repository at a recorded root, asked for blobs at commits (each answer cached)."""

    def __init__(self, root: str | None) -> None:
        self.root = root if root and (os.path.isdir(os.path.join(root, ".git")) or _is_git_dir(root)) else None
        self._has: dict[str, bool] = {}

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes] | None:
        from envsnap.capture.git import git_environ

        if self.root is None:
            return None
        try:
            return subprocess.run(
                ["git", *args], cwd=self.root, env=git_environ(), capture_output=True, timeout=GIT_TIMEOUT_S,
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None

    def has(self, commit: str | None) -> bool:
        if not commit or self.root is None:
            return False
        if commit not in self._has:
            done = self._git("cat-file", "-e", f"{commit}^{{commit}}")
            self._has[commit] = done is not None and done.returncode == 0
        return self._has[commit]

    def blob(self, commit: str, path: str) -> bytes | None:
        done = self._git("show", f"{commit}:{path}")
        return done.stdout if done is not None and done.returncode == 0 else None

    def diff(self, a: str, b: str) -> str | None:
        done = self._git("diff", "--no-color", "--no-ext-diff", "--find-renames", "-U3", a, b)
        return done.stdout.decode("utf-8", "replace") if done is not None and done.returncode == 0 else None


def _is_git_dir(root: str | None) -> bool:
    return bool(root) and os.path.isfile(os.path.join(str(root), ".git"))  # a worktree or submodule


class _Side:
    """What one snapshot says about its code: index by path, git facts, dirty patch files, stage order."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        index = _json(snap, INDEX)
        self.indexed = isinstance(index, dict) and isinstance(index.get("files"), list)
        self.files: dict[str, dict[str, Any]] = {}
        self.origin = index.get("origin") if isinstance(index, dict) else None
        if isinstance(index, dict) and isinstance(index.get("files"), list):
            self.files = {str(f["path"]): f for f in index["files"] if isinstance(f, dict) and "path" in f}
        git = _json(snap, "env/git.json")
        self.git = git if isinstance(git, dict) and git.get("present", True) and "commit" in git else {}
        self.commit: str | None = self.git.get("commit") if isinstance(self.git.get("commit"), str) else None
        self.root: str | None = self.git.get("root") if isinstance(self.git.get("root"), str) else None
        patch = _text(snap, "env/git.patch") if self.git.get("dirty") else None
        self.dirty = patch_files(patch) if patch else ()
        pipeline = _json(snap, "pipeline/pipeline.json")
        stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
        self.stage_order = {str(s.get("name")): i for i, s in enumerate(stages or ()) if isinstance(s, dict)}

    def text(self, path: str) -> str | None:
        entry = self.files.get(path)
        return _text(self.snap, entry.get("member")) if entry else None

    def why_not(self, path: str) -> str | None:
        entry = self.files.get(path) or {}
        return entry.get("not_stored")


def _from_clone(clone: _Clone, side: _Side, path: str, notes: list[str], label: str) -> str | None:
    """``path``'s text at ``side``'s commit when the clone has it with the recorded sha256."""
    commit = side.commit
    if commit is None:
        return None
    if not clone.has(commit):
        if clone.root is not None:
            notes.append(
                f"the clone at {clone.root} has no commit {commit[:12]} ({label}): `git fetch` it for the hunks; "
                "files named from the hashes"
            )
        return None
    blob = clone.blob(commit, path)
    if blob is None:
        return None
    recorded = (side.files.get(path) or {}).get("sha256")
    if recorded and hashlib.sha256(blob).hexdigest() != recorded:
        return None  # the job ran a dirty working tree: the commit's text is not what ran
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _alike(before: str, after: str) -> bool:
    matcher = difflib.SequenceMatcher(None, before, after)
    return matcher.quick_ratio() >= 0.6 and matcher.ratio() >= 0.6


def _renames(removed: list[str], added: list[str], a: _Side, b: _Side) -> dict[str, str]:
    """b path -> a path for files moved: the same sha256, else stored texts at least 60% alike."""
    out: dict[str, str] = {}
    left = list(removed)
    for new in added:
        sha = b.files[new].get("sha256")
        match = next((old for old in left if sha and a.files[old].get("sha256") == sha), None)
        if match is None:
            after = b.text(new)
            for old in left:
                before = a.text(old)
                if after is not None and before is not None and _alike(before, after):
                    match = old
                    break
        if match is not None:
            out[new] = match
            left.remove(match)
    return out


def _elsewhere(clone: _Clone, other: _Side, path: str, sha: str | None) -> str:
    """A file only one side's code map lists, looked up on the other side: ``same`` (the other commit has
    it unchanged: only no longer imported or read), ``changed``, ``gone`` or ``same`` when nothing can
    tell and the other side's map is not a pipeline's (a command's map lists only what it saw)."""
    if other.commit is not None and path not in other.dirty and clone.has(other.commit):
        blob = clone.blob(other.commit, path)
        if blob is None:
            return "gone"
        return "same" if hashlib.sha256(blob).hexdigest() == sha else "changed"
    return "gone" if other.origin == "pipeline" else "same"


def _indexed_files(a: _Side, b: _Side, clone: _Clone, first: str | None, notes: list[str]) -> list[CodeFile]:
    removed = sorted(set(a.files) - set(b.files))
    added = sorted(set(b.files) - set(a.files))
    renamed = _renames(removed, added, a, b)
    pairs: list[tuple[str, str | None, str | None]] = []  # (status, a path, b path)
    for path in sorted(set(a.files) & set(b.files)):
        if a.files[path].get("sha256") != b.files[path].get("sha256"):
            pairs.append(("modified", path, path))
    pairs += [("renamed", old, new) for new, old in renamed.items()]
    for path in removed:
        if path not in renamed.values():
            state = _elsewhere(clone, b, path, a.files[path].get("sha256"))
            if state != "same":
                pairs.append(("modified", path, path) if state == "changed" else ("removed", path, None))
    for path in added:
        if path not in renamed:
            state = _elsewhere(clone, a, path, b.files[path].get("sha256"))
            if state != "same":
                pairs.append(("modified", path, path) if state == "changed" else ("added", None, path))
    out = []
    for status, old, new in pairs:
        path = new or old or ""
        before = None if old is None else a.text(old) or _from_clone(clone, a, old, notes, "a")
        after = None if new is None else b.text(new) or _from_clone(clone, b, new, notes, "b")
        have = (old is None or before is not None) and (new is None or after is not None)
        source = "hashes"
        note = None
        hunks: tuple[CodeHunk, ...] = ()
        if have:
            hunks = hunks_of(before or "", after or "")
            stored = (old is None or a.text(old) is not None) and (new is None or b.text(new) is not None)
            source = "stored" if stored else "clone"
        else:
            reasons = [
                f"{label}: {why}" for label, side, p in (("a", a, old), ("b", b, new)) if p and (why := side.why_not(p))
            ]
            note = "no hunk: " + ("; ".join(reasons) if reasons else "the text is neither stored nor in a clone here")
        line, snippet = _first_change(hunks)
        stages = {
            *((a.files.get(old or "") or {}).get("stages") or ()),
            *((b.files.get(new or "") or {}).get("stages") or ()),
        }
        order = {**a.stage_order, **b.stage_order}
        untracked = tuple(
            label
            for label, side, p in (("a", a, old), ("b", b, new))
            if p and (side.files.get(p) or {}).get("tracked") is False
        )
        out.append(
            CodeFile(
                path=path,
                status=status,
                old_path=old if status == "renamed" else None,
                stages=tuple(sorted(stages, key=lambda s: (order.get(s, 1 << 30), s))),
                first_diverging=first is not None and first in stages,
                line=line,
                snippet=snippet,
                hunks=hunks,
                sha256=(
                    (a.files.get(old or "") or {}).get("sha256"),
                    (b.files.get(new or "") or {}).get("sha256"),
                ),
                source=source,
                note=note,
                untracked=untracked,
            )
        )
    return out


def _clone_files(a: _Side, b: _Side, clone: _Clone, notes: list[str]) -> list[CodeFile]:
    """No code map on either side: the clone's ``git diff A B``, when it has both commits."""
    if a.commit is None or b.commit is None or a.commit == b.commit:
        return []
    missing = [f"{c[:12]} ({label})" for label, c in (("a", a.commit), ("b", b.commit)) if not clone.has(c)]
    if clone.root is None:
        notes.append(
            f"no code map in the snapshots and no clone at {b.root or a.root or 'the recorded root'} here: "
            "the changed files cannot be named (capture with envsnap >= minor 3 keeps them)"
        )
        return []
    if missing:
        notes.append(
            f"the clone at {clone.root} has no commit {', '.join(missing)}: `git fetch` it to name the changed files"
        )
        return []
    patch = clone.diff(a.commit, b.commit)
    if patch is None:
        return []
    out = []
    for chunk in re.split(r"(?m)^(?=diff --git )", patch):
        match = _PATCH_FILE.match(chunk)
        if match is None:
            continue
        old, new = match[1], match[2]
        status = "modified"
        if "\nnew file mode" in chunk:
            status = "added"
        elif "\ndeleted file mode" in chunk:
            status = "removed"
        elif old != new:
            status = "renamed"
        hunks = _parse_hunks(chunk.splitlines())
        line, snippet = _first_change(hunks)
        out.append(
            CodeFile(
                path=old if status == "removed" else new,
                status=status,
                old_path=old if status == "renamed" else None,
                line=line,
                snippet=snippet,
                hunks=hunks,
                source="clone",
                note=None if hunks or "Binary files" not in chunk else "binary: no hunk",
            )
        )
        if len(out) >= MAX_CLONE_FILES:
            notes.append(
                f"more than {MAX_CLONE_FILES} files changed between the commits: the first {MAX_CLONE_FILES} named"
            )
            break
    return out


def code_diff(a: Snapshot, b: Snapshot, first_diverging_stage: str | None = None) -> CodeDiff | None:
    """The code of ``a`` against ``b``; None when neither snapshot says anything about code (no git, no map)."""
    side_a, side_b = _Side(a), _Side(b)
    if not (side_a.indexed or side_b.indexed or side_a.git or side_b.git):
        return None
    notes: list[str] = []
    clone = _Clone(side_b.root or side_a.root)
    if side_a.indexed and side_b.indexed:
        files = _indexed_files(side_a, side_b, clone, first_diverging_stage, notes)
    elif side_a.indexed or side_b.indexed:
        files = _clone_files(side_a, side_b, clone, notes)
        notes.append(f"only {'a' if side_a.indexed else 'b'} has a code map (format minor 3): files from the clone")
    else:
        files = _clone_files(side_a, side_b, clone, notes)
    files.sort(key=lambda f: (not f.first_diverging, not f.stages, f.path))
    dirty = {label: side.dirty for label, side in (("a", side_a), ("b", side_b)) if side.dirty}
    untracked = {
        label: tuple(p for p, e in sorted(side.files.items()) if e.get("tracked") is False)
        for label, side in (("a", side_a), ("b", side_b))
    }
    return CodeDiff(
        files=tuple(files),
        commits=(side_a.commit, side_b.commit),
        dirty=dirty,
        untracked={k: v for k, v in untracked.items() if v},
        notes=tuple(dict.fromkeys(notes)),
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def suspect_text(code: CodeDiff, first_diverging_stage: str | None) -> str | None:
    """The lead of the git-code suspect: ``churn/preprocess.py:22 `…`, imported by stage `preprocess`, the
    first to diverge (+1 more file)``; None when no file is named."""
    if not code.files:
        if code.dirty.get("b") and code.dirty.get("b") != code.dirty.get("a"):
            return f"dirty patch (b) touches {', '.join(code.dirty['b'][:3])}"
        return None
    top = code.files[0]
    where = top.path + (f":{top.line}" if top.line else "")
    parts = [where + (f" `{_short(top.snippet)}`" if top.snippet else "")]
    if top.status != "modified":
        parts[0] += f" ({top.status}{' from ' + top.old_path if top.old_path else ''})"
    if top.stages:
        names = ", ".join(f"`{s}`" for s in top.stages[:3])
        lead = f"imported by stage {names}" if len(top.stages) == 1 else f"imported by stages {names}"
        if top.first_diverging and first_diverging_stage:
            lead += (
                f"; `{first_diverging_stage}` is the first to diverge"
                if len(top.stages) > 1
                else ", the first to diverge"
            )
        parts.append(lead)
    if "b" in top.untracked:
        parts.append("untracked in b")
    if len(code.files) > 1:
        parts.append(f"+{len(code.files) - 1} more file{'s' if len(code.files) > 2 else ''}")
    return ", ".join(parts)
