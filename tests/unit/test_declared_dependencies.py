"""Every third-party import in envsnap/ is a declared dependency, and every run-time dependency is used.

A deptry-like check over the AST (function-level imports included): an import that only works because
some other package happened to pull its distribution in breaks the day that package drops it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "envsnap"

# Code that runs in another interpreter (the job's own Python), never in envsnap's: what it imports
# belongs to the job (joblib, numpy, sklearn in the artifact loader), not to envsnap's dependencies.
TARGET_CODE = ("_target/",)
# Names in envsnap's code that are not imports of a distribution of ours: the user's own modules in
# examples and docstring-like snippets compiled into other interpreters.
NOT_DISTRIBUTIONS = {"envsnap"}
# Imports guarded by a Python-version condition that this interpreter never takes.
NOT_INSTALLED_HERE = {"tomli": ["tomli"]}


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        extra: {canonicalize_name(Requirement(r).name) for r in requirements}
        for extra, requirements in project.get("optional-dependencies", {}).items()
    }
    return core, extras


def _imports() -> Iterator[tuple[str, str]]:
    """(relative path, top-level module) of every absolute import in envsnap's own-process code."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(TARGET_CODE):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield relative, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield relative, node.module.split(".")[0]


def _third_party() -> dict[str, set[str]]:
    """distribution name -> the modules of envsnap that import it."""
    by_module = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for relative, module in _imports():
        if module in sys.stdlib_module_names or module in NOT_DISTRIBUTIONS or module == "__future__":
            continue
        distributions = by_module.get(module) or NOT_INSTALLED_HERE.get(module)
        assert distributions, f"{relative} imports {module!r}, which no installed distribution provides"
        for distribution in distributions:
            found.setdefault(canonicalize_name(distribution), set()).add(relative)
    return found


def test_every_import_is_declared() -> None:
    core, extras = _declared()
    optional = set().union(*(names for extra, names in extras.items() if extra != "dev"))
    undeclared = {
        distribution: sorted(modules)
        for distribution, modules in _third_party().items()
        if distribution not in core and distribution not in optional
    }
    assert not undeclared, f"imported but not declared in [project] dependencies or an extra: {undeclared}"


def test_optional_imports_live_in_optional_modules() -> None:
    """A distribution from an extra is imported only where its absence is handled (integrations, probes)."""
    core, _extras = _declared()
    allowed = {
        "nvidia-ml-py": ("capture/gpu.py",),
        "ray": ("integrations/",),
        "pyspark": ("integrations/",),
        "mlflow-skinny": ("core/mlflow_runs.py",),
        "pytest": ("integrations/pytest_plugin.py", "testing.py", "check/testing.py"),
    }
    for distribution, modules in _third_party().items():
        if distribution in core:
            continue
        assert distribution in allowed, (distribution, sorted(modules))
        stray = [m for m in modules if not m.startswith(allowed[distribution])]
        assert not stray, f"{distribution} (an optional extra) imported from {stray}"


def test_every_runtime_dependency_is_used() -> None:
    """A run-time dependency nothing imports is weight on every user's install (jsonschema was one)."""
    core, _extras = _declared()
    used = set(_third_party())
    # tomli is the Python < 3.11 stand-in for tomllib (imported under that condition only).
    unused = core - used - {"tomli"}
    assert not unused, f"declared in [project] dependencies but never imported by envsnap: {sorted(unused)}"


def test_the_distribution_is_not_the_unrelated_pypi_envsnap() -> None:
    """'envsnap' on PyPI is another project: ours is envsnap-ml, whatever the import name."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert canonicalize_name(str(project["name"])) == "envsnap-ml"
