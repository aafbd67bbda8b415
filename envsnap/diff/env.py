"""``diff_env(a, b)``: every environment section of two snapshots compared, as an :class:`EnvDiff`.

Pure: two snapshots in, frozen dataclasses out. ``a`` is the reference (good/old) side and ``b`` the
other (bad/new): ``added`` means present in ``b`` only, ``before`` is ``a``'s value. A member missing on one
side (a snapshot captured with ``--no-git``, a probe that failed and left ``{"error": ...}``, an
unreadable member) gives that section a ``note`` and no changes; it never raises.

Members are read as every reader reads them: hash-checked, parsed and schema-validated (envsnap's compiled
validator costs ~1 ms on a 300-package ``env/packages.json``). An invalid member becomes the section's
note, naming the bad field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from envsnap.diff import env_sections
from envsnap.diff.env_artifacts import diff_artifacts
from envsnap.diff.env_members import Missing, load_section
from envsnap.diff.env_packages import diff_lock, diff_packages
from envsnap.diff.model import EnvDiff, PackageDelta, SectionDiff
from envsnap.errors import SchemaError
from envsnap.snapshot.sections import PythonSection, SystemSection, ThreadsSection

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

#: Section names in ``EnvDiff.sections``, in this order (the contract with renderers and suspects).
ENV_SECTIONS = (
    "python",
    "packages",
    "lock",
    "native",
    "threads",
    "envvars",
    "gpu",
    "container",
    "git",
    "system",
    "artifacts",
    "lockfiles",
    "configs",
    "job",
)

#: Sections whose two parsed members are all a differ needs.
_SIMPLE: dict[str, Callable[[Any, Any], SectionDiff]] = {
    "python": env_sections.diff_python,
    "native": env_sections.diff_native,
    "threads": env_sections.diff_threads,
    "envvars": env_sections.diff_envvars,
    "gpu": env_sections.diff_gpu,
    "container": env_sections.diff_container,
    "git": env_sections.diff_git,
    "system": env_sections.diff_system,
}


#: Sections whose differs read the typed view (:mod:`envsnap.snapshot.sections`) of each member.
_TYPED: dict[str, type[PythonSection | SystemSection | ThreadsSection]] = {
    "python": PythonSection,
    "threads": ThreadsSection,
    "system": SystemSection,
}


def _typed(snap: Snapshot, name: str, data: Any) -> Any:
    """The typed section of a read member; one that does not fit its type reads as unreadable."""
    section_type = _TYPED.get(name)
    if section_type is None or isinstance(data, Missing):
        return data
    try:
        return section_type.from_dict(data, source=snap.path)
    except SchemaError as exc:
        return Missing(f"unreadable: {exc}")


def _missing_note(a: Any, b: Any) -> str | None:
    parts = []
    for side, data in (("a", a), ("b", b)):
        if isinstance(data, Missing):
            parts.append(f"{side}: {data.reason}")
    if not parts:
        return None
    return "cannot compare: " + "; ".join(parts)


def _no_artifacts(snap: Snapshot, data: Any) -> Any:
    if isinstance(data, Missing) and "artifacts/index.json" not in snap and not snap.probe_error("artifacts"):
        return {"artifacts": {}}
    return data


def diff_section(a: Snapshot, b: Snapshot, name: str) -> tuple[SectionDiff, tuple[PackageDelta, ...]]:
    """One section of :func:`diff_env` (with the package deltas when ``name`` is ``packages``)."""
    return _compare(a, b, name, validate=True)


def _compare(a: Snapshot, b: Snapshot, name: str, *, validate: bool) -> tuple[SectionDiff, tuple[PackageDelta, ...]]:
    if name in ("lockfiles", "configs"):
        from envsnap.diff.env_configs import diff_project_section

        return diff_project_section(a, b, name, validate=validate), ()
    data_a = _typed(a, name, load_section(a, name, validate=validate))
    data_b = _typed(b, name, load_section(b, name, validate=validate))
    if name == "artifacts":
        # No --artifact given is an empty set, not an unknown one: artifacts on one side read as added.
        data_a, data_b = (_no_artifacts(a, d) for d in (data_a, data_b))
    note = _missing_note(data_a, data_b) if name != "job" else None
    if note is not None:
        return SectionDiff(name, note=note), ()
    if name == "packages":
        return diff_packages(data_a, data_b)
    if name == "lock":
        return diff_lock(data_a, data_b), ()
    if name == "artifacts":
        return diff_artifacts(a, b, data_a, data_b, validate=validate), ()
    if name == "job":
        from envsnap.diff.failures import diff_job

        return diff_job(a, b, data_a, data_b), ()
    return _SIMPLE[name](data_a, data_b), ()


def diff_env(a: Snapshot, b: Snapshot) -> EnvDiff:
    """Compare every environment section of ``a`` (reference) with ``b``; see the module docstring."""
    sections: list[SectionDiff] = []
    packages: tuple[PackageDelta, ...] = ()
    for name in ENV_SECTIONS:
        section, deltas = diff_section(a, b, name)
        sections.append(section)
        packages = packages or deltas
    return EnvDiff(tuple(sections), packages, a.fingerprint != b.fingerprint)


__all__ = ["ENV_SECTIONS", "diff_env", "diff_section"]
