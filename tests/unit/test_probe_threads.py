"""The threads probe: configured knobs, the effective CPU budget, pools, and the mismatches between them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.target import TargetRuntime
from envsnap.capture.threads import (
    ThreadsProbe,
    configured_knobs,
    find_mismatches,
    parse_thread_count,
    usable_cpus,
)
from envsnap.snapshot.schema import validate_member

REPO = Path(__file__).resolve().parents[2]


def test_only_thread_knobs_are_configured() -> None:
    environ = {
        "OMP_NUM_THREADS": "4",
        "OMP_PROC_BIND": "close",
        "MKL_NUM_THREADS": "1",
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_NUM_THREADS": "2",
        "KMP_AFFINITY": "granularity=fine",
        "GOMP_CPU_AFFINITY": "0-3",
        "VECLIB_MAXIMUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "8",
        "TF_NUM_INTRAOP_THREADS": "2",
        "RAYON_NUM_THREADS": "3",
        "POLARS_MAX_THREADS": "3",
        "TOKENIZERS_PARALLELISM": "false",
        "MKLROOT": "/opt/intel/mkl",
        "HOME": "/root",
        "AWS_SECRET_ACCESS_KEY": "not a knob",
    }
    configured = configured_knobs(environ)
    assert list(configured) == sorted(configured)
    assert set(configured) == set(environ) - {"MKLROOT", "HOME", "AWS_SECRET_ACCESS_KEY"}
    assert configured["TOKENIZERS_PARALLELISM"] == "false"


def test_thread_counts_and_usable_cpus() -> None:
    assert parse_thread_count("8") == 8
    assert parse_thread_count(" 4,2 ") == 4  # OpenMP nesting: the outer level
    assert parse_thread_count("auto") is None
    assert usable_cpus(16, None, 64) == 16
    assert usable_cpus(16, 1.5, 64) == 2  # a 1.5-CPU quota keeps two threads busy
    assert usable_cpus(None, None, 4) == 4
    assert usable_cpus(None, 0.5, None) == 1


def test_mismatches_are_spelled_out() -> None:
    configured = {"OMP_NUM_THREADS": "8", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "many"}
    effective = {"usable_cpus": 2, "affinity_count": 4, "cgroup_cpus": 1.5}
    pools = [
        {"internal_api": "openblas", "user_api": "blas", "num_threads": 2},
        {"internal_api": "openmp", "user_api": "openmp", "num_threads": 8},
    ]
    assert find_mismatches(configured, effective, pools) == sorted(
        [
            "OMP_NUM_THREADS=8 but only 2 CPUs are usable",
            "MKL_NUM_THREADS='many' is not a thread count",
            "openblas pool runs 2 threads while OPENBLAS_NUM_THREADS=1",
            "the cgroup CPU quota allows 1.5 CPUs but 4 are in the affinity set; "
            "pools sized by CPU count oversubscribe",
        ]
    )


def test_an_unconfigured_pool_wider_than_the_machine_is_reported() -> None:
    pools = [{"internal_api": "openblas", "user_api": "blas", "num_threads": 64}]
    found = find_mismatches({}, {"usable_cpus": 2, "affinity_count": 2, "cgroup_cpus": None}, pools)
    assert found == ["openblas pool runs 64 threads on 2 usable CPUs (no thread variable set)"]
    assert find_mismatches({"OPENBLAS_NUM_THREADS": "2"}, {"usable_cpus": 2}, []) == []


def test_probe_reads_the_given_environment() -> None:
    usable = len(os.sched_getaffinity(0))
    environ = {"OMP_NUM_THREADS": str(usable + 6), "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin"}
    ctx = CaptureContext(CaptureOptions(environ=environ), target.in_process)
    data = ThreadsProbe().collect(ctx)
    validate_member("<test>", "env/threads.json", data)
    assert data["configured"] == {"OMP_NUM_THREADS": str(usable + 6), "TOKENIZERS_PARALLELISM": "false"}
    assert data["effective"]["affinity_count"] == usable
    assert data["effective"]["cpu_count"] == os.cpu_count()
    assert isinstance(data["effective"]["pools"], list)
    assert any(m.startswith(f"OMP_NUM_THREADS={usable + 6} but only") for m in data["mismatches"])
    assert data == ThreadsProbe().collect(ctx)


def test_another_interpreter_has_no_pools_to_report() -> None:
    runtime = TargetRuntime(in_process=False, python={}, markers={}, site_dirs=[], distributions=[], numpy=None)
    ctx = CaptureContext(CaptureOptions(environ={"OMP_NUM_THREADS": "1"}), lambda: runtime)
    data = ThreadsProbe().collect(ctx)
    validate_member("<test>", "env/threads.json", data)
    assert data["effective"]["pools"] is None
    assert data["configured"] == {"OMP_NUM_THREADS": "1"}


SNIPPET = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import numpy
from threadpoolctl import threadpool_limits
threadpool_limits(limits=2, user_api="blas")  # the job overrides its own OPENBLAS_NUM_THREADS=1
from envsnap.capture import native, system, threads, target
from envsnap.capture.base import CaptureContext, CaptureOptions
ctx = CaptureContext(CaptureOptions(), target.in_process)
for probe in (system.SystemProbe, native.NativeProbe):
    ctx.results[probe.name] = probe().collect(ctx)
print(json.dumps(threads.ThreadsProbe().collect(ctx)))
"""


@pytest.mark.slow
def test_a_pool_that_ignores_its_variable_is_reported(numpy_python: str) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([numpy_python, "-c", SNIPPET, str(REPO)], capture_output=True, text=True, check=True, env=env)
    data = json.loads(out.stdout)
    validate_member("<test>", "env/threads.json", data)
    assert data["configured"]["OPENBLAS_NUM_THREADS"] == "1"
    assert {"internal_api": "openblas", "user_api": "blas", "num_threads": 2} in data["effective"]["pools"]
    assert "openblas pool runs 2 threads while OPENBLAS_NUM_THREADS=1" in data["mismatches"]
