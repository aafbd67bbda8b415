"""What a distribution declares in its core metadata: licenses and URLs, as the SBOM records them.

Licenses, as SPDX ids, expressions or names, in the order PEP 639 gives them weight:

* ``License-Expression`` (metadata 2.4): an SPDX expression; when present, nothing else counts;
* otherwise every ``License :: `` trove classifier (mapped to an SPDX id where the classifier names one
  license exactly, else kept by name) and a ``License`` field that is an SPDX id or expression (a field
  that holds a license *text* or a free-form name says nothing a machine can use and is left out).

URLs: ``Home-page``, ``Download-URL`` and every ``Project-URL``, credentials stripped.

Pure functions over strings; the set of known SPDX ids is passed in (the SBOM probe reads it from the
list cyclonedx-python-lib ships), so this module needs no vendor SDK. SPDX
expressions are checked by a small parser here rather than by ``license-expression``, whose licensing
table costs about 20 ms to build on every capture.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envsnap.capture.packages import public_url

__all__ = [
    "TROVE_TO_SPDX",
    "DeclaredLicense",
    "declared_fields",
    "declared_licenses",
    "is_spdx_expression",
    "license_json",
    "spdx_id",
]

_OSI = "License :: OSI Approved :: "

#: Trove classifiers that name exactly one SPDX license. Classifiers that do not say which version
#: ("Apache Software License", "BSD License", "Mozilla Public License 2.0 (MPL 2.0)", which SPDX splits
#: by copyleft exception) are kept by name: guessing a version would misstate what the author declared.
TROVE_TO_SPDX: Mapping[str, str] = {
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    _OSI + "Attribution Assurance License": "AAL",
    _OSI + "Blue Oak Model License (BlueOak-1.0.0)": "BlueOak-1.0.0",
    _OSI + "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    _OSI + "Common Development and Distribution License 1.0 (CDDL-1.0)": "CDDL-1.0",
    _OSI + "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    _OSI + "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    _OSI + "European Union Public Licence 1.0 (EUPL 1.0)": "EUPL-1.0",
    _OSI + "European Union Public Licence 1.1 (EUPL 1.1)": "EUPL-1.1",
    _OSI + "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    _OSI + "GNU Affero General Public License v3": "AGPL-3.0-only",
    _OSI + "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    _OSI + "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    _OSI + "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    _OSI + "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    _OSI + "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    _OSI + "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    _OSI + "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    _OSI + "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    _OSI + "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    _OSI + "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    _OSI + "ISC License (ISCL)": "ISC",
    _OSI + "MIT License": "MIT",
    _OSI + "MIT No Attribution License (MIT-0)": "MIT-0",
    _OSI + "Mozilla Public License 1.0 (MPL)": "MPL-1.0",
    _OSI + "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    _OSI + "Mulan Permissive Software License v2 (MulanPSL-2.0)": "MulanPSL-2.0",
    _OSI + "Open Software License 3.0 (OSL-3.0)": "OSL-3.0",
    _OSI + "PostgreSQL License": "PostgreSQL",
    _OSI + "Python License (CNRI Python License)": "CNRI-Python",
    _OSI + "Python Software Foundation License": "Python-2.0",
    _OSI + "The Unlicense (Unlicense)": "Unlicense",
    _OSI + "Universal Permissive License (UPL)": "UPL-1.0",
    _OSI + "W3C License": "W3C",
    _OSI + "zlib/libpng License": "Zlib",
}


@dataclass(frozen=True)
class DeclaredLicense:
    """One declared license: exactly one of an SPDX ``id``, an SPDX ``expression`` or a ``name``."""

    id: str | None = None
    expression: str | None = None
    name: str | None = None


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")
_REF = re.compile(r"(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+")


def spdx_id(value: str, known: Mapping[str, str]) -> str | None:
    """The SPDX id ``value`` names (case-insensitively), spelled as SPDX does; ``known`` maps lower to id."""
    return known.get(value.strip().lower())


def is_spdx_expression(value: str, known: Mapping[str, str]) -> bool:
    """Whether ``value`` is a valid SPDX license expression over known ids (``known``: lower -> id).

    The grammar: ``expr := term ((AND | OR) term)*``, ``term := atom [WITH exception]``,
    ``atom := id[+] | LicenseRef-... | ( expr )``; operators in any case, as SPDX tools accept them.
    """
    tokens: list[str] = []
    pos = 0
    text = value.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            return False
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        return False
    index = 0

    def peek() -> str:
        return tokens[index].upper() if index < len(tokens) else ""

    def license_ref(token: str) -> bool:
        return _REF.fullmatch(token) is not None or spdx_id(token.removesuffix("+"), known) is not None

    def atom() -> bool:
        nonlocal index
        if index >= len(tokens):
            return False
        word = tokens[index]
        index += 1
        if word == "(":
            if not expression() or peek() != ")":
                return False
            index += 1
            return True
        if word.upper() in ("AND", "OR", "WITH", ")"):
            return False
        return license_ref(word)

    def term() -> bool:
        nonlocal index
        if not atom():
            return False
        if peek() == "WITH":
            index += 1
            if index >= len(tokens) or spdx_id(tokens[index], known) is None:
                return False
            index += 1
        return True

    def expression() -> bool:
        nonlocal index
        if not term():
            return False
        while peek() in ("AND", "OR"):
            index += 1
            if not term():
                return False
        return True

    return expression() and index == len(tokens)


def _from_string(value: str, known: Mapping[str, str]) -> DeclaredLicense:
    found = spdx_id(value, known)
    if found is not None:
        return DeclaredLicense(id=found)
    if is_spdx_expression(value, known):
        return DeclaredLicense(expression=value)
    return DeclaredLicense(name=value)


def declared_licenses(
    expression: str | None, license_field: str | None, classifiers: Iterable[str], known: Mapping[str, str]
) -> list[DeclaredLicense]:
    """The licenses a distribution declares (see the module docstring), without duplicates, in order."""
    if expression:
        return [_from_string(expression, known)]
    found = [_from_string(TROVE_TO_SPDX.get(c) or c, known) for c in classifiers if c.startswith("License :: ")]
    if license_field:
        declared = _from_string(license_field, known)
        if declared.name is None:  # an id or an expression; a free-form name or text says nothing usable
            found.append(declared)
    return list(dict.fromkeys(found))


# Project-URL labels that name a CycloneDX reference type, compared lower-case with non-letters removed
# ("Bug Tracker" -> "bugtracker"); any other label is "other".
_URL_LABEL_TYPES = {
    "bugtracker": "issue-tracker",
    "bugreports": "issue-tracker",
    "issues": "issue-tracker",
    "issuetracker": "issue-tracker",
    "tracker": "issue-tracker",
    "home": "website",
    "homepage": "website",
    "download": "distribution",
    "documentation": "documentation",
    "docs": "documentation",
    "changelog": "release-notes",
    "changes": "release-notes",
    "repository": "vcs",
    "github": "vcs",
    "chat": "chat",
}
_NOT_LETTERS = re.compile("[^a-z]")


def _public(url: str) -> str | None:
    public = public_url(url)
    return public if "<redacted" not in public else None


def license_json(item: DeclaredLicense) -> dict[str, Any]:
    """A CycloneDX ``licenses`` entry for a declared license (acknowledged as declared)."""
    if item.expression is not None:
        return {"acknowledgement": "declared", "expression": item.expression}
    key, value = ("id", item.id) if item.id is not None else ("name", item.name)
    return {"license": {"acknowledgement": "declared", key: value}}


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


# An absolute IRI with nothing the CycloneDX schema's iri-reference format refuses: no white space or
# delimiters (percent-encoded first where that is unambiguous), one fragment at most, valid escapes.
_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`#]+(?:#[^\s<>\"{}|\\^`#]*)?")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_ENCODE = str.maketrans({c: f"%{ord(c):02X}" for c in " \"'[]<>{}"})


def _metadata_url(url: str) -> str | None:
    # public_url costs ~30 µs (a credential scan); most metadata URLs have no userinfo, query or fragment.
    # Every stored string is value-scanned again when the member is written.
    public = url if not any(c in url for c in "@?#%") else _public(url)
    if public is None:
        return None
    public = public.translate(_PERCENT_ENCODE)
    return public if _IRI.fullmatch(public) and not _BAD_ESCAPE.search(public) else None


def declared_fields(metadata: Mapping[str, Any], known: Mapping[str, str]) -> dict[str, Any]:
    """``licenses``, ``evidence`` and ``externalReferences`` of a distribution, from its inspected metadata.

    Licenses: see :func:`declared_licenses`; ``known`` maps lower-case SPDX ids to their spelling.
    CycloneDX allows either one expression or several ids/names: with an expression, the expression is
    the license and what else was declared moves to the evidence, so nothing is lost. References:
    ``Home-page`` (website), ``Download-URL`` (distribution) and each ``Project-URL``, typed by its
    label. Built as JSON here rather than through the library's model, which costs about 0.25 ms per
    component for these two fields alone.
    """
    out: dict[str, Any] = {}
    classifiers = metadata.get("license_classifiers")
    declared = declared_licenses(
        _text_or_none(metadata.get("license_expression")),
        _text_or_none(metadata.get("license")),
        [c for c in classifiers if isinstance(c, str)] if isinstance(classifiers, list) else [],
        known,
    )
    expression = next((d for d in declared if d.expression is not None), None)
    if expression is not None:
        out["licenses"] = [license_json(expression)]
        moved = [license_json(d) for d in declared if d is not expression]
        if moved:
            out["evidence"] = {"licenses": moved}
    elif declared:
        out["licenses"] = [license_json(d) for d in declared]
    found: list[tuple[str, str, str]] = []  # (type, url, comment)
    for key, header, kind in (("home_page", "Home-page", "website"), ("download_url", "Download-URL", "distribution")):
        url = _text_or_none(metadata.get(key))
        if url:
            found.append((kind, url.strip(), f"{header} in the package metadata"))
    project_urls = metadata.get("project_urls")
    for entry in project_urls if isinstance(project_urls, list) else ():
        label, sep, url = str(entry).partition(",")
        if sep and url.strip():
            kind = _URL_LABEL_TYPES.get(_NOT_LETTERS.sub("", label.lower()), "other")
            found.append((kind, url.strip(), f"Project-URL {label.strip()} in the package metadata"))
    references = []
    for kind, url, comment in found:
        public = _metadata_url(url)
        if public is not None:
            references.append({"comment": comment, "type": kind, "url": public})
    if references:
        out["externalReferences"] = references
    return out
