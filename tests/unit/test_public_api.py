"""The public surface: ``__all__`` in every public module, names that exist, a small cheap top level.

A module is public when neither its name nor a package on its path starts with ``_`` (a public package's
``__init__.py`` counts as the package). ``__all__`` is what a reader, a star import and the type checker
take as the module's API, so a public module without one, or an ``__all__`` naming something the module
does not have, misleads all three.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import envsnap

PACKAGE_DIR = Path(envsnap.__file__).parent

TOP_LEVEL = ["EnvsnapError", "Pipeline", "Snapshot", "__version__", "load", "on_failure", "run_pipeline"]
#: What ``import envsnap`` may load: the version and the error types, everything else on first use.
LOADED_BY_IMPORT = {"envsnap", "envsnap._version", "envsnap.errors"}


def _public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))
    return names


PUBLIC_MODULES = _public_modules()


def test_public_modules_are_found() -> None:
    # Guards the walk above: an empty or partial list would make every test below pass vacuously.
    assert {"envsnap", "envsnap.errors", "envsnap.capture", "envsnap.diff.render.text", "envsnap.cli"} <= set(
        PUBLIC_MODULES
    )
    assert not [name for name in PUBLIC_MODULES if "._" in name]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    if "__all__" not in vars(module):
        pytest.fail(f"{name} has no __all__")
    exported = module.__all__
    assert all(isinstance(item, str) for item in exported), f"{name}.__all__ holds a non-string"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what {name} does not have: {missing}"


def test_top_level_all() -> None:
    assert envsnap.__all__ == TOP_LEVEL


def test_import_envsnap_loads_only_version_and_errors() -> None:
    # A fresh interpreter: this process has imported half the package already.
    code = (
        "import json, sys\n"
        "import envsnap\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'envsnap' or m.startswith('envsnap.'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE_DIR.parent, capture_output=True, text=True, check=True
    )
    assert set(json.loads(proc.stdout)) == LOADED_BY_IMPORT
