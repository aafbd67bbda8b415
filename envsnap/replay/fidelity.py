"""Fidelity: the replayed runtime captured from inside, and every way it differs from the snapshot.

The fidelity probe (:mod:`envsnap._target.fidelity_probe`) runs in the replay (the same runtime, mounts
and limits as the stages), shipped with the stage runner, and answers what the capture probes would read
there: the interpreter inspection, the raw host facts, the environment variables the plan sets and the
user id. The host turns them into sections with the capture's own code
(:func:`envsnap._target.system.system_section`) and compares them with the recorded sections through the
section differs of :mod:`envsnap.diff`, the comparison ``envsnap diff`` makes. Nothing is hidden: a
different Python patch version, OS, glibc, CPU model or flags, a missing GPU, a package that could not be
installed, a limit that was not mirrored; each says why it differs where the plan knows.

Left out, because a replay changes them by design: the interpreter's path, prefix and venv flag (every
replay runs in its own venv), a package's installer and location (versions are compared), and the
cgroup layout, cpuset and raw CPU quota and period (a container gets a cgroup of the engine's making; the
limits a replay mirrors are compared, as ``cgroup.memory.limit_bytes`` and ``cgroup.cpu.effective_cpus``).

:func:`supply_notes` names, from the snapshot and the code tree alone, every captured thing the replay
cannot supply: variables whose values were redacted at capture, configuration files and artifacts that are
not in the replay (or differ there), and the files git did not track.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envsnap._target import answer, command
from envsnap._target.system import system_section
from envsnap.capture.envvars import NEVER_KEEP
from envsnap.core.hashing import hash_file
from envsnap.core.naming import normalize_name
from envsnap.core.redact import is_secret_name
from envsnap.diff.env_packages import package_deltas
from envsnap.diff.env_sections import diff_python, diff_system
from envsnap.diff.model import Change
from envsnap.errors import SchemaError
from envsnap.replay.plan import HOST_PATH_VARIABLES, ReplayPlan
from envsnap.replay.source import SourceTree
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.sections import PythonSection, SystemSection

__all__ = [
    "FACTS_FILE",
    "SHOWN_NAMES",
    "Difference",
    "differences",
    "platform_differences",
    "probe_command",
    "read_facts",
    "recorded_config_path",
    "supply_notes",
]

#: The shipped module that reads the replayed runtime, and the file it writes under the output directory.
PROBE = "fidelity_probe"
FACTS_FILE = "fidelity.json"
_ANSWER: dict[str, type | tuple[type, ...]] = {"inspect": dict, "host": dict, "environ": dict, "uid": int}
_Typed = TypeVar("_Typed", PythonSection, SystemSection)
#: Python facts every replay changes: it runs in a venv of its own.
_REPLAY_MADE = frozenset({"executable", "prefix", "venv"})


@dataclass(frozen=True)
class Difference:
    """One way the replay is not the captured runtime."""

    layer: str
    what: str
    recorded: str
    replayed: str
    note: str = ""


def probe_command(python: str, runner_dir: str, out_dir: str, env_keys: Iterable[str]) -> list[str]:
    """The argv that runs the fidelity probe in the replay, from the package installed in ``runner_dir``."""
    return command(python, runner_dir, PROBE, f"{out_dir}/{FACTS_FILE}", *sorted(env_keys))


def read_facts(python: str, returncode: int, output: str, written: Path) -> dict[str, Any]:
    """The probe's answer in ``written``, checked like every answer of shipped code (see
    :func:`envsnap._target.answer`); ``output`` is what the replay printed."""
    text = written.read_text(encoding="utf-8") if written.is_file() else ""
    return answer("the fidelity probe", python, returncode, text, _ANSWER, stderr=output)


def _typed(section: type[_Typed], snap: Snapshot) -> _Typed | None:
    """The typed recorded section, or None where the snapshot has none it can give (as ``_section``)."""
    try:
        return section.from_snapshot(snap)
    except SchemaError:
        return None


def _section(snap: Snapshot, name: str, member: str) -> dict[str, Any]:
    data = snap.section(name) if member in snap else None
    return data if isinstance(data, dict) and "error" not in data else {}


def _text(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _base_note(plan: ReplayPlan) -> str:
    note = f"from the base image {plan.base_image}"
    return f"{note} ({plan.base_fallback})" if plan.base_fallback else note


def platform_differences(plan: ReplayPlan) -> list[Difference]:
    """The replay's architecture when it is not the captured one's natively: the captured architecture under
    emulation, or wheels of the same versions for the host's (naming the pins with no such wheel); and the
    base image when the plan fell back from the exact official one. Known from the plan alone."""
    out = []
    choice = plan.platform_choice
    if choice is not None and choice.mode != "native":
        replayed = f"{choice.captured} (emulated)" if choice.mode == "emulated" else choice.host
        out.append(Difference("platform", "architecture", str(choice.captured), replayed, choice.line(missing=False)))
        for pin in choice.missing or ():
            out.append(Difference("platform", pin, "installed", "(absent)", f"no {choice.host} wheel of this version"))
    if plan.base_fallback:
        wanted = plan.base_candidates[0] if plan.base_candidates else ""
        out.append(Difference("python", "base image", wanted, plan.base_image, plan.base_fallback))
    return out


def _python(recorded: PythonSection, replayed: PythonSection, plan: ReplayPlan) -> list[Difference]:
    changes = [c for c in diff_python(recorded, replayed).changes if c.key not in _REPLAY_MADE]
    keys = {c.key for c in changes}
    return [
        Difference("python", c.key, _text(c.before), _text(c.after), _base_note(plan))
        for c in changes
        if not (c.key == "build" and "version" in keys)  # another version has another build
    ]


def _packages(
    recorded: Sequence[Mapping[str, Any]], replayed: Sequence[Mapping[str, Any]], plan: ReplayPlan
) -> list[Difference]:
    overridden = {p.normalized for p in plan.packages if p.overridden_from}
    excluded = {normalize_name(e.name): e for e in plan.excluded}
    out = []
    deltas, _ = package_deltas(recorded, replayed)
    for delta in deltas:
        if delta.before == delta.after:
            continue  # same version; the installer or location differ, as in every replay
        if delta.name in overridden:
            note = "--with"
        elif delta.name in excluded:
            note = f"not installed: {excluded[delta.name].reason}"
        elif delta.before is None:
            note = "not in the snapshot (the base image or the installer brought it)"
        else:
            note = ""
        out.append(Difference("packages", delta.name, delta.before or "(absent)", delta.after or "(absent)", note))
    return out


def _resource(change: Change, mirrored: float | int | None) -> Difference | None:
    if not (change.before or mirrored):
        return None  # no limit recorded and none asked for: whatever the engine grants is not a difference
    note = "mirrored" if mirrored else "not mirrored (--no-match-resources, or the engine cannot)"
    return Difference("resources", change.key, str(change.before), str(change.after), note)


def _system(recorded: SystemSection, replayed: SystemSection, plan: ReplayPlan) -> list[Difference]:
    out: list[Difference | None] = []
    for change in diff_system(recorded, replayed).changes:
        key = change.key
        if key == "cgroup.memory.limit_bytes":
            out.append(_resource(change, plan.memory_bytes))
        elif key == "cgroup.cpu.effective_cpus":
            out.append(_resource(change, plan.cpus))
        elif key.startswith("cgroup."):
            continue  # the engine's cgroup layout, not the job's (see the module docstring)
        elif key == "cpu.flags":
            missing, extra = change.before or [], change.after or []
            out.append(
                Difference(
                    "system",
                    key,
                    f"{len(recorded.cpu.flags)} flags",
                    f"{len(replayed.cpu.flags)} flags",
                    f"missing here: {', '.join(missing[:12]) or 'none'}; only here: {', '.join(extra[:12]) or 'none'}",
                )
            )
        elif key.startswith("os.") or key == "glibc":
            out.append(Difference("system", key, str(change.before), str(change.after), _base_note(plan)))
        elif key == "kernel.machine" and plan.platform_choice is not None and plan.platform_choice.mode != "native":
            out.append(Difference("system", key, str(change.before), str(change.after), plan.platform_choice.line()))
        else:
            part = key.split(".")[0]
            out.append(Difference("system", key, str(change.before), str(change.after), f"this host's {part}"))
    return [d for d in out if d is not None]


def differences(snap: Snapshot, plan: ReplayPlan, facts: Mapping[str, Any], *, engine: str) -> list[Difference]:
    """Every difference between the snapshot's runtime and the replayed one the probe described in ``facts``."""
    inspected = facts["inspect"]
    out: list[Difference] = platform_differences(plan)
    python = _typed(PythonSection, snap)
    if python is not None:
        out += _python(python, PythonSection.from_dict(inspected.get("python") or {}, source=FACTS_FILE), plan)
    recorded_packages = _section(snap, "packages", "env/packages.json").get("distributions") or []
    out += _packages(recorded_packages, inspected.get("distributions") or [], plan)
    system = _typed(SystemSection, snap)
    if system is not None:
        replayed = SystemSection.from_dict(system_section(facts["host"], facts["environ"]), source=FACTS_FILE)
        out += _system(system, replayed, plan)
    gpu = _section(snap, "gpu", "env/gpu.json")
    if gpu.get("devices"):
        names = ", ".join(sorted({str(d.get("name")) for d in gpu["devices"]}))
        out.append(
            Difference("gpu", "devices", f"{len(gpu['devices'])} x {names}", "none", f"the {engine} replay has no GPU")
        )
    environ = facts["environ"]
    for key, value in sorted(plan.env.items()):
        if environ.get(key) != value:
            out.append(Difference("env", key, value, str(environ.get(key)), "not applied in the replay"))
    if facts["uid"] == 0 and engine == "docker":
        out.append(Difference("isolation", "uid", "non-root", "0", "the replay ran as root"))
    return out


#: How many variables (one note each) and untracked files (by name) the notes name before counting the rest.
SHOWN_NAMES = 20
#: The shell's and the login session's own variables: no job is configured by them, and a replay has its own.
_SESSION_VARIABLES = frozenset(
    {
        "_", "HOME", "PWD", "OLDPWD", "SHELL", "SHLVL", "TERM", "USER", "LOGNAME", "HOSTNAME", "MAIL",
        "DISPLAY", "LS_COLORS", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "LESSOPEN", "LESSCLOSE",
        "EDITOR", "VISUAL", "PAGER", "TMUX", "TMUX_PANE", "STY", "WINDOWID", "DBUS_SESSION_BUS_ADDRESS",
        "MOTD_SHOWN", "HISTFILE", "HISTSIZE", "HISTCONTROL", "COLUMNS", "LINES",
    }
)  # fmt: skip
_SESSION_PREFIXES = ("SSH_", "XDG_", "GPG_")
#: Settings of tools around the job (package installers, TLS trust stores, toolchains, shells' managers):
#: named together in one note, so that the job's own variables stand out one per line.
_TOOL_PREFIXES = (
    "PIP_", "UV_", "POETRY_", "PIPENV_", "CONDA_", "PYENV", "NODE_", "NPM_", "NVM_", "RUST", "CARGO_", "GOPATH",
    "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "TF_CLI_", "DEBIAN_FRONTEND", "MAKE", "VENV",
)  # fmt: skip


def _redacted_variables(snap: Snapshot, plan: ReplayPlan) -> list[str]:
    variables = _section(snap, "envvars", "env/envvars.json").get("variables") or {}
    redacted = sorted(
        key
        for key, entry in variables.items()
        if isinstance(entry, Mapping)
        and (entry.get("redacted") or "value" not in entry)
        and key not in plan.env
        and key not in HOST_PATH_VARIABLES
    )
    session = [k for k in redacted if k in _SESSION_VARIABLES or k.startswith(_SESSION_PREFIXES)]
    tools = [k for k in redacted if k not in session and k.startswith(_TOOL_PREFIXES)]
    job = [k for k in redacted if k not in session and k not in tools]
    notes = []
    for key in job[:SHOWN_NAMES]:
        if key in NEVER_KEEP or is_secret_name(key):
            notes.append(
                f"{key} was redacted at capture (a credential); the replay runs without it; "
                f"pass --set-env {key}=... if the job needs it"
            )
        else:
            notes.append(f"{key} was redacted at capture; the replay runs without it; recapture with --env-allow {key}")
    if len(job) > SHOWN_NAMES:
        rest = job[SHOWN_NAMES:]
        notes.append(
            f"{len(rest)} more variable(s) redacted at capture are not in the replay: {', '.join(rest)} "
            "(recapture with --env-allow NAME to keep one)"
        )
    if tools:
        notes.append(
            f"tool settings redacted at capture are not in the replay: {', '.join(tools)} "
            "(installers, certificates, toolchains; --env-allow NAME keeps one)"
        )
    if session:
        notes.append(f"the capture's shell/session variables are not carried: {', '.join(session)}")
    return notes


def _host_path(tree: SourceTree | None, recorded: str) -> str | None:
    """Where the code tree has the recorded path, or None when it is outside the recorded code."""
    if tree is None or not tree.original:
        return None
    rel = os.path.relpath(recorded, tree.original)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return os.path.normpath(os.path.join(tree.host, rel))


def _check_file(what: str, recorded: str, sha256: Any, tree: SourceTree | None, placed: frozenset[str]) -> str | None:
    """A note when the replay lacks the file recorded at ``recorded``, or has another version of it."""
    host = recorded if recorded in placed else _host_path(tree, recorded)
    if host is None:
        return f"{what} ({recorded}, outside the recorded code) is not in the replay; the job runs without it"
    if not os.path.lexists(host):
        return f"{what} ({recorded}) is not in the replayed code; the job runs without it"
    if isinstance(sha256, str) and os.path.isfile(host) and hash_file(host)[0] != sha256:
        return f"{what} ({recorded}) differs in the replay from the captured one (sha256 {sha256[:12]}…)"
    return None


def recorded_config_path(entry: Mapping[str, Any], git_root: str | None, cwd: Any) -> str | None:
    """Where a ``project/configs.json`` file entry was read at capture (absolute), or None when unknown:
    its absolute path, else its path in the repository, else its path under the capture's working directory."""
    path, repo_path = str(entry["path"]), entry.get("repo_path")
    if os.path.isabs(path):
        return path
    if repo_path and git_root:
        return os.path.join(git_root, str(repo_path))
    if isinstance(cwd, str) and os.path.isabs(cwd):
        return os.path.join(cwd, path)
    return None


def _configs(snap: Snapshot, tree: SourceTree | None, placed: frozenset[str], git_root: str | None) -> list[str]:
    files = _section(snap, "configs", "project/configs.json").get("files") or []
    job = snap.read_json("job/command.json") if "job/command.json" in snap else {}
    cwd = job.get("cwd") if isinstance(job, Mapping) else None
    notes = []
    for entry in files:
        if not isinstance(entry, Mapping) or entry.get("error") or not entry.get("path"):
            continue  # not read at capture: the job did not have it either
        recorded = recorded_config_path(entry, git_root, cwd)
        if recorded is None:
            continue
        note = _check_file(f"config file {entry['path']}", recorded, entry.get("sha256"), tree, placed)
        if note is not None:
            notes.append(note)
    return notes


def _artifacts(snap: Snapshot, tree: SourceTree | None, placed: frozenset[str]) -> list[str]:
    if "artifacts/index.json" not in snap:
        return []
    index = snap.read_json("artifacts/index.json").get("artifacts") or {}
    said = tuple(tree.notes) if tree is not None else ()
    notes = []
    for name, entry in sorted(index.items()):
        if any(n.startswith(f"artifact {name}:") for n in said):
            continue  # the code tree already said what became of it
        record = snap.read_json(entry["member"]) if isinstance(entry, Mapping) and entry.get("member") in snap else {}
        resolved = str(record.get("resolved") or "")
        if resolved:
            note = _check_file(f"artifact {name}", resolved, record.get("sha256"), tree, placed)
            if note is not None:
                notes.append(note)
    return notes


def _untracked(git: Mapping[str, Any], tree: SourceTree | None, placed: frozenset[str]) -> list[str]:
    root = git.get("root")
    untracked = [str(u) for u in git.get("untracked") or []]
    if not (isinstance(root, str) and untracked):
        return []
    missing = []
    for name in untracked:
        recorded = os.path.join(root, name.rstrip("/"))
        host = recorded if recorded in placed else _host_path(tree, recorded)
        if host is None or not os.path.lexists(host):
            missing.append(name)
    if not missing and not git.get("untracked_truncated"):
        return []
    shown = ", ".join(missing[:SHOWN_NAMES])
    more = len(missing) - SHOWN_NAMES
    tail = f" and {more} more" if more > 0 else ""
    tail += " (the capture listed only the first ones)" if git.get("untracked_truncated") else ""
    notes = []
    code = git.get("untracked_code")
    if isinstance(code, str) and code in missing:
        notes.append(f"the job's own file {code} was not tracked by git: the replay does not have it")
    notes.append(f"{len(missing)} file(s) git did not track at capture are not in the replay: {shown}{tail}")
    return notes


def supply_notes(
    snap: Snapshot, plan: ReplayPlan, tree: SourceTree | None = None, *, placed: Iterable[str] = ()
) -> tuple[str, ...]:
    """One line for each captured thing the replay cannot supply.

    ``tree`` is the code the replay runs (None: no code); ``placed`` are recorded absolute paths the replay
    puts in place besides it (recorded inputs, config files). Named: variables whose values were redacted at
    capture (the first :data:`SHOWN_NAMES` one per line, with what to do), configuration files and artifacts
    that are not in the replay or differ there, and the files git did not track (the first
    :data:`SHOWN_NAMES` by name, then a count).
    """
    at = frozenset(placed)
    git = _section(snap, "git", "env/git.json")
    git_root = git.get("root") if isinstance(git.get("root"), str) else None
    notes = _redacted_variables(snap, plan)
    notes += _configs(snap, tree, at, git_root)
    notes += _artifacts(snap, tree, at)
    if git.get("present"):
        notes += _untracked(git, tree, at)
    return tuple(notes)
