"""The runtime fingerprint: sha256 over the canonical runtime contract.

The contract is what must match for two runs to be "the same runtime": the interpreter, the installed
package set, native library versions, configured thread settings, OS/glibc/architecture, the GPU driver
and the container image digest. Volatile facts (timestamps, memory in use, paths of the capture) are
left out, so the same environment always gives the same fingerprint and one changed package changes it.
Replay images are tagged with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from envsnap.snapshot import canonical

__all__ = ["fingerprint", "runtime_contract"]

CONTRACT_VERSION = 1


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _ok(data: Any) -> Any:
    """A failed probe's ``{"error": ...}`` contributes nothing but the fact that it failed."""
    if isinstance(data, Mapping) and set(data) == {"error"}:
        return {"failed": True}
    return data


def runtime_contract(sections: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical runtime contract from probe data keyed by probe name (``python``, ``packages``...)."""
    python = _ok(sections.get("python"))
    packages = _ok(sections.get("packages"))
    native = _ok(sections.get("native"))
    threads = _ok(sections.get("threads"))
    system = _ok(sections.get("system"))
    gpu = _ok(sections.get("gpu"))
    container = _ok(sections.get("container"))
    dists = _get(packages, "distributions") or []
    libs = _get(native, "libraries") or []
    devices = _get(gpu, "devices") or []
    return {
        "contract": CONTRACT_VERSION,
        "python": {k: _get(python, k) for k in ("implementation", "version", "platform", "soabi", "gil_disabled")},
        "packages": sorted(
            [d.get("normalized_name"), d.get("version"), d.get("location_kind")]
            for d in dists
            if isinstance(d, Mapping)
        ),
        "native": sorted({(str(lib.get("name")), str(lib.get("version"))) for lib in libs if isinstance(lib, Mapping)}),
        "threads": _get(threads, "configured"),
        "system": {
            "os": [_get(system, "os", "id"), _get(system, "os", "version_id")],
            "glibc": _get(system, "glibc"),
            "machine": _get(system, "kernel", "machine"),
        },
        "gpu": {
            "driver": _get(gpu, "driver_version"),
            "cuda": _get(gpu, "cuda_driver_version"),
            "devices": sorted(str(d.get("name")) for d in devices if isinstance(d, Mapping)),
        },
        # A locally built image has no registry digest; its image id identifies it as well.
        "image": _get(container, "image", "digest") or _get(container, "image", "id"),
        "failed": sorted(k for k, v in sections.items() if isinstance(v, Mapping) and set(v) == {"error"}),
    }


def fingerprint(sections: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical runtime contract."""
    return "sha256:" + hashlib.sha256(canonical.compact(runtime_contract(sections))).hexdigest()
