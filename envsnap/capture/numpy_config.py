"""numpy's build configuration, read from ``numpy/__config__.py`` without importing numpy.

numpy ≥ 1.26 generates ``__config__.py`` at build time with a ``CONFIG = _cleanup({...})`` literal:
compilers, machine, and the BLAS/LAPACK it was built against (name, version, OpenBLAS configuration).
Importing numpy to call ``show_config`` costs ~100 ms and runs the user's library inside envsnap or the
target; parsing the file with :mod:`ast` costs about a millisecond, is the same for an in-process and a
``--python`` capture, and never executes it. Runtime-only facts (``__cpu_features__``, the SIMD found on
this CPU) are not in the file; they are recorded as ``null``. Older numpy's ``*_info`` dicts are read the
same way.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from typing import Any

__all__ = ["numpy_build_config", "parse_numpy_config"]

_MAX_SIZE = 1 << 20


def _value(node: ast.AST) -> Any:
    """A JSON-able value for a literal-ish AST node; names and other code become None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, (str, int, float, bool)) or node.value is None else None
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values, strict=False):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                out[key.value] = _value(value)
        return out
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "_cleanup" and node.args:
            return _value(node.args[0])
        if node.func.id == "bool" and node.args:
            # bool("True".lower().replace("false", "")): the meson template's way of spelling a flag; the
            # flag is the receiver at the bottom of the method chain.
            inner = node.args[0]
            while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                inner = inner.func.value
            if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                return inner.value.lower() != "false"
    return None


def _cleanup(value: Any) -> Any:
    """Drop falsy values recursively, exactly as numpy's own ``_cleanup`` does to its CONFIG."""
    if isinstance(value, dict):
        cleaned = {k: _cleanup(v) for k, v in value.items() if v}
        return {k: v for k, v in cleaned.items() if v}
    return value


def parse_numpy_config(source: str) -> dict[str, Any] | None:
    """The build configuration in the text of a ``numpy/__config__.py``, or None when it has none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    config: Any = None
    legacy: dict[str, Any] = {}
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target = stmt.targets[0]
        if not isinstance(target, ast.Name):
            continue
        if target.id == "CONFIG":
            config = _value(stmt.value)
        elif target.id.endswith("_info") and isinstance(stmt.value, ast.Dict):
            legacy[target.id] = _value(stmt.value)
    cleaned: dict[str, Any] = _cleanup(config if isinstance(config, dict) else legacy)
    return cleaned or None


def numpy_build_config(site_dirs: Iterable[str]) -> dict[str, Any] | None:
    """``{"version", "config", "source": "static"}`` for the first numpy on ``site_dirs``, or None."""
    for site_dir in site_dirs:
        path = os.path.join(site_dir, "numpy", "__config__.py")
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(_MAX_SIZE)
        except OSError:
            continue
        config = parse_numpy_config(text)
        version = None
        try:
            with open(os.path.join(site_dir, "numpy", "version.py"), encoding="utf-8") as fh:
                for line in fh.read(1 << 16).splitlines():
                    if line.startswith(("version", "__version__")) and "=" in line:
                        version = line.split("=", 1)[1].strip().strip("\"'")
                        break
        except OSError:
            pass
        return {"version": version, "config": config, "source": "static"}
    return None
