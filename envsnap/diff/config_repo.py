"""``envsnap diff SNAP --config-against-repo``: the deployed configs versus the repository at the commit.

Each config file captured in ``project/configs.json`` is compared with the same path in the repository
at the snapshot's recorded commit (``env/git.json``), read with ``git show COMMIT:PATH`` from the local
clone (the recorded root, or ``repo``). The repository's copy is parsed and redacted exactly as capture
does, with this user's redaction key, so a redacted value compares when the key is the same.

Direction: **a = the repository at the commit, b = the snapshot (deployed)**: ``removed`` is a key that
is in git but not deployed, ``changed`` shows git's value before the deployed one. A file that is not in
the repository at that commit is one ``added`` change; a file outside the repository, or one that could
not be read at capture, is a note.

Errors (:class:`ConfigRepoError`, exit 3): no captured configs, no git state in the snapshot, no clone at
the root, the commit not in the clone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envsnap.diff.env_common import SectionChanges
from envsnap.diff.model import DataDiff, EnvDiff, SnapshotDiff, SnapshotRef
from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

GIT_TIMEOUT_S = 30
MAX_SHOW_BYTES = 10 << 20


class ConfigRepoError(EnvsnapError, ValueError):
    """The deployed configs cannot be compared with the repository (see the module docstring)."""


def _git(root: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    from envsnap.capture.git import git_environ

    try:
        return subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            env=git_environ(),
            timeout=GIT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ConfigRepoError("git is not installed", hint="install git to compare with the repository") from None
    except subprocess.TimeoutExpired:
        raise ConfigRepoError(f"git did not answer within {GIT_TIMEOUT_S} s in {root}") from None


def _first_line(raw: bytes) -> str:
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ") if lines else "git failed"


def _check_clone(root: str, commit: str, source: str) -> None:
    if not os.path.isdir(root):
        raise ConfigRepoError(
            f"the repository {root} recorded in {source} does not exist here",
            hint="pass --repo DIR of a clone of it",
        )
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise ConfigRepoError(
            f"{root} is not a git clone ({_first_line(top.stderr)})", hint="pass --repo DIR of a clone"
        )
    found = _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    if found.returncode != 0:
        raise ConfigRepoError(
            f"commit {commit[:12]} recorded in {source} is not in the clone at {root}",
            hint="fetch it (git fetch --all) or pass --repo DIR of a clone that has it",
        )


def repository_entry(
    root: str, commit: str, entry: Mapping[str, Any], environ: dict[str, str]
) -> dict[str, Any] | None:
    """The repository's copy of one captured config, parsed and redacted as capture does; None when the
    path is not in the repository at ``commit``."""
    from envsnap.capture.config_parsers import redaction_record
    from envsnap.capture.configs import parse_and_redact

    repo_path = str(entry["repo_path"])
    shown = _git(root, "show", f"{commit}:{repo_path}")
    if shown.returncode != 0:
        return None
    out: dict[str, Any] = {"format": entry.get("format"), "data": None, "redacted": {}, "error": None}
    raw = shown.stdout
    if len(raw) > MAX_SHOW_BYTES:
        out["error"] = f"{repo_path} at {commit[:12]} is larger than {MAX_SHOW_BYTES >> 20} MiB"
        return out
    try:
        text = raw.decode("utf-8-sig")
        fmt, tree, redaction, _notes = parse_and_redact(repo_path, text, str(entry.get("format") or "yaml"))
    except UnicodeDecodeError:
        out["error"] = f"{repo_path} at {commit[:12]} is not UTF-8 text"
        return out
    except ValueError as exc:
        out["error"] = f"{repo_path} at {commit[:12]}: {exc}"
        return out
    redacted, key_id = redaction_record(redaction, environ)
    out.update(format=fmt, data=tree, redacted=redacted, key_id=key_id)
    return out


def diff_config_against_repo(
    snap: Snapshot | str | os.PathLike[str], *, repo: str | os.PathLike[str] | None = None
) -> SnapshotDiff:
    """Compare every captured config of ``snap`` with the repository at its recorded commit (docstring)."""
    from envsnap.diff.compare import snapshot_ref
    from envsnap.diff.env_configs import compare_config_entries, load_project_member
    from envsnap.diff.suspects import rank_suspects
    from envsnap.snapshot.model import Snapshot
    from envsnap.snapshot.reader import open_snapshot

    with contextlib.ExitStack() as stack:
        opened = snap if isinstance(snap, Snapshot) else stack.enter_context(open_snapshot(os.fspath(snap)))
        configs = load_project_member(opened, "configs")
        files = (
            [f for f in (configs.get("files") or ()) if isinstance(f, Mapping)] if isinstance(configs, Mapping) else []
        )
        if not files:
            raise ConfigRepoError(
                f"{opened.path} has no captured config files", hint="capture with --config-file PATH_OR_GLOB"
            )
        git: Any = opened.read_json("env/git.json") if "env/git.json" in opened else None
        if not isinstance(git, Mapping) or not git.get("present") or not git.get("commit"):
            reason = git.get("reason") if isinstance(git, Mapping) and git.get("reason") else "no git state recorded"
            raise ConfigRepoError(
                f"{opened.path} has no recorded commit ({reason})",
                hint="capture inside the repository, without --no-git",
            )
        commit = str(git["commit"])
        root = os.fspath(repo) if repo is not None else str(git["root"])
        _check_clone(root, commit, opened.path)
        environ = dict(os.environ)
        out = SectionChanges("configs")
        notes: list[str] = []
        snap_key = configs.get("key_id") if isinstance(configs, Mapping) else None
        for entry in sorted(files, key=lambda f: str(f.get("path"))):
            path = str(entry.get("path"))
            if entry.get("error"):
                notes.append(f"{path} not compared: it could not be read at capture ({entry['error']})")
                continue
            if not entry.get("repo_path"):
                notes.append(f"{path} not compared: it is outside the repository")
                continue
            repository = repository_entry(root, commit, entry, environ)
            if repository is None:
                out.add(path, "added", None, entry.get("format"), note=f"not in the repository at {commit[:12]}")
                continue
            local_key = repository.pop("key_id", None)
            comparable = snap_key is None or local_key is None or snap_key == local_key
            why_not = f"cannot tell: the snapshot's redaction key ({snap_key}) is not yours ({local_key})"
            compare_config_entries(out, path, repository, entry, comparable=comparable, why_not=why_not)
        section = out.result("; ".join(notes) if notes else None)
        ref_a = SnapshotRef(
            path=f"{root}@{commit[:12]}",
            id="repository",
            label=f"repository at {commit[:12]}",
            created_at=None,
            fingerprint="",
            format_minor=opened.manifest.minor,
        )
        return SnapshotDiff(
            a=ref_a,
            b=snapshot_ref(opened),
            env=EnvDiff((section,)),
            data=DataDiff(note="not compared: a is the repository"),
            suspects=rank_suspects(EnvDiff((section,)), DataDiff(), opened, opened),
            notes=(f"a is the repository at commit {commit[:12]} ({root}); b is what the snapshot captured",),
            options={},
        )


__all__ = ["ConfigRepoError", "diff_config_against_repo", "repository_entry"]
