"""``env/native.json``: BLAS/OpenMP pools, loaded shared objects, vendored native libraries, CUDA libraries.

Native libraries are learned without importing the user's packages: threadpoolctl describes only what is
already loaded (and is imported only when a BLAS/OpenMP library is mapped at all: its import alone costs
~10 ms), and a shallow ``os.scandir`` walk of the target's site-packages finds the libraries wheels vendor
(``numpy.libs/``, ``nvidia/*/lib/``, ``torch/lib/``). No library file is hashed: versions come from file
names, which auditwheel and the CUDA wheels keep meaningful, except for an OpenBLAS vendored under a
hashed name, whose release is read from the banner in its ``.rodata`` section (well under 1 ms).
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from envsnap._target.host import read_text
from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.core.naming import normalize_name

__all__ = [
    "DistributionIndex",
    "NativeProbe",
    "cuda_facts",
    "cuda_toolkit",
    "embedded_openblas_version",
    "library_kind",
    "loaded_libraries",
    "parse_ld_so_cache",
    "parse_library_filename",
    "parse_proc_maps",
    "scan_site_dir",
    "site_libraries",
    "system_cuda_libraries",
    "threadpool_pools",
]

# auditwheel inserts "-<8 hex>" after the library stem when it grafts a library into a wheel (twice when a
# grafted library is grafted again); torch's and pillow's wheels use ".<8 hex>" ("libcudart.faf08d9a.so.13").
_AUDITWHEEL_HASH = re.compile(r"(?:[-.][0-9a-f]{8})+(?=\.)")
# An absolute path to a lib*.so* in the cache's NUL-separated string table.
_LD_SO_CACHE_PATH = re.compile(rb"(?<=\x00)/[^\x00]*/lib[^/\x00]*\.so[^/\x00]*(?=\x00)")
_SO = re.compile(r"\.so(?=$|\.)")
_OPENBLAS_RELEASE = re.compile(r"^(?P<name>.*?)-r(?P<version>\d.*)$")
_TRAILING_VERSION = re.compile(r"^(?P<name>.+?)[.-](?P<version>\d[\w.]*)$")
_VERSIONISH = re.compile(r"^\d[\w.]*$")

# Directory names never worth descending into: headers, tests and docs hold no runtime libraries.
_SKIP_DIRS = frozenset({"__pycache__", "include", "tests", "test", "testing", "docs", "doc", "examples", "share"})
# package/ = 1, package/sub/ = 2: torch/lib, xgboost/lib, onnxruntime/capi, llvmlite/binding. A third level
# would cost half as much again (a walk is ~7 µs per directory) for libraries no common wheel puts there.
_MAX_DEPTH = 2
# Names that are files, not directories, in almost every package: no is_dir() call is needed for them.
_FILE_SUFFIXES = (".py", ".pyi", ".pyc", ".pyd", ".so", ".json", ".txt", ".typed", ".md", ".pxd", ".h", ".dist-info")

_CUDA_PREFIXES = (
    "cudart", "cublas", "cufft", "curand", "cusolver", "cusparse", "cupti", "nvrtc", "nvjitlink", "nvtoolsext",
    "nvtx", "nvvm", "npp", "nvjpeg", "cufile", "nvidia-ml", "nvblas", "cuda", "nvperf", "caffe2_nvrtc",
)  # fmt: skip
_BLAS_PREFIXES = ("openblas", "mkl", "blis", "flexiblas", "cblas", "blas", "satlas", "tatlas", "armpl", "accelerate")
_OPENMP_NAMES = ("gomp", "iomp5", "iomp", "omp", "kmp", "omptarget")
# File-name prefixes threadpoolctl recognises; if none is mapped, it would report no pool.
_POOL_LIB_PREFIXES = (
    "libopenblas", "libscipy_openblas", "libmkl_rt", "libblis", "libflexiblas", "libgomp", "libiomp", "libomp",
    "libblas", "libvcomp", "libarmpl",
)  # fmt: skip


# --- file names -------------------------------------------------------------------------------------


def parse_library_filename(filename: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of a shared library file name, or None when it is not one.

    ``libopenblas64_p-r0-0cf96a72.3.23.dev.so`` → ("openblas", "0.3.23.dev"); ``libgomp-a34b3233.so.1.0.0``
    → ("gomp", "1.0.0"); ``libcublas.so.12`` → ("cublas", "12"). Python extension modules
    (``*.cpython-311-*.so``, ``*.abi3.so``) are not libraries in this sense.
    """
    if ".cpython-" in filename or ".abi3." in filename or ".pypy" in filename:
        return None
    cleaned = _AUDITWHEEL_HASH.sub("", filename, count=1)
    match = _SO.search(cleaned)
    if match is None:
        return None
    head, tail = cleaned[: match.start()], cleaned[match.end() + 1 :]
    head = head.removeprefix("lib")
    if not head:
        return None
    version: str | None = tail if tail and _VERSIONISH.match(tail) else None
    name = head
    if version is None:
        # No soname version: OpenBLAS puts its release before ".so" ("openblas64_p-r0.3.23.dev"), others
        # a plain version ("foo-1.2").
        release = _OPENBLAS_RELEASE.match(head) or _TRAILING_VERSION.match(head)
        if release is not None:
            name, version = release.group("name"), release.group("version")
    if "openblas" in name.lower():
        name = "openblas"  # libopenblas64_p, libopenblasp, libscipy_openblas64_: one library family
    return name, version


def library_kind(name: str) -> str:
    """blas, lapack, openmp, cuda, cudnn, nccl or other."""
    lower = name.lower()
    if lower.startswith("cudnn"):
        return "cudnn"
    if lower.startswith("nccl"):
        return "nccl"
    if lower.startswith(_CUDA_PREFIXES):
        return "cuda"
    if "lapack" in lower:
        return "lapack"
    if lower.startswith(_BLAS_PREFIXES) or "openblas" in lower:
        return "blas"
    if lower in _OPENMP_NAMES:
        return "openmp"
    return "other"


def _version_rank(version: str | None) -> tuple[int, int]:
    return (len(version.split(".")), len(version)) if version else (0, 0)


# --- what is loaded in this process -----------------------------------------------------------------


def parse_proc_maps(text: str) -> list[str]:
    """Paths of the shared objects mapped in ``/proc/<pid>/maps``, deduplicated and sorted."""
    paths = set()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip().removesuffix(" (deleted)")
        if path.startswith("/") and _SO.search(os.path.basename(path)):
            paths.add(path)
    return sorted(paths)


def loaded_libraries(maps_text: str) -> list[dict[str, Any]]:
    """Loaded shared objects: path, soname (the file name) and the version its name carries."""
    out = []
    for path in parse_proc_maps(maps_text):
        soname = os.path.basename(path)
        parsed = parse_library_filename(soname)
        out.append({"path": path, "soname": soname, "version": parsed[1] if parsed else None})
    return out


def threadpool_pools(loaded_paths: Iterable[str] | None) -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS/OpenMP pools already loaded in this process."""
    if loaded_paths is not None and not any(
        os.path.basename(p).lower().startswith(_POOL_LIB_PREFIXES) for p in loaded_paths
    ):
        return []
    from threadpoolctl import threadpool_info

    pools = []
    for info in threadpool_info():
        pools.append(
            {
                "user_api": info.get("user_api"),
                "internal_api": info.get("internal_api"),
                "prefix": info.get("prefix"),
                "version": info.get("version"),
                "num_threads": info.get("num_threads"),
                "threading_layer": info.get("threading_layer"),
                "architecture": info.get("architecture"),
                "filepath": info.get("filepath"),
            }
        )
    return sorted(pools, key=lambda p: (str(p["user_api"]), str(p["internal_api"]), str(p["filepath"])))


# --- vendored libraries in site-packages ------------------------------------------------------------


class DistributionIndex:
    """Which distribution installed a top-level directory, from the target's distribution list."""

    def __init__(self, distributions: Iterable[Mapping[str, Any]]) -> None:
        self._by_top: dict[str, set[str]] = {}
        self._names: set[str] = set()
        self._versions: dict[str, str] = {}
        for dist in distributions:
            name = str(dist.get("normalized_name") or "")
            if not name:
                continue
            self._names.add(name)
            if isinstance(dist.get("version"), str) and dist["version"]:
                self._versions[name] = dist["version"]
            for top in dist.get("top_level") or ():
                self._by_top.setdefault(str(top), set()).add(name)

    def version(self, distribution: str | None) -> str | None:
        """The installed version of a distribution this index knows, or None."""
        return self._versions.get(distribution) if distribution else None

    def owner(self, package: str) -> str | None:
        """The distribution owning ``package`` (``numpy``, ``nvidia/cublas``), or None if unknown/ambiguous."""
        if package.startswith("nvidia/"):
            # Every nvidia-*-cuXX wheel installs under the shared "nvidia" namespace; its name says which.
            stem = "nvidia-" + normalize_name(package.split("/", 1)[1])
            matches = {n for n in self._names if n == stem or n.startswith(stem + "-cu")}
            return matches.pop() if len(matches) == 1 else None
        owners = self._by_top.get(package, set())
        if len(owners) == 1:
            return next(iter(owners))
        normalized = normalize_name(package)
        return normalized if normalized in self._names else None


def _libraries_in(directory: str, depth: int, found: list[tuple[str, str]]) -> None:
    """Collect (directory, file name) of ``lib*.so*`` files at most ``depth`` levels down."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                try:
                    if name.startswith("lib") and ".so" in name and entry.is_file(follow_symlinks=False):
                        found.append((directory, name))
                        continue
                    if (
                        depth > 1
                        and not name.endswith(_FILE_SUFFIXES)
                        and name not in _SKIP_DIRS
                        and not name.startswith(".")
                        and entry.is_dir(follow_symlinks=False)
                    ):
                        _libraries_in(entry.path, depth - 1, found)
                except OSError:
                    continue
    except OSError:
        return


def scan_site_dir(site_dir: str, index: DistributionIndex | None = None) -> list[dict[str, Any]]:
    """Native libraries vendored under one site-packages directory (shallow; files are never opened)."""
    index = index or DistributionIndex(())
    try:
        tops = sorted(os.scandir(site_dir), key=lambda e: e.name)
    except OSError:
        return []
    found: list[tuple[str, str, str]] = []  # (package, directory, file name)
    for top in tops:
        name = top.name
        if name.startswith((".", "__")) or name.endswith((".dist-info", ".egg-info", ".data")):
            continue
        try:
            if not top.is_dir():
                continue
        except OSError:
            continue
        hits: list[tuple[str, str]] = []
        if name.endswith(".libs"):
            # auditwheel's grafted libraries: numpy.libs, scipy.libs, scikit_learn.libs, pillow.libs.
            _libraries_in(top.path, 1, hits)
            found.extend((name[: -len(".libs")], d, f) for d, f in hits)
        elif name == "nvidia":
            try:
                subs = sorted(e.name for e in os.scandir(top.path) if e.is_dir() and not e.name.startswith("_"))
            except OSError:
                subs = []
            for sub in subs:
                sub_hits: list[tuple[str, str]] = []
                for lib_dir in ("lib", "lib64"):
                    _libraries_in(os.path.join(top.path, sub, lib_dir), 1, sub_hits)
                found.extend((f"nvidia/{sub}", d, f) for d, f in sub_hits)
        else:
            _libraries_in(top.path, _MAX_DEPTH, hits)
            found.extend((name, d, f) for d, f in hits)
    return sorted(_group(found, site_dir, index), key=_library_order)


def _group(found: Iterable[tuple[str, str, str]], site_dir: str, index: DistributionIndex) -> list[dict[str, Any]]:
    """One entry per library per directory: ``libx.so``, ``libx.so.26``, ``libx.so.26.1`` are one library."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for package, directory, filename in found:
        parsed = parse_library_filename(filename)
        if parsed is None:
            continue
        name, version = parsed
        entry = groups.get((directory, name))
        rel = os.path.relpath(os.path.join(directory, filename), site_dir)
        if entry is None:
            groups[(directory, name)] = {
                "name": name,
                "version": version,
                "kind": library_kind(name),
                "path": rel,
                "files": [filename],
                "site_dir": site_dir,
                "package": package,
                "distribution": index.owner(package),
            }
            continue
        entry["files"].append(filename)
        if _version_rank(version) > _version_rank(entry["version"]):
            entry.update(version=version, path=rel)
    for entry in groups.values():
        entry["files"].sort()
        if entry["version"] is None and entry["kind"] == "blas":
            # numpy/scipy vendor OpenBLAS under a hashed name with no version; the release is spelled out
            # in the library's read-only data, which is searched (never hashed) only in this case.
            embedded = embedded_openblas_version(os.path.join(site_dir, entry["path"]))
            if embedded is not None:
                entry.update(version=embedded, version_source="embedded")
    _set_releases(groups.values(), index)
    return list(groups.values())


def _project_core(distribution: str) -> str:
    """A distribution name as its libraries spell it: ``pyarrow`` -> ``arrow``, ``torch`` -> ``torch``."""
    core = re.sub(r"[^a-z0-9]", "", distribution.lower())
    for affix in ("python", "py"):
        core = core.removeprefix(affix) if len(core) > len(affix) + 2 else core
        core = core.removesuffix(affix) if len(core) > len(affix) + 2 else core
    return core


def _own_build(entry: Mapping[str, Any]) -> bool:
    """Not grafted by auditwheel: no hash in the file name, not in a ``*.libs`` directory."""
    path = str(entry.get("path") or "")
    return not _AUDITWHEEL_HASH.search(os.path.basename(path)) and not path.split("/", 1)[0].endswith(".libs")


def _set_releases(entries: Iterable[dict[str, Any]], index: DistributionIndex) -> None:
    """Give a library the owning distribution's version when it is that distribution's own build.

    A file name carries the soname version, not the release: pyarrow 20.0.0 ships ``libarrow.so.2000``
    and ``libparquet.so.2000``, torch ships ``libtorch_cpu.so`` and ``libc10.so`` with none. A library is
    the wheel's own when it is named after the project (``arrow`` for pyarrow) or sits beside such a
    library with the same soname version; a CUDA library of an ``nvidia-*`` wheel is that wheel's, whose
    version is the library's own. Anything else a wheel ships unhashed (ray's ``libjemalloc.so``) is a
    third party's, whose release the wheel's version does not say.
    """
    by_directory: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        owner = entry.get("distribution")
        if owner and _own_build(entry):
            by_directory.setdefault(os.path.dirname(str(entry["path"])), []).append(entry)
    for group in by_directory.values():
        owner = str(group[0]["distribution"])
        release = index.version(owner)
        if release is None:
            continue
        if str(group[0].get("package") or "").startswith("nvidia/"):
            chosen = group
        else:
            core = _project_core(owner)
            named = {
                e["version"]
                for e in group
                if core and re.sub(r"[^a-z0-9]", "", str(e["name"]).lower()).startswith(core)
            }
            chosen = [e for e in group if e["version"] in named]
        for entry in chosen:
            entry.update(release=release, release_source="distribution")


_OPENBLAS_BANNER = re.compile(rb"OpenBLAS (\d+\.\d+\.\d+(?:\.dev)?)")


def _elf_section(fh: Any, name: bytes) -> tuple[int, int] | None:
    """(offset, size) of a section of a little-endian ELF64 file, reading only its headers."""
    header = fh.read(64)
    if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    (shoff,) = struct.unpack_from("<Q", header, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", header, 0x3A)
    if not shoff or shentsize < 64 or not 0 < shnum < 4096 or shstrndx >= shnum:
        return None
    fh.seek(shoff)
    table = fh.read(shentsize * shnum)
    if len(table) < shentsize * shnum:
        return None
    sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
    _, _, _, _, str_off, str_size = sections[shstrndx]
    fh.seek(str_off)
    names = fh.read(min(str_size, 1 << 20))
    for sh_name, _, _, _, offset, size in sections:
        end = names.find(b"\0", sh_name)
        if names[sh_name:end] == name:
            return offset, size
    return None


def embedded_openblas_version(path: str) -> str | None:
    """The OpenBLAS release named in a library's ``.rodata`` ("OpenBLAS 0.3.29 ..."), if any."""
    try:
        with open(path, "rb") as fh:
            section = _elf_section(fh, b".rodata")
            if section is None:
                return None
            offset, size = section
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                match = _OPENBLAS_BANNER.search(view, offset, min(offset + size, len(view)))
                return match.group(1).decode() if match else None
    except (OSError, ValueError, struct.error):
        return None


def _library_order(lib: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (str(lib["name"]), str(lib.get("version") or ""), str(lib.get("site_dir") or ""), str(lib["path"]))


def site_libraries(site_dirs: Iterable[str], distributions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Vendored native libraries of every site-packages directory of the target, sorted."""
    dists = list(distributions)
    libraries: list[dict[str, Any]] = []
    seen: set[str] = set()
    real_paths: dict[str, str] = {}

    def real_of(path: str) -> str:
        # Hundreds of distributions share a handful of locations; realpath costs a syscall per component.
        if path not in real_paths:
            real_paths[path] = os.path.realpath(path)
        return real_paths[path]

    for site_dir in site_dirs:
        real = real_of(site_dir)
        # Only site-packages: walking the stdlib or the user's working directory (both on sys.path)
        # costs time and finds nothing a wheel installed.
        if real in seen or os.path.basename(real) not in ("site-packages", "dist-packages"):
            continue
        seen.add(real)
        here = [d for d in dists if real_of(str(d.get("location") or "")) == real]
        libraries.extend(scan_site_dir(site_dir, DistributionIndex(here or dists)))
    return sorted(libraries, key=_library_order)


# --- CUDA -------------------------------------------------------------------------------------------


def parse_ld_so_cache(data: bytes) -> list[str]:
    """Library paths listed in ``/etc/ld.so.cache`` (what ``ldconfig -p`` prints, without a subprocess)."""
    # The cache is a header, fixed-size entries and a NUL-separated string table of sonames and paths;
    # the absolute paths are all that is needed, so they are matched rather than the format decoded.
    return sorted({raw.decode("utf-8", "replace") for raw in _LD_SO_CACHE_PATH.findall(data)})


def system_cuda_libraries(cache_paths: Iterable[str]) -> list[dict[str, Any]]:
    """CUDA, cuDNN and NCCL libraries the dynamic linker knows, one per (directory, library)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    wanted = ("lib" + p for p in (*_CUDA_PREFIXES, "cudnn", "nccl"))
    prefixes = tuple(wanted)
    for path in cache_paths:
        if not os.path.basename(path).lower().startswith(prefixes):
            continue  # a system has hundreds of libraries; parse only the candidates
        parsed = parse_library_filename(os.path.basename(path))
        if parsed is None or library_kind(parsed[0]) not in ("cuda", "cudnn", "nccl"):
            continue
        name, version = parsed
        key = (os.path.dirname(path), name)
        entry = groups.get(key)
        if entry is None or _version_rank(version) > _version_rank(entry["version"]):
            groups[key] = {"name": name, "version": version, "kind": library_kind(name), "path": path}
    return sorted(groups.values(), key=lambda e: (e["name"], str(e["version"] or ""), e["path"]))


def cuda_toolkit(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The CUDA toolkit at CUDA_HOME / CUDA_PATH / /usr/local/cuda and its version, if there is one."""
    import json

    home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH") or "/usr/local/cuda"
    if not os.path.isdir(home):
        return None
    version = None
    manifest = read_text(os.path.join(home, "version.json"))
    if manifest:
        try:
            version = json.loads(manifest).get("cuda", {}).get("version")
        except (ValueError, AttributeError):
            version = None
    if version is None:
        text = read_text(os.path.join(home, "version.txt")) or ""
        match = re.search(r"CUDA Version (\d[\d.]*)", text)
        version = match.group(1) if match else None
    if version is None:
        # /usr/local/cuda is usually a link to /usr/local/cuda-13.0.
        match = re.search(r"cuda-(\d+\.\d+)$", os.path.realpath(home))
        version = match.group(1) if match else None
    return {"home": home, "version": version}


def cuda_facts(libraries: Iterable[Mapping[str, Any]], environ: Mapping[str, str]) -> dict[str, Any]:
    """CUDA runtime/cuDNN/NCCL seen in site-packages and in the linker cache, and the toolkit."""
    try:
        with open("/etc/ld.so.cache", "rb") as fh:
            cache = parse_ld_so_cache(fh.read(1 << 24))
    except OSError:
        cache = []
    from_site = [
        {"name": lib["name"], "version": lib["version"], "kind": lib["kind"], "path": lib["path"]}
        for lib in libraries
        if lib["kind"] in ("cuda", "cudnn", "nccl")
    ]
    return {"site": from_site, "system": system_cuda_libraries(cache), "toolkit": cuda_toolkit(environ)}


@register
class NativeProbe(Probe):
    """Native libraries of the target: pools and mappings (in-process only), vendored libs, CUDA."""

    name = "native"
    member = "env/native.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        target = ctx.target
        loaded = pools = None
        if target.in_process:
            maps = read_text("/proc/self/maps", 1 << 24)
            loaded = loaded_libraries(maps) if maps is not None else None
            pools = threadpool_pools([lib["path"] for lib in loaded] if loaded is not None else None)
        libraries = site_libraries(target.site_dirs, target.distributions)
        return {
            "in_process": target.in_process,
            "pools": pools,
            "loaded": loaded,
            "libraries": libraries,
            "numpy_config": target.numpy,
            "cuda": cuda_facts(libraries, ctx.options.environ),
        }
