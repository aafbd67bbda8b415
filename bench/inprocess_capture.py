"""Time ``envsnap.capture.capture()`` inside one fresh interpreter; print the figures as one JSON line.

Run by capture_bench.py with the Python of an environment where envsnap is installed, once per fresh
process. It reports separately:

* ``preload_s``  -- importing the job's own libraries first (``--preload numpy,pandas``): a real job has
  them loaded when it calls capture, and the native probe then has loaded libraries to walk;
* ``import_s``   -- ``from envsnap.capture import capture`` (envsnap and its capture core);
* ``first_s``    -- the first ``capture()`` call of the process, lazy probe imports included: what
  a job pays on top of that import. The in-process goal is judged on it;
* ``first_cpu_s`` -- the CPU time of this process during that call (user + system, all threads): less
  disturbed than the wall time when other work shares the machine;
* ``warm_s``     -- further calls in the same process (module caches warm);
* ``write_s``    -- one more call that also writes the snapshot (``capture(output=...)``);
* ``max_rss_kib`` -- the process's peak RSS at the end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import tempfile
import time


def main() -> int:
    """Measure and print one JSON object."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--preload", default="", help="comma-separated modules to import before envsnap")
    parser.add_argument("--warm", type=int, default=3, help="warm calls after the first one")
    args = parser.parse_args()

    start = time.perf_counter()
    for name in filter(None, args.preload.split(",")):
        importlib.import_module(name)
    preload_s = time.perf_counter() - start

    start = time.perf_counter()
    from envsnap.capture import capture

    import_s = time.perf_counter() - start

    start, cpu_start = time.perf_counter(), time.process_time()
    snap = capture()
    first_s = time.perf_counter() - start
    first_cpu_s = time.process_time() - cpu_start

    warm_s = []
    for _ in range(args.warm):
        start = time.perf_counter()
        capture()
        warm_s.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        capture(os.path.join(tmp, "inprocess.envsnap"))
        write_s = time.perf_counter() - start

    manifest = snap.manifest
    probes = {name: status.status for name, status in manifest.probes.items()}
    errors = {name: status.error for name, status in manifest.probes.items() if status.status == "error"}
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "preload": args.preload,
                "preload_s": preload_s,
                "import_s": import_s,
                "first_s": first_s,
                "first_cpu_s": first_cpu_s,
                "warm_s": warm_s,
                "write_s": write_s,
                "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "probes": probes,
                "probe_errors": errors,
                "members": len(manifest.members),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
