"""The packages probe: origins (PEP 610), hashes, credentials, and the resolved dependency graph.

Metadata is real: either this dev venv (in-process) or ``*.dist-info`` directories written to a temporary
site directory and read by the same inspector that capture uses.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envsnap._target import interpreter
from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.packages import (
    MarkerEvaluator,
    PackagesProbe,
    collect_packages,
    dependency_graph,
    fast_marker,
    parse_requirement,
)
from envsnap.snapshot.schema import validate_member

REPO = Path(__file__).resolve().parents[2]
WINDOWS_PY38 = {
    "implementation_name": "cpython",
    "implementation_version": "3.8.10",
    "os_name": "nt",
    "platform_machine": "AMD64",
    "platform_release": "10",
    "platform_system": "Windows",
    "platform_version": "10.0.19041",
    "python_full_version": "3.8.10",
    "platform_python_implementation": "CPython",
    "python_version": "3.8",
    "sys_platform": "win32",
}


def write_dist(
    site: Path,
    name: str,
    version: str = "1.0",
    *,
    requires: tuple[str, ...] = (),
    direct_url: Any = None,
    installer: str | None = "pip",
    summary: str | None = None,
) -> Path:
    """A real ``NAME-VERSION.dist-info`` directory as pip writes it."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n\nThe long description.\n", encoding="utf-8")
    module = name.replace("-", "_")
    (dist_info / "RECORD").write_text(f"{module}/__init__.py,,\n{dist_info.name}/METADATA,,\n", encoding="utf-8")
    if installer:
        (dist_info / "INSTALLER").write_text(installer + "\n", encoding="utf-8")
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (dist_info / "direct_url.json").write_text(text, encoding="utf-8")
    return dist_info


def target_of(site: Path, markers: dict[str, str] | None = None) -> target_mod.TargetRuntime:
    """This interpreter's facts, with the distributions of ``site`` only (read by the real inspector)."""
    base = target_mod.in_process()
    return dataclasses.replace(
        base,
        site_dirs=[str(site)],
        distributions=interpreter.distributions([str(site)]),
        markers=markers or base.markers,
    )


def collect(target: target_mod.TargetRuntime) -> dict[str, Any]:
    data = PackagesProbe().collect(CaptureContext(CaptureOptions(), lambda: target))
    validate_member("<test>", "env/packages.json", data)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["normalized_name"]: d for d in data["distributions"]}


# --- in-process, on this dev venv -------------------------------------------------------------------


_IN_PROCESS = (
    "import json\n"
    "from envsnap.capture import target\n"
    "from envsnap.capture.base import CaptureContext, CaptureOptions\n"
    "from envsnap.capture.packages import PackagesProbe\n"
    "print(json.dumps(PackagesProbe().collect(CaptureContext(CaptureOptions(), target.in_process))))\n"
)


def test_in_process_lists_this_venv_with_kinds() -> None:
    # In a fresh process started outside the checkout: run from the repo root, ``python -m pytest`` puts
    # the root on sys.path, where setuptools' envsnap.egg-info build artifact shadows the real
    # dist-info (exactly as importlib.metadata would see it).
    out = subprocess.run([sys.executable, "-c", _IN_PROCESS], capture_output=True, text=True, check=True, cwd="/")
    data = json.loads(out.stdout)
    validate_member("<test>", "env/packages.json", data)
    dists = by_name(data)
    assert dists["envsnap-ml"]["location_kind"] == "editable"
    assert dists["envsnap-ml"]["direct_url"]["editable"] is True
    assert dists["envsnap-ml"]["direct_url"]["url"] == REPO.as_uri()
    assert dists["pytest"]["location_kind"] == "site"
    assert dists["pytest"]["installer"] == "pip"
    assert dists["pytest"]["direct_url"] is None
    assert "pytest" in dists["pytest"]["top_level"]
    assert {"idna", "urllib3", "certifi", "charset-normalizer"} <= set(dists["requests"]["dependencies"])
    assert "packaging" in dists["envsnap-ml"]["dependencies"]
    names = [d["normalized_name"] for d in data["distributions"]]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert any(site.endswith("site-packages") for site in data["site_dirs"])


def test_common_markers_do_not_import_packaging() -> None:
    """The probe decides the markers of this venv by itself: importing packaging costs ~9 ms."""
    code = (
        "import sys\n"
        "from envsnap.capture import target\n"
        "from envsnap.capture.packages import collect_packages\n"
        "t = target.in_process()\n"
        "collect_packages(t.site_dirs, t.distributions, t.markers)\n"
        "print('packaging.markers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"


# --- PEP 610 origins ----------------------------------------------------------------------------------


def test_every_direct_url_shape_gets_its_kind(tmp_path: Path) -> None:
    digest = "a" * 64
    write_dist(tmp_path, "plain")
    write_dist(tmp_path, "edit", direct_url={"url": "file:///src/edit", "dir_info": {"editable": True}})
    write_dist(tmp_path, "localdir", direct_url={"url": "file:///src/localdir", "dir_info": {}})
    write_dist(
        tmp_path,
        "localwheel",
        direct_url={"url": "file:///w/localwheel-1.0-py3-none-any.whl", "archive_info": {"hashes": {"sha256": digest}}},
    )
    write_dist(
        tmp_path,
        "remote",
        direct_url={
            "url": "https://example.org/remote-1.0.tar.gz",
            "archive_info": {"hash": f"sha256={digest.upper()}"},
        },
    )
    write_dist(
        tmp_path,
        "fromgit",
        direct_url={
            "url": "https://github.com/org/fromgit.git",
            "vcs_info": {"vcs": "git", "commit_id": "0123abc", "requested_revision": "v1"},
            "subdirectory": "pkg",
        },
    )
    write_dist(tmp_path, "broken", direct_url="{not json")
    dists = by_name(collect(target_of(tmp_path)))

    assert {n: d["location_kind"] for n, d in dists.items()} == {
        "plain": "site",
        "edit": "editable",
        "localdir": "local",
        "localwheel": "local",
        "remote": "url",
        "fromgit": "vcs",
        "broken": "url",
    }
    assert dists["localwheel"]["hashes"] == [f"sha256:{digest}"]
    assert dists["localwheel"]["direct_url"]["source"] == "archive"
    assert dists["remote"]["hashes"] == [f"sha256:{digest}"]  # legacy "hash" key, lower-cased
    assert dists["localdir"]["direct_url"]["source"] == "dir"
    git = dists["fromgit"]["direct_url"]
    assert (git["vcs"], git["commit_id"], git["requested_revision"], git["subdirectory"]) == (
        "git",
        "0123abc",
        "v1",
        "pkg",
    )
    assert dists["broken"]["direct_url"]["error"]
    assert dists["plain"]["hashes"] == []


def test_credentials_never_reach_the_record(tmp_path: Path) -> None:
    write_dist(
        tmp_path,
        "private",
        direct_url={
            "url": "https://deploy:s3cr3t-pass@git.example.org/team/private.git",
            "vcs_info": {"vcs": "git", "commit_id": "abc"},
        },
    )
    write_dist(
        tmp_path,
        "signed",
        direct_url={"url": "https://files.example.org/signed-1.0.whl?token=tok123456", "archive_info": {}},
    )
    write_dist(
        tmp_path,
        "over-ssh",
        direct_url={"url": "ssh://git@github.com/org/over-ssh.git", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
    )
    data = collect(target_of(tmp_path))
    text = json.dumps(data)
    # an SSH account name is no secret, and the clone needs it
    assert by_name(data)["over-ssh"]["direct_url"]["url"] == "ssh://git@github.com/org/over-ssh.git"
    assert "s3cr3t-pass" not in text
    assert "deploy" not in text
    assert "tok123456" not in text
    assert by_name(data)["private"]["direct_url"]["url"] == "https://git.example.org/team/private.git"


def test_legacy_develop_egg_info_is_editable(tmp_path: Path) -> None:
    project = tmp_path / "project"
    egg = project / "legacy.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 2.0\n", encoding="utf-8")
    (egg / "requires.txt").write_text("six\n[test]\npytest\n", encoding="utf-8")
    (project / "setup.py").write_text("from setuptools import setup\nsetup()\n", encoding="utf-8")
    site = tmp_path / "site-packages"
    old = site / "oldstyle-1.0-py3.11.egg-info"
    old.mkdir(parents=True)
    (old / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: oldstyle\nVersion: 1.0\n", encoding="utf-8")
    base = target_mod.in_process()
    target = dataclasses.replace(
        base, site_dirs=[str(project), str(site)], distributions=interpreter.distributions([str(project), str(site)])
    )
    dists = by_name(collect(target))
    assert dists["legacy"]["location_kind"] == "editable"
    assert dists["legacy"]["requires"] == ["six", 'pytest; extra == "test"']
    assert dists["oldstyle"]["location_kind"] == "site"


# --- the dependency graph -----------------------------------------------------------------------------


def test_graph_follows_the_targets_markers_not_envsnaps(tmp_path: Path) -> None:
    write_dist(
        tmp_path,
        "app",
        requires=('winonly; sys_platform == "win32"', 'backport; python_version < "3.9"', "common>=1", "absent"),
    )
    for name in ("winonly", "backport", "common"):
        write_dist(tmp_path, name)
    here = by_name(collect(target_of(tmp_path)))
    windows = by_name(collect(target_of(tmp_path, WINDOWS_PY38)))
    if sys.platform != "win32" and sys.version_info >= (3, 9):
        assert here["app"]["dependencies"] == ["common"]
    assert windows["app"]["dependencies"] == ["backport", "common", "winonly"]


def test_extras_requested_by_a_dependent_propagate(tmp_path: Path) -> None:
    write_dist(tmp_path, "client", requires=("Transport[SOCKS,fast]>=2",))
    write_dist(
        tmp_path,
        "transport",
        requires=(
            'pysocks; extra == "socks"',
            'speedups; extra == "fast"',
            'transport[tracing]; extra == "fast"',  # an extra turning on another extra of itself
            'tracer; extra == "tracing"',
            'docs-tool; extra == "docs"',
        ),
    )
    for name in ("pysocks", "speedups", "tracer", "docs-tool"):
        write_dist(tmp_path, name)
    dists = by_name(collect(target_of(tmp_path)))
    assert dists["client"]["dependencies"] == ["transport"]
    assert dists["transport"]["dependencies"] == ["pysocks", "speedups", "tracer"]
    assert dists["transport"]["extras_requested"] == ["fast", "socks", "tracing"]
    assert dists["docs-tool"]["extras_requested"] == []


def test_dependency_cycles_terminate() -> None:
    dists = [
        {"normalized_name": "a", "requires": ["b"]},
        {"normalized_name": "b", "requires": ["a[x]"]},
        {"normalized_name": "c", "requires": []},
    ]
    graph, extras = dependency_graph(dists, {"python_version": "3.11"})
    assert graph == {"a": ["b"], "b": ["a"], "c": []}
    assert extras["a"] == ["x"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("requests", ("requests", frozenset(), None)),
        ("Typing_Extensions>=4.6", ("typing-extensions", frozenset(), None)),
        (
            "jsonschema[Format-NonGPL] (>=4.25,<5.0) ; extra == 'validation'",
            ("jsonschema", frozenset({"format-nongpl"}), "extra == 'validation'"),
        ),
        ('pkg @ https://h/x.whl;sha=1 ; python_version >= "3"', ("pkg", frozenset(), 'python_version >= "3"')),
        ("pkg @ https://h/x.whl", ("pkg", frozenset(), None)),
        ("  ", None),
    ],
)
def test_parse_requirement(text: str, expected: Any) -> None:
    assert parse_requirement(text) == expected


# --- the fast marker path against packaging -----------------------------------------------------------

HANDWRITTEN_MARKERS = [
    'python_version < "3.11"',
    'python_version >= "3.8" and python_version < "4"',
    'python_full_version < "3.10.2"',
    'python_full_version == "3.11"',
    'python_version != "3.11"',
    'python_version <= "3.11" or sys_platform == "win32"',
    'sys_platform == "win32" or (os_name == "nt" and extra == "dev")',
    '(os_name == "nt" and implementation_name != "pypy") and extra == \'test\'',
    'platform_python_implementation != "PyPy"',
    'platform_system == "Linux" and platform_machine == "x86_64"',
    'extra == "Format_NonGPL"',
    'extra != "docs"',
    'implementation_name == "cpython" and python_version > "3.7"',
    # shapes only packaging decides: the fast path must say "undecided", never guess
    'python_version ~= "3.8"',
    '"linux" in sys_platform',
    'python_version == "3.*"',
    'platform_release >= "5"',
    'python_version < "3.12.0rc1"',
    'os_name == "1"',
]


def _corpus() -> list[str]:
    seen = set(HANDWRITTEN_MARKERS)
    for dist in target_mod.in_process().distributions:
        for requirement in dist["requires"]:
            parsed = parse_requirement(requirement)
            if parsed and parsed[2]:
                seen.add(parsed[2])
    return sorted(seen)


@pytest.mark.parametrize("environment", [target_mod.in_process().markers, WINDOWS_PY38], ids=["here", "win-py38"])
def test_fast_markers_agree_with_packaging(environment: dict[str, str]) -> None:
    evaluator = MarkerEvaluator(environment)
    decided = 0
    for marker in _corpus():
        for extra in ("", "test", "dev", "format-nongpl", "docs", "socks"):
            fast = fast_marker(marker, environment, extra)
            if fast is None:
                continue
            decided += 1
            assert fast == evaluator.exact(marker, extra), (marker, extra)
            assert evaluator(marker, extra) == fast
    assert decided > 100


@pytest.mark.parametrize(
    "marker",
    [
        'python_version ~= "3.8"',
        '"linux" in sys_platform',
        'python_version == "3.*"',
        'os_name == "1"',
        'python_version < "3.12.0rc1"',
    ],
)
def test_fast_path_leaves_hard_markers_to_packaging(marker: str) -> None:
    environment = target_mod.in_process().markers
    assert fast_marker(marker, environment, "") is None
    assert MarkerEvaluator(environment)(marker) == MarkerEvaluator(environment).exact(marker)


def test_collect_packages_is_pure_reshaping_of_its_input(tmp_path: Path) -> None:
    write_dist(tmp_path, "one", summary="The first")
    target = target_of(tmp_path)
    before = json.dumps(target.distributions, sort_keys=True)
    first = collect_packages(target.site_dirs, target.distributions, target.markers)
    second = collect_packages(target.site_dirs, target.distributions, target.markers)
    assert first == second
    assert json.dumps(target.distributions, sort_keys=True) == before
    assert by_name(first)["one"]["summary"] == "The first"
