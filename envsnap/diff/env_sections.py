"""Per-section differs of the runtime members: python, native, threads, envvars, gpu, container, git, system.

Each takes the two parsed members (already schema-validated, never an error member; python, threads and
system as their typed sections of :mod:`envsnap.snapshot.sections`) and returns a :class:`SectionDiff`.
Keys are stable dotted names (``blas:openblas.num_threads``, ``cgroup.memory``) so that renderers and
suspect ranking can match on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envsnap.diff.env_common import SectionChanges, get
from envsnap.diff.model import SectionDiff

if TYPE_CHECKING:
    from envsnap.snapshot.sections import PythonSection, SystemSection, ThreadPool, ThreadsSection

__all__ = [
    "diff_container",
    "diff_envvars",
    "diff_git",
    "diff_gpu",
    "diff_native",
    "diff_python",
    "diff_system",
    "diff_threads",
]


def diff_python(a: PythonSection, b: PythonSection) -> SectionDiff:
    """Interpreter identity: implementation, version, executable, platform/SOABI, build, venv."""
    out = SectionChanges("python")
    out.attributes(
        a,
        b,
        ("implementation", "version", "executable", "platform", "soabi", "abiflags", "gil_disabled", "compiler"),
    )
    out.field("build", _as_list(a.build), _as_list(b.build))
    out.field("venv", a.is_venv, b.is_venv)
    out.field("prefix", a.prefix, b.prefix)
    return out.result()


def _as_list(items: tuple[Any, ...] | None) -> list[Any] | None:
    # Changes hold JSON values: a sequence reads back as the list the member held.
    return None if items is None else list(items)


# --- native ---------------------------------------------------------------------------------------------

_POOL_FIELDS = ("internal_api", "version", "threading_layer", "num_threads", "architecture")


def _pool_label(pool: Mapping[str, Any]) -> str:
    return f"{pool.get('user_api') or '?'}:{pool.get('internal_api') or pool.get('prefix') or '?'}"


def _group_pools(pools: Any) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for pool in pools or ():
        groups.setdefault(str(pool.get("user_api") or "?"), []).append(pool)
    for items in groups.values():
        items.sort(key=lambda p: (str(p.get("internal_api")), str(p.get("prefix")), str(p.get("filepath"))))
    return groups


def _diff_pools(out: SectionChanges, a: Any, b: Any) -> None:
    """BLAS/OpenMP pools (threadpoolctl): vendor, version, threading layer, num_threads per user API.

    Pools are paired within a user API (blas, openmp) in a stable order, so that a vendor switch (OpenBLAS
    → MKL) reads as one ``internal_api`` change rather than a removal and an addition.
    """
    if a is None or b is None:
        if a != b:
            out.notes.append("BLAS/OpenMP pools were read on one side only (captured out of process on the other)")
        return
    old, new = _group_pools(a), _group_pools(b)
    for api in sorted(set(old) | set(new)):
        left, right = old.get(api, []), new.get(api, [])
        for index in range(max(len(left), len(right))):
            pa = left[index] if index < len(left) else None
            pb = right[index] if index < len(right) else None
            suffix = f"#{index + 1}" if max(len(left), len(right)) > 1 else ""
            if pb is None and pa is not None:
                out.add(f"{_pool_label(pa)}{suffix}", "removed", {k: pa.get(k) for k in _POOL_FIELDS}, None)
            elif pa is None and pb is not None:
                out.add(f"{_pool_label(pb)}{suffix}", "added", None, {k: pb.get(k) for k in _POOL_FIELDS})
            elif pa is not None and pb is not None:
                label = f"{api}{suffix}"
                for key in _POOL_FIELDS:
                    name = "vendor" if key == "internal_api" else key
                    out.field(f"{label}.{name}", pa.get(key), pb.get(key))


def _library_key(lib: Mapping[str, Any]) -> str:
    owner = lib.get("distribution") or lib.get("package")
    return f"lib:{lib.get('name')} ({owner})" if owner else f"lib:{lib.get('name')}"


def _numpy_blas(config: Any, part: str) -> tuple[Any, Any]:
    deps = get(config, "config.Build Dependencies")
    entry = deps.get(part) if isinstance(deps, Mapping) else None
    return get(entry, "name"), get(entry, "version")


def diff_native(a: Any, b: Any) -> SectionDiff:
    """Pools, vendored native libraries (name/version), numpy's BLAS/LAPACK build and CUDA libraries."""
    out = SectionChanges("native")
    _diff_pools(out, get(a, "pools"), get(b, "pools"))
    libs_a = {_library_key(lib): lib.get("version") for lib in get(a, "libraries") or ()}
    libs_b = {_library_key(lib): lib.get("version") for lib in get(b, "libraries") or ()}
    out.keyed("", libs_a, libs_b)
    for part in ("blas", "lapack"):
        name_a, version_a = _numpy_blas(get(a, "numpy_config"), part)
        name_b, version_b = _numpy_blas(get(b, "numpy_config"), part)
        out.field(f"numpy.{part}.name", name_a, name_b, note="BLAS numpy was built against")
        out.field(f"numpy.{part}.version", version_a, version_b)
    out.field("cuda.toolkit", get(a, "cuda.toolkit.version"), get(b, "cuda.toolkit.version"))
    for where in ("site", "system"):
        cuda_a = {f"cuda.{where}:{lib.get('name')}": lib.get("version") for lib in get(a, f"cuda.{where}") or ()}
        cuda_b = {f"cuda.{where}:{lib.get('name')}": lib.get("version") for lib in get(b, f"cuda.{where}") or ()}
        out.keyed("", cuda_a, cuda_b)
    return out.result()


# --- threads --------------------------------------------------------------------------------------------


_EFFECTIVE_FIELDS = tuple(
    f"effective.{name}" for name in ("cpu_count", "affinity", "affinity_count", "cgroup_cpus", "usable_cpus")
)


def diff_threads(a: ThreadsSection, b: ThreadsSection) -> SectionDiff:
    """Configured thread settings, the effective CPU budget and pool sizes, and the mismatches found."""
    out = SectionChanges("threads")
    out.keyed("configured:", a.configured, b.configured)
    out.attributes(a, b, _EFFECTIVE_FIELDS)
    pools_a, pools_b = a.effective.pools, b.effective.pools
    if pools_a is not None and pools_b is not None:
        out.keyed("effective.pool:", _pool_sizes(pools_a), _pool_sizes(pools_b))
    elif pools_a != pools_b:
        out.notes.append("pool sizes were read on one side only")
    old, new = set(a.mismatches), set(b.mismatches)
    for text in sorted(old - new):
        out.add("mismatch", "removed", text, None)
    for text in sorted(new - old):
        out.add("mismatch", "added", None, text)
    return out.result()


def _pool_sizes(pools: tuple[ThreadPool, ...]) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for pool in pools:
        key = f"{pool.user_api or '?'}:{pool.internal_api or '?'}"
        n, unique = 2, key
        while unique in sizes:  # two OpenBLAS copies (numpy's and scipy's) are two pools
            unique, n = f"{key}#{n}", n + 1
        sizes[unique] = pool.num_threads
    return sizes


# --- envvars --------------------------------------------------------------------------------------------


def _digests_comparable(a: Any, b: Any) -> tuple[bool, str | None]:
    pa, pb = get(a, "policy"), get(b, "policy")
    if not (get(pa, "comparable") and get(pb, "comparable")):
        return False, "cannot tell: a snapshot has no redaction key (no digests)"
    if get(pa, "key_id") != get(pb, "key_id"):
        return False, "cannot tell: different redaction keys"
    return True, None


def diff_envvars(a: Any, b: Any) -> SectionDiff:
    """Names added and removed; values where both sides kept them; redacted values as changed or not.

    A redacted value is compared through its HMAC digest, and only when both policies are comparable with
    the same key id; otherwise ``value_changed`` is None. Digests never leave this function.
    """
    out = SectionChanges("envvars")
    comparable, why_not = _digests_comparable(a, b)
    vars_a: Mapping[str, Any] = get(a, "variables") or {}
    vars_b: Mapping[str, Any] = get(b, "variables") or {}
    undecided = 0
    for name in sorted(set(vars_a) | set(vars_b)):
        old, new = vars_a.get(name), vars_b.get(name)
        if new is None or old is None:
            entry = old if old is not None else new
            kept = isinstance(entry, Mapping) and "value" in entry
            value = entry.get("value") if kept and isinstance(entry, Mapping) else None
            if old is not None:
                out.add(name, "removed", value, None, redacted=not kept)
            else:
                out.add(name, "added", None, value, redacted=not kept)
            continue
        if "value" in old and "value" in new:
            if old["value"] != new["value"]:
                out.add(name, "changed", old["value"], new["value"], value_changed=True)
            continue
        # At least one side is redacted: only digests may speak, and only under the same key.
        digest_a, digest_b = old.get("digest"), new.get("digest")
        if comparable and digest_a is not None and digest_b is not None:
            if digest_a != digest_b:
                out.add(name, "changed", redacted=True, value_changed=True, note="redacted value changed")
            elif ("value" in old) != ("value" in new):
                out.add(name, "changed", redacted=True, value_changed=False, note="same value, now redacted")
            continue
        undecided += 1
        note = why_not or "cannot tell: no digest recorded"
        out.add(name, "changed", redacted=True, value_changed=None, note=note)
    allow_a = set(get(a, "policy.allow") or ())
    allow_b = set(get(b, "policy.allow") or ())
    if allow_a != allow_b:
        out.add(
            "policy.allow",
            "changed",
            sorted(allow_a - allow_b),
            sorted(allow_b - allow_a),
            note="value allow-list patterns: before = only in a, after = only in b",
        )
    if undecided:
        out.notes.append(f"{undecided} redacted value(s) not comparable ({why_not or 'no digest recorded'})")
    return out.result()


# --- gpu, container, git --------------------------------------------------------------------------------

_DEVICE_FIELDS = ("name", "memory_total_mib", "compute_capability", "mig_mode", "architecture", "compute_mode")


def diff_gpu(a: Any, b: Any) -> SectionDiff:
    """Driver, CUDA driver version, visible devices and each device's configuration."""
    out = SectionChanges("gpu")
    out.fields(a, b, ("available", "driver_version", "cuda_driver_version", "cuda_visible_devices"))
    devices_a = {str(d.get("index")): d for d in get(a, "devices") or ()}
    devices_b = {str(d.get("index")): d for d in get(b, "devices") or ()}
    for index in sorted(set(devices_a) | set(devices_b), key=lambda i: (len(i), i)):
        da, db = devices_a.get(index), devices_b.get(index)
        if db is None and da is not None:
            out.add(f"device[{index}]", "removed", {k: da.get(k) for k in _DEVICE_FIELDS}, None)
        elif da is None and db is not None:
            out.add(f"device[{index}]", "added", None, {k: db.get(k) for k in _DEVICE_FIELDS})
        else:
            for key in _DEVICE_FIELDS:
                out.field(f"device[{index}].{key}", get(da, key), get(db, key))
    return out.result()


def diff_container(a: Any, b: Any) -> SectionDiff:
    """In a container or not, the runtime, and the image reference and digest."""
    out = SectionChanges("container")
    out.fields(a, b, ("in_container", "runtime", "image.reference", "image.digest", "image.id"))
    return out.result()


def diff_git(a: Any, b: Any) -> SectionDiff:
    """Commit, branch, dirty flag and patch hash, remotes, untracked file count."""
    out = SectionChanges("git")
    out.field("present", get(a, "present"), get(b, "present"))
    out.fields(a, b, ("commit", "branch", "dirty", "patch_sha256", "patch_truncated", "untracked_code"))
    out.keyed("remote:", get(a, "remotes"), get(b, "remotes"))
    untracked_a, untracked_b = get(a, "untracked"), get(b, "untracked")
    out.field(
        "untracked",
        None if untracked_a is None else len(untracked_a),
        None if untracked_b is None else len(untracked_b),
        note="number of untracked files",
    )
    return out.result()


# --- system ---------------------------------------------------------------------------------------------

_SYSTEM_FIELDS = (
    "os.id",
    "os.version_id",
    "os.pretty_name",
    "kernel.release",
    "kernel.machine",
    "glibc",
    "cpu.vendor",
    "cpu.model",
    "cpu.logical_cores",
    "cpu.physical_cores",
    "memory.total_bytes",
    "cgroup.version",
    "cgroup.cpuset_cpus",
    "cgroup.cpu.quota_us",
    "cgroup.cpu.period_us",
    "cgroup.cpu.effective_cpus",
    "cgroup.memory.limit_bytes",
)


def diff_system(a: SystemSection, b: SystemSection) -> SectionDiff:
    """OS, kernel, glibc, CPU model and flags, cores, memory total, cgroup limits."""
    out = SectionChanges("system")
    out.attributes(a, b, _SYSTEM_FIELDS)
    flags_a, flags_b = set(a.cpu.flags), set(b.cpu.flags)
    if flags_a != flags_b:
        removed, added = sorted(flags_a - flags_b), sorted(flags_b - flags_a)
        parts = [f"added {' '.join(added)}" if added else "", f"removed {' '.join(removed)}" if removed else ""]
        note = "; ".join(p for p in parts if p) + " (before = flags only in a, after = flags only in b)"
        out.add("cpu.flags", "changed", removed, added, note=note)
    return out.result()
