"""conda's lockfiles: ``environment.yml`` and ``conda-lock.yml``, read under PyPI names
(:mod:`envsnap.capture.conda_names`) so that the drift check compares them with installed distributions.
"""

from __future__ import annotations

import re
from typing import Any

from envsnap.capture.lockfile_model import ParsedLock, parse_requirements_lines
from envsnap.core.naming import normalize_name

_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def _yaml(text: str) -> Any:
    from envsnap.capture.config_parsers import load_yaml

    return load_yaml(text)


def _conda_name(parsed: ParsedLock, name: str) -> str:
    """The key a conda package is pinned under (its PyPI name), noting a rename or a name never compared."""
    from envsnap.capture.conda_names import CONDA_ONLY_PREFIX, pin_key

    key = pin_key(name)
    if key.startswith(CONDA_ONLY_PREFIX):
        note = f"conda {name}: no PyPI counterpart, not compared"
    elif key != normalize_name(name):
        note = f"conda {name} read as PyPI {key}"
    else:
        return key
    if note not in parsed.notes:
        parsed.notes.append(note)
    return key


def parse_conda_environment(text: str) -> ParsedLock:
    """conda ``environment.yml``: ``dependencies`` (``name=1.2``, ``name==1.2.3``, ``name>=1``, a ``pip:``
    list in pip's format). conda's single ``=`` is a prefix match, recorded as a pin with prefix semantics.
    conda names are read as PyPI names (:mod:`envsnap.capture.conda_names`); build strings are dropped."""
    from envsnap.capture.conda_names import pypi_version

    data = _yaml(text)
    if not isinstance(data, dict):
        raise ValueError("not a YAML mapping")
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise ValueError("dependencies is not a list")
    parsed = ParsedLock("conda-environment", prefix_pins=True)
    line_of = _yaml_pip_lines(text)
    for dep in deps:
        if isinstance(dep, dict):
            pip = dep.get("pip")
            if pip is not None:
                _parse_pip_list([str(p) for p in pip if isinstance(p, str)], parsed, line_of)
            continue
        if not isinstance(dep, str):
            raise ValueError(f"dependency {dep!r} is not a string")
        spec = dep.split("::", 1)[-1].strip()  # channel::name
        match = _CONDA_SPEC.match(spec)
        if match is None:
            raise ValueError(f"not a conda dependency: {dep!r}")
        name, rest = match.group(1), match.group(2).strip()
        name = _conda_name(parsed, name)
        if rest.startswith("==") and re.fullmatch(r"==[^\s=<>!,|*]+", rest):
            parsed.pin(name, pypi_version(rest[2:]))
        elif rest.startswith("=") and not rest.startswith("=="):
            version = rest[1:].split("=", 1)[0]  # name=1.2=build
            if version.endswith(".*"):
                version = version[:-2]
            if version and "*" not in version:
                parsed.pin(name, pypi_version(version))
            else:
                parsed.require(name, rest)
        elif re.fullmatch(r"[^\s=<>!~,|*]+(=[^\s]+)?", rest) and rest:
            parsed.pin(name, pypi_version(rest.split("=", 1)[0]))  # "numpy 1.26.4" written with a space
        else:
            parsed.require(name, rest)
    return parsed


def _yaml_pip_lines(text: str) -> dict[str, int]:
    """Each item of a ``pip:`` list -> its line number in the YAML file (the first occurrence)."""
    out: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("- "):
            item = stripped[2:].strip().strip("'\"")
            out.setdefault(item, number)
    return out


def _parse_pip_list(items: list[str], parsed: ParsedLock, line_of: dict[str, int]) -> None:
    """A conda environment's ``pip:`` list: pip's format, with notes naming the line in the YAML file."""
    for item in items:
        before = len(parsed.notes)
        try:
            parse_requirements_lines([item], parsed)
        except ValueError as exc:
            raise ValueError(f"line {line_of.get(item.strip(), '?')}: pip: {str(exc).split(': ', 1)[-1]}") from None
        for index in range(before, len(parsed.notes)):
            note = parsed.notes[index]
            if note.startswith("line 1: "):
                parsed.notes[index] = f"line {line_of.get(item.strip(), '?')}: pip: {note[len('line 1: ') :]}"


#: conda-lock's platform names -> the marker of an interpreter on that platform.
CONDA_PLATFORM_MARKERS = {
    "linux-64": "sys_platform == 'linux' and platform_machine == 'x86_64'",
    "linux-aarch64": "sys_platform == 'linux' and platform_machine == 'aarch64'",
    "linux-ppc64le": "sys_platform == 'linux' and platform_machine == 'ppc64le'",
    "osx-64": "sys_platform == 'darwin' and platform_machine == 'x86_64'",
    "osx-arm64": "sys_platform == 'darwin' and platform_machine == 'arm64'",
    "win-64": "sys_platform == 'win32'",
}


def parse_conda_lock(text: str) -> ParsedLock:
    """``conda-lock.yml``: every ``package`` entry's name and version, applying on its ``platform`` (forks
    joined); conda entries (``manager: conda``) are read under their PyPI names, ``pip`` entries as written."""
    from envsnap.capture.conda_names import pypi_version

    data = _yaml(text)
    if not isinstance(data, dict) or not isinstance(data.get("package"), list):
        raise ValueError("no package list")
    parsed = ParsedLock("conda-lock")
    for index, entry in enumerate(data["package"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"package[{index}] has no name")
        is_pip = entry.get("manager") == "pip"
        name = entry["name"] if is_pip else _conda_name(parsed, entry["name"])
        version = entry.get("version")
        platform = entry.get("platform")
        marker = CONDA_PLATFORM_MARKERS.get(platform, "") if isinstance(platform, str) else ""
        if version is None:
            parsed.require(name, "")
        else:
            parsed.pin(name, str(version) if is_pip else pypi_version(str(version)), marker)
        parsed.tag(parsed.groups, name, [entry.get("category")])
        digests = entry.get("hash")
        if isinstance(digests, dict):
            parsed.tag(parsed.hashes, name, [f"{k}:{v}" for k, v in digests.items() if k == "sha256"])
    metadata = data.get("metadata")
    platforms = metadata.get("platforms") if isinstance(metadata, dict) else None
    parsed.platforms = sorted(str(p) for p in platforms) if isinstance(platforms, list) else []
    return parsed


__all__ = ["CONDA_PLATFORM_MARKERS", "parse_conda_environment", "parse_conda_lock"]
