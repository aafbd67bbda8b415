"""What a fleet worker runs: the shipped package loaded from its sources, then the node probe.

Ray's and Spark's cloudpickle ship :func:`run_payload` (and :func:`partition_runner`) *by value*: the
driver compiles this module under a name no worker can import (:func:`envsnap._target.detached`) and
passes the sources of the shipped modules as an argument. On the worker :func:`load_package` turns them
into a package again, so that the modules import each other as they do everywhere else, and
:func:`run_payload` answers what :func:`.node_probe.collect` gathered.

Shipped code (see :mod:`envsnap._target`), and compiled alone: standard library only, Python 3.8 syntax,
no relative import.
"""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import Callable, Mapping
from typing import Any


def load_package(sources: Mapping[str, str], name: str) -> dict[str, types.ModuleType]:
    """Run each source (top-level modules, dependencies first) as a module of the package ``name``.

    The modules are in ``sys.modules`` only while they load, which is when relative imports resolve;
    nothing of them stays behind in a long-lived worker.
    """
    root = types.ModuleType(name, "envsnap's code shipped into this interpreter")
    root.__path__ = []  # a package whose modules are the ones registered below
    sys.modules[name] = root
    loaded: dict[str, types.ModuleType] = {}
    try:
        for module, text in sources.items():
            full = name + "." + module
            namespace = types.ModuleType(full)
            namespace.__package__ = name
            namespace.__file__ = "<" + full + ">"
            sys.modules[full] = namespace
            exec(compile(text, namespace.__file__, "exec"), namespace.__dict__)  # noqa: S102 - envsnap's own source
            setattr(root, module, namespace)
            loaded[module] = namespace
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    return loaded


def run_payload(sources: Mapping[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """What a worker runs: load the shipped modules, then answer :func:`.node_probe.collect`.

    Nothing escapes as an exception: a worker whose Python cannot run the payload (too old, a broken
    standard library) answers ``{"payload_error": {...}}``, which the driver records for that node.
    """
    try:
        if sys.version_info < (3, 8):  # noqa: UP036 - the worker's Python, not envsnap's
            raise RuntimeError("Python {}.{} is older than 3.8".format(*sys.version_info[:2]))
        modules = load_package(sources, "_envsnap_target_" + uuid.uuid4().hex)
        result: dict[str, Any] = modules["node_probe"].collect(options)
        return result
    except Exception as exc:  # noqa: BLE001 - every failure on the worker becomes that node's error record
        return {
            "payload_error": {
                "type": type(exc).__name__,
                "message": str(exc)[:500],
                "python": sys.version.split()[0],
                "executable": sys.executable,
            }
        }


def partition_runner(sources: Mapping[str, str], options: dict[str, Any]) -> Callable[[Any], Any]:
    """A ``mapPartitions`` function (Spark) that answers one payload per partition. Defined here so that
    it, too, is shipped by value with :func:`run_payload`."""

    def run(rows: Any) -> Any:
        yield run_payload(sources, options)

    return run
