"""capture() keeps going when a probe fails, records the error (scrubbed), and the result still reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import envsnap
from envsnap.capture import build_snapshot, load_probes, run_probes
from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions, Probe

CANARY = "ghp_" + "Z9" * 18


class ExplodingSystemProbe(Probe):
    """Stands in for the real system probe on a machine where reading /proc fails."""

    name = "system"
    member = "env/system.json"

    def collect(self, ctx: CaptureContext) -> Any:
        raise PermissionError(f"/proc/cpuinfo: denied (token {CANARY} leaked into the message)")


def test_a_failing_probe_is_recorded_and_capture_goes_on(tmp_path: Path) -> None:
    probes = [ExplodingSystemProbe if cls.name == "system" else cls for cls in load_probes()]
    ctx = CaptureContext(CaptureOptions(git=False), target_mod.in_process)
    members, statuses = run_probes(ctx, probes)
    snap = build_snapshot(ctx, members, statuses)
    path = snap.write(tmp_path / "s.envsnap")

    loaded = envsnap.load(path)
    loaded.verify()  # the error member passes the reader's schema check
    status = loaded.manifest.probes["system"]
    assert status.status == "error"
    assert status.error is not None and status.error.startswith("PermissionError: /proc/cpuinfo: denied")
    assert loaded.section("system") == {"error": {"type": "PermissionError", "message": status.error}}
    assert CANARY not in status.error
    assert all(CANARY.encode() not in data for _, data in loaded.iter_member_bytes())
    others = {n: s.status for n, s in loaded.manifest.probes.items() if n != "system"}
    assert set(others.values()) <= {"ok", "skipped"} and others["sbom"] == "ok"


def test_the_fingerprint_records_which_contract_probe_failed() -> None:
    probes = [ExplodingSystemProbe if cls.name == "system" else cls for cls in load_probes()]
    ctx = CaptureContext(CaptureOptions(git=False), target_mod.in_process)
    broken = build_snapshot(ctx, *run_probes(ctx, probes))
    ctx_ok = CaptureContext(CaptureOptions(git=False), target_mod.in_process)
    healthy = build_snapshot(ctx_ok, *run_probes(ctx_ok, load_probes()))
    assert broken.fingerprint != healthy.fingerprint
