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

Nothing here imports ``packaging``: requirement strings are split with a small PEP 508 reader, because
``packaging.requirements`` alone costs ~30 ms of capture's ~100 ms budget.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from envsnap.core.naming import normalize_name

#: Version strings of several entries for one name (forks) are joined with this separator.
FORK_SEPARATOR = " || "

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

_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*")
_EXACT = re.compile(r"^\s*(===?)\s*([^\s,;=<>!~*]+)\s*$")
_OP = r"(?:===?|~=|!=|<=|>=|<|>)\s*[^\s,;]+"
#: A line of pip's format that is surely a requirement (what :func:`sniff_kind` accepts).
_REQUIREMENT_LINE = re.compile(
    rf"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*(\(?\s*{_OP}(\s*,\s*{_OP})*\s*\)?|@\s*\S+)?\s*(;.*)?$"
)
_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


@dataclass
class ParsedLock:
    """What one lockfile or manifest pins and requires."""

    kind: str
    pins: dict[str, str] = field(default_factory=dict)
    requirements: dict[str, str] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: conda's ``=``: a pin ``1.26`` matches every 1.26.x (prefix match), not only 1.26.
    prefix_pins: bool = False
    #: name -> pinned version -> the marker under which that entry applies ("" = always). Every entry of a
    #: name is here once one of them has a marker, so the drift check can pick the entry that applies.
    pin_markers: dict[str, dict[str, str]] = field(default_factory=dict)
    _conditions: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    #: name -> where a non-registry entry comes from: ``git+URL@COMMIT``, ``path:DIR``, ``editable:DIR``,
    #: ``url:URL`` (URLs without credentials); forks from several sources joined with " || ".
    sources: dict[str, str] = field(default_factory=dict)
    #: name -> ``sha256:...`` hashes the lock records for it (every file of every pinned version).
    hashes: dict[str, set[str]] = field(default_factory=dict)
    #: name -> extras requested of it (``requests[socks]``, uv's ``extra = [...]`` on an edge).
    extras: dict[str, set[str]] = field(default_factory=dict)
    #: name -> the groups / categories it is locked for (Pipfile default/develop, Poetry groups, uv
    #: dependency groups, conda-lock categories).
    groups: dict[str, set[str]] = field(default_factory=dict)
    #: The Pythons the whole file is for (``requires-python``, Poetry's ``python-versions``).
    requires_python: str | None = None
    #: conda-lock: the platforms the file was solved for.
    platforms: list[str] = field(default_factory=list)
    #: A marker every pin of the file applies under (a pip-compile lock of one Python); "" for none.
    default_marker: str = ""

    def tag(self, table: dict[str, set[str]], name: str, values: Iterable[object]) -> None:
        """Add the string ``values`` to ``table[name]`` (hashes, extras or groups)."""
        strings = {str(v) for v in values if isinstance(v, str) and v}
        if strings:
            table.setdefault(normalize_name(name), set()).update(strings)

    def source(self, name: str, where: str | None) -> None:
        """Record a non-registry source of ``name`` (None: a registry, not recorded)."""
        if not where:
            return
        key = normalize_name(name)
        known = self.sources.get(key)
        listed = set(known.split(FORK_SEPARATOR)) if known else set()
        listed.add(where)
        self.sources[key] = FORK_SEPARATOR.join(sorted(listed))

    def pin(self, name: str, version: str, marker: str | None = None) -> None:
        """Add a pin, applying under ``marker`` (None: always); a second, different version of the same name
        is a fork (``a || b``), and a second entry of one version widens its marker (``a or b``)."""
        key = normalize_name(name)
        known = self.pins.get(key)
        versions = set(known.split(FORK_SEPARATOR)) if known else set()
        versions.add(version)
        self.pins[key] = FORK_SEPARATOR.join(sorted(versions))
        conditions = self._conditions.setdefault(key, {})
        before = conditions.get(version)
        marker = (marker or "").strip()
        if before is None:
            conditions[version] = marker
        elif before and marker and marker != before:
            conditions[version] = f"{_group(before)} or {_group(marker)}"
        else:
            conditions[version] = ""  # one unconditional entry makes the version apply always
        if any(conditions.values()):
            self.pin_markers[key] = dict(sorted(conditions.items()))
        else:
            self.pin_markers.pop(key, None)

    def require(self, name: str, specifier: str) -> None:
        """Add a requirement that is not an exact pin (``>=1.2,<2``; empty = any version)."""
        key = normalize_name(name)
        known = self.requirements.get(key)
        if known and specifier and known != specifier:
            self.requirements[key] = f"{known},{specifier}"
        elif not known:
            self.requirements[key] = specifier

    def to_dict(self) -> dict[str, Any]:
        return {
            "pins": dict(sorted(self.pins.items())),
            "requirements": dict(sorted(self.requirements.items())),
            "markers": dict(sorted(self.markers.items())),
            "pin_markers": {name: self.pin_markers[name] for name in sorted(self.pin_markers)},
            "sources": dict(sorted(self.sources.items())),
            "hashes": {k: sorted(v) for k, v in sorted(self.hashes.items())},
            "extras": {k: sorted(v) for k, v in sorted(self.extras.items())},
            "groups": {k: sorted(v) for k, v in sorted(self.groups.items())},
            "requires_python": self.requires_python,
            "platforms": list(self.platforms),
            "notes": list(self.notes),
        }


def _group(marker: str) -> str:
    """``marker`` in parentheses unless it is one comparison, for joining with ``and`` / ``or``."""
    return f"({marker})" if re.search(r"\s(and|or)\s", marker) else marker


def all_of(*markers: str | None) -> str:
    """The conjunction of the non-empty ``markers`` ("" when there are none)."""
    present = list(dict.fromkeys(m.strip() for m in markers if m and m.strip()))
    return present[0] if len(present) == 1 else " and ".join(_group(m) for m in present)


def any_of(markers: Iterable[str]) -> str:
    """The disjunction of ``markers`` ("" when one of them is empty: that entry applies always)."""
    listed = [m.strip() for m in markers]
    if not listed or any(not m for m in listed):
        return ""
    unique = list(dict.fromkeys(listed))
    return unique[0] if len(unique) == 1 else " or ".join(_group(m) for m in unique)


_PY_CLAUSE = re.compile(r"^\s*(===|==|!=|<=|>=|~=|<|>)\s*(\d[\w.*+!-]*)\s*$")


def python_marker(requires_python: object) -> str:
    """``>=3.10,<3.14`` (a PEP 440 requires-python) as a marker on ``python_full_version``; "" when it is not
    one (Poetry's ``^3.8`` / ``||`` or ``*``): such a constraint then restricts nothing."""
    if not isinstance(requires_python, str) or not requires_python.strip():
        return ""
    clauses = []
    for clause in requires_python.split(","):
        match = _PY_CLAUSE.match(clause)
        if match is None:
            return ""
        clauses.append(f"python_full_version {match.group(1)} '{match.group(2)}'")
    return " and ".join(clauses)


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


@dataclass(frozen=True)
class Requirement:
    """One PEP 508 requirement, split without ``packaging``: name, specifier text, URL, marker text."""

    name: str
    specifier: str
    url: str | None
    marker: str | None
    extras: tuple[str, ...] = ()

    @property
    def exact(self) -> str | None:
        """The version of an exact pin (``==1.2.3`` / ``===1.2.3``), else None."""
        match = _EXACT.match(self.specifier.strip("() "))
        return match.group(2) if match else None


def split_requirement(text: str) -> Requirement:
    """Split ``name[extras] (spec) ; marker`` or ``name @ url ; marker``; ValueError when it has no name."""
    body, _, marker = text.partition(";")
    match = _NAME.match(body)
    if match is None:
        raise ValueError(f"not a requirement: {text.strip()[:80]!r}")
    rest = body[match.end() :].strip()
    url = None
    if rest.startswith("@"):
        url, rest = rest[1:].strip(), ""
    extras = tuple(sorted(e.strip() for e in (match.group(2) or "").strip("[]").split(",") if e.strip()))
    return Requirement(match.group(1), rest.strip("() "), url, marker.strip() or None, extras)


def _add_requirement(parsed: ParsedLock, text: str, hashes: Iterable[str] = ()) -> None:
    req = split_requirement(text)
    parsed.tag(parsed.extras, req.name, req.extras)
    parsed.tag(parsed.hashes, req.name, hashes)
    if req.url is not None:
        parsed.require(req.name, f"@ {req.url}")
        parsed.source(req.name, _url_source(req.url))
    elif req.exact is not None:
        parsed.pin(req.name, req.exact, all_of(parsed.default_marker, req.marker))
    else:
        parsed.require(req.name, req.specifier)
    if req.marker:
        key = normalize_name(req.name)
        known = parsed.markers.get(key)
        parsed.markers[key] = any_of([known, req.marker]) if known else req.marker


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with ``\\`` continuations joined and comments removed."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = f"{pending} {raw.strip()}" if pending else raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield start, line
    if pending.strip():
        yield start, pending.strip()


def parse_requirements_lines(lines: Iterable[str], parsed: ParsedLock) -> None:
    """Requirement lines of pip's format into ``parsed``: options (``--index-url``, ``-r``, ``--hash``) are
    skipped, editables and bare URLs are noted, every other line must be a requirement."""
    for number, line in _logical_lines("\n".join(lines)):
        words = line.split()
        if words[0] in ("-e", "--editable") or words[0].startswith("--editable="):
            parsed.notes.append(f"line {number}: editable requirement not compared")
            continue
        if line.startswith("-"):
            continue
        spec = " ".join(w for w in words if not w.startswith("--"))
        hashes = [w.split("=", 1)[1] for w in words if w.startswith("--hash=")]
        if "://" in spec and not re.match(r"^[A-Za-z0-9._-]+(\[[^\]]*\])?\s*@", spec):
            parsed.notes.append(f"line {number}: URL requirement not compared")
            continue
        try:
            _add_requirement(parsed, spec, hashes)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None


_PIP_COMPILE_PYTHON = re.compile(r"^#\s*This file is autogenerated by pip-compile with Python (\d+\.\d+)", re.M)


def parse_requirements(text: str) -> ParsedLock:
    """A pip requirements or constraints file (``requirements*.txt``, ``*.in``). pip-compile's header names
    the Python it resolved for ("autogenerated by pip-compile with Python 3.11"): such a file's pins apply
    to that Python only (a project keeping one lock per Python, as jax does)."""
    parsed = ParsedLock("requirements")
    header = _PIP_COMPILE_PYTHON.search(text[:2048])
    if header is not None:
        parsed.default_marker = f"python_version == '{header.group(1)}'"
        parsed.requires_python = f"=={header.group(1)}.*"
        parsed.notes.append(f"compiled by pip-compile for Python {header.group(1)}: its pins apply to that Python")
    parse_requirements_lines(text.splitlines(), parsed)
    return parsed


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
        _add_requirement(parsed, spec)
    extras = project.get("optional-dependencies") or {}
    groups = data.get("dependency-groups") or {}
    for table, where in ((extras, "project.optional-dependencies"), (groups, "dependency-groups")):
        if not isinstance(table, dict):
            raise ValueError(f"{where} is not a table")
        for group, specs in sorted(table.items()):
            for spec in specs if isinstance(specs, list) else []:
                if isinstance(spec, str):  # a dependency group may include another: {include-group = "x"}
                    _add_requirement(parsed, spec)
            if not isinstance(specs, list):
                raise ValueError(f"{where}.{group} is not a list")
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    deps = poetry.get("dependencies") if isinstance(poetry, dict) else None
    for name, constraint in sorted((deps or {}).items()):
        if name.lower() == "python":
            continue
        version = constraint.get("version") if isinstance(constraint, dict) else constraint
        text = version.strip() if isinstance(version, str) else ""
        if text.startswith("==") and _EXACT.match(text):
            parsed.pin(name, text[2:].strip("= "))
        elif re.fullmatch(r"\d[\w.!+-]*", text):
            parsed.pin(name, text)  # Poetry reads a bare "1.2.3" as an exact pin
        else:
            parsed.require(name, text)
    return parsed


def git_source(url: str, commit: str | None) -> str:
    """``git+URL@COMMIT`` with the URL's credentials, query and fragment removed (``git+`` not doubled)."""
    from envsnap.core.redact import scrub_url

    base = url.strip().removeprefix("git+").split("#", 1)[0].split("?", 1)[0]
    return f"git+{scrub_url(base)}" + (f"@{commit}" if commit else "")


def _url_source(url: str) -> str:
    """A requirement's or entry's URL as a source: ``git+URL@REV`` for git, else ``url:URL``."""
    from envsnap.core.redact import scrub_url

    text = url.strip()
    if text.startswith("git+"):
        rest = text[4:].split("#", 1)[0]
        scheme, sep, path = rest.partition("://")
        head, at, rev = path.rpartition("@") if "@" in path.partition("/")[2] else ("", "", "")
        if at and "/" not in rev:
            return git_source(f"{scheme}{sep}{head}", rev)
        return git_source(rest, None)
    return f"url:{scrub_url(text)}"


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
            return _url_source(source["url"])
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
        return _url_source(archive["url"])
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
            exact = _EXACT.match(version) if isinstance(version, str) else None
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
    for _, line in _logical_lines(text):
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
