"""A real snapshot captured on a lent GPU host (fixtures/gpu/h200-capture.envsnap), read back here.

It was captured with `envsnap capture --reproducible --no-git` on an NVIDIA H200 machine with a 211-package
torch environment (the label says "h100-device": the run asked for an H100 and was given an H200). It
proves the whole pipeline on real GPU hardware: NVML facts, CUDA wheels' native libraries, schemas.
"""

from __future__ import annotations

from pathlib import Path

import envsnap
from envsnap.snapshot.summary import summarize

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "gpu" / "h200-capture.envsnap"


def test_gpu_host_snapshot_verifies_and_validates() -> None:
    snap = envsnap.load(FIXTURE)
    report = snap.verify()  # every member re-hashed and schema-validated by this version's schemas
    assert report.members == len(snap.members()) >= 11
    assert snap.manifest.created_at is None  # --reproducible
    assert all(s.status in ("ok", "skipped") for s in snap.manifest.probes.values())


def test_gpu_section_holds_the_real_device() -> None:
    gpu = envsnap.load(FIXTURE).section("gpu")
    assert gpu["available"] is True and gpu["source"] == "nvml"
    (device,) = gpu["devices"]
    assert device["name"] == "NVIDIA H200"
    assert device["compute_capability"] == "9.0"
    assert device["architecture"] == "Hopper"
    assert device["memory_total_mib"] > 140_000
    assert gpu["driver_version"].count(".") == 2 and gpu["cuda_driver_version"] == "13.0"


def test_cuda_wheels_native_libraries_are_named_and_versioned() -> None:
    native = envsnap.load(FIXTURE).section("native")
    by_kind: dict[str, set[str]] = {}
    for lib in native["libraries"]:
        by_kind.setdefault(lib["kind"], set()).add(lib["name"])
    assert {"cublas", "cudart", "nvrtc"} <= by_kind["cuda"]
    assert "cudnn" in by_kind["cudnn"] and "nccl" in by_kind["nccl"]
    assert "openblas" in by_kind["blas"]


def test_summary_of_the_gpu_host() -> None:
    summary = summarize(envsnap.load(FIXTURE))
    assert summary["gpu"].startswith("1 x NVIDIA H200, driver ")
    assert "211 distributions" in summary["packages"]
    assert "Ubuntu" in summary["system"]
