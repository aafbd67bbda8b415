"""One-line summaries of each section, for ``envsnap show``. Pure: data in, strings out.

Every accessor tolerates missing keys and failed probes: a snapshot of a broken machine must still be
showable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from envsnap.core.image_ref import display_reference
from envsnap.snapshot.model import SECTIONS, Snapshot

__all__ = ["SHOWN_DISAGREEMENTS", "lockfile_problems", "lockfiles_table", "summarize"]


def _g(data: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return default
        data = data[key]
    return data


def _python(d: Any) -> str:
    venv = ", venv" if _g(d, "is_venv") else ""
    where = _g(d, "executable", default="?")
    return f"{_g(d, 'implementation', default='?')} {_g(d, 'version', default='?')} ({where}{venv})"


def _packages(d: Any) -> str:
    dists = _g(d, "distributions", default=[]) or []
    kinds = Counter(str(x.get("location_kind")) for x in dists if isinstance(x, Mapping))
    other = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()) if k != "site")
    return f"{len(dists)} distributions" + (f" ({other})" if other else "")


def _lock(text: Any) -> str:
    lines = [ln for ln in str(text).splitlines() if ln and not ln.startswith((" ", "#", "\t"))]
    hashed = " with --hash" if "--hash=" in str(text) else ""
    return f"{len(lines)} pinned requirements{hashed}"


def _sbom(d: Any) -> str:
    return f"CycloneDX {_g(d, 'specVersion', default='?')}, {len(_g(d, 'components', default=[]) or [])} components"


def _system(d: Any) -> str:
    parts = [
        _g(d, "os", "pretty_name") or _g(d, "os", "id"),
        f"kernel {_g(d, 'kernel', 'release')}" if _g(d, "kernel", "release") else None,
        f"glibc {_g(d, 'glibc')}" if _g(d, "glibc") else None,
        _g(d, "cpu", "model"),
        f"{_g(d, 'cpu', 'logical_cores')} CPUs" if _g(d, "cpu", "logical_cores") else None,
    ]
    return ", ".join(str(p) for p in parts if p)


def _native(d: Any) -> str:
    pools = _g(d, "pools", default=[]) or []
    libs = _g(d, "libraries", default=[]) or []
    shown = [
        f"{p.get('internal_api')} {p.get('version')} "
        f"({p.get('threading_layer') or '?'}, {p.get('num_threads')} threads)"
        for p in pools
        if isinstance(p, Mapping)
    ]
    if not shown:
        # Not loaded in the captured process (or another interpreter): name what is installed instead.
        shown = [
            f"{lib.get('name')} {lib.get('version') or '?'} (in {lib.get('package')})"
            for lib in libs
            if isinstance(lib, Mapping) and lib.get("kind") in ("blas", "openmp")
        ]
    head = "; ".join(shown) if shown else "no BLAS/OpenMP library found"
    return f"{head}; {len(libs)} vendored native libraries"


def _gpu(d: Any) -> str:
    devices = _g(d, "devices", default=[]) or []
    if not devices:
        return f"no GPU ({_g(d, 'reason', default='none found')})"
    names = Counter(str(x.get("name")) for x in devices if isinstance(x, Mapping))
    shown = ", ".join(f"{n} x {name}" for name, n in names.items())
    return f"{shown}, driver {_g(d, 'driver_version')}, CUDA {_g(d, 'cuda_driver_version')}"


def _threads(d: Any) -> str:
    configured = _g(d, "configured", default={}) or {}
    shown = " ".join(f"{k}={v}" for k, v in sorted(configured.items())) or "no thread settings configured"
    mismatches = _g(d, "mismatches", default=[]) or []
    return shown + (f"; {len(mismatches)} mismatch(es)" if mismatches else "")


def _envvars(d: Any) -> str:
    variables = _g(d, "variables", default={}) or {}
    kept = sum(1 for v in variables.values() if isinstance(v, Mapping) and "value" in v)
    return f"{len(variables)} variables, {kept} values kept, {len(variables) - kept} redacted"


def _container(d: Any) -> str:
    image = _g(d, "image") or {}
    if not _g(d, "in_container"):
        # ENVSNAP_IMAGE on a host: the image the job's runtime is declared to be (replays build on it)
        return "not in a container" + (f", image declared: {display_reference(image)}" if image else "")
    ref = f", image {display_reference(image)}" if image else ""
    cid = str(_g(d, "container_id") or "")[:12] or "(container id unknown)"
    return f"{_g(d, 'runtime') or 'container'} {cid}{ref}"


def _git(d: Any) -> str:
    if not _g(d, "present"):
        return f"not recorded ({_g(d, 'reason', default='not a git repository')})"
    dirty = ", dirty" if _g(d, "dirty") else ""
    code = _g(d, "untracked_code")
    dirty += f", untracked code ({code})" if code else ("" if dirty else ", clean")
    commit = _g(d, "commit", default="?")
    head = str(commit)[:12] if commit else "no commit yet"  # a repository before its first commit
    return f"{head} on {_g(d, 'branch') or '(detached)'}{dirty}"


def _job(d: Any) -> str:
    argv = _g(d, "argv", default=[]) or []
    line = " ".join(str(a) for a in argv) or "?"
    command = _g(d, "command")
    if isinstance(command, Mapping):  # ``envsnap run -- COMMAND``: what happened
        signal = command.get("signal")
        line += f" -> killed by signal {signal}" if signal else f" -> exit {command.get('exit_status')}"
        if command.get("duration_s") is not None:
            line += f" after {command['duration_s']:.1f} s"
    exception = _g(d, "exception")
    if isinstance(exception, Mapping):
        first = (str(exception.get("message") or "").splitlines() or [""])[0]
        line += f"; {exception.get('type')}: {first[:100]}"
        project = [f for f in exception.get("frames") or () if isinstance(f, Mapping) and f.get("where") == "project"]
        if project:
            line += f" at {project[-1].get('file')}:{project[-1].get('line')} in {project[-1].get('function')}"
    return line


def _code(d: Any) -> str:
    files = [f for f in _g(d, "files", default=[]) or [] if isinstance(f, Mapping)]
    stored = sum(1 for f in files if f.get("member"))
    line = f"{len(files)} project file(s) mapped, {stored} with their text ({_g(d, 'stored_bytes', default=0)} bytes)"
    return line + (", truncated" if _g(d, "truncated") else "")


def _job_files(d: Any) -> str:
    files = [f for f in _g(d, "files", default=[]) or [] if isinstance(f, Mapping)]
    counts: dict[str, int] = {}
    for entry in files:
        counts[str(entry.get("role"))] = counts.get(str(entry.get("role")), 0) + 1
    return ", ".join(f"{n} {role}" for role, n in sorted(counts.items())) or "none"


def _inputs(d: Any) -> str:
    inputs = _g(d, "inputs", default={}) or {}
    shown = [
        f"{name} ({entry.get('rows')} rows)"
        if isinstance(entry, Mapping) and "error" not in entry
        else f"{name} (failed)"
        for name, entry in sorted(inputs.items())
    ]
    return ", ".join(shown) or "none"


def _pipeline(d: Any) -> str:
    stages = _g(d, "stages", default=[]) or []
    ok = sum(1 for s in stages if isinstance(s, Mapping) and s.get("status") == "ok")
    head = f"{_g(d, 'name', default='?')}: {ok}/{len(stages)} stages ok"
    failed = _g(d, "failed_stage")
    return head + (f", failed at {failed}" if failed else "")


def _artifacts(d: Any) -> str:
    return ", ".join(sorted(_g(d, "artifacts", default={}) or {})) or "none"


def _lockfiles(d: Any) -> str:
    files = _g(d, "files", default=[]) or []
    if not files:
        return "none found"
    names = ", ".join(str(f.get("path")) for f in files[:4]) + (f", +{len(files) - 4}" if len(files) > 4 else "")
    errors = sum(1 for f in files if isinstance(f, Mapping) and f.get("error"))
    disagreements = _g(d, "disagreements", default=[]) or []
    tail = f"; {errors} could not be parsed" if errors else ""
    tail += f"; {len(disagreements)} pin(s) disagree with the environment" if disagreements else ""
    return f"{names}{tail}"


#: How many disagreements the capture summary prints before pointing at ``envsnap show``.
SHOWN_DISAGREEMENTS = 10


def lockfile_problems(d: Any, *, limit: int | None = SHOWN_DISAGREEMENTS) -> list[str]:
    """The lockfiles that could not be parsed (first, one line each), then where the environment disagrees
    with a lock: the first ``limit`` and "and N more: envsnap show --section lockfiles" (None: all)."""
    files = [f for f in _g(d, "files", default=[]) or [] if isinstance(f, Mapping)]
    lines = [f"lockfile {f['error']}" for f in files if f.get("error")]
    drift = [str(x.get("message")) for x in _g(d, "disagreements", default=[]) or [] if isinstance(x, Mapping)]
    shown = drift if limit is None else drift[:limit]
    lines += shown
    if len(drift) > len(shown):
        lines.append(f"and {len(drift) - len(shown)} more: envsnap show --section lockfiles")
    return lines


def lockfiles_table(d: Any) -> str:
    """``envsnap show --section lockfiles``: files that failed first, then one row per file (kind, pins,
    requirements, notes) and every disagreement."""
    files = [f for f in _g(d, "files", default=[]) or [] if isinstance(f, Mapping)]
    if not files:
        return "no lockfiles found\n"
    lines: list[str] = []
    failed = [f for f in files if f.get("error")]
    if failed:
        lines.append("could not be parsed:")
        lines += [f"  {f['error']}" for f in failed]
        lines.append("")
    rows = [("file", "kind", "pins", "requirements", "conditional", "sources")]
    for f in files:
        if f.get("error"):
            continue
        rows.append(
            (
                str(f.get("path")),
                str(f.get("kind")),
                str(len(f.get("pins") or {})),
                str(len(f.get("requirements") or {})),
                str(len(f.get("pin_markers") or f.get("markers") or {})),
                str(len(f.get("sources") or {})),
            )
        )
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [(str(f.get("path")), str(n)) for f in files for n in f.get("notes") or ()]
    if notes:
        lines += ["", "notes:"] + [f"  {path}: {note}" for path, note in notes]
    drift = [str(x.get("message")) for x in _g(d, "disagreements", default=[]) or [] if isinstance(x, Mapping)]
    if drift:
        lines += ["", "disagreements with the environment:"] + [f"  {m}" for m in drift]
    else:
        lines += ["", "no disagreements with the environment"]
    return "\n".join(lines) + "\n"


def _configs(d: Any) -> str:
    files = _g(d, "files", default=[]) or []
    if not files:
        return "none captured"
    errors = sum(1 for f in files if f.get("error"))
    names = ", ".join(str(f.get("path")) for f in files[:4]) + (f", +{len(files) - 4}" if len(files) > 4 else "")
    return names + (f"; {errors} unreadable" if errors else "")


SUMMARIZERS: Mapping[str, Callable[[Any], str]] = {
    "python": _python,
    "packages": _packages,
    "lock": _lock,
    "sbom": _sbom,
    "system": _system,
    "native": _native,
    "gpu": _gpu,
    "threads": _threads,
    "envvars": _envvars,
    "container": _container,
    "git": _git,
    "job": _job,
    "job-files": _job_files,
    "code": _code,
    "inputs": _inputs,
    "pipeline": _pipeline,
    "artifacts": _artifacts,
    "lockfiles": _lockfiles,
    "configs": _configs,
}


def summarize(snapshot: Snapshot) -> dict[str, str]:
    """Section name -> one line, for every section present in ``snapshot``."""
    out: dict[str, str] = {}
    for name, member in SECTIONS.items():
        func = SUMMARIZERS.get(name)
        if func is None or member not in snapshot:
            continue
        data = snapshot.section(name)
        if isinstance(data, Mapping) and set(data) == {"error"}:
            out[name] = f"probe failed: {_g(data, 'error', 'message')}"
            continue
        out[name] = func(data)
    return out
