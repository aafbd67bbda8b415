"""``project/configs.json`` + ``project/config/NAME``: configuration files named with ``--config-file``.

Which files: every ``--config-file PATH_OR_GLOB`` (repeatable; relative to the working directory, ``**``
recurses), plus ``config_files = [...]`` in the ``[capture]`` table of the envsnap config (``envsnap.toml``,
or ``[tool.envsnap.capture]`` in ``pyproject.toml``, found from the working directory upwards as
``envsnap run`` finds its pipeline; relative to that file). Formats: YAML, JSON, TOML, INI (``.ini``,
``.cfg``, ``.conf``), ``.env`` and Kubernetes ConfigMap manifests (see
:mod:`envsnap.capture.config_parsers`).

Each file is stored **parsed** in ``project/configs.json``, redacted as environment variables are: a value
under a secret-looking key (:func:`~envsnap.core.redact.is_secret_name`, e.g. ``api_key``, ``password``,
``HF_TOKEN``) becomes ``<redacted:key>``, and every string is value-scanned for credential shapes. Each
redacted value gets a keyed digest (the same per-user HMAC key as ``env/envvars.json``), so ``diff`` can
say "changed" or "unchanged" without any unsalted hash of a secret being stored. The **raw** file is
stored as ``project/config/NAME`` only when nothing was redacted and the raw text scans clean (a commented
out ``# password: ...`` line keeps the raw copy out); so is its sha256.

Bad input never fails the capture: a missing file, a glob that matches nothing, a directory, a file larger
than :data:`MAX_CONFIG_BYTES`, a binary or non-UTF-8 file, malformed YAML/JSON/TOML/INI/.env, a
credential file (``.netrc``, ``.pypirc``, ``~/.aws/credentials``...) each get a one-line ``error`` on the
file's entry, and the other files are recorded.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.capture.config_parsers import Redaction, redact_tree, redaction_record
from envsnap.core.redact import scrub_text

__all__ = [
    "MAX_CONFIG_BYTES",
    "ConfigsProbe",
    "ProjectSettings",
    "Redaction",
    "display_path",
    "expand",
    "git_root",
    "is_credential_file",
    "parse_and_redact",
    "project_settings",
    "read_small_text",
    "record_config",
    "redact_tree",
    "redaction_record",
    "relative_to",
    "unique_member_names",
]

MEMBER = "project/configs.json"
RAW_PREFIX = "project/config/"
MAX_CONFIG_BYTES = 10 << 20
CREDENTIAL_FILES = frozenset(
    {".netrc", "_netrc", ".pypirc", ".git-credentials", ".npmrc", ".dockercfg", "id_rsa", "id_ed25519", "id_ecdsa"}
)
_CREDENTIAL_PATHS = (("/.aws/", "credentials"), ("/.docker/", "config.json"), ("/.kube/", "config"))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- reading files ----------------------------------------------------------------------------------------


def read_small_text(path: str, cap: int) -> tuple[bytes, str]:
    """The bytes and UTF-8 text of a regular file of at most ``cap`` bytes; ValueError with a one-line
    reason otherwise (missing, a directory, too large, binary, not UTF-8)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("is not a regular file")
    if info.st_size > cap:
        raise ValueError(f"is {info.st_size / (1 << 20):.1f} MiB, larger than the {cap >> 20} MiB limit; not read")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(cap + 1)
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > cap:
        raise ValueError(f"grew past the {cap >> 20} MiB limit while read; not read")
    if b"\x00" in raw[:8192]:
        raise ValueError("is a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {exc.start})") from None
    return raw, text


def is_credential_file(path: str) -> bool:
    """Files that hold credentials by convention are never read, whatever they are passed as."""
    name = os.path.basename(path).lower()
    if name in CREDENTIAL_FILES:
        return True
    normalized = path.replace(os.sep, "/")
    return any(f"{directory}{file}" in normalized for directory, file in _CREDENTIAL_PATHS)


def unique_member_names(prefix: str, names: Iterable[str]) -> list[str]:
    """Member paths ``prefix + name`` made safe (letters, digits, ``._-`` per component, no leading dot)
    and unique after case folding (the reader refuses names that collide that way): ``-2``, ``-3``..."""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        parts = [_UNSAFE.sub("_", p).lstrip(".")[:100] or "file" for p in name.replace(os.sep, "/").split("/") if p]
        safe = "/".join(p for p in parts if p not in (".", "..")) or "file"
        stem, dot, suffix = safe.rpartition(".") if "." in safe.rsplit("/", 1)[-1] else (safe, "", "")
        candidate, counter = safe, 1
        while (prefix + candidate).lower() in taken:
            counter += 1
            candidate = f"{stem}-{counter}{dot}{suffix}"
        taken.add((prefix + candidate).lower())
        out.append(prefix + candidate)
    return out


def relative_to(resolved: str, base: str | None) -> str | None:
    """``resolved`` relative to ``base`` with ``/`` separators, or None when it is not inside ``base``."""
    if base and resolved.startswith(base.rstrip(os.sep) + os.sep):
        return os.path.relpath(resolved, base).replace(os.sep, "/")
    return None


def display_path(resolved: str, root: str | None, cwd: str) -> str:
    """A stored path: relative to ``root`` (the repository) or ``cwd`` when inside it, else absolute."""
    return relative_to(resolved, root) or relative_to(resolved, cwd) or resolved


def git_root(ctx: CaptureContext) -> str | None:
    """The repository root recorded by the git probe (it runs first), or None."""
    git = ctx.results.get("git")
    root = git.get("root") if isinstance(git, dict) and git.get("present") else None
    return os.path.realpath(root) if isinstance(root, str) else None


# --- the envsnap config ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSettings:
    """``config_files``/``lockfiles`` from the ``[capture]`` table of the envsnap config, as patterns
    relative to the working directory; ``source`` is that file (relative too), ``error`` what was wrong
    with it (one line)."""

    config_files: tuple[str, ...] = ()
    lockfiles: tuple[str, ...] = ()
    source: str | None = None
    error: str | None = None


def _find_envsnap_config(cwd: str) -> tuple[str, dict[str, Any]] | None:
    """The envsnap config that applies in ``cwd`` (as :func:`envsnap.pipeline.config.find_config` finds it)
    and its ``capture`` table's parent; pyproject files without ``tool.envsnap`` are not parsed."""
    import tomllib

    directory = os.path.abspath(cwd)
    while True:
        for name in ("envsnap.toml", "pyproject.toml"):
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as fh:
                    raw = fh.read(MAX_CONFIG_BYTES)
            except OSError:
                continue
            if name == "pyproject.toml" and b"envsnap" not in raw:
                continue
            try:
                data = tomllib.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError):
                if name == "pyproject.toml":
                    continue
                raise ValueError(f"{os.path.relpath(path, cwd)} is not valid TOML") from None
            if name == "pyproject.toml":
                tool = data.get("tool")
                if not isinstance(tool, dict) or not isinstance(tool.get("envsnap"), dict):
                    continue
                return path, tool["envsnap"]
            return path, data
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def project_settings(cwd: str) -> ProjectSettings:
    """The ``[capture]`` settings of the envsnap config found from ``cwd`` (empty when there is none)."""
    try:
        found = _find_envsnap_config(cwd)
    except ValueError as exc:
        return ProjectSettings(error=str(exc))
    if found is None:
        return ProjectSettings()
    path, data = found
    shown = os.path.relpath(path, cwd)  # relative, so that the same tree elsewhere records the same bytes
    table = data.get("capture")
    if table is None:
        return ProjectSettings(source=shown)
    prefix = "tool.envsnap.capture" if path.endswith("pyproject.toml") else "capture"
    if not isinstance(table, dict):
        return ProjectSettings(source=shown, error=f"{shown}: {prefix} must be a table")
    base = os.path.dirname(path)
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("config_files", "lockfiles"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return ProjectSettings(source=shown, error=f"{shown}: {prefix}.{key} must be a list of paths or globs")
        lists[key] = tuple(os.path.relpath(os.path.join(base, os.path.expanduser(v)), cwd) for v in value)
    return ProjectSettings(lists["config_files"], lists["lockfiles"], shown)


def expand(patterns: Iterable[str], cwd: str) -> list[tuple[str, str | None, str | None]]:
    """(pattern as given, resolved file or None, error or None) for every file the patterns name.

    A glob that matches nothing is one error entry; directories a glob matches are skipped; a file named
    twice is recorded once.
    """
    out: list[tuple[str, str | None, str | None]] = []
    seen: set[str] = set()
    for pattern in patterns:
        full = os.path.join(cwd, os.path.expanduser(pattern))
        if glob.has_magic(full):
            matches = sorted(m for m in glob.glob(full, recursive=True) if not os.path.isdir(m))
            if not matches:
                out.append((pattern, None, "no file matches this pattern"))
            for match in matches:
                resolved = os.path.realpath(match)
                if resolved not in seen:
                    seen.add(resolved)
                    out.append((pattern, resolved, None))
            continue
        resolved = os.path.realpath(full)
        if resolved not in seen:
            seen.add(resolved)
            out.append((pattern, resolved, None))
    return out


# --- the probe ---------------------------------------------------------------------------------------------


def parse_and_redact(path: str, raw_text: str, fmt: str) -> tuple[str, Any, Redaction, list[str]]:
    """Parse a config's text as ``fmt`` and redact it: (format, redacted tree, redaction, notes)."""
    from envsnap.capture.config_parsers import parse_config

    fmt, tree, notes = parse_config(fmt, raw_text)
    redacted, redaction = redact_tree(tree)
    return fmt, redacted, redaction, notes


def _entry(path: str, repo_path: str | None, error: str | None = None) -> dict[str, Any]:
    return {
        "path": path,
        "repo_path": repo_path,
        "format": None,
        "size": None,
        "sha256": None,
        "raw_member": None,
        "data": None,
        "redacted": {},
        "notes": [],
        "error": error,
    }


def _one_line(path: str, problem: str) -> str:
    return f"{path}: {' '.join(problem.split())}"[:500]


def record_config(
    resolved: str, shown: str, repo_path: str | None, environ: dict[str, str]
) -> tuple[dict[str, Any], bytes | None, str | None]:
    """One file's entry, its raw bytes when they may be stored, and the redaction key id it used."""
    from envsnap.capture.config_parsers import detect_format

    entry = _entry(shown, repo_path)
    if is_credential_file(resolved):
        entry["error"] = _one_line(shown, "a credential file; never read")
        return entry, None, None
    fmt = detect_format(resolved)
    if fmt is None:
        entry["error"] = _one_line(shown, "unknown config format (use .yaml/.yml, .json, .toml, .ini/.cfg/.conf, .env)")
        return entry, None, None
    try:
        raw, text = read_small_text(resolved, MAX_CONFIG_BYTES)
        entry["size"] = len(raw)
        fmt, tree, redaction, notes = parse_and_redact(resolved, text, fmt)
    except ValueError as exc:
        entry["format"] = fmt
        entry["error"] = _one_line(shown, str(exc))
        return entry, None, None
    entry.update(format=fmt, data=tree, notes=notes)
    redacted, key_id = redaction_record(redaction, environ)
    entry["redacted"] = redacted
    clean = redaction.clean and scrub_text(text) == text
    if clean:
        entry["sha256"] = hashlib.sha256(raw).hexdigest()
        return entry, raw, key_id
    entry["notes"].append("raw copy not stored: redaction changed it")
    return entry, None, key_id


@register
class ConfigsProbe(Probe):
    """Configuration files from ``--config-file`` and the envsnap config, parsed, redacted, key by key."""

    name = "configs"
    member = MEMBER

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        cwd = os.path.realpath(ctx.options.cwd)
        settings = project_settings(cwd)
        requested = [*ctx.options.config_files, *settings.config_files]
        root = git_root(ctx)
        environ = dict(ctx.options.environ)
        entries: list[dict[str, Any]] = []
        raws: list[bytes | None] = []
        key_ids: set[str] = set()
        for pattern, resolved, error in expand(requested, cwd):
            if resolved is None:
                entries.append(_entry(pattern, None, _one_line(pattern, error or "not found")))
                raws.append(None)
                continue
            shown = display_path(resolved, root, cwd)
            repo_path = relative_to(resolved, root)
            entry, raw, key_id = record_config(resolved, shown, repo_path, environ)
            entries.append(entry)
            raws.append(raw)
            if key_id:
                key_ids.add(key_id)
        order = sorted(range(len(entries)), key=lambda i: (entries[i]["path"], entries[i]["error"] or ""))
        entries = [entries[i] for i in order]
        raws = [raws[i] for i in order]
        names = unique_member_names(RAW_PREFIX, [os.path.basename(e["path"]) for e in entries])
        extra: dict[str, Any] = {}
        for entry, raw, member in zip(entries, raws, names, strict=True):
            if raw is not None:
                entry["raw_member"] = member
                extra[member] = raw
        data = {
            "requested": list(dict.fromkeys(requested)),
            "settings": settings.source,
            "settings_error": settings.error,
            "key_id": min(key_ids) if key_ids else None,
            "files": entries,
        }
        return ProbeOutput(data, extra=extra)
