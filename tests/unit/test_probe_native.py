"""The native probe: library file names, the site-packages walk, /proc/self/maps, ld.so.cache, pools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.native import (
    DistributionIndex,
    NativeProbe,
    cuda_toolkit,
    library_kind,
    parse_ld_so_cache,
    parse_library_filename,
    parse_proc_maps,
    scan_site_dir,
    site_libraries,
    system_cuda_libraries,
)
from envsnap.snapshot.schema import validate_member

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("libopenblas64_p-r0-0cf96a72.3.23.dev.so", ("openblas", "0.3.23.dev")),
        ("libopenblasp-r0-2ecf47d5.3.21.dev.so", ("openblas", "0.3.21.dev")),
        ("libscipy_openblas64_-32a4b2a6.so", ("openblas", None)),
        ("libgomp-a34b3233.so.1.0.0", ("gomp", "1.0.0")),
        ("libgfortran-040039e1-0352e75f.so.5.0.0", ("gfortran", "5.0.0")),  # grafted twice
        ("libcublas.so.12", ("cublas", "12")),
        ("libcublasLt.so.12", ("cublasLt", "12")),
        ("libcudart-d0da41ae.so.11.0", ("cudart", "11.0")),
        ("libnvrtc-builtins.so.12.1", ("nvrtc-builtins", "12.1")),
        ("libcudnn_ops_infer.so.8", ("cudnn_ops_infer", "8")),
        ("libarrow.so.2600", ("arrow", "2600")),
        ("libc10.so", ("c10", None)),
        ("libpython3.11.so.1.0", ("python3.11", "1.0")),
        ("ld-linux-x86-64.so.2", ("ld-linux-x86-64", "2")),
        ("_multiarray_umath.cpython-311-x86_64-linux-gnu.so", None),
        ("_cffi_backend.abi3.so", None),
        ("libfoo.sol", None),
    ],
)
def test_library_file_names(filename: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_library_filename(filename) == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("openblas", "blas"),
        ("mkl_rt", "blas"),
        ("lapack", "lapack"),
        ("gomp", "openmp"),
        ("iomp5", "openmp"),
        ("cublas", "cuda"),
        ("cudart", "cuda"),
        ("cudnn_ops_infer", "cudnn"),
        ("nccl", "nccl"),
        ("gfortran", "other"),
        ("torch_cpu", "other"),
    ],
)
def test_library_kinds(name: str, kind: str) -> None:
    assert library_kind(name) == kind


def test_proc_maps_keeps_shared_objects_once() -> None:
    maps = """\
55d0c8a00000-55d0c8a01000 r--p 00000000 fe:00 1 /usr/bin/python3.11
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0
7f1c2b000000-7f1c2b028000 r--p 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2b028000-7f1c2b19d000 r-xp 00028000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2c000000-7f1c2c001000 r--p 00000000 fe:00 3 /tmp/libgone.so.1 (deleted)
7f1c2d000000-7f1c2d001000 r--p 00000000 00:00 0 [heap]
7f1c2e000000-7f1c2e001000 r--p 00000000 fe:00 4 /opt/my lib/libspace.so
"""
    assert parse_proc_maps(maps) == [
        "/opt/my lib/libspace.so",
        "/tmp/libgone.so.1",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")


def _fake_site(tmp_path: Path) -> Path:
    """A site-packages laid out as real wheels lay it out (empty files: the walk never opens them)."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for rel in (
        "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so",
        "numpy.libs/libgfortran-040039e1.so.5.0.0",
        "numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
        "scikit_learn.libs/libgomp-a34b3233.so.1.0.0",
        "nvidia/cublas/lib/libcublas.so.12",
        "nvidia/cublas/lib/libcublasLt.so.12",
        "nvidia/cudnn/lib/libcudnn.so.9",
        "nvidia/nccl/lib/libnccl.so.2",
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libgomp-a34b3233.so.1",
        "torch/_C.cpython-311-x86_64-linux-gnu.so",
        "pyarrow/libarrow.so",
        "pyarrow/libarrow.so.2600",
        "pyarrow/libarrow.so.2600.1.0",
        "deep/a/b/libtoodeep.so.1",
        "pkg/tests/libfixture.so.1",
        "numpy-1.26.4.dist-info/METADATA",
    ):
        _touch(site / rel)
    return site


DISTRIBUTIONS = [
    {"normalized_name": "numpy", "top_level": ["numpy"]},
    {"normalized_name": "scikit-learn", "top_level": ["sklearn"]},
    {"normalized_name": "nvidia-cublas-cu12", "top_level": ["nvidia"]},
    {"normalized_name": "nvidia-cudnn-cu12", "top_level": ["nvidia"]},
    {"normalized_name": "nvidia-nccl-cu12", "top_level": ["nvidia"]},
    {"normalized_name": "torch", "top_level": ["torch", "torchgen"]},
    {"normalized_name": "pyarrow", "top_level": ["pyarrow"]},
]


def test_site_walk_finds_vendored_libraries(tmp_path: Path) -> None:
    site = _fake_site(tmp_path)
    libs = scan_site_dir(str(site), DistributionIndex(DISTRIBUTIONS))
    summary = {(lib["name"], lib["version"], lib["kind"], lib["path"], lib["distribution"]) for lib in libs}
    assert summary == {
        ("openblas", "0.3.23.dev", "blas", "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so", "numpy"),
        ("gfortran", "5.0.0", "other", "numpy.libs/libgfortran-040039e1.so.5.0.0", "numpy"),
        ("gomp", "1.0.0", "openmp", "scikit_learn.libs/libgomp-a34b3233.so.1.0.0", "scikit-learn"),
        ("cublas", "12", "cuda", "nvidia/cublas/lib/libcublas.so.12", "nvidia-cublas-cu12"),
        ("cublasLt", "12", "cuda", "nvidia/cublas/lib/libcublasLt.so.12", "nvidia-cublas-cu12"),
        ("cudnn", "9", "cudnn", "nvidia/cudnn/lib/libcudnn.so.9", "nvidia-cudnn-cu12"),
        ("nccl", "2", "nccl", "nvidia/nccl/lib/libnccl.so.2", "nvidia-nccl-cu12"),
        ("torch_cpu", None, "other", "torch/lib/libtorch_cpu.so", "torch"),
        ("gomp", "1", "openmp", "torch/lib/libgomp-a34b3233.so.1", "torch"),
        ("arrow", "2600.1.0", "other", "pyarrow/libarrow.so.2600.1.0", "pyarrow"),
    }
    arrow = next(lib for lib in libs if lib["name"] == "arrow")
    assert arrow["files"] == ["libarrow.so", "libarrow.so.2600", "libarrow.so.2600.1.0"]
    assert libs == scan_site_dir(str(site), DistributionIndex(DISTRIBUTIONS))  # stable order


def test_a_wheels_own_libraries_carry_its_release(tmp_path: Path) -> None:
    # pyarrow 20.0.0 names its libraries after the soname (2000), not the release; torch names none.
    site = tmp_path / "site-packages"
    for rel in (
        "pyarrow/libarrow.so.2000",
        "pyarrow/libparquet.so.2000",
        "pyarrow/libarrow_python.so.2000.0.0",
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libc10.so",
        "torch/lib/libgomp-a34b3233.so.1",
        "ray/core/libjemalloc.so",
        "nvidia/cublas/lib/libcublas.so.12",
        "numpy.libs/libgfortran-040039e1.so.5.0.0",
    ):
        _touch(site / rel)
    index = DistributionIndex(
        [
            {"normalized_name": "pyarrow", "version": "20.0.0", "top_level": ["pyarrow"]},
            {"normalized_name": "torch", "version": "2.7.1", "top_level": ["torch"]},
            {"normalized_name": "ray", "version": "2.40.0", "top_level": ["ray"]},
            {"normalized_name": "nvidia-cublas-cu12", "version": "12.6.4.1", "top_level": ["nvidia"]},
            {"normalized_name": "numpy", "version": "2.2.6", "top_level": ["numpy"]},
        ]
    )
    libs = {lib["name"]: lib for lib in scan_site_dir(str(site), index)}
    releases = {name: (lib["version"], lib.get("release")) for name, lib in libs.items()}
    assert releases == {
        "arrow": ("2000", "20.0.0"),
        "parquet": ("2000", "20.0.0"),  # beside arrow, same soname: the same build
        "arrow_python": ("2000.0.0", "20.0.0"),
        "torch_cpu": (None, "2.7.1"),
        "c10": (None, "2.7.1"),
        "gomp": ("1", None),  # grafted by auditwheel: a third party's library
        "jemalloc": (None, None),  # shipped unhashed, but not named after ray: release unknown
        "cublas": ("12", "12.6.4.1"),  # an nvidia-* wheel's version is the library's
        "gfortran": ("5.0.0", None),
    }
    assert libs["arrow"]["release_source"] == "distribution"


def test_only_site_packages_directories_are_walked(tmp_path: Path) -> None:
    site = _fake_site(tmp_path)
    project = tmp_path / "project"
    _touch(project / "vendor" / "libmine.so.1")
    libs = site_libraries([str(project), str(site), str(site)], DISTRIBUTIONS)
    assert all(lib["site_dir"] == str(site) for lib in libs)
    assert len(libs) == len({(lib["site_dir"], lib["path"]) for lib in libs})  # a repeated dir counts once
    assert [lib["name"] for lib in libs] == sorted(lib["name"] for lib in libs)


def test_ld_so_cache_parsing_on_a_synthetic_table() -> None:
    data = b"glibc-ld.so.cache1.1\x00\x00libcudart.so.12\x00/usr/local/cuda/lib64/libcudart.so.12\x00libm.so.6\x00"
    data += b"/lib/x86_64-linux-gnu/libm.so.6\x00/usr/lib/libnccl.so.2\x00garbage\x00"
    paths = parse_ld_so_cache(data)
    assert paths == [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/libnccl.so.2",
        "/usr/local/cuda/lib64/libcudart.so.12",
    ]
    cuda = system_cuda_libraries(paths)
    assert [(c["name"], c["version"], c["kind"]) for c in cuda] == [("cudart", "12", "cuda"), ("nccl", "2", "nccl")]


@pytest.mark.skipif(shutil.which("ldconfig") is None, reason="needs ldconfig to cross-check the cache parser")
def test_ld_so_cache_parsing_matches_ldconfig() -> None:
    with open("/etc/ld.so.cache", "rb") as fh:
        ours = set(parse_ld_so_cache(fh.read()))
    printed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    theirs = {line.rsplit(" => ", 1)[1].strip() for line in printed.splitlines() if " => " in line}
    theirs = {p for p in theirs if os.path.basename(p).startswith("lib") and ".so" in p}
    assert ours == theirs
    assert any(os.path.basename(p).startswith("libc.so") for p in ours)


def test_cuda_toolkit_version_sources(tmp_path: Path) -> None:
    home = tmp_path / "cuda-12.4"
    home.mkdir()
    assert cuda_toolkit({"CUDA_HOME": str(home)}) == {"home": str(home), "version": "12.4"}
    (home / "version.txt").write_text("CUDA Version 12.4.99\n")
    assert (cuda_toolkit({"CUDA_HOME": str(home)}) or {}).get("version") == "12.4.99"
    (home / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.4.1"}}))
    assert (cuda_toolkit({"CUDA_HOME": str(home)}) or {}).get("version") == "12.4.1"
    assert cuda_toolkit({"CUDA_HOME": str(tmp_path / "absent")}) is None


def test_in_process_probe_on_this_interpreter() -> None:
    from threadpoolctl import threadpool_info

    ctx = CaptureContext(CaptureOptions(), target.in_process)
    NativeProbe().collect(ctx)  # imports what the probe imports lazily: later mappings stay put
    data = NativeProbe().collect(ctx)
    assert data == NativeProbe().collect(ctx)
    validate_member("<test>", "env/native.json", data)
    assert data["in_process"] is True
    sonames = {lib["soname"] for lib in data["loaded"]}
    assert any(name.startswith(("libc.so", "libc-")) for name in sonames)
    assert [lib["path"] for lib in data["loaded"]] == sorted({lib["path"] for lib in data["loaded"]})
    assert {p["filepath"] for p in data["pools"]} == {p["filepath"] for p in threadpool_info()}
    # pyarrow (an envsnap dependency) vendors libarrow.so.<ABI> at the top of its package.
    arrow = [lib for lib in data["libraries"] if lib["name"] == "arrow"]
    assert arrow and arrow[0]["distribution"] == "pyarrow" and arrow[0]["version"]
    assert data["libraries"] == sorted(
        data["libraries"], key=lambda lib: (lib["name"], lib["version"] or "", lib["site_dir"], lib["path"])
    )


# --- a real venv with numpy ----------------------------------------------------------------------------


SNIPPET = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy  # loads OpenBLAS: this is the job being captured
from envsnap.capture import native, target
from envsnap.capture.base import CaptureContext, CaptureOptions
ctx = CaptureContext(CaptureOptions(), target.in_process)
print(json.dumps(native.NativeProbe().collect(ctx)))
"""


@pytest.mark.slow
def test_loaded_numpy_shows_its_openblas_pool(numpy_python: str) -> None:
    out = subprocess.run([numpy_python, "-c", SNIPPET, str(REPO)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    validate_member("<test>", "env/native.json", data)
    blas = [p for p in data["pools"] if p["user_api"] == "blas"]
    assert blas and blas[0]["internal_api"] == "openblas" and blas[0]["num_threads"] >= 1
    assert blas[0]["filepath"] in {lib["path"] for lib in data["loaded"]}
    openblas = [lib for lib in data["libraries"] if lib["name"] == "openblas"]
    assert openblas and openblas[0]["distribution"] == "numpy" and openblas[0]["kind"] == "blas"
    assert data["numpy_config"] is not None


@pytest.mark.slow
def test_other_interpreter_is_walked_not_imported(numpy_python: str) -> None:
    numpy_before = sys.modules.get("numpy")  # pyarrow, imported by other test modules, loads numpy itself
    runtime = target.from_interpreter(numpy_python)
    ctx = CaptureContext(CaptureOptions(python=numpy_python), lambda: runtime)
    data = NativeProbe().collect(ctx)
    validate_member("<test>", "env/native.json", data)
    assert data["pools"] is None and data["loaded"] is None
    assert sys.modules.get("numpy") is numpy_before  # envsnap's process never imported the target's numpy
    openblas = [lib for lib in data["libraries"] if lib["name"] == "openblas"]
    assert openblas and openblas[0]["path"].startswith("numpy.libs/")
    assert all(lib["site_dir"].startswith(str(Path(numpy_python).parent.parent)) for lib in data["libraries"])
    assert data["numpy_config"] is not None and "version" in data["numpy_config"]


def test_openblas_without_a_version_in_its_name_gets_the_embedded_release(tmp_path: Path) -> None:
    """A real ELF64 with the OpenBLAS banner in .rodata, built by the system compiler."""
    from envsnap.capture.native import embedded_openblas_version

    if shutil.which("cc") is None:
        pytest.fail("a C compiler is needed to build the test library (apt-get install gcc)")
    src = tmp_path / "blas.c"
    src.write_text('const char banner[] = "OpenBLAS 0.3.29  USE64BITINT DYNAMIC_ARCH";\nint f(void) { return 1; }\n')
    lib = tmp_path / "libscipy_openblas64_-56d6093b.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    assert embedded_openblas_version(str(lib)) == "0.3.29"
    plain = tmp_path / "libplain.so"
    src.write_text("int f(void) { return 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(plain), str(src)], check=True)
    assert embedded_openblas_version(str(plain)) is None
    text = tmp_path / "libfake.so"
    text.write_text("OpenBLAS 9.9.9 but not an ELF file")
    assert embedded_openblas_version(str(text)) is None


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("libcudart.faf08d9a.so.13", ("cudart", "13")),  # torch's wheels: "." before the graft hash
        ("libnvjpeg.36e11081.so.13", ("nvjpeg", "13")),
        ("libnvrtc.alt.so.13", ("nvrtc.alt", "13")),  # a distinct library, not a hash
    ],
)
def test_dot_separated_graft_hashes_are_dropped(filename: str, expected: tuple[str, str]) -> None:
    from envsnap.capture.native import parse_library_filename

    assert parse_library_filename(filename) == expected


@pytest.mark.slow
def test_static_numpy_config_matches_numpys_own_report(numpy_python: str) -> None:
    """The __config__.py parse (no import) gives the same build facts as numpy.show_config(mode='dicts')."""
    from envsnap.capture.numpy_config import numpy_build_config

    numpy_before = sys.modules.get("numpy")
    code = "import json, numpy; print(json.dumps({'v': numpy.__version__, 'c': numpy.show_config(mode='dicts')}))"
    real = json.loads(subprocess.run([numpy_python, "-c", code], capture_output=True, text=True, check=True).stdout)
    runtime = target.from_interpreter(numpy_python)
    static = numpy_build_config(runtime.site_dirs)
    assert static is not None and static["source"] == "static"
    assert static["version"] == real["v"]
    for section in ("Compilers", "Build Dependencies", "Machine Information"):
        assert static["config"][section] == real["c"][section], section
    assert static["config"]["Build Dependencies"]["blas"]["version"]  # the BLAS release numpy was built with
    assert sys.modules.get("numpy") is numpy_before


def test_static_numpy_config_survives_odd_files(tmp_path: Path) -> None:
    from envsnap.capture.numpy_config import numpy_build_config, parse_numpy_config

    assert parse_numpy_config("def broken(:\n") is None
    assert parse_numpy_config("CONFIG = compute()\n") is None
    legacy = "blas_opt_info = {'libraries': ['openblas'], 'language': 'c'}\nx = 1\n"
    assert parse_numpy_config(legacy) == {"blas_opt_info": {"libraries": ["openblas"], "language": "c"}}
    assert numpy_build_config([str(tmp_path)]) is None
