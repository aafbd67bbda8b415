"""The entry point of the runner in another interpreter: run the job a JSON file describes, write a JSON report."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from . import values
from .failures import type_name
from .measure import top_level_modules
from .stages import run_stages

# The directory the shipped package was installed in: this file is <it>/_envsnap_target/runner/main.py.
_SHIPPED_FROM = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str]) -> int:
    """Run the job in ``argv[0]`` (JSON: stages, inputs, kinds, pythonpath, out_dir); write report.json."""
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    out_dir = job["out_dir"]
    report: dict[str, Any] = {
        "python": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "added_to_sys_path": [p for p in sys.path if p and os.path.abspath(p) == _SHIPPED_FROM],
        "fatal": None,
        "preloaded_modules": [],
        "stages": [],
    }
    try:
        for entry in reversed(job["pythonpath"]):
            sys.path.insert(0, entry)
        # Inputs and recorded intermediates are read with the target's own pyarrow, else its polars (a job
        # may use neither pandas nor pyarrow). Tables are converted to their kind when a stage takes them
        # (so that a missing pandas is that stage's recorded failure); other values are rebuilt here.
        inputs, input_kinds = {}, {}
        for name, spec in job["inputs"].items():
            if spec["kind"] in values.TABLE_KINDS:
                inputs[name] = values.read_table(spec["path"])
                input_kinds[name] = spec["kind"]
            else:
                inputs[name] = values.load(spec["path"], spec["kind"], spec.get("value"))

        def sink(index: int, label: str, value: Any, kind: str, columns: Any) -> dict[str, Any]:
            return values.write(value, kind, out_dir, f"{index:02d}-{label}", columns)

        progress = os.path.join(out_dir, "progress.log")

        def started(index: int, name: str) -> None:
            # One line per stage as it starts, flushed: a replay killed mid-stage (out of memory, a
            # timeout) still says which stage was running, and when the first one began.
            with open(progress, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"index": index, "name": name, "started_at": time.time()}) + "\n")

        report["preloaded_modules"] = sorted(top_level_modules(list(sys.modules)))
        report["stages"] = run_stages(
            job["stages"],
            inputs,
            sink,
            workdir=job["work_dir"],
            cwd=job.get("cwd"),
            pythonpath=job["pythonpath"],
            input_kinds=input_kinds,
            start=int(job.get("start") or 1),
            previous=job.get("previous"),
            on_start=started,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the host, which turns it into an error
        report["fatal"] = {"type": type_name(exc), "message": str(exc), "traceback": traceback.format_exc()}
    return _write_report(out_dir, report)


def _write_report(out_dir: str, report: dict[str, Any]) -> int:
    tmp = os.path.join(out_dir, "report.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, default=str)
    os.replace(tmp, os.path.join(out_dir, "report.json"))
    return 0
