"""``env/git.json`` and ``env/git.patch``: the git state of the working directory.

Recorded: the repository root, commit, branch (null when detached), ``git describe``, remotes with their
credentials removed, whether tracked files differ from HEAD, the diff against HEAD as ``env/git.patch``
(text, value-scanned, capped at :data:`PATCH_CAP` bytes, cut at a line end) and the untracked list
(capped at :data:`UNTRACKED_CAP` entries; untracked directories are listed once, with a trailing ``/``).
``untracked_code`` is the file the job ran from (``argv[0]``: the script, ``-m``'s module, a console
script) when git does not track it, relative to the root (absent otherwise; since format minor 3): such a
job's code is in no commit, so the state is "untracked code", not "clean", even with no tracked change.
Binary changes show as "Binary files ... differ": an encoded blob could carry a secret past the scanner.

Not a repository, no ``git``, or a repository git refuses (dubious ownership) is a value:
``{"present": false, "reason": ...}``. Five ``git`` processes run, four of them concurrently, with no
prompts, no optional locks, no pager, no external diff or textconv drivers, and a deadline. Credential
helpers and credential files are never consulted: only ``remote.*.url`` is read from the config.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.core.redact import scrub_text, scrub_url

__all__ = ["PATCH_MEMBER", "GitProbe", "absent", "collect_git", "git_environ", "public_remote"]

PATCH_MEMBER = "env/git.patch"
PATCH_CAP = 1 << 20
UNTRACKED_CAP = 1000
TIMEOUT_S = 10.0
_READ_CHUNK = 1 << 16


def git_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment git runs with: no prompt, no optional locks (no index refresh writes), no pager."""
    env = dict(os.environ if base is None else base)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_PAGER="cat", LC_ALL="C", GIT_ASKPASS="")
    return env


def _start(args: list[str], cwd: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _finish(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def _read_capped(proc: subprocess.Popen[bytes], cap: int, deadline: float) -> tuple[bytes, bool]:
    """Up to ``cap`` bytes of ``proc``'s stdout; stops (and kills it) past the cap. (data, truncated)."""
    if proc.stdout is None:  # pragma: no cover - _start always pipes stdout
        raise RuntimeError("git's output is not piped")
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    size = 0
    truncated = False
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                proc.kill()
                proc.communicate()
                raise subprocess.TimeoutExpired(proc.args, TIMEOUT_S)
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                truncated = True
                proc.kill()
                break
    proc.communicate()
    data = b"".join(chunks)
    if truncated:
        data = data[:cap]
        data = data[: data.rfind(b"\n") + 1]  # whole lines only
    return data, truncated


def _first_line(err: bytes) -> str:
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return scrub_text(lines[0].removeprefix("fatal: ")) if lines else "git failed"


def public_remote(url: str) -> str:
    """A remote URL without credentials: userinfo is dropped (``ssh://git@`` stays), tokens are scrubbed."""
    return scrub_url(url).replace("<redacted-url-userinfo>@", "")


def _remotes(raw: bytes) -> dict[str, str]:
    remotes: dict[str, str] = {}
    for entry in raw.decode("utf-8", "replace").split("\0"):
        key, _, url = entry.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.setdefault(key[len("remote.") : -len(".url")], public_remote(url))
    return dict(sorted(remotes.items()))


def _status(raw: bytes) -> tuple[bool, list[str]]:
    """(tracked files changed, untracked paths) from ``status --porcelain=v1 -z``."""
    dirty = False
    untracked: list[str] = []
    entries = raw.decode("utf-8", "replace").split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
            continue
        dirty = True
        if "R" in code or "C" in code:
            index += 1  # a rename or copy is followed by its source path
    return dirty, sorted(untracked)


def _untracked_entry(root: str, cwd: str, entry: str | None, untracked: list[str]) -> str | None:
    """``entry`` (a path, relative to ``cwd``) relative to ``root`` when it is a file git does not track."""
    if not entry:
        return None
    path = os.path.realpath(os.path.join(cwd, entry))
    if not os.path.isfile(path):
        return None
    relative = os.path.relpath(path, os.path.realpath(root))
    if relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        return None
    relative = relative.replace(os.sep, "/")
    if relative in untracked or any(d.endswith("/") and relative.startswith(d) for d in untracked):
        return scrub_text(relative)
    return None


def absent(reason: str) -> dict[str, Any]:
    """The value recorded when there is no git state to record."""
    return {"present": False, "reason": reason}


def collect_git(
    cwd: str,
    env: Mapping[str, str] | None = None,
    *,
    patch_cap: int = PATCH_CAP,
    untracked_cap: int = UNTRACKED_CAP,
    entry: str | None = None,
) -> ProbeOutput | dict[str, Any]:
    """Git state of ``cwd``: a :class:`ProbeOutput` with the patch as a side member, or :func:`absent`.

    ``env`` is the environment git runs in (default: this process's), with prompts and locks turned off.
    ``entry`` is the file the job ran from (relative to ``cwd``), checked for ``untracked_code``.
    """
    if not os.path.isdir(cwd):
        return absent(f"the working directory {cwd} does not exist")
    environ = git_environ(env)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        head = _start(["rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD"], cwd, environ)
    except FileNotFoundError:
        return absent("git is not installed")
    code, out, err = _finish(head, deadline)
    lines = out.decode("utf-8", "replace").splitlines()
    if not lines or not os.path.isabs(lines[0]):
        return absent(_first_line(err))
    root = lines[0]
    born = code == 0 and len(lines) >= 3
    commit = lines[1] if born else None
    procs = {
        "remotes": _start(["config", "-z", "--get-regexp", r"^remote\..*\.url$"], root, environ),
        "status": _start(["status", "--porcelain=v1", "-z", "--untracked-files=normal"], root, environ),
    }
    if born:
        procs["describe"] = _start(["describe", "--tags", "--always"], root, environ)
        diff_args = ["diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"]
        procs["diff"] = _start(diff_args, root, environ)
        symbolic = lines[2]
    else:
        procs["branch"] = _start(["symbolic-ref", "-q", "HEAD"], root, environ)
        symbolic = ""
    patch, truncated = _read_capped(procs["diff"], patch_cap, deadline) if born else (b"", False)
    results = {name: _finish(proc, deadline) for name, proc in procs.items() if name != "diff"}
    if not born:
        symbolic = results["branch"][1].decode("utf-8", "replace").strip()
    status_code, status_out, status_err = results["status"]
    if status_code != 0:
        raise RuntimeError(f"git status failed: {_first_line(status_err)}")
    dirty, untracked = _status(status_out)
    describe = results["describe"][1].decode("utf-8", "replace").strip() if born else ""
    text = scrub_text(patch.decode("utf-8", "replace")) if patch else ""
    encoded = text.encode("utf-8")
    data: dict[str, Any] = {
        "present": True,
        "root": root,
        "commit": commit,
        "branch": symbolic.removeprefix("refs/heads/") if symbolic.startswith("refs/heads/") else None,
        "describe": describe or None,
        "remotes": _remotes(results["remotes"][1]),
        "dirty": dirty,
        "patch_size": len(encoded),
        "patch_sha256": hashlib.sha256(encoded).hexdigest() if encoded else None,
        "patch_truncated": truncated,
        "untracked": untracked[:untracked_cap],
        "untracked_truncated": len(untracked) > untracked_cap,
    }
    ran_from = _untracked_entry(root, cwd, entry, untracked)
    if ran_from is not None:  # since format minor 3; absent otherwise, so older readers still validate
        data["untracked_code"] = ran_from
    return ProbeOutput(data, {PATCH_MEMBER: text}) if text else ProbeOutput(data)


@register
class GitProbe(Probe):
    """Commit, branch, remotes, dirty patch and untracked files of the working directory's repository."""

    name = "git"
    member = "env/git.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return ctx.options.git

    def collect(self, ctx: CaptureContext) -> ProbeOutput | dict[str, Any]:
        argv = ctx.options.argv
        return collect_git(ctx.options.cwd, entry=argv[0] if argv else None)
