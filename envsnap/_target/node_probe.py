"""The per-node probe of a fleet capture: raw facts about one worker, gathered with the standard library.

Shipped code (see :mod:`envsnap._target`): a worker needs its engine (ray, pyspark) and a Python >= 3.8,
never envsnap. :mod:`.payload` loads this package from its sources on the worker and calls
:func:`collect`.

The probe returns raw facts (the interpreter inspection, the host facts of :mod:`.host`, the environment
filtered by the driver's allowlist, ``nvidia-smi`` output); the driver parses them with the code of the
local probes and redacts every string before anything is stored. A value of an environment variable
whose name is not on the allowlist never leaves the worker: only its name does.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import subprocess
import time
from typing import Any

from . import host, interpreter

#: The shape of :func:`collect`'s answer; 2: the host facts of :func:`.host.read_host_facts`.
PAYLOAD_VERSION = 2
NVIDIA_SMI_TIMEOUT_S = 20
_TEXT_LIMIT = 1 << 22


def _wanted(name: str, exact: list[str], globs: list[str], never: list[str]) -> bool:
    if name in never:
        return False
    return name in exact or any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def environment(options: dict[str, Any]) -> dict[str, Any]:
    """Every variable name; values only for names on the driver's allowlist (``options["env"]``)."""
    policy = options.get("env") or {}
    exact = list(policy.get("exact") or ())
    globs = list(policy.get("globs") or ())
    never = list(policy.get("never") or ())
    values = {}
    for name, value in os.environ.items():
        if _wanted(name, exact, globs, never):
            values[name] = value
    return {"names": sorted(os.environ), "values": values}


def gpu() -> dict[str, Any]:
    """``nvidia-smi -q -x`` (and the compute-capability query) when nvidia-smi is on PATH."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"reason": "nvidia-smi is not on PATH"}
    out: dict[str, Any] = {}
    for key, argv in (
        ("xml", [exe, "-q", "-x"]),
        ("caps", [exe, "--query-gpu=uuid,compute_cap", "--format=csv,noheader"]),
    ):
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            out[key] = {"error": type(exc).__name__ + ": " + str(exc)[:200]}
            continue
        out[key] = {
            "returncode": proc.returncode,
            "stdout": proc.stdout.decode("utf-8", "replace")[:_TEXT_LIMIT],
            "stderr": proc.stderr.decode("utf-8", "replace")[:2000],
        }
    return out


def collect(options: dict[str, Any]) -> dict[str, Any]:
    """Every raw fact of this worker (``options``: the environment allowlist and identity variables)."""
    started = time.monotonic()
    facts: dict[str, Any] = {
        "payload_version": PAYLOAD_VERSION,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "inspect": interpreter.inspect(),
        "system": host.read_host_facts(),
        "environment": environment(options),
        # Variables that say which engine worker this is (Spark's executor id); read by the driver only.
        "identity": {name: os.environ.get(name) for name in options.get("identity_env") or ()},
        "gpu": gpu(),
    }
    facts["wall_s"] = round(time.monotonic() - started, 6)
    return facts
