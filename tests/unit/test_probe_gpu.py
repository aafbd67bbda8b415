"""The GPU probe: the nvidia-smi XML parser on real H100 output, NVML/nvidia-smi agreement, "no GPU".

fixtures/gpu/ was recorded on an NVIDIA H100 80GB HBM3 host (driver 580.159.04, CUDA 13.0):
``nvidia-smi -q -x`` and ``--query-gpu=uuid,compute_cap`` output, and this probe's document gathered
there through NVML (``gpu-nvml.json``), through nvidia-smi (``gpu-nvidia-smi.json``) and in its default
order (``gpu-default.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.gpu import (
    GpuProbe,
    cuda_version_from_int,
    gpu_facts,
    nvidia_driver_present,
    parse_compute_caps,
    parse_nvidia_smi_xml,
)
from envsnap.snapshot.schema import validate_member

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
XML = (FIXTURES / "nvidia-smi-q-x.xml").read_text()
CAPS = (FIXTURES / "nvidia-smi-compute-cap.csv").read_text()


def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_parser_reads_the_real_h100_output() -> None:
    root = ET.fromstring(XML)  # noqa: S314 - nvidia-smi's recorded output
    gpu = root.find("gpu")
    assert gpu is not None
    facts = parse_nvidia_smi_xml(XML)
    assert facts["driver_version"] == root.findtext("driver_version") == "580.159.04"
    assert facts["cuda_driver_version"] == root.findtext("cuda_version") == "13.0"
    assert len(facts["devices"]) == int(root.findtext("attached_gpus") or 0) == 1
    device = facts["devices"][0]
    assert device["name"] == gpu.findtext("product_name")
    assert "H100" in device["name"]
    assert device["uuid"] == gpu.findtext("uuid")
    assert device["pci_bus_id"] == gpu.get("id") == gpu.findtext("pci/pci_bus_id")
    total = gpu.findtext("fb_memory_usage/total") or ""
    assert device["memory_total_mib"] == int(total.removesuffix(" MiB")) == 81559
    assert device["architecture"] == "Hopper"
    assert device["mig_mode"] == "disabled"
    assert device["ecc_mode"] == "enabled"
    assert device["compute_capability"] is None  # not part of the -q XML; the probe asks --query-gpu


def test_compute_capability_comes_from_the_query() -> None:
    caps = parse_compute_caps(CAPS)
    device = parse_nvidia_smi_xml(XML)["devices"][0]
    assert caps == {device["uuid"]: "9.0"}  # Hopper is compute capability 9.0
    assert parse_compute_caps("GPU-x, [N/A]\nnot csv\n") == {}


def test_no_volatile_reading_is_recorded() -> None:
    device = parse_nvidia_smi_xml(XML)["devices"][0]
    root = ET.fromstring(XML)  # noqa: S314 - nvidia-smi's recorded output
    volatile = {
        root.findtext("gpu/fb_memory_usage/used"),
        root.findtext("gpu/fb_memory_usage/free"),
        root.findtext("gpu/temperature/gpu_temp"),
        root.findtext("gpu/utilization/gpu_util"),
        root.findtext("timestamp"),
    } - {None}
    assert volatile, "the fixture has volatile readings to leave out"
    assert not volatile & {str(v) for v in device.values()}
    assert not {"used", "free", "temperature", "utilization", "power", "clocks"} & set(device)


def test_parser_agrees_with_what_was_recorded_on_the_device() -> None:
    recorded = _recorded("gpu-nvidia-smi.json")
    facts = parse_nvidia_smi_xml(XML)
    for device in facts["devices"]:
        device["compute_capability"] = parse_compute_caps(CAPS).get(device["uuid"])
    assert facts == {k: recorded[k] for k in ("driver_version", "cuda_driver_version", "devices")}


def test_nvml_and_nvidia_smi_gave_the_same_facts_on_the_h100() -> None:
    nvml, smi, default = _recorded("gpu-nvml.json"), _recorded("gpu-nvidia-smi.json"), _recorded("gpu-default.json")
    assert nvml["source"] == "nvml" and smi["source"] == "nvidia-smi"
    assert default == nvml  # NVML is asked first when pynvml is importable
    for key in ("available", "driver_version", "cuda_driver_version", "devices"):
        assert nvml[key] == smi[key]
    assert nvml["devices"][0]["compute_capability"] == "9.0"
    for data in (nvml, smi):
        validate_member("<test>", "env/gpu.json", {**data, "cuda_visible_devices": None})


def test_bad_xml_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        parse_nvidia_smi_xml("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    with pytest.raises(ValueError, match="expected <nvidia_smi_log>"):
        parse_nvidia_smi_xml("<other/>")


def test_cuda_driver_version_integers() -> None:
    assert cuda_version_from_int(12040) == "12.4"
    assert cuda_version_from_int(13000) == "13.0"
    assert cuda_version_from_int(0) is None


def test_missing_nvidia_smi_costs_no_subprocess_and_is_a_value(tmp_path: Path) -> None:
    data = gpu_facts({"PATH": str(tmp_path)}, sources=("nvidia-smi",))
    assert data == {
        "available": False,
        "source": None,
        "reason": "nvidia-smi is not on PATH",
        "driver_version": None,
        "cuda_driver_version": None,
        "devices": [],
    }
    with pytest.raises(ValueError, match="unknown GPU source"):
        gpu_facts({}, sources=("rocm",))


def _executable(path: Path, script: str) -> None:
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_nvidia_smi_path_end_to_end_on_the_recorded_output(tmp_path: Path) -> None:
    # This host has no GPU: a stand-in binary prints the H100's recorded output byte for byte, so the
    # subprocess handling and the compute-capability query run for real.
    _executable(
        tmp_path / "nvidia-smi",
        f'#!/bin/sh\nif [ "$1" = "-q" ]; then cat "{FIXTURES}/nvidia-smi-q-x.xml"; '
        f'else cat "{FIXTURES}/nvidia-smi-compute-cap.csv"; fi\n',
    )
    data = gpu_facts({"PATH": str(tmp_path)}, sources=("nvidia-smi",))
    recorded = _recorded("gpu-nvidia-smi.json")
    assert data == recorded


def test_a_driver_failure_is_no_gpu_with_the_reason(tmp_path: Path) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    _executable(tmp_path / "nvidia-smi", f'#!/bin/sh\necho "{message}"\nexit 9\n')
    data = gpu_facts({"PATH": str(tmp_path)}, sources=("nvidia-smi",))
    assert data["available"] is False
    assert data["reason"] == f"nvidia-smi exited with 9: {message}"


def test_probe_on_this_machine() -> None:
    environ = {"PATH": os.environ.get("PATH", ""), "CUDA_VISIBLE_DEVICES": "0"}
    data = GpuProbe().collect(CaptureContext(CaptureOptions(environ=environ), target.in_process))
    validate_member("<test>", "env/gpu.json", data)
    assert data["cuda_visible_devices"] == "0"
    if not nvidia_driver_present() and shutil.which("nvidia-smi") is None:
        assert data["available"] is False
        assert data["devices"] == [] and data["driver_version"] is None
        assert "no NVIDIA driver" in data["reason"] and "nvidia-smi is not on PATH" in data["reason"]
    else:
        assert data["available"] is True and data["devices"]
        assert data["driver_version"]
