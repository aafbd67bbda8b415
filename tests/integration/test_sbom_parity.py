"""envsnap's SBOM against ``cyclonedx-py environment`` on the same real venv, component by component.

A venv is filled from the index with packages whose metadata spans the ways licenses and URLs are declared
(``License-Expression``, an SPDX ``License``, trove classifiers only, ``Project-URL`` labels, a ``Home-page``,
a name with a dot and one with an underscore). cyclonedx-py (cyclonedx-bom, pinned to the version of the
benchmark's ``tools`` venv, bench/requirements/tools.lock.txt) runs from a throwaway venv of its own; envsnap
captures the venv with ``--python``. For every Python package both must agree on the purl, version,
description, licenses (with license evidence) and external references; the dependency graph of envsnap
must be cyclonedx-py's less the edges whose requirement has a marker that does not hold (cyclonedx-py
ignores markers: ``jsonschema[format]``'s optional dependencies are edges there). envsnap's SBOM is
checked with cyclonedx-python-lib's strict JSON validator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture.packages import parse_requirement

REPO = Path(__file__).resolve().parents[2]
TOOLS_LOCK = REPO / "bench" / "requirements" / "tools.lock.txt"
DEV_LOCK = REPO / "requirements" / "dev.txt"
#: Installed into the compared venv, each at its pin in our own hashed dev lock (a release on the index never
#: changes this test): requests with certifi (a classifier SPDX cannot map), charset-normalizer, idna, urllib3;
#: jsonschema with attrs, referencing, rpds-py and optional, marker-guarded extras.
PACKAGES = (
    "requests", "six", "python-dateutil", "jsonschema", "boolean-py", "typing-extensions", "packaging",
    "certifi", "charset-normalizer", "idna", "urllib3", "attrs", "jsonschema-specifications", "referencing", "rpds-py",
)  # fmt: skip


def _locked(lock: Path, names: tuple[str, ...]) -> str:
    """The entries (pin and ``--hash`` lines) of ``names`` in a uv/pip-compile style hashed lock."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            current = blocks.setdefault(line.split("==")[0].lower(), [])
        elif not line.lstrip().startswith("--hash") or current is None:
            continue
        current.append(line)
    missing = [n for n in names if n not in blocks]
    assert not missing, f"not in {lock.name}: {missing}"
    return "\n".join(line for n in names for line in blocks[n]) + "\n"


pytestmark = pytest.mark.slow  # two venvs filled from the index


def _cyclonedx_bom_pin() -> str:
    match = re.search(r"^cyclonedx-bom==(\S+)", TOOLS_LOCK.read_text(encoding="utf-8"), re.M)
    assert match is not None, f"no cyclonedx-bom pin in {TOOLS_LOCK}"
    return f"cyclonedx-bom=={match.group(1)}"


@pytest.fixture(scope="session")
def cyclonedx_py(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> Path:
    """The ``cyclonedx-py`` script of a throwaway venv (never the compared one: it would add itself)."""
    python = venv_tools.make_venv(tmp_path_factory.mktemp("cdx-tools") / "venv")
    assert _cyclonedx_bom_pin()  # the bench tools lock holds cyclonedx-bom and all it needs, hashed
    venv_tools.pip_install(python, "--require-hashes", "--no-deps", "-r", TOOLS_LOCK)
    return python.parent / "cyclonedx-py"


@pytest.fixture(scope="session")
def compared_venv(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> Path:
    python = venv_tools.make_venv(tmp_path_factory.mktemp("sbom-parity") / "venv")
    requirements = tmp_path_factory.mktemp("sbom-parity-lock") / "requirements.txt"
    requirements.write_text(_locked(DEV_LOCK, PACKAGES), encoding="utf-8")
    venv_tools.pip_install(python, "--require-hashes", "--no-deps", "-r", requirements)
    return python


@pytest.fixture(scope="session")
def both(
    compared_venv: Path, cyclonedx_py: Path, venv_tools: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(envsnap's SBOM, cyclonedx-py's, envsnap's packages.json) of the compared venv."""
    import envsnap

    out = tmp_path_factory.mktemp("sbom-parity-out")
    theirs_path = out / "cyclonedx-py.json"
    venv_tools.run(
        [cyclonedx_py, "environment", "--of", "JSON", "--sv", "1.6", "-o", theirs_path, compared_venv],
        cwd=out,
    )
    ours_path = out / "snap"
    venv_tools.run(
        [REPO / ".venv" / "bin" / "envsnap", "capture", "--python", compared_venv, "--no-git", "-q", "-o", ours_path],
        cwd=out,
    )
    snapshot = envsnap.load(ours_path)
    theirs = json.loads(theirs_path.read_text(encoding="utf-8"))
    return snapshot.section("sbom"), theirs, snapshot.section("packages")


def _python_components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["purl"]: c for c in document.get("components", []) if str(c.get("purl", "")).startswith("pkg:pypi/")}


def _licenses(entries: list[dict[str, Any]] | None) -> set[str]:
    return {json.dumps(entry, sort_keys=True) for entry in entries or ()}


def _references(component: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["type"], r["url"]) for r in component.get("externalReferences", [])}


def _graph(document: dict[str, Any]) -> dict[str, set[str]]:
    """purl -> purls it depends on (bom-refs differ between the tools; purls do not)."""
    purl_of = {c["bom-ref"]: c["purl"] for c in document.get("components", []) if c.get("purl")}
    return {
        purl_of[d["ref"]]: {purl_of[r] for r in d.get("dependsOn", []) if r in purl_of}
        for d in document.get("dependencies", [])
        if d["ref"] in purl_of and purl_of[d["ref"]].startswith("pkg:pypi/")
    }


def test_the_same_python_components(both: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs, _ = both
    assert set(_python_components(ours)) == set(_python_components(theirs))
    assert len(_python_components(theirs)) >= 15


def test_every_field_cyclonedx_py_emits_agrees(both: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs = _python_components(both[0]), _python_components(both[1])
    problems = []
    for purl, their in sorted(theirs.items()):
        our = ours[purl]
        for field in ("name", "version", "type"):
            if our.get(field) != their.get(field):
                problems.append(f"{purl} {field}: {our.get(field)!r} != {their.get(field)!r}")
        if (our.get("description") or "").strip() != (their.get("description") or "").strip():
            problems.append(f"{purl} description: {our.get('description')!r} != {their.get('description')!r}")
        if _licenses(our.get("licenses")) != _licenses(their.get("licenses")):
            problems.append(f"{purl} licenses: {our.get('licenses')} != {their.get('licenses')}")
        our_evidence = (our.get("evidence") or {}).get("licenses")
        their_evidence = (their.get("evidence") or {}).get("licenses")
        if _licenses(our_evidence) != _licenses(their_evidence):
            problems.append(f"{purl} license evidence: {our_evidence} != {their_evidence}")
        if _references(our) != _references(their):
            problems.append(f"{purl} externalReferences: {_references(our) ^ _references(their)}")
    assert not problems, "\n".join(problems)
    # The venv was chosen so that each field is really compared, not absent on both sides.
    assert sum(bool(c.get("licenses")) for c in theirs.values()) >= 12
    assert any(lic.get("expression") for c in theirs.values() for lic in c.get("licenses", []))
    assert sum(bool(c.get("externalReferences")) for c in theirs.values()) >= 12


def test_the_dependency_graph_is_cyclonedx_pys_with_markers_evaluated(
    both: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    ours, theirs, packages = both
    our_graph, their_graph = _graph(ours), _graph(theirs)
    assert set(our_graph) == set(their_graph)
    name_of = {purl: c["name"] for purl, c in _python_components(theirs).items()}
    requires = {d["normalized_name"]: d["requires"] for d in packages["distributions"]}
    dropped = []
    for purl, deps in their_graph.items():
        assert our_graph[purl] <= deps, f"{purl}: edges cyclonedx-py does not have: {our_graph[purl] - deps}"
        for dep in deps - our_graph[purl]:
            # Only a requirement under a marker that does not hold (an extra nobody asked for) may be left out.
            source = re.sub(r"[-_.]+", "-", name_of[purl]).lower()
            target = re.sub(r"[-_.]+", "-", name_of[dep]).lower()
            parsed = [parse_requirement(r) for r in requires[source]]
            markers = [p[2] for p in parsed if p is not None and p[0] == target]
            assert markers and all(markers), f"{purl} -> {dep} dropped although required without a marker"
            dropped.append((purl, dep))
    assert sum(len(d) for d in our_graph.values()) >= 10


def test_envsnaps_sbom_is_valid_cyclonedx_1_6(both: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(both[0]))
    assert error is None, f"invalid CycloneDX 1.6: {error}"
