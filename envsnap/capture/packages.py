"""``env/packages.json``: every installed distribution of the captured runtime.

The raw facts come from :mod:`envsnap._target.interpreter` (``ctx.target.distributions``); this probe only
reshapes them: it classifies where each distribution came from (PEP 610 ``direct_url.json``), keeps the
locally known archive hashes, strips credentials from URLs, and resolves each distribution's
``Requires-Dist`` against the *target's* marker environment into the installed distributions it really
depends on. The lock and the SBOM are built from this result, so the graph is computed once.

``location_kind`` is one of:

* ``site`` — installed from an index (no ``direct_url.json``);
* ``editable`` — ``dir_info.editable`` (PEP 660), or a legacy ``setup.py develop`` egg-info next to its
  project;
* ``local`` — a local directory or a ``file://`` archive;
* ``vcs`` — a VCS checkout at a commit;
* ``url`` — an archive downloaded from a URL that is not an index.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.core.naming import normalize_name
from envsnap.core.redact import scrub_url

__all__ = [
    "PIP_HASH_ALGORITHMS",
    "MarkerEvaluator",
    "PackagesProbe",
    "archive_hashes",
    "classify_direct_url",
    "collect_packages",
    "dependency_graph",
    "distribution_record",
    "fast_marker",
    "package_records",
    "parse_requirement",
    "project_root",
    "public_url",
]

LOCATION_KINDS = ("site", "editable", "local", "vcs", "url")

#: Hash algorithms pip accepts in ``--hash`` (the others are kept in packages.json only).
PIP_HASH_ALGORITHMS = ("sha256", "sha384", "sha512")

_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
_HASH = re.compile(r"[a-z0-9_-]+:[0-9a-f]+")
_REQ_HEAD = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?")
_URL_MARKER_SEP = re.compile(r"\s;")
# By far the most common marker: ``pytest; extra == "test"``. Deciding it here saves importing packaging.
_ONLY_EXTRA = re.compile(r"""\s*extra\s*==\s*(['"])([^'"]+)\1\s*""")


def public_url(url: str) -> str:
    """``url`` without userinfo, then value-scanned.

    Userinfo is dropped rather than replaced by a marker: a lock line with a marker in it could never
    install, while a bare URL still installs where pip finds the credentials itself (netrc, keyring).
    An SSH user name without a password (``ssh://git@github.com/...``) is an account, not a secret, and
    the clone needs it: it stays.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub_url(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and not (parts.scheme.endswith("ssh") and ":" not in userinfo):
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return scrub_url(url)


# ---------------------------------------------------------------------------------------------------
# PEP 610


def archive_hashes(archive_info: Mapping[str, Any]) -> list[str]:
    """``["sha256:<hex>", ...]`` from ``archive_info.hashes`` and the legacy ``archive_info.hash``."""
    found: set[str] = set()
    hashes = archive_info.get("hashes")
    if isinstance(hashes, dict):
        for algorithm, digest in hashes.items():
            if isinstance(algorithm, str) and isinstance(digest, str):
                found.add(f"{algorithm}:{digest}")
    legacy = archive_info.get("hash")
    if isinstance(legacy, str):
        algorithm, _, digest = legacy.partition("=")
        found.add(f"{algorithm}:{digest}")
    return sorted({h.lower() for h in found if _HASH.fullmatch(h.lower())})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def classify_direct_url(raw: Any) -> tuple[str, dict[str, Any] | None, list[str]]:
    """``(location_kind, direct_url record, hashes)`` from a parsed ``direct_url.json`` (or None)."""
    if raw is None:
        return "site", None, []
    record: dict[str, Any] = {
        "url": None,
        "editable": False,
        "vcs": None,
        "commit_id": None,
        "requested_revision": None,
        "subdirectory": None,
        "source": None,
        "hashes": [],
    }
    if not isinstance(raw, dict) or "error" in raw or not isinstance(raw.get("url"), str):
        # The file exists but says nothing usable: the package did not come from an index.
        record["error"] = (
            str(raw.get("error")) if isinstance(raw, dict) and raw.get("error") else "invalid direct_url.json"
        )
        return "url", record, []
    url: str = raw["url"]
    record["url"] = public_url(url)
    record["subdirectory"] = _text(raw.get("subdirectory"))
    vcs_info, archive_info, dir_info = raw.get("vcs_info"), raw.get("archive_info"), raw.get("dir_info")
    if isinstance(vcs_info, dict):
        record["vcs"] = _text(vcs_info.get("vcs"))
        record["commit_id"] = _text(vcs_info.get("commit_id"))
        record["requested_revision"] = _text(vcs_info.get("requested_revision"))
        record["source"] = "vcs"
        return "vcs", record, []
    if isinstance(archive_info, dict):
        hashes = archive_hashes(archive_info)
        record["hashes"] = hashes
        record["source"] = "archive"
        return ("local" if url.startswith("file:") else "url"), record, hashes
    if isinstance(dir_info, dict):
        record["editable"] = bool(dir_info.get("editable"))
        record["source"] = "dir"
        return ("editable" if record["editable"] else "local"), record, []
    return ("local" if url.startswith("file:") else "url"), record, []


def project_root(location: str) -> str | None:
    """The project directory of a legacy develop install: ``location`` or, for a src layout, its parent."""
    for candidate in (location, os.path.dirname(location)):
        if any(os.path.isfile(os.path.join(candidate, name)) for name in _PROJECT_FILES):
            return candidate
    return None


def _is_legacy_develop(dist: Mapping[str, Any]) -> bool:
    # ``setup.py develop`` leaves NAME.egg-info inside the project, put on sys.path by an egg-link/.pth;
    # an egg-info that pip or a distro installed lives in site-/dist-packages instead.
    metadata_path = str(dist.get("metadata_path") or "")
    location = str(dist.get("location") or "")
    if not metadata_path.endswith(".egg-info") or os.path.basename(location) in ("site-packages", "dist-packages"):
        return False
    return project_root(location) is not None


# ---------------------------------------------------------------------------------------------------
# Requires-Dist -> installed dependencies


def parse_requirement(text: str) -> tuple[str, frozenset[str], str | None] | None:
    """``(normalized name, normalized extras, marker or None)`` of a PEP 508 string; None if unparsable.

    Only the name, extras and marker matter for the graph; versions are what is installed.
    """
    match = _REQ_HEAD.match(text)
    if match is None:
        return None
    name = normalize_name(match.group(1))
    extras = frozenset(normalize_name(e.strip()) for e in (match.group(2) or "").split(",") if e.strip())
    head, sep, marker = text.partition(";")
    if sep and "@" in head:
        # In a URL requirement ';' may belong to the URL; PEP 508 wants whitespace before the marker's ';'.
        found = _URL_MARKER_SEP.search(text)
        marker = text[found.end() :] if found else ""
    marker = marker.strip()
    return name, extras, marker or None


_MARKER_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op>===|==|!=|<=|>=|~=|<|>)|(?P<kw>and|or|not|in)\b"""
    r"""|(?P<str>'[^']*'|"[^"]*")|(?P<var>[a-z_]+))"""
)
_VERSION_VARS = frozenset({"python_version", "python_full_version", "implementation_version"})
_STRING_VARS = frozenset(
    {
        "os_name",
        "sys_platform",
        "platform_system",
        "platform_machine",
        "implementation_name",
        "platform_python_implementation",
    }
)
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_VERSION_LIKE = re.compile(r"\s*[vV]?\d")


class _Undecided(Exception):
    """The fast marker evaluator met something only ``packaging`` decides exactly."""


def _release(text: str) -> tuple[int, ...]:
    if _RELEASE.fullmatch(text) is None:
        raise _Undecided(text)
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def _compare(variable: str, op: str, literal: str, environment: Mapping[str, str], extra: str) -> bool:
    if variable == "extra" and op in ("==", "!="):
        return (normalize_name(literal) == extra) == (op == "==")
    if variable in _STRING_VARS and op in ("==", "!=") and _VERSION_LIKE.match(literal) is None:
        # packaging first tries ``op + literal`` as a version specifier; a literal that cannot start a
        # version (``nt``, ``win32``, ``PyPy``) is compared as a string, exactly as done here.
        return (environment.get(variable) == literal) == (op == "==")
    if variable in _VERSION_VARS and op in ("==", "!=", "<", "<=", ">", ">="):
        left, right = _release(environment.get(variable, "")), _release(literal)
        return {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    raise _Undecided(variable)


def fast_marker(marker: str, environment: Mapping[str, str], extra: str) -> bool | None:
    """Evaluate the common marker shapes without ``packaging``; None when only packaging can decide.

    Handles ``and``/``or``/parentheses over ``VAR op "literal"`` where VAR is ``extra`` (==, !=), a
    string variable compared with == / != to a literal that cannot be a version, or a Python version
    variable compared with a plain release number (``python_version < "3.11"``).
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = marker.rstrip()
    while pos < len(text):
        match = _MARKER_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return None
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    index = 0

    def peek() -> tuple[str, str]:
        return tokens[index] if index < len(tokens) else ("end", "")

    def take() -> tuple[str, str]:
        nonlocal index
        token = peek()
        index += 1
        return token

    def atom() -> bool:
        kind, value = take()
        if kind == "lp":
            result = disjunction()
            if take()[0] != "rp":
                raise _Undecided(marker)
            return result
        op_kind, op = take()
        lit_kind, literal = take()
        if kind != "var" or op_kind != "op" or lit_kind != "str":
            raise _Undecided(marker)
        return _compare(value, op, literal[1:-1], environment, extra)

    def conjunction() -> bool:
        result = atom()
        while peek() == ("kw", "and"):
            take()
            result = atom() and result  # evaluate both sides: an undecidable side must not hide
        return result

    def disjunction() -> bool:
        result = conjunction()
        while peek() == ("kw", "or"):
            take()
            result = conjunction() or result
        return result

    try:
        value = disjunction()
    except _Undecided:
        return None
    return value if index == len(tokens) else None


class MarkerEvaluator:
    """Evaluates PEP 508 markers against the *target's* environment, with caching.

    ``packaging`` (about 9 ms to import) is imported only for markers :func:`fast_marker` cannot decide.
    """

    def __init__(self, environment: Mapping[str, str]) -> None:
        self.environment = dict(environment)
        self._cache: dict[tuple[str, str], bool] = {}

    def __call__(self, marker: str, extra: str = "") -> bool:
        simple = _ONLY_EXTRA.fullmatch(marker)
        if simple is not None:
            return normalize_name(simple.group(2)) == extra
        key = (marker, extra if "extra" in marker else "")
        cached = self._cache.get(key)
        if cached is None:
            fast = fast_marker(marker, self.environment, key[1])
            cached = self._cache[key] = fast if fast is not None else self.exact(marker, key[1])
        return cached

    def exact(self, marker: str, extra: str = "") -> bool:
        """Evaluate ``marker`` with ``packaging`` (the reference the fast path is tested against)."""
        from packaging.markers import Marker

        try:
            return bool(Marker(marker).evaluate({**self.environment, "extra": extra}))
        except Exception:  # noqa: BLE001 - a marker packaging cannot read does not select the requirement
            return False


def dependency_graph(
    distributions: Iterable[Mapping[str, Any]], environment: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Installed dependencies of every distribution, and the extras other distributions ask of each.

    A requirement counts when its marker holds in ``environment`` for the base install or for an extra
    that some installed distribution requests (``requests[socks]`` turns on ``requests``'s ``socks``
    requirements); extras propagate until nothing changes. Requirements that are not installed are
    ignored (the environment is what it is; ``pip check`` is the tool for holes).
    """
    parsed: dict[str, list[tuple[str, frozenset[str], str | None]]] = {}
    for dist in distributions:
        reqs = (parse_requirement(str(r)) for r in dist.get("requires") or ())
        parsed[str(dist["normalized_name"])] = [r for r in reqs if r is not None]
    evaluate = MarkerEvaluator(environment)
    edges: dict[str, set[str]] = {name: set() for name in parsed}
    active: dict[str, set[str]] = {name: set() for name in parsed}
    queue: list[tuple[str, str]] = [(name, "") for name in parsed]
    while queue:
        name, extra = queue.pop()
        for dep, dep_extras, marker in parsed[name]:
            if extra and (marker is None or "extra" not in marker):
                continue  # decided in the base pass
            if marker is not None and not evaluate(marker, extra):
                continue
            if dep not in parsed:
                continue
            if dep != name:
                edges[name].add(dep)
            for wanted in dep_extras - active[dep]:
                active[dep].add(wanted)
                queue.append((dep, wanted))
    return {n: sorted(d) for n, d in edges.items()}, {n: sorted(x) for n, x in active.items()}


# ---------------------------------------------------------------------------------------------------
# the probe


def distribution_record(dist: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``env/packages.json`` (without its resolved ``dependencies``)."""
    kind, direct_url, hashes = classify_direct_url(dist.get("direct_url"))
    if kind == "site" and _is_legacy_develop(dist):
        kind = "editable"
    return {
        "name": str(dist["name"]),
        "normalized_name": str(dist["normalized_name"]),
        "version": str(dist.get("version") or ""),
        "summary": _text(dist.get("summary")),
        "installer": _text(dist.get("installer")),
        "location_kind": kind,
        "location": str(dist.get("location") or ""),
        "direct_url": direct_url,
        "requires": [str(r) for r in dist.get("requires") or ()],
        "top_level": sorted(str(t) for t in dist.get("top_level") or ()),
        "hashes": hashes,
    }


def collect_packages(
    site_dirs: Iterable[str], distributions: Iterable[Mapping[str, Any]], markers: Mapping[str, str]
) -> dict[str, Any]:
    """Build the ``env/packages.json`` document from raw inspected facts."""
    dists = list(distributions)
    graph, extras = dependency_graph(dists, markers)
    records = []
    for dist in dists:
        record = distribution_record(dist)
        record["dependencies"] = graph.get(record["normalized_name"], [])
        record["extras_requested"] = extras.get(record["normalized_name"], [])
        records.append(record)
    records.sort(key=lambda r: (r["normalized_name"], r["version"]))
    return {"site_dirs": list(site_dirs), "distributions": records}


def package_records(ctx: CaptureContext) -> dict[str, Any]:
    """The packages probe's result, or the same document computed now if that probe failed."""
    data = ctx.results.get("packages")
    if isinstance(data, dict) and isinstance(data.get("distributions"), list):
        return data
    target = ctx.target
    return collect_packages(target.site_dirs, target.distributions, target.markers)


@register
class PackagesProbe(Probe):
    """Every distribution importable by the target: origin, hashes, requirements, resolved dependencies."""

    name = "packages"
    member = "env/packages.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        target = ctx.target
        return collect_packages(target.site_dirs, target.distributions, target.markers)
