"""Diagnostic: where ``envsnap run -- COMMAND`` spends its time, as a timeline around the job.

Runs ``envsnap run`` in this process (the CLI's code path, ``nice`` included) with a timer around each
warm-up, each probe's collect, the wait for the job, the snapshot's assembly and its write, and prints
when each started and ended relative to the job's spawn, the job's own duration, and this process's CPU
time (the CPU envsnap took from the job while it ran). No verdict; it calls envsnap internals, so when
they change shape it fails loudly rather than guessing.

    .venv/bin/python bench/profile_run_command.py [--no-nice] -o OUT.envsnap -- COMMAND [ARGS]...

``--no-nice`` runs it as a library caller would, at the caller's priority (the CLI lowers its own).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

EVENTS: list[tuple[str, float, float]] = []
T0 = time.perf_counter()


def timed(label: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            EVENTS.append((label, start - T0, time.perf_counter() - T0))

    return wrapper


def main(argv: list[str]) -> int:
    """``-o OUT -- COMMAND...``: run it under envsnap run with the timers; print the timeline."""
    nice = "--no-nice" not in argv[: argv.index("--")] if "--" in argv else True
    if not nice:
        argv = [a for a in argv[: argv.index("--")] if a != "--no-nice"] + argv[argv.index("--") :]
    if "--" not in argv or argv[:1] != ["-o"]:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    output, command = argv[1], argv[argv.index("--") + 1 :]
    import envsnap.capture as capture_mod
    from envsnap.capture import command_run, load_probes

    for cls in load_probes():
        cls.collect = timed(f"probe {cls.name}", cls.collect)  # type: ignore[method-assign]
        cls.warm_up = classmethod(timed(f"warm_up {cls.name}", cls.warm_up.__func__))  # type: ignore[method-assign]
    job_cls = command_run._Job
    job_cls.wait = timed("wait for the job (main thread)", job_cls.wait)  # type: ignore[method-assign]
    original_init = job_cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        EVENTS.append(("job spawned", time.perf_counter() - T0, time.perf_counter() - T0))
        original_init(self, *args, **kwargs)

    job_cls.__init__ = init  # type: ignore[method-assign]
    capture_mod.build_snapshot = timed("build_snapshot (manifest)", capture_mod.build_snapshot)
    from envsnap.snapshot import model

    model.Snapshot.write = timed("write the snapshot", model.Snapshot.write)  # type: ignore[method-assign]
    cpu0 = time.process_time()
    result = command_run.run_command(command, output, force=True, nice=nice)
    cpu = time.process_time() - cpu0
    spawn = next(start for label, start, _ in EVENTS if label == "job spawned")
    duration = result.record["duration_s"]
    print(f"job exit {result.exit_status}, duration {duration:.3f} s; envsnap's own CPU in this process {cpu:.3f} s")
    print(f"{'event':<36} {'start':>8} {'end':>8} {'took':>7}   (seconds from the job's spawn)")
    for label, start, end in sorted(EVENTS, key=lambda e: e[1]):
        print(f"{label:<36} {start - spawn:8.3f} {end - spawn:8.3f} {end - start:7.3f}")
    print(f"{'job ended (spawn + duration)':<36} {duration:8.3f}")
    print(f"job end to snapshot written: {max(end for _, _, end in EVENTS) - spawn - duration:.3f} s (nice: {nice})")
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
