"""Structural rules of the package (docs/architecture.md): no import cycles, no name shadowing.

* An import cycle among envsnap's modules (function-level imports included, ``if TYPE_CHECKING:`` blocks
  excluded) fails, naming the modules of the cycle.
* A package attribute named like one of its submodules must be that submodule: a function named like a
  sibling module stops being callable the day the submodule is imported (``envsnap.replay.plan`` did).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import envsnap

PACKAGE_DIR = Path(envsnap.__file__).resolve().parent


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports_of(child)
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The envsnap modules an import statement in ``module`` loads by name (not their parent packages)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in MODULES:
                yield alias.name
        return
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if not target.startswith("envsnap"):
        return
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        if submodule in MODULES:
            yield submodule
        elif target in MODULES:
            yield target


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = {t for node in _imports(tree) for t in _resolve(name, node) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_envsnap_modules() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (move the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def _all_submodules() -> list[types.ModuleType]:
    loaded = [envsnap]
    for info in pkgutil.walk_packages(envsnap.__path__, prefix="envsnap."):
        loaded.append(importlib.import_module(info.name))
    return loaded


def test_package_attributes_named_like_submodules_are_those_submodules() -> None:
    shadowed = []
    for module in _all_submodules():
        if not hasattr(module, "__path__"):
            continue
        for info in pkgutil.iter_modules(module.__path__):
            full = f"{module.__name__}.{info.name}"
            attribute = getattr(module, info.name, None)
            if attribute is not sys.modules.get(full):
                shadowed.append(f"{full} is {type(attribute).__name__}, not the submodule")
    assert not shadowed, shadowed


def test_no_module_replaces_its_own_class() -> None:
    """A module made callable by swapping its class (``_CallableModule``) hides the shadowing above."""
    odd = [m.__name__ for m in _all_submodules() if type(m) is not types.ModuleType]
    assert not odd, odd


def _bound_names(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """(name, how) for each top-level name a module binds by def, class, assignment or ``from X import``."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, type(node).__name__
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, "assignment"
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                yield alias.asname or alias.name, f"from {'.' * node.level}{node.module or ''} import {alias.name}"


def test_no_package_binds_a_name_of_its_own_submodules() -> None:
    """Statically too: the import system rebinds the attribute once the submodule loads, which hides a
    function named like its sibling module (``replay.plan``) from the runtime check above until it breaks."""
    clashes = []
    for name, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        submodules = {info.name for info in pkgutil.iter_modules([str(path.parent)])}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for bound, how in _bound_names(tree):
            if bound in submodules and how != f"from . import {bound}" and not how.endswith(f"{name} import {bound}"):
                clashes.append(f"{name}.{bound} ({how}) shadows the submodule {name}.{bound}")
    assert not clashes, clashes


def test_only_the_cli_and_integrations_import_integrations() -> None:
    """The optional extras sit on top: a library layer that imports them breaks without the extra."""
    graph = import_graph()
    reaching = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if target.startswith("envsnap.integrations") and not module.startswith(("envsnap.integrations", "envsnap.cli"))
    )
    assert not reaching, reaching
