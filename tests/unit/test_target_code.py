"""Code shipped into other interpreters (``envsnap._target``): Python 3.8, the standard library, nothing else.

Every shipped module runs where envsnap is not installed (the job's ``--python``, a replay, a Ray or Spark
worker) and on Python as old as 3.8. One guard covers all of them: each file parses as Python 3.8, imports
at module level only the standard library and its sibling modules (relatively, never above the package),
imports the target's own pyarrow/pandas only lazily, avoids the few newer APIs we have been bitten by,
and keeps annotations unevaluated. The checker is also run on bad sources, so that it is known to fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import envsnap._target as target

TARGET_DIR = Path(target.__file__).resolve().parent
STDLIB = frozenset(sys.stdlib_module_names)
# Standard-library modules a 3.8 interpreter does not have.
NEWER_STDLIB = frozenset({"graphlib", "tomllib", "zoneinfo", "_typing"})
# Methods added after 3.8 that read naturally on 3.11 and break a 3.8 target.
NEWER_METHODS = frozenset({"removeprefix", "removesuffix", "is_relative_to", "bit_count"})
# Libraries of the target, imported inside the functions that need them (the stage runner's parquet).
TARGET_LIBRARIES = frozenset({"pyarrow", "pandas", "polars", "numpy", "scipy", "sklearn", "joblib"})


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run on import (``if``/``try`` bodies included, ``if TYPE_CHECKING:`` left out)."""
    out: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        out.append(node)
        if isinstance(node, ast.If) and not _is_type_checking(node.test):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
    return out


def problems(source: str, depth: int) -> list[str]:
    """What keeps ``source`` (a module ``depth`` packages below ``_target``) from running on a 3.8 target."""
    try:
        tree = ast.parse(source, feature_version=(3, 8))
    except SyntaxError as exc:
        return [f"not Python 3.8 syntax: {exc.msg} (line {exc.lineno})"]
    found = []
    top_level = _module_level(tree)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [(node.module or "").split(".")[0]]
        elif isinstance(node, ast.ImportFrom) and node.level > depth + 1:
            found.append(f"line {node.lineno}: a relative import above the shipped package")
        elif isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS:
            found.append(f"line {node.lineno}: .{node.attr}() is newer than Python 3.8")
        for name in names:
            allowed = STDLIB - NEWER_STDLIB if node in top_level else (STDLIB - NEWER_STDLIB) | TARGET_LIBRARIES
            if name not in allowed:
                where = "at module level" if node in top_level else "in a function"
                found.append(f"line {node.lineno}: imports {name!r} {where}")
    annotated = any(
        isinstance(node, ast.AnnAssign) or (isinstance(node, ast.arg) and node.annotation is not None)
        for node in ast.walk(tree)
    ) or any(isinstance(node, ast.FunctionDef) and node.returns is not None for node in ast.walk(tree))
    future = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    if annotated and not future:
        found.append("annotations without `from __future__ import annotations` are evaluated on 3.8")
    return found


def _shipped_files() -> list[Path]:
    return sorted(p for p in TARGET_DIR.rglob("*.py") if p != TARGET_DIR / "__init__.py")


def test_every_file_of_target_is_shipped_code_and_the_only_exception_is_the_in_process_side() -> None:
    files = {p.relative_to(TARGET_DIR).with_suffix("").as_posix().replace("/", ".") for p in _shipped_files()}
    files = {name.removesuffix(".__init__") for name in files}
    assert set(target.shipped_modules()) == files
    assert {"interpreter", "host", "system", "artifact_load", "node_probe", "payload", "fidelity_probe"} <= files
    assert {"runner", "runner.main", "runner.stages"} <= files


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: p.relative_to(TARGET_DIR).as_posix())
def test_shipped_code_runs_on_python_3_8_with_the_standard_library_alone(path: Path) -> None:
    depth = len(path.relative_to(TARGET_DIR).parts) - 1
    assert problems(path.read_text(encoding="utf-8"), depth) == []


@pytest.mark.parametrize(
    ("source", "depth", "expected"),
    [
        ("match x:\n    case 1:\n        pass\n", 0, "not Python 3.8 syntax"),
        ("import numpy\n", 0, "imports 'numpy' at module level"),
        ("from envsnap.errors import EnvsnapError\n", 0, "imports 'envsnap' at module level"),
        ("def f():\n    from envsnap import capture\n", 0, "imports 'envsnap' in a function"),
        ("try:\n    import pyarrow\nexcept ImportError:\n    pass\n", 0, "imports 'pyarrow' at module level"),
        ("import zoneinfo\n", 0, "imports 'zoneinfo' at module level"),
        ("from .. import capture\n", 0, "a relative import above the shipped package"),
        ("from ... import capture\n", 1, "a relative import above the shipped package"),
        ("name = 'a_b'.removeprefix('a_')\n", 0, ".removeprefix() is newer than Python 3.8"),
        ("def f(x: list[str]) -> None:\n    pass\n", 0, "annotations without `from __future__"),
    ],
)
def test_the_guard_fails_on_each_kind_of_violation(source: str, depth: int, expected: str) -> None:
    found = problems(source, depth)
    assert any(expected in problem for problem in found), found


def test_the_guard_accepts_what_shipped_code_may_do() -> None:
    source = (
        "from __future__ import annotations\nimport json\nfrom . import host\nfrom ..system import x\n"
        "def f(x: list[str]) -> None:\n    import pyarrow\n"
    )
    assert problems(source, 1) == []


def test_the_installed_package_imports_without_site_packages(tmp_path: Path) -> None:
    """Every shipped module imports in an interpreter that sees the standard library only (``-S -I``):
    no envsnap, no pyarrow on its path."""
    target.install(tmp_path)
    modules = target.shipped_modules()
    code = (
        f"import sys; sys.path.append({str(tmp_path)!r}); import importlib\n"
        f"for name in {modules!r}:\n    importlib.import_module({target.PACKAGE!r} + '.' + name)\n"
        "assert 'envsnap' not in sys.modules and 'pyarrow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
