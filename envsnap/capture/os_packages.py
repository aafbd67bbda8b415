"""``env/os-packages.json``: the operating system's packages (dpkg, apk), read from their databases.

The system's package manager decides the libraries no wheel bundles (libgomp, libstdc++, CA certificates,
glibc itself). The databases are parsed as text, never through ``dpkg-query`` or ``apk`` (a subprocess
costs more than the parse): dpkg's ``/var/lib/dpkg/status`` (only packages whose status is
``installed``) and apk's ``/lib/apk/db/installed``. rpm keeps its database in Berkeley DB, NDB or SQLite
files of binary headers, which need rpm's own reader: not recorded (``unsupported`` names it).

Speed, measured on this Debian image (854 packages, 788 KiB of status): the parse costs about 3 ms with
``str.find`` per field inside each stanza (a multi-line regex over the whole file costs 13 ms). Each
package is stored as a row ``[name, version, arch, source, license]`` rather than an object: every stored
string, keys included, is value-scanned for credentials, and per-package keys would double that scan.
That scan, of this member and of the SBOM's ~850 extra components, still costs ~30 ms, a sixth of a
capture: the probe runs only with ``--os-packages`` (``os_packages=True``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from envsnap._target.host import read_text
from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.capture.declared import declared_licenses, license_json

__all__ = [
    "COLUMNS",
    "DATABASES",
    "OsPackagesProbe",
    "os_components",
    "os_packages",
    "package_rows",
    "parse_apk_installed",
    "parse_dpkg_status",
]

#: The columns of a package row.
COLUMNS = ("name", "version", "arch", "source", "license")
#: Package databases by manager, in the order they are looked for.
DATABASES = (("dpkg", "/var/lib/dpkg/status"), ("apk", "/lib/apk/db/installed"))
_RPM_DATABASES = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
_LIMIT = 1 << 26  # a status file of 64 MiB would be ~70,000 packages


def _field(text: str, name: str, start: int, end: int) -> str | None:
    """The value of the one-line field ``name`` (``"\nVersion:"``) in ``text[start:end]``, or None.

    Continuation lines start with a space, so ``"\nName:"`` never matches inside a description.
    """
    found = text.find(name, start, end)
    if found < 0:
        return None
    found += len(name)
    stop = text.find("\n", found, end)
    return text[found : stop if stop >= 0 else end].strip() or None


def _stanzas(text: str, first: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each stanza of ``text`` (which starts with a newline) that begins with ``first``."""
    bounds = []
    pos = text.find(first)
    while pos >= 0:
        following = text.find(first, pos + len(first))
        bounds.append((pos, following if following >= 0 else len(text)))
        pos = following
    return bounds


def parse_dpkg_status(text: str) -> list[list[str | None]]:
    """Rows ``[name, version, arch, source, None]`` of the installed packages in a dpkg status file.

    A package counts when the third word of its ``Status`` is ``installed`` (``deinstall ok
    config-files`` leaves only configuration behind). ``Source`` is the source package when it differs
    from the binary one, without its version in parentheses. Fields are found with ``str.find`` inside
    each stanza: no copy of the 1 MB file is made.
    """
    text = "\n" + text
    rows: list[list[str | None]] = []
    for start, end in _stanzas(text, "\nPackage:"):
        name = _field(text, "\nPackage:", start, end)
        status = _field(text, "\nStatus:", start, end)
        if name is None or status is None or status.rsplit(None, 1)[-1] != "installed":
            continue
        source = _field(text, "\nSource:", start, end)
        if source is not None:
            source = source.split(" (", 1)[0].strip() or None
        rows.append(
            [name, _field(text, "\nVersion:", start, end), _field(text, "\nArchitecture:", start, end), source, None]
        )
    return rows


def parse_apk_installed(text: str) -> list[list[str | None]]:
    """Rows ``[name, version, arch, origin, license]`` of an apk ``installed`` database.

    Stanzas are separated by blank lines; ``o:`` (the origin, apk's source package) is kept when it
    differs from the package's name.
    """
    text = "\n" + text.replace("\r\n", "\n")
    rows: list[list[str | None]] = []
    start = 0
    while start < len(text):
        end = text.find("\n\n", start + 1)
        end = end + 1 if end >= 0 else len(text)
        name = _field(text, "\nP:", start, end)
        if name is not None:
            origin = _field(text, "\no:", start, end)
            rows.append(
                [
                    name,
                    _field(text, "\nV:", start, end),
                    _field(text, "\nA:", start, end),
                    origin if origin != name else None,
                    _field(text, "\nL:", start, end),
                ]
            )
        start = end
    return rows


_PARSERS = {"dpkg": parse_dpkg_status, "apk": parse_apk_installed}


def os_packages(root: str = "/") -> dict[str, Any]:
    """The package databases found under ``root`` (``/`` for this system), parsed.

    ``{"columns": COLUMNS, "managers": [{"manager", "path", "packages": [row, ...]}], "unsupported": [...]}``,
    rows sorted by name then architecture.
    """
    managers = []
    for manager, path in DATABASES:
        text = read_text(os.path.join(root, path.lstrip("/")), _LIMIT)
        if text is None:
            continue
        rows = _PARSERS[manager](text)
        rows.sort(key=lambda row: (row[0] or "", row[2] or ""))
        managers.append({"manager": manager, "path": path, "packages": rows})
    unsupported = [
        f"rpm ({path}): its database needs rpm's own reader"
        for path in _RPM_DATABASES
        if os.path.isdir(os.path.join(root, path.lstrip("/")))
    ]
    return {"columns": list(COLUMNS), "managers": managers, "unsupported": unsupported}


def package_rows(data: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """``(manager, row as a mapping)`` for every package of an ``env/os-packages.json`` document."""
    if not isinstance(data, Mapping) or not isinstance(data.get("managers"), list):
        return []
    given = data.get("columns")
    columns: list[Any] = given if isinstance(given, list) else list(COLUMNS)
    out: list[tuple[str, Mapping[str, Any]]] = []
    for entry in data["managers"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("packages"), list):
            continue
        for row in entry["packages"]:
            if isinstance(row, list) and row and isinstance(row[0], str):
                out.append((str(entry.get("manager")), dict(zip(columns, row, strict=False))))
    return out


_PURL_TYPES = {"dpkg": ("deb", "debian"), "apk": ("apk", "alpine")}


_UNRESERVED = re.compile(r"[A-Za-z0-9.\-_~]*")


def _purl_part(text: str) -> str:
    # The purl spec percent-encodes what is not unreserved: "libstdc++6" -> "libstdc%2B%2B6", epochs' ":".
    # quote() costs ~2 µs a call; most names and versions need nothing.
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe=".-_~")


def os_components(os_packages: Any, os_release: Mapping[str, Any], known: Mapping[str, str]) -> list[dict[str, Any]]:
    """The operating system and its packages as CycloneDX component JSON (empty without packages).

    Built as JSON, not through the library's model: a Debian image has ~850 packages, which the model
    serialises in ~55 ms. purls as the purl spec writes them: ``pkg:deb/debian/NAME@VERSION?arch=amd64&
    distro=debian-12`` (``pkg:apk/alpine/...`` for apk); the namespace is the os-release ``ID``.
    ``known`` maps lower-case SPDX ids to their spelling (apk records a license per package).
    """
    rows = package_rows(os_packages)
    if not rows:
        return []
    os_id = str(os_release.get("id") or "").lower() or None
    version_id = str(os_release.get("version_id") or "") or None
    system_ref = f"os:{os_id or 'unknown'}@{version_id}" if version_id else f"os:{os_id or 'unknown'}"
    system: dict[str, Any] = {"bom-ref": system_ref, "type": "operating-system", "name": os_id or "unknown"}
    if version_id:
        system["version"] = version_id
    if os_release.get("pretty_name"):
        system["description"] = str(os_release["pretty_name"])
    out = [system]
    seen: set[str] = set()
    for manager, row in rows:
        purl_type, default_namespace = _PURL_TYPES.get(manager, ("generic", None))
        namespace = os_id or default_namespace
        name, version, arch = row.get("name"), row.get("version"), row.get("arch")
        qualifiers = []
        if arch:
            qualifiers.append(f"arch={_purl_part(str(arch))}")
        if namespace and version_id:
            qualifiers.append(f"distro={_purl_part(namespace)}-{_purl_part(version_id)}")
        purl = f"pkg:{purl_type}/{_purl_part(namespace) + '/' if namespace else ''}{_purl_part(str(name))}"
        purl += f"@{_purl_part(str(version))}" if version else ""
        purl += "?" + "&".join(qualifiers) if qualifiers else ""
        if purl in seen:
            continue
        seen.add(purl)
        component: dict[str, Any] = {"bom-ref": purl, "type": "library", "name": name, "purl": purl}
        if version:
            component["version"] = version
        if row.get("license"):
            declared = declared_licenses(None, str(row["license"]), (), known)
            if declared:
                component["licenses"] = [license_json(d) for d in declared]
        out.append(component)
    return out


@register
class OsPackagesProbe(Probe):
    """The operating system's packages (dpkg status, apk installed), parsed without running a tool."""

    name = "os_packages"
    member = "env/os-packages.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return ctx.options.os_packages

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        return os_packages()
