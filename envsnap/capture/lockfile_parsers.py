"""Parsers of a project's own lockfiles and manifests: what each one pins.

Every parser takes the file's text and returns a :class:`ParsedLock`: exact pins (``name -> version``,
several versions of one name joined with ``" || "`` when a lock forks by platform or marker), the other
requirements with their specifiers, and the markers of requirements that have one (the drift check
evaluates them only when the installed version disagrees). Names are normalized (PEP 503). A file that
cannot be parsed raises ``ValueError`` with a short reason; the probe records it next to the file name.

Kinds: ``requirements`` (``requirements*.txt``, ``*.in``, ``constraints*.txt``), ``pyproject``
(``[project]`` dependencies and optional dependencies, PEP 735 dependency groups, Poetry's tables),
``poetry.lock``, ``uv.lock``, ``pylock`` (PEP 751), ``pipfile.lock``, ``conda-environment``
(``environment.yml``; conda's ``name=1.2`` matches 1.2.*) and ``conda-lock``.

The parsed form and pip's requirement format live in :mod:`envsnap.capture.lockfile_model`, conda's two
formats in :mod:`envsnap.capture.lockfile_conda`; their public names are re-exported here.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from envsnap.capture.lockfile_conda import CONDA_PLATFORM_MARKERS, parse_conda_environment, parse_conda_lock
from envsnap.capture.lockfile_model import (
    EXACT_PIN,
    FORK_SEPARATOR,
    ParsedLock,
    Requirement,
    add_requirement,
    all_of,
    any_of,
    git_source,
    parse_requirements,
    parse_requirements_lines,
    python_marker,
    split_requirement,
    url_source,
)
from envsnap.core.lock_text import logical_lines
from envsnap.core.naming import normalize_name

#: Lockfiles looked for at the project root, by name pattern (lower-cased), with their kind.
ROOT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("requirements*.txt", "requirements"),
    ("requirements*.in", "requirements"),
    ("constraints*.txt", "requirements"),
    ("pyproject.toml", "pyproject"),
    ("poetry.lock", "poetry.lock"),
    ("uv.lock", "uv.lock"),
    ("pylock.toml", "pylock"),
    ("pylock.*.toml", "pylock"),
    ("pipfile.lock", "pipfile.lock"),
    ("environment.yml", "conda-environment"),
    ("environment.yaml", "conda-environment"),
    ("conda-lock.yml", "conda-lock"),
    ("conda-lock.yaml", "conda-lock"),
    ("*.conda-lock.yml", "conda-lock"),
)


#: ``requirements/`` at the root is searched too (``requirements/base.txt``), for these patterns.
REQUIREMENTS_DIR_PATTERNS = ("*.txt", "*.in")


_OP = r"(?:===?|~=|!=|<=|>=|<|>)\s*[^\s,;]+"


#: A line of pip's format that is surely a requirement (what :func:`sniff_kind` accepts).
_REQUIREMENT_LINE = re.compile(
    rf"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*(\(?\s*{_OP}(\s*,\s*{_OP})*\s*\)?|@\s*\S+)?\s*(;.*)?$"
)


def detect_kind(file_name: str, *, loose: bool = False) -> str | None:
    """The lockfile kind of a file name (``uv.lock`` -> ``uv.lock``), or None when it is not one.

    ``loose`` (a file the user named): any other ``*.txt`` / ``*.in`` reads as a requirements file.
    """
    lowered = file_name.lower()
    for pattern, kind in ROOT_PATTERNS:
        if fnmatch.fnmatchcase(lowered, pattern):
            return kind
    if loose and lowered.endswith((".txt", ".in")) and lowered != "manifest.in":
        return "requirements"
    return None


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} is not a list of requirement strings")
    return list(value)


def parse_pyproject(text: str) -> ParsedLock:
    """``pyproject.toml``: ``[project]`` dependencies and optional dependencies, PEP 735
    ``[dependency-groups]`` and ``[tool.poetry.dependencies]`` (Poetry constraints kept as written)."""
    data = _toml(text)
    parsed = ParsedLock("pyproject")
    project: dict[str, Any] = data["project"] if isinstance(data.get("project"), dict) else {}
    wanted = project.get("requires-python")
    parsed.requires_python = wanted if isinstance(wanted, str) else None
    for spec in _strings(project.get("dependencies"), "project.dependencies"):
        add_requirement(parsed, spec)
    extras = project.get("optional-dependencies") or {}
    groups = data.get("dependency-groups") or {}
    for table, where in ((extras, "project.optional-dependencies"), (groups, "dependency-groups")):
        if not isinstance(table, dict):
            raise ValueError(f"{where} is not a table")
        for group, specs in sorted(table.items()):
            for spec in specs if isinstance(specs, list) else []:
                if isinstance(spec, str):  # a dependency group may include another: {include-group = "x"}
                    add_requirement(parsed, spec)
            if not isinstance(specs, list):
                raise ValueError(f"{where}.{group} is not a list")
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    deps = poetry.get("dependencies") if isinstance(poetry, dict) else None
    for name, constraint in sorted((deps or {}).items()):
        if name.lower() == "python":
            continue
        version = constraint.get("version") if isinstance(constraint, dict) else constraint
        text = version.strip() if isinstance(version, str) else ""
        if text.startswith("==") and EXACT_PIN.match(text):
            parsed.pin(name, text[2:].strip("= "))
        elif re.fullmatch(r"\d[\w.!+-]*", text):
            parsed.pin(name, text)  # Poetry reads a bare "1.2.3" as an exact pin
        else:
            parsed.require(name, text)
    return parsed


def _entry_source(entry: dict[str, Any]) -> str | None:
    """The source of one lock entry: uv's ``source`` table, Poetry's ``[package.source]``, pylock's ``vcs`` /
    ``directory`` / ``archive``; None for a registry (an index)."""
    source = entry.get("source")
    if isinstance(source, dict):
        if isinstance(source.get("git"), str):  # uv: "https://github.com/o/r?rev=main#<commit>"
            url = source["git"]
            commit = url.split("#", 1)[1] if "#" in url else None
            return git_source(url, commit)
        if source.get("type") == "git" and isinstance(source.get("url"), str):  # Poetry
            commit = source.get("resolved_reference") or source.get("reference")
            return git_source(source["url"], str(commit) if commit else None)
        for key, prefix in (("editable", "editable"), ("path", "path"), ("directory", "path")):
            if isinstance(source.get(key), str):
                return f"{prefix}:{source[key]}"
        if source.get("type") in ("directory", "file") and isinstance(source.get("url"), str):
            return f"{'editable' if entry.get('develop') else 'path'}:{source['url']}"
        if isinstance(source.get("url"), str) and source.get("type") in (None, "url"):
            return url_source(source["url"])
        return None
    vcs = entry.get("vcs")
    if isinstance(vcs, dict) and isinstance(vcs.get("url"), str):  # pylock
        commit = vcs.get("commit-id") or vcs.get("requested-revision")
        return git_source(vcs["url"], str(commit) if commit else None)
    directory = entry.get("directory")
    if isinstance(directory, dict) and isinstance(directory.get("path"), str):
        return f"{'editable' if directory.get('editable') else 'path'}:{directory['path']}"
    archive = entry.get("archive")
    if isinstance(archive, dict) and isinstance(archive.get("url"), str):
        return url_source(archive["url"])
    return None


def _marker_text(value: object) -> str:
    """A ``marker`` / ``markers`` value: a string, or Poetry 2's per-group table (any group's marker)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return any_of(str(v) for v in value.values() if isinstance(v, str))
    return ""


def _packages_table(data: dict[str, Any], key: str, kind: str) -> ParsedLock:
    packages = data.get(key)
    if not isinstance(packages, list):
        raise ValueError(f"no [[{key}]] entries")
    parsed = ParsedLock(kind)
    references = _uv_references(packages) if kind == "uv.lock" else {}
    for index, entry in enumerate(packages):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{key}[{index}] has no name")
        name, version = entry["name"], entry.get("version")
        marker = _marker_text(entry.get("marker", entry.get("markers")))
        forks = entry.get("resolution-markers")
        if isinstance(forks, list) and forks:  # uv: the forks of the resolution this entry belongs to
            marker = all_of(marker, any_of(str(f) for f in forks))
        refs = references.get(normalize_name(name))
        if refs:  # uv: the markers under which something depends on this entry
            marker = all_of(marker, any_of(refs.get(version, []) + refs.get(None, [])))
        # Poetry / pylock: the Pythons the entry supports bound where it applies (Poetry 1.x has no markers)
        marker = all_of(marker, python_marker(entry.get("python-versions", entry.get("requires-python"))))
        if isinstance(version, str):
            parsed.pin(name, version, marker)
        else:
            parsed.require(name, "")  # a virtual/dynamic project in uv.lock has no version
        parsed.source(name, _entry_source(entry))
        parsed.tag(parsed.hashes, name, _entry_hashes(entry))
        groups = entry.get("groups")  # Poetry 2
        parsed.tag(parsed.groups, name, groups if isinstance(groups, list) else [entry.get("category")])
        if marker:
            parsed.markers[normalize_name(name)] = marker
    return parsed


def _entry_hashes(entry: dict[str, Any]) -> list[str]:
    """``ALG:HEX`` of every file of an entry: uv's ``sdist`` / ``wheels`` ``hash``, Poetry's ``files``,
    pylock's ``hashes`` tables (``sdist``, ``wheels``, ``archive``)."""
    files: list[Any] = [entry.get("sdist"), entry.get("archive"), *(entry.get("wheels") or ())]
    files += list(entry.get("files") or ())
    out: list[str] = []
    for item in files:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("hash"), str):
            out.append(item["hash"])
        table = item.get("hashes")
        if isinstance(table, dict):
            out += [f"{alg}:{value}" for alg, value in table.items() if isinstance(value, str)]
    return out


def _uv_tags(parsed: ParsedLock, packages: list[Any]) -> None:
    """uv.lock: extras requested on dependency edges, and the dependency groups naming each package."""
    for entry in packages:
        if not isinstance(entry, dict):
            continue
        edges: list[tuple[str | None, Any]] = [(None, e) for e in entry.get("dependencies") or ()]
        groups = entry.get("dev-dependencies")
        for group, listed in groups.items() if isinstance(groups, dict) else ():
            edges += [(str(group), e) for e in (listed if isinstance(listed, list) else ())]
        for group, edge in edges:
            if isinstance(edge, dict) and isinstance(edge.get("name"), str):
                extra = edge.get("extra")
                parsed.tag(parsed.extras, edge["name"], extra if isinstance(extra, list) else ())
                parsed.tag(parsed.groups, edge["name"], [group])


def _uv_references(packages: list[Any]) -> dict[str, dict[str | None, list[str]]]:
    """uv.lock: normalized name -> referenced version (None: any) -> the markers of every dependency edge to
    it ("" for an unconditional edge), from each package's dependencies, extras and dependency groups."""
    out: dict[str, dict[str | None, list[str]]] = {}
    for entry in packages:
        if not isinstance(entry, dict):
            continue
        edges: list[Any] = list(entry.get("dependencies") or [])
        for table in ("optional-dependencies", "dev-dependencies"):
            groups = entry.get(table)
            for listed in groups.values() if isinstance(groups, dict) else ():
                edges.extend(listed if isinstance(listed, list) else ())
        for edge in edges:
            if isinstance(edge, dict) and isinstance(edge.get("name"), str):
                version = edge.get("version") if isinstance(edge.get("version"), str) else None
                marker = str(edge["marker"]) if isinstance(edge.get("marker"), str) else ""
                out.setdefault(normalize_name(edge["name"]), {}).setdefault(version, []).append(marker)
    return out


def parse_poetry_lock(text: str) -> ParsedLock:
    """``poetry.lock``: every ``[[package]]`` name and version, applying under its ``markers`` (Poetry 2)
    and its ``python-versions``. Poetry writes ``[metadata]`` last: a lock without it was cut short."""
    data = _toml(text)
    parsed = _packages_table(data, "package", "poetry.lock")
    if not isinstance(data.get("metadata"), dict):
        raise ValueError("no [metadata] table (Poetry writes it last): truncated? run `poetry lock` again")
    wanted = data["metadata"].get("python-versions")
    parsed.requires_python = wanted if isinstance(wanted, str) else None
    files = data["metadata"].get("files")  # Poetry <= 1.2 kept the hashes here, by package name
    for name, listed in files.items() if isinstance(files, dict) else ():
        parsed.tag(parsed.hashes, str(name), _entry_hashes({"files": listed if isinstance(listed, list) else []}))
    return parsed


def parse_uv_lock(text: str) -> ParsedLock:
    """``uv.lock``: every ``[[package]]`` name and version (forks give several versions of one name), each
    applying under its ``resolution-markers`` and the markers of the dependency edges that reach it. A
    dependency edge to a package the file does not list means the file was cut short."""
    data = _toml(text)
    parsed = _packages_table(data, "package", "uv.lock")
    _uv_tags(parsed, data["package"])
    wanted = data.get("requires-python")
    parsed.requires_python = wanted if isinstance(wanted, str) else None
    listed = {normalize_name(e["name"]) for e in data["package"] if isinstance(e, dict)}
    dangling = sorted(set(_uv_references(data["package"])) - listed)
    if dangling:
        more = f" (+{len(dangling) - 3} more)" if len(dangling) > 3 else ""
        raise ValueError(
            f"depends on {', '.join(dangling[:3])}{more} without a [[package]] entry: truncated? run `uv lock` again"
        )
    return parsed


def parse_pylock(text: str) -> ParsedLock:
    """PEP 751 ``pylock.toml``: every ``[[packages]]`` name and version, with its marker."""
    data = _toml(text)
    parsed = _packages_table(data, "packages", "pylock")
    wanted = data.get("requires-python")
    parsed.requires_python = wanted if isinstance(wanted, str) else None
    return parsed


def parse_pipfile_lock(text: str) -> ParsedLock:
    """``Pipfile.lock`` (JSON): the ``default`` and ``develop`` sections."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    parsed = ParsedLock("pipfile.lock")
    meta = data.get("_meta")
    requires = meta.get("requires") if isinstance(meta, dict) else None
    if isinstance(requires, dict):
        full, minor = requires.get("python_full_version"), requires.get("python_version")
        if isinstance(full, str):
            parsed.requires_python = f"=={full}"
        elif isinstance(minor, str):
            parsed.requires_python = f"=={minor}.*"
    for section in ("default", "develop"):
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{section} is not an object")
        for name, entry in sorted(entries.items()):
            version = entry.get("version") if isinstance(entry, dict) else None
            exact = EXACT_PIN.match(version) if isinstance(version, str) else None
            marker = entry.get("markers") if isinstance(entry, dict) else None
            marker = marker.strip() if isinstance(marker, str) else ""
            if exact is not None:
                parsed.pin(name, exact.group(2), marker)
            else:
                parsed.require(name, version if isinstance(version, str) else "")
            if marker:
                parsed.markers[normalize_name(name)] = marker
            parsed.tag(parsed.groups, name, [section])
            if isinstance(entry, dict):
                parsed.tag(parsed.hashes, name, entry.get("hashes") or ())
                parsed.tag(parsed.extras, name, entry.get("extras") or ())
            if isinstance(entry, dict) and isinstance(entry.get("git"), str):
                parsed.source(name, git_source(entry["git"], str(entry.get("ref") or "") or None))
            elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
                parsed.source(name, f"{'editable' if entry.get('editable') else 'path'}:{entry['path']}")
    return parsed


def sniff_kind(text: str) -> str | None:
    """The lockfile kind of a file's content, for a file named with ``--lockfile`` whose name says nothing
    (``deps.lock``, ``locked.txt``): Pipfile.lock JSON, a TOML lock or manifest, a conda YAML file, or pip's
    requirements format. None when it is none of them."""
    head = text.lstrip()[:4096]
    if head.startswith("{"):
        return "pipfile.lock" if '"_meta"' in text or '"default"' in text else None
    if re.search(r"^lock-version\s*=", head, re.M) and "[[packages]]" in text:
        return "pylock"
    if "[[package]]" in text:
        if re.search(r"^\[metadata\]", text, re.M) or re.search(r"^(python-versions|content-hash)\s*=", text, re.M):
            return "poetry.lock"
        return "uv.lock"
    if re.search(r"^\[(project|tool\.poetry|dependency-groups)\]", text, re.M):
        return "pyproject"
    if re.search(r"^package:\s*$", text, re.M) and re.search(r"^\s*manager:", text, re.M):
        return "conda-lock"
    if re.search(r"^dependencies:", text, re.M):
        return "conda-environment"
    found = False
    for _, line in logical_lines(text):
        words = [w for w in line.split() if not w.startswith("--hash")]
        if not words or words[0].startswith("-"):
            continue  # an option: -r, -e, --index-url
        if _REQUIREMENT_LINE.match(" ".join(words)) is None:
            return None
        found = True
    return "requirements" if found else None


PARSERS = {
    "requirements": parse_requirements,
    "pyproject": parse_pyproject,
    "poetry.lock": parse_poetry_lock,
    "uv.lock": parse_uv_lock,
    "pylock": parse_pylock,
    "pipfile.lock": parse_pipfile_lock,
    "conda-environment": parse_conda_environment,
    "conda-lock": parse_conda_lock,
}


def parse_lockfile(kind: str, text: str) -> ParsedLock:
    """Parse ``text`` as a lockfile of ``kind`` (a key of :data:`PARSERS`); ValueError when malformed."""
    try:
        return PARSERS[kind](text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


__all__ = [
    "CONDA_PLATFORM_MARKERS",
    "FORK_SEPARATOR",
    "PARSERS",
    "REQUIREMENTS_DIR_PATTERNS",
    "ROOT_PATTERNS",
    "ParsedLock",
    "Requirement",
    "all_of",
    "any_of",
    "detect_kind",
    "git_source",
    "parse_conda_environment",
    "parse_conda_lock",
    "parse_lockfile",
    "parse_pipfile_lock",
    "parse_poetry_lock",
    "parse_pylock",
    "parse_pyproject",
    "parse_requirements",
    "parse_requirements_lines",
    "parse_uv_lock",
    "python_marker",
    "sniff_kind",
    "split_requirement",
]
