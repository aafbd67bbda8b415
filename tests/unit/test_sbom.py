"""The CycloneDX SBOM: valid for cyclonedx-python-lib's strict validator, purls, graph, natives, bytes."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from test_probe_packages import target_of, write_dist  # the real dist-info writer (tests/unit is on sys.path)

from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.sbom import ROOT_REF, RUNTIME_REF, SbomProbe
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

NATIVE = {
    "libraries": [
        {"name": "libopenblas", "version": "0.3.27", "path": "/venv/numpy.libs/libopenblas64_p-r0.so"},
        {"name": "libopenblas", "version": "0.3.27", "path": "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"},
        {"name": "libgomp", "version": None, "path": "/usr/lib/x86_64-linux-gnu/libgomp.so.1"},
        {"name": "libc++", "version": "17.0.1"},
        {
            "name": "arrow",
            "version": "2600",
            "path": "pyarrow/libarrow.so.2600",
            "distribution": "pyarrow",
            "kind": "other",
        },
        {"version": "1.0"},  # no name: not a component
        "not a mapping",
    ]
}


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6)


def assert_valid(document: dict[str, Any]) -> None:
    """cyclonedx-python-lib's strict JSON validation (unknown properties are errors)."""
    error = _validator().validate_str(json.dumps(document))
    assert error is None, f"invalid CycloneDX 1.6: {error}"
    validate_member("<test>", "env/sbom.cdx.json", document)


def sbom_of(target: target_mod.TargetRuntime, native: Any = None, **options: Any) -> dict[str, Any]:
    ctx = CaptureContext(CaptureOptions(**options), lambda: target)
    ctx.results["packages"] = PackagesProbe().collect(ctx)
    if native is not None:
        ctx.results["native"] = native
    document: dict[str, Any] = SbomProbe().collect(ctx)
    return document


def components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in document["components"]}


def depends(document: dict[str, Any]) -> dict[str, list[str]]:
    return {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}


@pytest.fixture(scope="module")
def venv_sbom() -> dict[str, Any]:
    return sbom_of(target_mod.in_process(), NATIVE)


def test_sbom_of_this_venv_is_valid_cyclonedx_1_6(venv_sbom: dict[str, Any]) -> None:
    assert_valid(venv_sbom)
    assert venv_sbom["bomFormat"] == "CycloneDX"
    assert venv_sbom["specVersion"] == "1.6"
    assert venv_sbom["$schema"] == "http://cyclonedx.org/schema/bom-1.6.schema.json"
    refs = [c["bom-ref"] for c in venv_sbom["components"]]
    assert refs == sorted(refs)
    assert len(refs) == len(set(refs))
    assert venv_sbom["metadata"]["component"]["bom-ref"] == ROOT_REF
    tools = venv_sbom["metadata"]["tools"]["components"]
    assert [t["name"] for t in tools] == ["envsnap"]


def test_python_packages_have_pypi_purls(venv_sbom: dict[str, Any]) -> None:
    by_ref = components(venv_sbom)
    for name in ("pytest", "requests", "idna", "cyclonedx-python-lib", "typing-extensions"):
        matching = [c for ref, c in by_ref.items() if ref.startswith(f"pkg:pypi/{name}@")]
        assert len(matching) == 1, name
        component = matching[0]
        assert component["type"] == "library"
        assert component["purl"] == f"pkg:pypi/{name}@{component['version']}" == component["bom-ref"]


def test_dependency_graph_has_the_requires_edges(venv_sbom: dict[str, Any]) -> None:
    graph = depends(venv_sbom)
    refs = {c["name"].lower(): c["bom-ref"] for c in venv_sbom["components"]}
    assert refs["idna"] in graph[refs["requests"]]
    assert refs["urllib3"] in graph[refs["requests"]]
    assert refs["boolean.py"] in graph[refs["license-expression"]]
    assert RUNTIME_REF in graph[ROOT_REF]
    assert refs["requests"] not in graph[ROOT_REF]  # required by docker: not a top-level package
    assert refs["pytest-timeout"] in graph[ROOT_REF]
    every_ref = {c["bom-ref"] for c in venv_sbom["components"]} | {ROOT_REF}  # names may repeat (native libs)
    assert set(graph) == every_ref
    assert all(set(deps) <= every_ref for deps in graph.values())


def test_runtime_component(venv_sbom: dict[str, Any]) -> None:
    runtime = components(venv_sbom)[RUNTIME_REF]
    python = target_mod.in_process().python
    assert runtime["type"] == "platform"
    assert runtime["version"] == python["version"]
    if python["implementation"] == "cpython":
        assert runtime["cpe"] == f"cpe:2.3:a:python:python:{python['version']}:*:*:*:*:*:*:*"


def test_native_libraries_are_components(venv_sbom: dict[str, Any]) -> None:
    by_ref = components(venv_sbom)
    blas = by_ref["native:libopenblas@0.3.27"]
    assert blas["purl"] == "pkg:generic/libopenblas@0.3.27"
    assert blas["type"] == "library"
    paths = sorted(p["value"] for p in blas["properties"] if p["name"] == "envsnap:native:path")
    assert paths == ["/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/venv/numpy.libs/libopenblas64_p-r0.so"]
    assert by_ref["native:libgomp"]["purl"] == "pkg:generic/libgomp"
    assert "version" not in by_ref["native:libgomp"]
    assert by_ref["native:libc++@17.0.1"]["purl"] == "pkg:generic/libc%2B%2B@17.0.1"
    assert sum(ref.startswith("native:") for ref in by_ref) == 4
    graph = depends(venv_sbom)
    assert {"native:libopenblas@0.3.27", "native:libgomp"} <= set(graph[ROOT_REF])
    # a library a wheel ships hangs under that distribution, not under the root
    pyarrow = next(ref for ref in by_ref if ref.startswith("pkg:pypi/pyarrow@"))
    assert "native:arrow@2600" in graph[pyarrow]
    assert "native:arrow@2600" not in graph[ROOT_REF]
    assert {"name": "envsnap:native:kind", "value": "other"} in by_ref["native:arrow@2600"]["properties"]


@pytest.mark.parametrize(
    "native",
    [None, {"error": {"type": "OSError", "message": "no /proc"}}, {"libraries": "broken"}],
    ids=["probe-did-not-run", "probe-failed", "bad-shape"],
)
def test_sbom_without_native_libraries_is_still_valid(tmp_path: Path, native: Any) -> None:
    write_dist(tmp_path, "alone")
    document = sbom_of(target_of(tmp_path), native)
    assert_valid(document)
    assert not any(ref.startswith("native:") for ref in components(document))
    properties = {p["name"]: p["value"] for p in document["metadata"].get("properties", [])}
    assert properties["envsnap:native-libraries"].startswith("unavailable")


def test_reproducible_builds_are_byte_identical(tmp_path: Path) -> None:
    write_dist(tmp_path, "app", requires=("lib",))
    write_dist(tmp_path, "lib")
    target = target_of(tmp_path)
    first = sbom_of(target, NATIVE, reproducible=True)
    second = sbom_of(target, copy.deepcopy(NATIVE), reproducible=True)
    assert canonical.dumps(first) == canonical.dumps(second)
    assert "serialNumber" not in first
    assert "timestamp" not in first["metadata"]
    assert {"name": "cdx:reproducible", "value": "true"} in first["metadata"]["properties"]
    assert_valid(first)


def test_non_reproducible_builds_have_serial_and_time(tmp_path: Path) -> None:
    write_dist(tmp_path, "app")
    target = target_of(tmp_path)
    first = sbom_of(target, NATIVE)
    second = sbom_of(target, NATIVE, environ={"SOURCE_DATE_EPOCH": "1700000000"})
    assert first["serialNumber"].startswith("urn:uuid:")
    assert first["serialNumber"] != second["serialNumber"]
    assert second["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")
    assert_valid(first)
    assert_valid(second)


def test_packages_from_outside_an_index(tmp_path: Path) -> None:
    digest = "d" * 64
    write_dist(
        tmp_path,
        "fromgit",
        "0.3",
        direct_url={
            "url": "https://deploy:hunter22@github.com/org/fromgit.git",
            "vcs_info": {"vcs": "git", "commit_id": "c0ffee", "requested_revision": "main"},
        },
    )
    write_dist(
        tmp_path,
        "remote",
        "0.5",
        direct_url={"url": "https://example.org/dl/remote-0.5.tar.gz", "archive_info": {"hashes": {"sha256": digest}}},
    )
    write_dist(
        tmp_path,
        "hosted",
        "1.0",
        direct_url={
            "url": "https://files.pythonhosted.org/packages/aa/hosted-1.0-py3-none-any.whl",
            "archive_info": {},
        },
    )
    write_dist(tmp_path, "mine", "0.1", direct_url={"url": "file:///src/mine", "dir_info": {"editable": True}})
    write_dist(
        tmp_path,
        "wheel-file",
        "0.2",
        direct_url={"url": "file:///w/wheel_file-0.2-py3-none-any.whl", "archive_info": {"hashes": {"sha256": digest}}},
    )
    document = sbom_of(target_of(tmp_path))
    assert_valid(document)
    assert "hunter22" not in json.dumps(document)
    by_name = {c["name"]: c for c in document["components"]}

    git = by_name["fromgit"]
    assert git["purl"] == "pkg:pypi/fromgit@0.3?vcs_url=git%2Bhttps://github.com/org/fromgit.git%40c0ffee"
    git_props = {p["name"]: p["value"] for p in git["properties"]}
    assert git_props["cdx:python:package:source:vcs:commit_id"] == "c0ffee"
    assert git_props["cdx:python:package:source:vcs:requested_revision"] == "main"
    assert git["externalReferences"][0]["url"] == "https://github.com/org/fromgit.git#c0ffee"

    remote = by_name["remote"]
    assert remote["purl"] == "pkg:pypi/remote@0.5?download_url=https://example.org/dl/remote-0.5.tar.gz"
    assert remote["externalReferences"][0]["hashes"] == [{"alg": "SHA-256", "content": digest}]

    assert by_name["hosted"]["purl"] == "pkg:pypi/hosted@1.0"  # the index's own file host: no qualifier

    for local in ("mine", "wheel-file"):  # unpublished: no purl to point at, a stable ref instead
        assert "purl" not in by_name[local]
        assert by_name[local]["bom-ref"].startswith(f"python-local:{local}@")
    assert by_name["mine"]["externalReferences"][0]["url"] == "file:///src/mine"
    mine_props = {p["name"]: p["value"] for p in by_name["mine"]["properties"]}
    assert mine_props["cdx:python:package:source:local:editable"] == "true"


def test_extras_requested_are_recorded(tmp_path: Path) -> None:
    write_dist(tmp_path, "client", requires=("transport[socks]",))
    write_dist(tmp_path, "transport", requires=('pysocks; extra == "socks"',))
    write_dist(tmp_path, "pysocks")
    document = sbom_of(target_of(tmp_path))
    assert_valid(document)
    by_name = {c["name"]: c for c in document["components"]}
    assert {"name": "cdx:python:package:required-extra", "value": "socks"} in by_name["transport"]["properties"]
    graph = depends(document)
    assert graph[by_name["transport"]["bom-ref"]] == [by_name["pysocks"]["bom-ref"]]


def test_the_validator_really_checks_formats(venv_sbom: dict[str, Any]) -> None:
    """Without jsonschema's format extras the IRI/date-time checks are silently skipped.

    The dev environment needs ``cyclonedx-python-lib[json-validation]`` (jsonschema[format-nongpl]).
    """
    broken = copy.deepcopy(venv_sbom)
    component = next(c for c in broken["components"] if c["bom-ref"].startswith("pkg:pypi/"))
    component["externalReferences"] = [{"type": "website", "url": "http://exa mple.org/<not an iri>"}]
    assert _validator().validate_str(json.dumps(broken)) is not None


def _with_headers(site: Path, name: str, headers: list[str], version: str = "1.0") -> None:
    """A dist-info whose METADATA also carries ``headers`` (licenses, URLs) as a build backend writes them."""
    dist_info = write_dist(site, name, version)
    metadata = dist_info / "METADATA"
    head, _, body = metadata.read_text(encoding="utf-8").partition("\n\n")
    metadata.write_text(head + "\n" + "\n".join(headers) + "\n\n" + body, encoding="utf-8")


def test_declared_licenses_become_cyclonedx_licenses(tmp_path: Path) -> None:
    _with_headers(
        tmp_path,
        "modern",
        ["License-Expression: Apache-2.0 OR MIT", "Classifier: License :: OSI Approved :: MIT License"],
    )
    _with_headers(
        tmp_path,
        "classic",
        [
            "License: MIT OR Apache-2.0",
            "Classifier: License :: OSI Approved :: MIT License",
            "Classifier: Programming Language :: Python :: 3",
        ],
    )
    _with_headers(
        tmp_path,
        "legacy",
        [
            "Classifier: License :: OSI Approved :: BSD License",
            "Classifier: License :: OSI Approved :: Python Software Foundation License",
            "License: Copyright (c) someone",
            "        Permission is hereby granted, free of charge, ...",
        ],
    )
    _with_headers(tmp_path, "vague", ["License: UNKNOWN"])
    _with_headers(tmp_path, "lowercase-id", ["License: mit"])
    document = sbom_of(target_of(tmp_path), {"libraries": []})
    assert_valid(document)
    by_name = {c["name"]: c for c in document["components"]}
    declared = {"acknowledgement": "declared"}
    # License-Expression wins: nothing else is consulted (PEP 639).
    assert by_name["modern"]["licenses"] == [{**declared, "expression": "Apache-2.0 OR MIT"}]
    assert "evidence" not in by_name["modern"]
    # An expression is the only license CycloneDX allows beside nothing: the classifier moves to evidence.
    assert by_name["classic"]["licenses"] == [{**declared, "expression": "MIT OR Apache-2.0"}]
    assert by_name["classic"]["evidence"]["licenses"] == [{"license": {**declared, "id": "MIT"}}]
    # A classifier that names no single version stays a name; a license text is not an identifier.
    assert by_name["legacy"]["licenses"] == [
        {"license": {**declared, "name": "License :: OSI Approved :: BSD License"}},
        {"license": {**declared, "id": "Python-2.0"}},
    ]
    assert "licenses" not in by_name["vague"]
    assert by_name["lowercase-id"]["licenses"] == [{"license": {**declared, "id": "MIT"}}]


def test_metadata_urls_become_external_references(tmp_path: Path) -> None:
    _with_headers(
        tmp_path,
        "linked",
        [
            "Home-page: https://example.org/linked",
            "Download-URL: https://example.org/linked/downloads",
            "Project-URL: Bug Tracker, https://example.org/linked/issues",
            "Project-URL: Source Code, https://example.org/linked/src",
            "Project-URL: Repository, https://user:s3cr3t-token@git.example.org/linked.git",
            "Project-URL: Documentation, not a url at all",
        ],
    )
    document = sbom_of(target_of(tmp_path), {"libraries": []})
    assert_valid(document)
    (linked,) = (c for c in document["components"] if c["name"] == "linked")
    references = {(r["type"], r["url"]) for r in linked["externalReferences"]}
    assert {
        ("website", "https://example.org/linked"),
        ("distribution", "https://example.org/linked/downloads"),
        ("issue-tracker", "https://example.org/linked/issues"),
        ("other", "https://example.org/linked/src"),
        ("vcs", "https://git.example.org/linked.git"),  # credentials never enter the SBOM
    } <= references
    assert "s3cr3t" not in json.dumps(document)


def test_a_native_library_carries_its_release_not_its_soname(tmp_path: Path) -> None:
    write_dist(tmp_path, "pyarrow", "20.0.0")
    native = {
        "libraries": [
            {
                "name": "arrow",
                "version": "2000",
                "release": "20.0.0",
                "release_source": "distribution",
                "path": "pyarrow/libarrow.so.2000",
                "distribution": "pyarrow",
                "kind": "other",
            }
        ]
    }
    document = sbom_of(target_of(tmp_path), native)
    assert_valid(document)
    arrow = components(document)["native:arrow@20.0.0"]
    assert arrow["version"] == "20.0.0"
    assert {"name": "envsnap:native:soversion", "value": "2000"} in arrow["properties"]
    assert "native:arrow@20.0.0" in depends(document)["pkg:pypi/pyarrow@20.0.0"]
