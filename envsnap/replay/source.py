"""The pipeline's own code for a replay: the recorded commit plus the recorded dirty patch, or ``--source``.

- ``--source DIR``: DIR is used as it is, in place of the recorded repository root.
- Otherwise the recorded commit is exported from the local clone (``git archive``; the clone is the
  recorded root, or ``repo``), the recorded dirty patch is applied, and the captured artifacts (a model
  file the stages load, which git ignores) are copied in when the local file still has the recorded
  sha256. A commit the clone does not have is refused with a clear message.
- No git state recorded: the recorded pipeline root is used in place, and the report says so.

The tree is placed at the recorded root's path inside a container, so that the pipeline's root,
``pythonpath`` and artifact paths mean the same as when the job ran.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from envsnap.core.hashing import hash_file
from envsnap.errors import EnvsnapError
from envsnap.snapshot.model import Snapshot

__all__ = ["SourceError", "SourceTree", "prepare_source"]


class SourceError(EnvsnapError, ValueError):
    """The pipeline's code cannot be put together for the replay."""


@dataclass(frozen=True)
class SourceTree:
    """Where the code is on the host (``host``), and which recorded path it stands for (``original``)."""

    host: Path
    original: str
    how: str
    notes: tuple[str, ...] = field(default=())

    def map_path(self, recorded: str, to: str | None = None) -> str:
        """A recorded path under ``original`` rebased onto ``to`` (default: the host copy)."""
        dest = str(self.host) if to is None else to
        try:
            rel = os.path.relpath(recorded, self.original)
        except ValueError:
            return recorded
        if rel in (".", os.curdir):
            return dest
        if rel.startswith(os.pardir):
            return recorded
        return os.path.join(dest, rel)


def _git(repo: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, env=env, check=False)


def _copy_artifacts(snap: Snapshot, original: str, dest: Path) -> list[str]:
    notes: list[str] = []
    if "artifacts/index.json" not in snap:
        return notes
    index = snap.read_json("artifacts/index.json").get("artifacts") or {}
    for name, entry in sorted(index.items()):
        record = snap.read_json(entry["member"]) if entry.get("member") in snap else {}
        resolved = str(record.get("resolved") or "")
        if not resolved:
            continue
        rel = os.path.relpath(resolved, original)
        if rel.startswith(os.pardir):
            notes.append(f"artifact {name}: {resolved} is outside the repository; not carried")
            continue
        local = Path(resolved)
        if not local.is_file():
            notes.append(f"artifact {name}: {resolved} no longer exists here; stages that load it will fail")
            continue
        digest = hash_file(str(local))[0]
        if digest != record.get("sha256"):
            notes.append(
                f"artifact {name}: {resolved} changed since the capture (sha256 {digest[:12]}… vs "
                f"{str(record.get('sha256'))[:12]}…); not carried"
            )
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        notes.append(f"artifact {name}: carried from {resolved} (sha256 matches the capture)")
    return notes


def prepare_source(snap: Snapshot, workdir: Path, *, source: str | None = None, repo: str | None = None) -> SourceTree:
    """Put the pipeline's code under ``workdir/src`` (or point at ``source``) and say how."""
    git = snap.section("git") if "env/git.json" in snap else {}
    pipeline = snap.read_json("pipeline/pipeline.json") if "pipeline/pipeline.json" in snap else {}
    if not pipeline and "job/command.json" in snap:  # a command snapshot (`envsnap run -- CMD`): its root
        command = snap.read_json("job/command.json").get("command")
        pipeline = {"root": command.get("root")} if isinstance(command, dict) else {}
    git_ok = isinstance(git, dict) and git.get("present") and git.get("commit") and git.get("root")
    original = str(git["root"]) if git_ok else str(pipeline.get("root") or "")
    if source is not None:
        path = Path(source).expanduser().resolve()
        if not path.is_dir():
            raise SourceError(f"--source {source}: not a directory")
        return SourceTree(path, original or str(path), f"--source {path}")
    if not git_ok:
        root = pipeline.get("root")
        if not root or not Path(root).is_dir():
            raise SourceError(
                f"{snap.path}: the snapshot records no git commit and the job's directory {root!r} is not here",
                hint="pass --source DIR with the pipeline's code",
            )
        return SourceTree(Path(root), str(root), f"{root} as it is now (the capture recorded no git commit)")
    commit = str(git["commit"])
    clone = repo or original
    if not Path(clone).is_dir() or _git(clone, "rev-parse", "--git-dir").returncode != 0:
        raise SourceError(
            f"the recorded repository {clone} is not a git clone on this machine",
            hint="pass --repo PATH (a clone that has the commit) or --source DIR",
        )
    if _git(clone, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise SourceError(
            f"commit {commit[:12]} is not in {clone}",
            hint="fetch it (`git fetch`), or pass --repo PATH or --source DIR",
        )
    archive = _git(clone, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise SourceError(f"git archive {commit[:12]} failed: {archive.stderr.decode(errors='replace').strip()[:200]}")
    dest = workdir / "src"
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    notes = []
    how = f"commit {commit[:12]} of {clone}"
    if git.get("dirty") and "env/git.patch" in snap:
        if git.get("patch_truncated"):
            raise SourceError(
                "the recorded dirty patch was truncated at capture time, so the code cannot be rebuilt",
                hint="pass --source DIR with the code as it ran",
            )
        patch = dest / ".envsnap-dirty.patch"
        patch.write_bytes(snap.read_bytes("env/git.patch"))
        applied = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", str(patch.name)], cwd=dest, capture_output=True, check=False
        )
        patch.unlink()
        if applied.returncode != 0:
            raise SourceError(
                f"the recorded dirty patch does not apply to {commit[:12]}: "
                f"{applied.stderr.decode(errors='replace').strip()[:200]}",
                hint="pass --source DIR with the code as it ran",
            )
        how += " plus the recorded uncommitted changes"
    notes += _copy_artifacts(snap, original, dest)
    return SourceTree(dest, original, how, tuple(notes))
