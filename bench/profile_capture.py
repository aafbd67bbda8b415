"""Where one capture's time goes, stage by stage; print the figures as one JSON line.

A diagnostic for the speed goals, not a goal figure: it replays what ``envsnap.capture.capture()`` does
(envsnap/capture/__init__.py) with a timer around each stage -- importing the capture core and each probe
module, inspecting the target interpreter, each probe's collect + encode, the manifest, the write -- so
that a FAIL in RESULTS.md points at the stage to work on. It uses envsnap's internal functions; when they
change shape this script reports an error instead of figures.

    python bench/profile_capture.py [--python VENV/bin/python | --preload numpy,pandas]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from typing import Any


def profile(python: str | None) -> dict[str, float]:
    """Run one capture stage by stage; return seconds per stage, in execution order."""
    stages: dict[str, float] = {}
    start = time.perf_counter()
    import envsnap.capture as cap
    from envsnap.capture import base
    from envsnap.capture import target as target_mod
    from envsnap.snapshot.manifest import ProbeStatus

    stages["import envsnap.capture (core)"] = time.perf_counter() - start
    for name in cap.PROBE_MODULES:
        start = time.perf_counter()
        importlib.import_module(f"envsnap.capture.{name}")
        stages[f"import probe module {name}"] = time.perf_counter() - start

    start = time.perf_counter()
    target = target_mod.from_interpreter(python) if python else target_mod.in_process()
    stages["inspect target"] = time.perf_counter() - start

    options = base.CaptureOptions(python=python)
    ctx = base.CaptureContext(options, lambda: target)
    members: dict[str, bytes] = {}
    statuses: dict[str, ProbeStatus] = {}
    for cls in base.registered():
        probe = cls()
        start = time.perf_counter()
        if not probe.enabled(ctx):
            statuses[probe.name] = ProbeStatus("skipped")
            continue
        try:
            result = probe.collect(ctx)
        except Exception as exc:  # noqa: BLE001 - mirrors capture(): a failing probe is recorded, not fatal
            statuses[probe.name] = ProbeStatus("error", f"{type(exc).__name__}: {exc}")
            stages[f"probe {probe.name} (error)"] = time.perf_counter() - start
            continue
        extra: dict[str, Any] = {}
        if isinstance(result, base.ProbeOutput):
            extra, result = result.extra, result.data
        ctx.results[probe.name] = result
        members[probe.member] = cap._encode(probe.member, result)
        for member, data in extra.items():
            members[member] = cap._encode(member, data)
        statuses[probe.name] = ProbeStatus("ok", None, tuple(sorted([probe.member, *extra])))
        stages[f"probe {probe.name}"] = time.perf_counter() - start

    start = time.perf_counter()
    snap = cap.build_snapshot(ctx, members, statuses)
    stages["manifest + fingerprint"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        snap.write(os.path.join(tmp, "profile.envsnap"))
        stages["write .envsnap (zip)"] = time.perf_counter() - start
    return stages


def main() -> int:
    """Print {"stages": {...}} or {"error": "..."} as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=None, help="capture this interpreter, as --python does")
    parser.add_argument("--preload", default="", help="comma-separated modules to import first (a job's)")
    args = parser.parse_args()
    for name in filter(None, args.preload.split(",")):
        importlib.import_module(name)
    try:
        from envsnap.capture.base import paused_gc

        # As capture() does: no garbage collection while the probe modules load and the probes run (in a job
        # with a large heap, a full collection triggered there cost more than most stages).
        with paused_gc():
            out: dict[str, Any] = {"stages": profile(args.python)}
    except Exception:  # noqa: BLE001 - any drift in envsnap's internals becomes a reported error
        out = {"error": traceback.format_exc()[-1500:]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
