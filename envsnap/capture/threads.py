"""``env/threads.json``: thread settings as configured, against what the process can actually use.

``configured`` holds the thread knobs found in the environment (OMP_*, MKL_*, OPENBLAS_*, ...); it is part
of the runtime fingerprint, because a different thread count changes floating-point reduction order.
``effective`` holds what the machine grants (CPU count, affinity, cgroup quota) and what the BLAS/OpenMP
pools loaded in-process run with. ``mismatches`` spells out the disagreements that explain slow or
non-reproducible runs (more threads than CPUs, a pool ignoring its variable).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from envsnap._target.host import current_cgroup_limits
from envsnap._target.system import format_cpu_list
from envsnap.capture.base import CaptureContext, Probe, register

__all__ = [
    "KNOB_NAMES",
    "KNOB_PREFIXES",
    "ThreadsProbe",
    "configured_knobs",
    "find_mismatches",
    "is_thread_knob",
    "parse_thread_count",
    "usable_cpus",
]

KNOB_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "GOTO_", "BLIS_", "KMP_", "GOMP_", "NUMEXPR_", "TF_NUM_", "NUMBA_")
KNOB_NAMES = frozenset(
    {
        "VECLIB_MAXIMUM_THREADS",
        "TORCH_NUM_THREADS",
        "RAYON_NUM_THREADS",
        "POLARS_MAX_THREADS",
        "TOKENIZERS_PARALLELISM",
        "ARROW_NUM_THREADS",
        "ARROW_IO_THREADS",
        "JULIA_NUM_THREADS",
    }
)
# Variables whose value is a thread count (OMP_NUM_THREADS may be a nested list such as "4,2").
COUNT_KNOBS = (
    "OMP_NUM_THREADS",
    "OMP_THREAD_LIMIT",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "NUMBA_NUM_THREADS",
    "TORCH_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "ARROW_NUM_THREADS",
)
# Which variables each threadpoolctl internal_api obeys, in the order the library consults them.
POOL_KNOBS = {
    "openblas": ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"),
    "mkl": ("MKL_NUM_THREADS", "OMP_NUM_THREADS"),
    "blis": ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"),
    "flexiblas": ("FLEXIBLAS_NUM_THREADS", "OMP_NUM_THREADS"),
    "openmp": ("OMP_NUM_THREADS",),
}


_POOL_KEYS = ("internal_api", "user_api", "num_threads")


def is_thread_knob(name: str) -> bool:
    """Whether an environment variable configures threading of a numeric library."""
    return name in KNOB_NAMES or name.startswith(KNOB_PREFIXES) or name.startswith("FLEXIBLAS_")


def configured_knobs(environ: Mapping[str, str]) -> dict[str, str]:
    """Thread knobs set in ``environ``, sorted by name."""
    return {name: environ[name] for name in sorted(environ) if is_thread_knob(name)}


def parse_thread_count(value: str) -> int | None:
    """``"8"`` → 8; ``"4,2"`` (OpenMP nesting) → 4 (the outer level); anything else → None."""
    first = value.strip().split(",", 1)[0].strip()
    return int(first) if first.isdigit() else None


def usable_cpus(affinity_count: int | None, cgroup_cpus: float | None, cpu_count: int | None) -> int | None:
    """CPUs a process can keep busy: the affinity set, capped by the cgroup quota (rounded up)."""
    candidates = [c for c in (affinity_count, cpu_count) if c]
    usable = min(candidates) if candidates else None
    if cgroup_cpus:
        quota = max(1, math.ceil(cgroup_cpus))
        usable = min(usable, quota) if usable else quota
    return usable


def find_mismatches(
    configured: Mapping[str, str],
    effective: Mapping[str, Any],
    pools: Sequence[Mapping[str, Any]] | None,
) -> list[str]:
    """Human-readable disagreements between the configured and the effective thread settings."""
    found: list[str] = []
    usable = effective.get("usable_cpus")
    affinity = effective.get("affinity_count")
    quota = effective.get("cgroup_cpus")
    for knob in COUNT_KNOBS:
        if knob not in configured:
            continue
        value = configured[knob]
        count = parse_thread_count(value)
        if count is None:
            found.append(f"{knob}={value!r} is not a thread count")
        elif count == 0:
            found.append(f"{knob}=0 asks for no threads; libraries fall back to their default")
        elif usable and count > usable:
            found.append(f"{knob}={value} but only {usable} CPU{'s are' if usable != 1 else ' is'} usable")
    if quota and affinity and quota < affinity:
        found.append(
            f"the cgroup CPU quota allows {quota:g} CPUs but {affinity} are in the affinity set; "
            "pools sized by CPU count oversubscribe"
        )
    for pool in pools or ():
        api = str(pool.get("internal_api") or "")
        threads = pool.get("num_threads")
        if not isinstance(threads, int):
            continue
        pool_knob = next((k for k in POOL_KNOBS.get(api, ()) if k in configured), None)
        wanted = parse_thread_count(configured[pool_knob]) if pool_knob else None
        if pool_knob and wanted and threads != wanted:
            found.append(f"{api} pool runs {threads} threads while {pool_knob}={configured[pool_knob]}")
        elif pool_knob is None and usable and threads > usable:
            found.append(f"{api} pool runs {threads} threads on {usable} usable CPUs (no thread variable set)")
    return sorted(set(found))


def _affinity() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None  # macOS and Windows have no sched_getaffinity


def _pools(ctx: CaptureContext) -> Sequence[Mapping[str, Any]] | None:
    """Pools the native probe saw (in-process only); asked of threadpoolctl only if it did not run."""
    if not ctx.target.in_process:
        return None
    native = ctx.results.get("native")
    if isinstance(native, Mapping) and isinstance(native.get("pools"), list):
        return list(native["pools"])
    from envsnap._target.host import read_text
    from envsnap.capture.native import parse_proc_maps, threadpool_pools

    maps = read_text("/proc/self/maps", 1 << 24)
    return threadpool_pools(parse_proc_maps(maps) if maps is not None else None)


def _cgroup(ctx: CaptureContext) -> Mapping[str, Any]:
    system = ctx.results.get("system")
    cgroup = system.get("cgroup") if isinstance(system, Mapping) else None
    if isinstance(cgroup, Mapping):
        return cgroup  # the system probe ran first; do not read the files twice
    return current_cgroup_limits()


@register
class ThreadsProbe(Probe):
    """Configured thread knobs, effective CPU budget, pool sizes and the mismatches between them."""

    name = "threads"
    member = "env/threads.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        configured = configured_knobs(ctx.options.environ)
        affinity = _affinity()
        cgroup = _cgroup(ctx)
        cgroup_cpus = (cgroup.get("cpu") or {}).get("effective_cpus")
        cpu_count = os.cpu_count()
        pools = _pools(ctx)
        effective: dict[str, Any] = {
            "cpu_count": cpu_count,
            "affinity": format_cpu_list(affinity) if affinity is not None else None,
            "affinity_count": len(affinity) if affinity is not None else None,
            "cgroup_cpus": cgroup_cpus,
            "usable_cpus": usable_cpus(len(affinity) if affinity is not None else None, cgroup_cpus, cpu_count),
            "pools": None if pools is None else [{key: p.get(key) for key in _POOL_KEYS} for p in pools],
        }
        return {
            "configured": configured,
            "effective": effective,
            "mismatches": find_mismatches(configured, effective, pools),
        }
