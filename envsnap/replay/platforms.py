"""Replaying on a host of another architecture, and the choice of the official base image.

An arm64 laptop replaying an x86_64 capture has two ways to rebuild the runtime:

- **emulated**: run the captured architecture's image (``linux/amd64``) under emulation when the engine
  can (the kernel's binfmt_misc has a handler for that architecture, qemu-user or Rosetta; Docker
  Desktop always has one). The captured wheels run, byte for byte; only speed and the CPU differ.
- **rebuilt**: install wheels of the *same versions* built for the host's architecture. The Python code is
  the same, the compiled code is not; a version that has no wheel for the host's architecture cannot be
  installed without network and a compiler, and is named.

Emulation is preferred: it replays what ran. Everything here is a pure function of (captured
architecture, host architecture, what the engine can emulate, which wheels exist), so that the decision is
tested with recorded inputs on any machine; :func:`local_support` is the one probe, reading the host.

The base image: the plan asks for ``python:X.Y.Z-slim-bookworm`` (the captured Python, exactly); when that
tag cannot be pulled it falls back, in order, to ``python:X.Y.Z-slim`` (same Python, the tag's default
Debian) and ``python:X.Y-slim-bookworm`` (same minor version, another patch), and says which and why
(:func:`choose_base`).
"""

from __future__ import annotations

import os
import platform as platform_mod
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from envsnap.core.naming import normalize_name

__all__ = [
    "DOCKER_PLATFORMS",
    "BaseChoice",
    "EngineSupport",
    "PlatformChoice",
    "base_image_candidates",
    "captured_arch",
    "choose_base",
    "decide_platform",
    "emulation_from_binfmt",
    "emulation_from_docker_info",
    "local_support",
    "missing_wheels",
    "normalize_arch",
    "wheel_arches",
]

#: Every spelling of an architecture (uname, Docker, Go, wheel tags, macOS) -> the uname name envsnap records.
_ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "arm64v8": "aarch64",
    "armv8": "aarch64",
    "i386": "i686",
    "i686": "i686",
    "386": "i686",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}
#: The Docker platform that runs an architecture's images.
DOCKER_PLATFORMS = {
    "x86_64": "linux/amd64",
    "aarch64": "linux/arm64",
    "i686": "linux/386",
    "ppc64le": "linux/ppc64le",
    "s390x": "linux/s390x",
}
#: ELF ``e_machine`` (little-endian, as binfmt_misc magic spells it) -> architecture.
_ELF_MACHINES = {"3e00": "x86_64", "b700": "aarch64", "0300": "i686", "1500": "ppc64le", "1600": "s390x"}
_ELF_MAGIC = "7f454c46"
#: Platform tags of wheels that install on a glibc Linux image (musllinux needs musl: not the slim images).
_LINUX_TAG = re.compile(r"^(?:manylinux\d*|manylinux_\d+_\d+|linux)_(?P<arch>.+)$")


def normalize_arch(name: str | None) -> str | None:
    """``arm64`` / ``aarch64`` / ``linux/arm64`` -> ``aarch64``; ``amd64`` -> ``x86_64``; None when unknown."""
    if not name:
        return None
    key = name.strip().lower().rsplit("/", 1)[-1]
    return _ARCH_ALIASES.get(key)


def _docker_platform(arch: str) -> str:
    return DOCKER_PLATFORMS.get(arch, f"linux/{arch}")


def captured_arch(platform: str | None) -> str | None:
    """The architecture of a recorded ``sysconfig.get_platform()`` (``linux-x86_64``, ``macosx-11.0-arm64``)."""
    if not platform:
        return None
    return normalize_arch(platform.rsplit("-", 1)[-1])


# --- what the engine can run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSupport:
    """What an engine runs: its own architecture and the ones it emulates, and how that was learned."""

    native: str
    emulated: frozenset[str] = frozenset()
    source: str = "no emulation found"


def emulation_from_binfmt(entries: Mapping[str, str]) -> tuple[frozenset[str], str]:
    """Architectures the kernel runs under emulation, from ``/proc/sys/fs/binfmt_misc/NAME`` texts.

    Each enabled entry whose magic is an ELF header names the architecture its ``e_machine`` bytes select
    (qemu-user's ``qemu-x86_64``, Rosetta's ``rosetta``). Returns them and a line saying which entries.
    """
    found: dict[str, str] = {}
    for name, text in sorted(entries.items()):
        fields: dict[str, str] = {}
        lines = text.splitlines()
        if not lines or lines[0].strip() != "enabled":
            continue
        for line in lines[1:]:
            key, _, value = line.partition(" ")
            fields[key.rstrip(":")] = value.strip()
        magic = fields.get("magic", "").lower()
        if not magic.startswith(_ELF_MAGIC) or len(magic) < 40:
            continue
        arch = _ELF_MACHINES.get(magic[36:40])
        if arch is not None:
            found.setdefault(arch, f"binfmt_misc {name}: {fields.get('interpreter', '?')}")
    return frozenset(found), "; ".join(found[a] for a in sorted(found)) or "no binfmt_misc handler"


def emulation_from_docker_info(info: Mapping[str, object]) -> tuple[str | None, frozenset[str]]:
    """The engine's architecture from ``docker info``, and what Docker Desktop emulates by design.

    Docker Desktop (macOS, Windows) runs its Linux VM with amd64 and arm64 emulation (qemu or Rosetta)
    always on; an engine on Linux emulates what the host kernel's binfmt_misc says (it shares the kernel).
    """
    arch = normalize_arch(str(info.get("Architecture") or ""))
    desktop = "docker desktop" in str(info.get("OperatingSystem") or "").lower()
    emulated = frozenset({"x86_64", "aarch64"}) - {arch} if desktop and arch else frozenset()
    return arch, frozenset(emulated)


def local_support(engine: str, binfmt_dir: str = "/proc/sys/fs/binfmt_misc") -> EngineSupport:
    """What ``engine`` can run on this host: the host's architecture; for docker, the binfmt_misc handlers.

    The venv engine runs the host's own interpreter: never another architecture. A Docker Desktop engine on
    macOS emulates amd64 by design.
    """
    native = normalize_arch(platform_mod.machine()) or platform_mod.machine()
    if engine != "docker":
        return EngineSupport(native, frozenset(), f"the {engine} engine runs the host's interpreter")
    if platform_mod.system() == "Darwin":
        return EngineSupport(native, frozenset({"x86_64", "aarch64"}) - {native}, "Docker Desktop (macOS)")
    entries: dict[str, str] = {}
    try:
        names = os.listdir(binfmt_dir)
    except OSError:
        names = []
    for name in names:
        if name in ("register", "status"):
            continue
        try:
            with open(os.path.join(binfmt_dir, name), encoding="utf-8", errors="replace") as fh:
                entries[name] = fh.read(4096)
        except OSError:
            continue
    emulated, source = emulation_from_binfmt(entries)
    return EngineSupport(native, emulated - {native}, source)


# --- wheels -----------------------------------------------------------------------------------------------


def wheel_arches(filename: str) -> frozenset[str] | None:
    """The Linux (glibc) architectures a wheel installs on; None for a pure wheel (``none-any``: all).

    ``numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl`` -> ``{aarch64}``;
    ``mkl-2024.0.0-py2.py3-none-manylinux1_x86_64.whl`` -> ``{x86_64}``; macOS, Windows and musllinux
    tags install on none of the slim images (empty set).
    """
    stem = filename[:-4] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    if len(parts) < 5:
        return frozenset()
    tags = parts[-1].split(".")
    if "any" in tags:
        return None
    arches = set()
    for tag in tags:
        match = _LINUX_TAG.match(tag)
        if match is not None:
            arch = normalize_arch(match.group("arch"))
            if arch is not None:
                arches.add(arch)
    return frozenset(arches)


def _wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if len(parts) > 1 else ""


def missing_wheels(
    pins: Iterable[tuple[str, str]], files: Mapping[str, Sequence[str]], arch: str
) -> tuple[str, ...] | None:
    """``NAME==VERSION`` of each pin with no wheel of that version for ``arch`` among ``files``.

    ``files`` maps a normalized distribution name to the wheel file names an index (or the host's wheel
    cache) offers for it; a pin whose name is absent from ``files`` is unknown, not missing. None when
    ``files`` is empty (nothing was checked).
    """
    if not files:
        return None
    missing = []
    for name, version in pins:
        offered = files.get(normalize_name(name))
        if offered is None:
            continue
        fits = [f for f in offered if _wheel_version(f).replace("_", "-") == version.replace("_", "-")]
        if not any((arches := wheel_arches(f)) is None or arch in arches for f in fits):
            missing.append(f"{name}=={version}")
    return tuple(sorted(missing, key=str.lower))


# --- the decision -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformChoice:
    """How the replay runs a capture of ``captured`` on a host of ``host``."""

    captured: str | None
    host: str
    #: ``native`` (same architecture, or not recorded), ``emulated`` (the captured architecture's image under
    #: emulation) or ``rebuilt`` (wheels of the same versions for the host's architecture).
    mode: str
    #: The Docker platform the runtime is built and run for (``linux/amd64``).
    platform: str
    #: Why: one line (which emulation handler, or why none).
    reason: str
    #: Pins with no wheel for the host's architecture (``rebuilt`` only); None when not checked.
    missing: tuple[str, ...] | None = None

    def line(self, *, missing: bool = True) -> str:
        """The plan's and the report's one line (``missing=False``: without the pins that lack a wheel)."""
        if self.mode == "native":
            return f"native {self.platform}" + (f" ({self.reason})" if self.captured is None else "")
        if self.mode == "emulated":
            return f"{self.platform} under emulation on this {self.host} host ({self.reason})"
        text = f"{self.platform}: wheels of the same versions built for {self.host} ({self.reason})"
        if not missing:
            return text
        if self.missing is None:
            return text + "; which versions lack a wheel for it is known once the wheels are gathered"
        if self.missing:
            return text + f"; no {self.host} wheel for: {', '.join(self.missing)}"
        return text + f"; every pin has a {self.host} wheel"


def decide_platform(
    captured: str | None,
    support: EngineSupport,
    *,
    pins: Iterable[tuple[str, str]] = (),
    wheel_files: Mapping[str, Sequence[str]] | None = None,
) -> PlatformChoice:
    """Native when the architectures match; else emulated when the engine can; else rebuilt from wheels of
    the host's architecture, naming the pins that have none (when ``wheel_files`` says which exist)."""
    host = support.native
    if captured is None:
        return PlatformChoice(None, host, "native", _docker_platform(host), "no architecture recorded")
    if captured == host:
        return PlatformChoice(captured, host, "native", _docker_platform(host), "same architecture")
    if captured in support.emulated:
        return PlatformChoice(captured, host, "emulated", _docker_platform(captured), support.source)
    reason = f"the engine cannot run {captured}: {support.source}"
    missing = missing_wheels(pins, wheel_files or {}, host)
    return PlatformChoice(captured, host, "rebuilt", _docker_platform(host), reason, missing)


# --- the base image ---------------------------------------------------------------------------------------


def base_image_candidates(python_version: str, debian: str) -> tuple[str, ...]:
    """The official images for a captured Python, best first: exact on the Debian release, exact on the tag's
    default Debian, then the same minor version (another patch release) on the Debian release."""
    minor = ".".join(python_version.split(".")[:2])
    return tuple(
        dict.fromkeys(
            (f"python:{python_version}-slim-{debian}", f"python:{python_version}-slim", f"python:{minor}-slim-{debian}")
        )
    )


@dataclass(frozen=True)
class BaseChoice:
    """The base image chosen among the candidates, and each one passed over with why."""

    image: str | None
    passed_over: tuple[tuple[str, str], ...] = ()

    @property
    def fell_back(self) -> bool:
        return bool(self.passed_over)

    def note(self) -> str:
        """``fell back to X: A cannot be pulled (why)``, or empty when the first candidate was taken."""
        if not self.passed_over:
            return ""
        why = "; ".join(f"{ref} cannot be pulled ({reason})" for ref, reason in self.passed_over)
        return f"fell back to {self.image}: {why}" if self.image else f"no candidate can be pulled: {why}"


def choose_base(candidates: Sequence[str], unavailable: Callable[[str], str | None]) -> BaseChoice:
    """The first candidate ``unavailable`` has no objection to (it returns why a reference cannot be pulled,
    or None when it can)."""
    passed: list[tuple[str, str]] = []
    for ref in candidates:
        why = unavailable(ref)
        if why is None:
            return BaseChoice(ref, tuple(passed))
        passed.append((ref, why))
    return BaseChoice(None, tuple(passed))
