"""``env/sbom.cdx.json``: a CycloneDX 1.6 SBOM of the captured runtime, through cyclonedx-python-lib.

Components: the Python interpreter, one ``library`` per installed distribution (purl
``pkg:pypi/<name>@<version>``, the name as the purl spec normalises it; ``vcs_url``/``download_url``
qualifiers for packages that did not come from an index, and no purl for local ones, as cyclonedx-py
does), and the native libraries the native
probe found (``pkg:generic/<name>@<version>``). The dependency graph comes from ``env/packages.json``,
whose requirements were evaluated against the target's markers. The root ``metadata.component`` is the
environment itself.

Speed, measured here: importing cyclonedx costs about 32 ms, which capture pays once. The library's
``Bom`` keeps components in a ``SortedSet`` whose comparisons rebuild a 30-field tuple per call, and its
JSON outputter re-registers every dependency with a linear search: 155 ms at 300 components and 540 ms at
800 through ``register_dependency`` + ``JsonV1Dot6``. So every component and the document head are
built and serialised by the library, but the components are serialised one by one and the
``components``/``dependencies`` arrays are assembled (and sorted) here: about 5 ms at 50 components,
30 ms at 300, 70 ms at 800, import excluded. Nothing is validated at capture time (the tests run the
library's strict validator).

Python packages also carry their declared licenses and the URLs of their metadata (what ``cyclonedx-py
environment`` records; see :mod:`envsnap.capture.declared`), built as JSON and added to the serialised
components: through the library's model they cost 30 ms at 120 packages. With ``--os-packages`` the
operating system and its dpkg/apk packages are components too (``pkg:deb/...``), also built as JSON.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from envsnap._version import __version__
from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.capture.declared import declared_fields
from envsnap.capture.os_packages import os_components
from envsnap.capture.packages import package_records, public_url
from envsnap.core.naming import normalize_name

if TYPE_CHECKING:
    from cyclonedx.model.component import Component

ROOT_REF = "envsnap:environment"
RUNTIME_REF = "python-runtime"

_HASH_ALGORITHMS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


def _properties(pairs: Iterable[tuple[str, str | None]]) -> list[Any]:
    from cyclonedx.model import Property

    return [Property(name=name, value=value) for name, value in pairs if value]


def _hash_types(hashes: Iterable[str]) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType

    out = []
    for item in hashes:
        algorithm, _, digest = item.partition(":")
        alg_value = _HASH_ALGORITHMS.get(algorithm.lower())
        if alg_value and digest:
            out.append(HashType(alg=HashAlgorithm(alg_value), content=digest))
    return out


def _source_url(url: Any) -> str | None:
    """A URL safe to publish, or None: the SBOM must hold valid IRIs, never a redaction marker."""
    if not isinstance(url, str) or not url:
        return None
    public = public_url(url)
    return public if "<redacted" not in public else None


@functools.lru_cache(maxsize=1)
def spdx_ids() -> dict[str, str]:
    """Known SPDX license and exception ids, lower-case -> spelled as SPDX does (the list cyclonedx ships)."""
    from cyclonedx.schema._res import SPDX_JSON

    with open(SPDX_JSON, encoding="utf-8") as fh:
        ids = json.load(fh).get("enum") or []
    return {str(i).lower(): str(i) for i in ids}


def python_ref(record: Mapping[str, Any], purl: Any) -> str:
    """bom-ref of a distribution: its purl, or ``python-local:NAME@VERSION`` for unpublished ones."""
    return (
        str(purl.to_string()) if purl is not None else f"python-local:{record['normalized_name']}@{record['version']}"
    )


def _purl(record: Mapping[str, Any]) -> Any:
    from packageurl import PackageURL

    direct: Mapping[str, Any] = record.get("direct_url") or {}
    url = _source_url(direct.get("url"))
    qualifiers: dict[str, str] = {}
    if record["location_kind"] in ("local", "editable") or (url or "").startswith("file:"):
        return None  # not published anywhere a purl could point at
    if direct.get("source") == "vcs" and url:
        vcs = direct.get("vcs") or "git"
        commit = f"@{direct['commit_id']}" if direct.get("commit_id") else ""
        qualifiers["vcs_url"] = f"{url if url.startswith(vcs + '+') else vcs + '+' + url}{commit}"
    elif record["location_kind"] == "url" and url and "://files.pythonhosted.org/" not in url:
        qualifiers["download_url"] = url
    return PackageURL(
        type="pypi",
        # The purl spec's pypi rule (lower case, "_" -> "-"), not PEP 503's: "boolean.py" keeps its dot.
        name=str(record["name"]).lower().replace("_", "-"),
        version=str(record["version"]) or None,
        qualifiers=qualifiers or None,
        subpath=direct.get("subdirectory") or None,
    )


def python_component(record: Mapping[str, Any], purl: Any, ref: str) -> Component:
    """A ``library`` component for one record of ``env/packages.json`` (``purl``/``ref`` precomputed).

    Its declared licenses and metadata URLs are added to the serialised component by
    :func:`declared_fields`.
    """
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
    from cyclonedx.model.component import Component, ComponentType

    direct: Mapping[str, Any] = record.get("direct_url") or {}
    references = []
    url = _source_url(direct.get("url"))
    if url:
        commit = f"#{direct['commit_id']}" if direct.get("source") == "vcs" and direct.get("commit_id") else ""
        references.append(
            ExternalReference(
                type=ExternalReferenceType.VCS if direct.get("source") == "vcs" else ExternalReferenceType.DISTRIBUTION,
                url=XsUri(url + commit),
                comment=f"PEP 610 direct_url ({direct.get('source') or record['location_kind']})",
                hashes=_hash_types(direct.get("hashes") or ()),
            )
        )
    properties = _properties(
        [
            ("cdx:python:package:source:vcs:commit_id", direct.get("commit_id")),
            ("cdx:python:package:source:vcs:requested_revision", direct.get("requested_revision")),
            ("cdx:python:package:source:subdirectory", direct.get("subdirectory")),
            ("cdx:python:package:source:local:editable", "true" if record["location_kind"] == "editable" else None),
        ]
        + [("cdx:python:package:required-extra", extra) for extra in record.get("extras_requested") or ()]
    )
    return Component(
        type=ComponentType.LIBRARY,
        name=str(record["name"]),
        version=str(record["version"]) or None,
        description=record.get("summary") or None,
        purl=purl,
        bom_ref=ref,
        external_references=references,
        properties=properties,
    )


def native_entries(libraries: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(bom-ref, merged entry)`` per native library name and version, sorted by bom-ref.

    The same library loaded from two paths (a wheel's bundled copy and the system's) with the same
    version is one component with both paths, and with every Python distribution that ships it.
    """
    merged: dict[str, dict[str, Any]] = {}
    for lib in libraries:
        if not isinstance(lib, Mapping) or not isinstance(lib.get("name"), str) or not lib["name"]:
            continue
        soversion = lib.get("version") if isinstance(lib.get("version"), str) and lib.get("version") else None
        # The release (pyarrow's libarrow.so.2000 is arrow 20.0.0) when known, else the file name's version.
        release = lib.get("release") if isinstance(lib.get("release"), str) and lib.get("release") else None
        version = release or soversion
        ref = f"native:{lib['name']}@{version}" if version else f"native:{lib['name']}"
        entry = merged.setdefault(
            ref,
            {
                "name": lib["name"],
                "version": version,
                "paths": set(),
                "owners": set(),
                "kinds": set(),
                "sonames": set(),
            },
        )
        if release and soversion and soversion != release:
            entry["sonames"].add(soversion)
        for key, into in (("path", "paths"), ("filepath", "paths"), ("distribution", "owners"), ("kind", "kinds")):
            if isinstance(lib.get(key), str) and lib[key]:
                entry[into].add(lib[key])
    return sorted(merged.items())


def native_component(ref: str, entry: Mapping[str, Any]) -> Component:
    """A ``library`` component for a native shared library."""
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    return Component(
        type=ComponentType.LIBRARY,
        name=entry["name"],
        version=entry["version"],
        purl=PackageURL(type="generic", name=entry["name"], version=entry["version"]),
        bom_ref=ref,
        properties=_properties(
            [("envsnap:native:path", path) for path in sorted(entry["paths"])]
            + [("envsnap:native:kind", kind) for kind in sorted(entry["kinds"])]
            + [("envsnap:native:soversion", soversion) for soversion in sorted(entry.get("sonames") or ())]
        ),
    )


def runtime_component(python: Mapping[str, Any]) -> Component:
    """The interpreter as a ``platform`` component (with a CPE for CPython, so scanners can match it)."""
    from cyclonedx.model.component import Component, ComponentType

    implementation = str(python.get("implementation") or "python")
    version = str(python.get("version") or "") or None
    cpe = f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*" if implementation == "cpython" and version else None
    return Component(
        type=ComponentType.PLATFORM,
        name=implementation,
        version=version,
        cpe=cpe,
        bom_ref=RUNTIME_REF,
        description=f"Python interpreter {python.get('executable') or ''}".strip(),
        properties=_properties(
            [("envsnap:python:platform", python.get("platform")), ("envsnap:python:soabi", python.get("soabi"))]
        ),
    )


def _timestamp(environ: Mapping[str, str]) -> Any:
    from datetime import datetime, timezone

    epoch = environ.get("SOURCE_DATE_EPOCH", "")
    seconds = int(epoch) if epoch.isdigit() else int(time.time())
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def build_sbom(
    packages: Mapping[str, Any],
    python: Mapping[str, Any],
    native_libraries: Iterable[Any] | None,
    *,
    label: str | None = None,
    reproducible: bool = False,
    environ: Mapping[str, str] | None = None,
    native_problem: str | None = None,
    inspected: Iterable[Mapping[str, Any]] = (),
    os_packages: Any = None,
    os_release: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.6 document as a dict (the caller serialises it canonically).

    ``inspected``: the distributions as the target inspected them (licenses, URLs), matched by name.
    ``os_packages``: the os_packages probe's document; ``os_release``: the system probe's ``os``.
    """
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema.schema import SchemaVersion1Dot6

    records = list(packages.get("distributions") or ())
    purls = [_purl(r) for r in records]
    refs = {str(r["normalized_name"]): python_ref(r, purl) for r, purl in zip(records, purls, strict=True)}
    components: list[Component] = [runtime_component(python)]
    components.extend(
        python_component(r, purl, refs[str(r["normalized_name"])]) for r, purl in zip(records, purls, strict=True)
    )
    natives = native_entries(native_libraries or ())
    components.extend(native_component(ref, entry) for ref, entry in natives)

    required = {dep for r in records for dep in r.get("dependencies") or ()}
    edges: dict[str, set[str]] = {RUNTIME_REF: set()}
    for record in records:
        edges[refs[str(record["normalized_name"])]] = {
            refs[dep] for dep in record.get("dependencies") or () if dep in refs
        }
    top = {RUNTIME_REF, *(refs[n] for n in refs if n not in required)}
    for ref, entry in natives:
        edges[ref] = set()
        # A library a wheel bundles (numpy.libs/libopenblas...) is that distribution's dependency.
        owners = [refs[o] for o in (normalize_name(d) for d in entry["owners"]) if o in refs]
        for owner in owners:
            edges[owner].add(ref)
        if not owners:
            top.add(ref)
    system = os_components(os_packages, os_release or {}, spdx_ids()) if os_packages else []
    if system:
        # The OS packages hang under the operating system; the graph between them is dpkg's business.
        top.add(system[0]["bom-ref"])
        edges[system[0]["bom-ref"]] = set()
    edges[ROOT_REF] = top
    graph = {ref: sorted(deps) for ref, deps in edges.items()}

    root = Component(
        type=ComponentType.APPLICATION,
        name=label or "python-environment",
        bom_ref=ROOT_REF,
        description=f"Python environment of {python.get('executable') or 'an interpreter'}",
    )
    tool = Component(type=ComponentType.APPLICATION, name="envsnap", version=__version__)
    metadata = BomMetaData(
        component=root,
        tools=[],
        timestamp=_timestamp(environ or {}),
        properties=_properties(
            [
                ("cdx:reproducible", "true" if reproducible else None),
                ("envsnap:native-libraries", f"unavailable: {native_problem}" if native_problem else None),
            ]
        ),
    )
    metadata.tools.components.add(tool)
    document: dict[str, Any] = json.loads(JsonV1Dot6(Bom(metadata=metadata)).output_as_string())
    view = SchemaVersion1Dot6
    serialised = [json.loads(c.as_json(view_=view)) for c in components]  # type: ignore[attr-defined]
    known = spdx_ids()
    declared = {
        refs[str(m["normalized_name"])]: declared_fields(m, known)
        for m in inspected
        if isinstance(m, Mapping) and str(m.get("normalized_name")) in refs
    }
    for component in serialised:
        fields = declared.get(str(component.get("bom-ref")))
        if fields:
            references = fields.pop("externalReferences", [])
            component.update(fields)
            if references:
                component["externalReferences"] = component.get("externalReferences", []) + references
    document["components"] = sorted(serialised + system, key=lambda c: str(c["bom-ref"]))
    document["dependencies"] = [
        {"ref": ref, "dependsOn": deps} if deps else {"ref": ref} for ref, deps in sorted(graph.items())
    ]
    if reproducible:
        # Same state, same bytes: no random serial number, no clock.
        document.pop("serialNumber", None)
        document.get("metadata", {}).pop("timestamp", None)
    return document


def _native_libraries(ctx: CaptureContext) -> tuple[list[Any], str | None]:
    try:
        native = ctx.result("native")
    except LookupError:
        return [], "the native probe did not run"
    if not isinstance(native, Mapping) or "error" in native:
        error = native.get("error") if isinstance(native, Mapping) else None
        problem = error.get("message") if isinstance(error, Mapping) else None
        return [], f"the native probe failed ({problem})" if problem else "the native probe failed"
    libraries = native.get("libraries")
    return (list(libraries), None) if isinstance(libraries, list) else ([], "no library list")


def _os_release(ctx: CaptureContext) -> Mapping[str, Any]:
    system = ctx.results.get("system")
    release = system.get("os") if isinstance(system, Mapping) else None
    return release if isinstance(release, Mapping) else {}


@register
class SbomProbe(Probe):
    """CycloneDX 1.6 SBOM: interpreter, Python distributions with their graph, native libraries."""

    name = "sbom"
    member = "env/sbom.cdx.json"

    @classmethod
    def warm_up(cls) -> None:
        # ~30 ms of imports, overlapped with a --python inspection instead of paid after it.
        import cyclonedx.model.bom
        import cyclonedx.output.json
        import cyclonedx.schema.schema  # noqa: F401
        import packageurl  # noqa: F401

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        libraries, problem = _native_libraries(ctx)
        return build_sbom(
            package_records(ctx),
            ctx.target.python,
            libraries,
            label=ctx.options.label,
            reproducible=ctx.options.reproducible,
            environ=ctx.options.environ,
            native_problem=problem,
            inspected=ctx.target.distributions,
            os_packages=ctx.results.get("os_packages"),
            os_release=_os_release(ctx),
        )


__all__ = [
    "ROOT_REF",
    "RUNTIME_REF",
    "SbomProbe",
    "build_sbom",
    "native_component",
    "native_entries",
    "python_component",
    "python_ref",
    "runtime_component",
    "spdx_ids",
]
