"""``env/requirements.lock``: a pip-tools compatible lock of every installed distribution.

The lock reproduces the captured set exactly with ``pip install --no-deps -r requirements.lock`` (or
``pip-sync``) in a fresh virtualenv: one pin per distribution, sorted by normalized name, annotated with
``# via`` like pip-compile's output, with pip/setuptools/wheel pinned in a trailing "unsafe" section as
``pip-compile --allow-unsafe`` does.

Hashes. pip switches the whole file to hash-checking mode as soon as one requirement carries a
``--hash``, and then refuses every requirement without one. So ``--hash`` options are written only when
*every* requirement has one; otherwise the hashes that are known are kept as comments under their
requirement and the header says why. Locally known hashes come from PEP 610 ``archive_info``. With
``--hashes`` the hashes of index packages are resolved through pip-tools (imported here only, and only
then); editable, local-directory and VCS requirements can never be hashed. A resolution that fails (no
network, a private package) is recorded in the header and the lock is still written: a capture of a
failing job must not be lost because an index is unreachable, and the unhashed lock still installs.

The text is read back by :func:`envsnap.core.lock_text.parse_lock`, which defines the comment markers.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envsnap._version import __version__
from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.capture.packages import PIP_HASH_ALGORITHMS, package_records, project_root
from envsnap.core.lock_text import NOTE_INDEX, NOTE_INSTALLED, NOTE_LOCAL, UNSAFE_HEADER

#: Pinned last, in their own section, like ``pip-compile --allow-unsafe`` (pip-sync leaves them alone).
UNSAFE_PACKAGES = frozenset({"distribute", "pip", "setuptools", "wheel"})

_SIMPLE_VERSION = re.compile(
    r"\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?(?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?"
)
_UNHASHABLE = {"editable": "editable", "vcs": "VCS checkout", "local-dir": "local directory"}


@dataclass
class _Pin:
    """One requirement of the lock while it is being built."""

    name: str
    version: str
    line: str
    editable: bool
    origin: str  # index | archive | editable | vcs | local-dir
    local_hashes: list[str]
    via: list[str]
    unsafe: bool
    index_hashes: list[str] = field(default_factory=list)

    @property
    def hashes(self) -> list[str]:
        return sorted(set(self.local_hashes) | set(self.index_hashes))


# ---------------------------------------------------------------------------------------------------
# building the pins


def _version_pin(name: str, version: str) -> str:
    if _SIMPLE_VERSION.fullmatch(version) is None:
        from packaging.version import InvalidVersion, Version

        try:
            Version(version)
        except InvalidVersion:
            return f"{name}==={version}"  # arbitrary equality: the only way to pin a non-PEP 440 version
    return f"{name}=={version}"


def _pin(record: Mapping[str, Any], via: list[str]) -> _Pin:
    name = str(record["normalized_name"])
    version = str(record["version"])
    kind = str(record["location_kind"])
    direct: Mapping[str, Any] = record.get("direct_url") or {}
    url = direct.get("url") if isinstance(direct.get("url"), str) else None
    usable = [h for h in record.get("hashes") or () if h.split(":", 1)[0] in PIP_HASH_ALGORITHMS]
    fragment = f"#subdirectory={direct['subdirectory']}" if direct.get("subdirectory") else ""
    line, origin, editable = _version_pin(name, version), "index", False
    if kind == "editable":
        if url is None:
            root = project_root(str(record.get("location") or ""))
            url = Path(root).as_uri() if root else None
        if url is not None:
            line, origin, editable = f"-e {url}{fragment}", "editable", True
    elif kind == "vcs" and url is not None:
        vcs, commit = direct.get("vcs") or "git", direct.get("commit_id")
        prefix = "" if url.startswith(f"{vcs}+") else f"{vcs}+"
        vcs_url, origin = f"{prefix}{url}{'@' + commit if commit else ''}", "vcs"
        if url.startswith("file:///"):
            # pip < 24 rejects a PEP 508 URL without a host (git+file:///repo); the #egg form works everywhere.
            line = f"{vcs_url}#egg={name}{fragment.replace('#', '&')}"
        else:
            line = f"{name} @ {vcs_url}{fragment}"
    elif kind in ("local", "url") and url is not None:
        origin = "local-dir" if direct.get("source") == "dir" else "archive"
        line = f"{name} @ {url}{fragment}"
    unsafe = name in UNSAFE_PACKAGES
    return _Pin(name, version, line, editable, origin, usable, via, unsafe)


def build_pins(distributions: Iterable[Mapping[str, Any]]) -> list[_Pin]:
    """Pins for the records of ``env/packages.json``, with reverse-dependency annotations."""
    records = list(distributions)
    required_by: dict[str, set[str]] = {str(r["normalized_name"]): set() for r in records}
    for record in records:
        for dep in record.get("dependencies") or ():
            if dep in required_by:
                required_by[dep].add(str(record["normalized_name"]))
    pins = [_pin(r, sorted(required_by[str(r["normalized_name"])])) for r in records]
    pins.sort(key=lambda p: (p.unsafe, p.name))
    return pins


# ---------------------------------------------------------------------------------------------------
# --hashes: ask the index through pip-tools


@contextmanager
def _pip_logging_contained() -> Iterator[None]:
    """Keep pip's logging set-up out of the host process.

    pip-tools calls ``logging.basicConfig()`` on import and pip's ``setup_logging`` rewires the root
    logger; an in-process capture must leave the user's logging as it found it, and print nothing.
    """
    import logging

    root = logging.getLogger()
    pip_logger = logging.getLogger("pip")
    saved_root = (root.handlers[:], root.level)
    saved_pip = (pip_logger.handlers[:], pip_logger.level, pip_logger.propagate)
    pip_logger.handlers = [logging.NullHandler()]
    pip_logger.propagate = False
    try:
        yield
    finally:
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        pip_logger.handlers[:] = saved_pip[0]
        pip_logger.setLevel(saved_pip[1])
        pip_logger.propagate = saved_pip[2]


def resolve_index_hashes(requirements: Mapping[str, str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Hashes of every file of each pinned requirement (``{name: "name==1.0" or "name @ url"}``).

    Returns ``(hashes by name, failure reason by name)``. Uses the host's pip configuration (index,
    extra indexes, find-links, credentials), like pip-compile. Wheels of every platform are hashed, as
    ``pip-compile --generate-hashes`` does, so the lock also installs where the target's tags differ
    from envsnap's own interpreter.
    """
    import tempfile

    found: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    with _pip_logging_contained(), tempfile.TemporaryDirectory(prefix="envsnap-hashes-") as cache_dir:
        try:
            from pip._internal.req.constructors import install_req_from_line
            from piptools.repositories import PyPIRepository

            # The target may be another Python: a pinned version must not be filtered out by envsnap's own.
            repository = PyPIRepository(["--ignore-requires-python"], cache_dir=cache_dir)
        except Exception as exc:  # noqa: BLE001 - recorded in the lock header; the lock is still written
            reason = f"pip-tools could not start: {type(exc).__name__}: {exc}"
            return {}, dict.fromkeys(requirements, reason)
        with repository.allow_all_wheels():
            for name, requirement in requirements.items():
                try:
                    hashes = repository.get_hashes(install_req_from_line(requirement))
                except IndexError:
                    # pip-tools indexes the candidates of the pinned version: none were found.
                    failed[name] = "no file of this version on the configured indexes"
                    continue
                except Exception as exc:  # noqa: BLE001 - one package's failure must not cost the others
                    failed[name] = _short(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__
                    continue
                usable = sorted(h for h in hashes if h.split(":", 1)[0] in PIP_HASH_ALGORITHMS)
                if usable:
                    found[name] = usable
                else:
                    failed[name] = "the index has no file for this version"
    return found, failed


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------
# rendering


def _names(items: Iterable[str], limit: int = 8) -> str:
    items = sorted(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _header(
    python: Mapping[str, Any], pins: list[_Pin], hash_mode: bool, requested: bool, failed: Mapping[str, str]
) -> list[str]:
    where = (
        f"{python.get('executable') or 'python'} ({python.get('implementation', 'python')} "
        f"{python.get('version', '?')}, {python.get('platform', '?')})"
    )
    install = (
        "pip install --require-hashes --no-deps -r requirements.lock"
        if hash_mode
        else "pip install --no-deps -r requirements.lock"
    )
    notes: list[str] = []
    unhashable = {p.name: _UNHASHABLE[p.origin] for p in pins if p.origin in _UNHASHABLE}
    missing = [p.name for p in pins if not p.hashes]
    if hash_mode:
        notes.append("Every requirement is hashed, so pip checks each file it installs.")
    elif any(p.hashes for p in pins):
        where_from = "resolved from the index or known locally" if requested else "known locally"
        notes.append(
            f'Hashes {where_from} are kept as "# {NOTE_LOCAL}" / "# {NOTE_INDEX}" comments, not --hash '
            "options: pip requires a hash for every requirement once one has one, and "
            f"{len(missing)} requirement(s) have none ({_names(missing)})."
        )
    elif pins and not requested:
        notes.append("No hash is known locally; capture with --hashes to resolve them from the index.")
    if requested and unhashable:
        kinds = ", ".join(f"{name} ({kind})" for name, kind in sorted(unhashable.items())[:8])
        notes.append(f"--hashes: cannot hash requirements that do not come from an index: {kinds}.")
    if requested and failed:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(failed.items())[:8])
        more = f" (and {len(failed) - 8} more)" if len(failed) > 8 else ""
        notes.append(f"--hashes: could not resolve hashes from the index for {reasons}{more}.")
    lines = [
        "#",
        f"# This file is autogenerated by envsnap {__version__} from the environment of",
        f"#   {where}",
        "# It pins every installed distribution; reproduce that set in a fresh virtualenv with:",
        "#",
        f"#    {install}",
        "#",
        "# or with: pip-sync requirements.lock",
    ]
    for note in notes:
        lines.append("#")
        lines.extend("# " + chunk for chunk in textwrap.wrap(note, 100, break_on_hyphens=False))
    lines.append("#")
    return lines


def _render_pin(pin: _Pin, hash_mode: bool, index_resolved: bool) -> list[str]:
    hashes = pin.hashes
    out = [pin.line]
    if hash_mode:
        out[0] += " \\"
        out.extend(f"    --hash={h} \\" for h in hashes)
        out[-1] = out[-1][: -len(" \\")]
    if not pin.line.startswith(f"{pin.name}=="):
        out.append(f"    # {NOTE_INSTALLED} {pin.name}=={pin.version}")
    if not hash_mode:
        local = set(pin.local_hashes)
        for h in hashes:
            note = NOTE_LOCAL if h in local or not index_resolved else NOTE_INDEX
            out.append(f"    # {note}: {h}")
    if len(pin.via) == 1:
        out.append(f"    # via {pin.via[0]}")
    elif pin.via:
        out.append("    # via")
        out.extend(f"    #   {name}" for name in pin.via)
    return out


def render_lock(
    pins: list[_Pin],
    python: Mapping[str, Any],
    *,
    hashes_requested: bool = False,
    failed: Mapping[str, str] | None = None,
) -> str:
    """The text of ``requirements.lock`` for ``pins`` (see the module docstring for the hash policy)."""
    failed = failed or {}
    hash_mode = bool(pins) and all(p.hashes for p in pins)
    lines = _header(python, pins, hash_mode, hashes_requested, failed)
    safe = [p for p in pins if not p.unsafe]
    unsafe = [p for p in pins if p.unsafe]
    for pin in safe:
        lines.extend(_render_pin(pin, hash_mode, hashes_requested))
    if unsafe:
        lines.extend(["", UNSAFE_HEADER])
        for pin in unsafe:
            lines.extend(_render_pin(pin, hash_mode, hashes_requested))
    return "\n".join(lines) + "\n"


def lock_text(packages: Mapping[str, Any], python: Mapping[str, Any], *, hashes: bool = False) -> str:
    """Build the lock for an ``env/packages.json`` document (``hashes``: resolve from the index)."""
    pins = build_pins(packages.get("distributions") or ())
    failed: dict[str, str] = {}
    if hashes:
        wanted = {p.name: p.line for p in pins if p.origin == "index"}
        wanted.update({p.name: p.line for p in pins if p.origin == "archive" and not p.local_hashes})
        found, failed = resolve_index_hashes(wanted) if wanted else ({}, {})
        for pin in pins:
            pin.index_hashes = found.get(pin.name, [])
    return render_lock(pins, python, hashes_requested=hashes, failed=failed)


@register
class LockProbe(Probe):
    """``requirements.lock``: pip-tools compatible pins of the captured set (text member)."""

    name = "lock"
    member = "env/requirements.lock"

    def collect(self, ctx: CaptureContext) -> str:
        return lock_text(package_records(ctx), ctx.target.python, hashes=ctx.options.hashes)


__all__ = ["LockProbe", "build_pins", "lock_text", "render_lock", "resolve_index_hashes"]
