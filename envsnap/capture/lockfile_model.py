"""The parsed form of a lockfile (:class:`ParsedLock`), the marker helpers every parser uses, and pip's
requirement format (shared by requirements files, pyproject dependencies and conda's ``pip:`` lists).

Nothing here imports ``packaging``: requirement strings are split with a small PEP 508 reader, because
``packaging.requirements`` alone costs ~30 ms of capture's ~100 ms budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envsnap.core.lock_text import logical_lines
from envsnap.core.naming import normalize_name

#: Version strings of several entries for one name (forks) are joined with this separator.
FORK_SEPARATOR = " || "


_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*")


EXACT_PIN = re.compile(r"^\s*(===?)\s*([^\s,;=<>!~*]+)\s*$")


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
        match = EXACT_PIN.match(self.specifier.strip("() "))
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


def add_requirement(parsed: ParsedLock, text: str, hashes: Iterable[str] = ()) -> None:
    req = split_requirement(text)
    parsed.tag(parsed.extras, req.name, req.extras)
    parsed.tag(parsed.hashes, req.name, hashes)
    if req.url is not None:
        parsed.require(req.name, f"@ {req.url}")
        parsed.source(req.name, url_source(req.url))
    elif req.exact is not None:
        parsed.pin(req.name, req.exact, all_of(parsed.default_marker, req.marker))
    else:
        parsed.require(req.name, req.specifier)
    if req.marker:
        key = normalize_name(req.name)
        known = parsed.markers.get(key)
        parsed.markers[key] = any_of([known, req.marker]) if known else req.marker


def parse_requirements_lines(lines: Iterable[str], parsed: ParsedLock) -> None:
    """Requirement lines of pip's format into ``parsed``: options (``--index-url``, ``-r``, ``--hash``) are
    skipped, editables and bare URLs are noted, every other line must be a requirement."""
    for number, line in logical_lines("\n".join(lines)):
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
            add_requirement(parsed, spec, hashes)
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


def git_source(url: str, commit: str | None) -> str:
    """``git+URL@COMMIT`` with the URL's credentials, query and fragment removed (``git+`` not doubled)."""
    from envsnap.core.redact import scrub_url

    base = url.strip().removeprefix("git+").split("#", 1)[0].split("?", 1)[0]
    return f"git+{scrub_url(base)}" + (f"@{commit}" if commit else "")


def url_source(url: str) -> str:
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


__all__ = [
    "EXACT_PIN",
    "FORK_SEPARATOR",
    "ParsedLock",
    "Requirement",
    "add_requirement",
    "all_of",
    "any_of",
    "git_source",
    "parse_requirements",
    "parse_requirements_lines",
    "python_marker",
    "split_requirement",
    "url_source",
]
