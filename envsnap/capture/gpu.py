"""``env/gpu.json``: NVIDIA driver, CUDA driver version and devices.

NVML (through ``pynvml``, package nvidia-ml-py) is asked first when it is importable; when it is not, or
its library or driver is missing, ``nvidia-smi -q -x`` is run and its XML parsed. "No GPU" is a value
(``available: false`` with a reason), not an error. Only configuration is recorded (name, memory size,
compute capability, modes): memory in use, utilisation, clocks and temperatures change from second to
second and would make two captures of the same machine differ.

This module imports nothing outside the standard library at import time (pynvml is imported inside
:func:`nvml_facts`), so the GPU facts can be gathered on a bare GPU host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register

__all__ = [
    "GpuProbe",
    "cuda_version_from_int",
    "gpu_facts",
    "no_gpu",
    "nvidia_driver_present",
    "nvidia_smi_facts",
    "nvml_facts",
    "parse_compute_caps",
    "parse_nvidia_smi_xml",
]

NVIDIA_SMI_TIMEOUT_S = 15
SOURCES = ("nvml", "nvidia-smi")

# nvmlDeviceGetArchitecture's enum, named as nvidia-smi names it in <product_architecture>.
_NVML_ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
}
_NVML_COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
_DRIVER_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")
_ABSENT = {"", "n/a", "not found", "none", "[n/a]", "not supported", "[not supported]", "unknown error"}


def no_gpu(reason: str) -> dict[str, Any]:
    """The document for a machine without a usable NVIDIA GPU."""
    return {
        "available": False,
        "source": None,
        "reason": reason,
        "driver_version": None,
        "cuda_driver_version": None,
        "devices": [],
    }


def _text(value: Any) -> str | None:
    """A clean string from NVML (bytes on old bindings) or XML text; None for nvidia-smi's "N/A"."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value).split())
    return None if text.lower() in _ABSENT else text


def _mode(value: Any) -> str | None:
    """nvidia-smi's "Enabled" / "Exclusive_Process" as "enabled" / "exclusive_process"."""
    text = _text(value)
    return text.lower().replace(" ", "_") if text else None


def _mib(value: str | None) -> int | None:
    """``"81559 MiB"`` → 81559."""
    if not value:
        return None
    number, _, unit = value.partition(" ")
    if not number.isdigit():
        return None
    factor = {"": 1, "MiB": 1, "GiB": 1024, "KiB": 0}.get(unit.strip(), 1)
    return int(number) * factor if factor else int(number) // 1024


def cuda_version_from_int(value: int) -> str | None:
    """NVML's CUDA driver version integer (12040) as CUDA writes it ("12.4")."""
    if value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _device_order(device: Mapping[str, Any]) -> tuple[int, str]:
    index = device.get("index")
    return (index if isinstance(index, int) else 1 << 30, str(device.get("pci_bus_id")))


def parse_nvidia_smi_xml(text: str) -> dict[str, Any]:
    """Parse ``nvidia-smi -q -x`` into driver/CUDA versions and per-device configuration.

    ``compute_capability`` is not part of that XML; it stays None here and is filled in from
    ``nvidia-smi --query-gpu=...,compute_cap`` (see :func:`parse_compute_caps`). Raises ``ValueError``
    when ``text`` is not nvidia-smi's XML.
    """
    import xml.etree.ElementTree as ET  # only GPU hosts pay its import

    try:
        root = ET.fromstring(text)  # noqa: S314 - nvidia-smi's own output
    except ET.ParseError as exc:
        raise ValueError(f"nvidia-smi printed XML that does not parse: {exc}") from exc
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"nvidia-smi XML has root <{root.tag}>, expected <nvidia_smi_log>")
    devices = []
    for position, gpu in enumerate(root.findall("gpu")):
        minor = _text(gpu.findtext("minor_number"))
        devices.append(
            {
                # nvidia-smi lists GPUs in PCI bus order, which is NVML's index order.
                "index": position,
                "minor_number": int(minor) if minor and minor.isdigit() else None,
                "name": _text(gpu.findtext("product_name")),
                "architecture": _text(gpu.findtext("product_architecture")),
                "uuid": _text(gpu.findtext("uuid")),
                "pci_bus_id": _text(gpu.findtext("pci/pci_bus_id")) or _text(gpu.get("id")),
                "memory_total_mib": _mib(_text(gpu.findtext("fb_memory_usage/total"))),
                "compute_capability": None,
                "mig_mode": _mode(gpu.findtext("mig_mode/current_mig")),
                "compute_mode": _mode(gpu.findtext("compute_mode")),
                "persistence_mode": _mode(gpu.findtext("persistence_mode")),
                "ecc_mode": _mode(gpu.findtext("ecc_mode/current_ecc")),
                "vbios_version": _text(gpu.findtext("vbios_version")),
            }
        )
    return {
        "driver_version": _text(root.findtext("driver_version")),
        "cuda_driver_version": _text(root.findtext("cuda_version")),
        "devices": sorted(devices, key=_device_order),
    }


def parse_compute_caps(text: str) -> dict[str, str]:
    """``nvidia-smi --query-gpu=uuid,compute_cap --format=csv,noheader`` → {uuid: "9.0"}."""
    caps: dict[str, str] = {}
    for line in text.splitlines():
        uuid, sep, cap = line.partition(",")
        cap_text = _text(cap)
        if sep and cap_text and _text(uuid):
            caps[uuid.strip()] = cap_text
    return caps


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=NVIDIA_SMI_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def nvidia_smi_facts(environ: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
    """GPU facts from ``nvidia-smi``, or ``(None, reason)`` when there is none to ask.

    A missing binary is found by a PATH lookup alone: a machine without a GPU pays no subprocess.
    """
    exe = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
    if exe is None:
        return None, "nvidia-smi is not on PATH"
    try:
        proc = _run([exe, "-q", "-x"])
    except subprocess.TimeoutExpired:
        return None, f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT_S} s"
    except OSError as exc:
        return None, f"nvidia-smi cannot be run ({exc.strerror or exc})"
    if proc.returncode != 0:
        # e.g. "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        lines = (proc.stdout + proc.stderr).strip().splitlines() or ["no output"]
        return None, f"nvidia-smi exited with {proc.returncode}: {lines[0][:200]}"
    facts = parse_nvidia_smi_xml(proc.stdout)
    if facts["devices"] and any(d["compute_capability"] is None for d in facts["devices"]):
        # The -q XML has no compute capability; drivers >= 510 answer this query (older ones fail: None).
        try:
            caps_proc = _run([exe, "--query-gpu=uuid,compute_cap", "--format=csv,noheader"])
        except (subprocess.TimeoutExpired, OSError):
            caps_proc = None
        if caps_proc is not None and caps_proc.returncode == 0:
            caps = parse_compute_caps(caps_proc.stdout)
            for device in facts["devices"]:
                device["compute_capability"] = caps.get(device["uuid"] or "")
    return facts, ""


def _optional(call: Any, *args: Any) -> Any:
    """An NVML query that some devices or drivers do not support: None instead of an error."""
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends; the fact is just absent
        return None


def _nvml_device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(nvml.nvmlDeviceGetMemoryInfo, handle)
    capability = _optional(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    mig = _optional(nvml.nvmlDeviceGetMigMode, handle)
    ecc = _optional(nvml.nvmlDeviceGetEccMode, handle)
    persistence = _optional(nvml.nvmlDeviceGetPersistenceMode, handle)
    pci = _optional(nvml.nvmlDeviceGetPciInfo, handle)
    arch = _optional(nvml.nvmlDeviceGetArchitecture, handle)
    compute_mode = _optional(nvml.nvmlDeviceGetComputeMode, handle)
    minor = _optional(nvml.nvmlDeviceGetMinorNumber, handle)
    enabled = {0: "disabled", 1: "enabled"}
    return {
        "index": index,
        "minor_number": minor if isinstance(minor, int) else None,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "architecture": _NVML_ARCHITECTURES.get(arch) if isinstance(arch, int) else None,
        "uuid": _text(_optional(nvml.nvmlDeviceGetUUID, handle)),
        "pci_bus_id": _text(pci.busId) if pci is not None else None,
        "memory_total_mib": int(memory.total) // (1 << 20) if memory is not None else None,
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "mig_mode": enabled.get(mig[0]) if mig else None,
        "compute_mode": _NVML_COMPUTE_MODES.get(compute_mode) if isinstance(compute_mode, int) else None,
        "persistence_mode": enabled.get(persistence) if isinstance(persistence, int) else None,
        "ecc_mode": enabled.get(ecc[0]) if ecc else None,
        "vbios_version": _text(_optional(nvml.nvmlDeviceGetVbiosVersion, handle)),
    }


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA kernel driver is visible (GPU containers get these mounted too; WSL has /dev/dxg)."""
    return any(os.path.exists(path) for path in _DRIVER_MARKERS)


def nvml_facts() -> tuple[dict[str, Any] | None, str]:
    """GPU facts from NVML, or ``(None, reason)`` when pynvml or the driver library is missing."""
    if not nvidia_driver_present():
        # Importing pynvml alone costs ~12 ms; without a driver NVML cannot answer anyway.
        return None, "no NVIDIA driver is loaded (" + ", ".join(_DRIVER_MARKERS) + " are absent)"
    try:
        import pynvml
    except ImportError:
        return None, "pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound / DriverNotLoaded: no NVML here
        return None, f"NVML unavailable: {_text(str(exc)) or type(exc).__name__}"
    try:
        cuda = _optional(pynvml.nvmlSystemGetCudaDriverVersion_v2) or _optional(pynvml.nvmlSystemGetCudaDriverVersion)
        count = int(pynvml.nvmlDeviceGetCount())
        devices = [_nvml_device(pynvml, index) for index in range(count)]
        facts = {
            "driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": cuda_version_from_int(cuda) if isinstance(cuda, int) else None,
            "devices": sorted(devices, key=_device_order),
        }
    finally:
        _optional(pynvml.nvmlShutdown)
    return facts, ""


def gpu_facts(environ: Mapping[str, str], sources: tuple[str, ...] = SOURCES) -> dict[str, Any]:
    """The ``env/gpu.json`` document: the first of ``sources`` that answers, else "no GPU" with reasons."""
    reasons: list[str] = []
    for source in sources:
        if source == "nvml":
            facts, reason = nvml_facts()
        elif source == "nvidia-smi":
            facts, reason = nvidia_smi_facts(environ)
        else:
            raise ValueError(f"unknown GPU source {source!r}; known: {', '.join(SOURCES)}")
        if facts is None:
            reasons.append(reason)
            continue
        if not facts["devices"]:
            reasons.append(f"{source} reports no devices")
            continue
        return {"available": True, "source": source, "reason": None, **facts}
    return no_gpu("; ".join(reasons) or "no source was asked")


@register
class GpuProbe(Probe):
    """NVIDIA GPUs and driver of this machine (a ``--python`` target runs on the same machine)."""

    name = "gpu"
    member = "env/gpu.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        data = gpu_facts(ctx.options.environ)
        # Which devices the job may use is part of how it ran; the value is kept by the env policy too.
        data["cuda_visible_devices"] = ctx.options.environ.get("CUDA_VISIBLE_DEVICES")
        return data
