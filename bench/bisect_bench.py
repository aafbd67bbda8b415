"""Bisect benchmark: replays used against the number of changed packages.

GOOD is a 4-stage arrow pipeline (tests/integration/bisect_project: ``localize`` depends on pytz's tz
database) recorded with ``envsnap run`` in a real venv. For each n in ``--sizes`` (default 1,2,4,8), BAD is
the same pipeline recorded in a venv where n packages differ from GOOD: pytz 2025.2 → 2019.1 (the one change
that flips ``localize``) and n-1 harmless version changes of other small packages. ``envsnap.bisect.bisect(GOOD,
BAD, engine="venv", stage="localize")`` must find pytz in at most 2⌈log2 n⌉+2 replays; a
one-at-a-time search would need up to n + 1. Each bisection runs ``--repeats`` times (default 2): the first
builds its replay runtimes (venvs, from a wheel cache that starts empty: ``ENVSNAP_CACHE_DIR`` is a scratch
directory), later ones reuse them. Everything is built under a temp directory, deleted at the end.

    .venv/bin/python bench/bisect_bench.py [--sizes 1,2,4,8] [--repeats 2] [--out bench]

Writes ``RESULTS-bisect.md`` and ``results-bisect.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from _harness import machine, one_line  # noqa: E402

PROJECT = REPO / "tests" / "integration" / "bisect_project"
COMMON = ("pyarrow==20.0.0", "iniconfig==2.0.0")
CULPRIT = ("pytz", "2025.2", "2019.1")
#: Harmless changes (name, GOOD version, BAD version): none of them changes what the pipeline computes.
HARMLESS = (
    ("six", "1.17.0", "1.16.0"),
    ("idna", "3.10", "3.7"),
    ("packaging", "24.2", "24.1"),
    ("attrs", "25.1.0", "24.2.0"),
    ("tzdata", "2025.1", "2024.2"),
    ("zipp", "3.21.0", "3.20.2"),
    ("toolz", "1.0.0", "0.12.1"),
)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} … exited {proc.returncode}: {one_line(proc.stderr or proc.stdout)}")
    return proc


def pins(changed: int) -> list[str]:
    """GOOD's pins (changed=0) or a BAD's: the culprit plus changed-1 harmless changes."""
    items = [CULPRIT, *HARMLESS]
    return [*COMMON, *(f"{n}=={bad if i < changed else good}" for i, (n, good, bad) in enumerate(items))]


def make_venv(path: Path, requirements: list[str]) -> Path:
    _run([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements])
    return python


def make_project(dest: Path) -> Path:
    """The bisect test pipeline in a scratch git repository, with its events (the test suite's helper)."""
    from tests.integration.replay_env import make_events

    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__"))
    make_events(dest / "events.parquet")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "stages.py", "envsnap.toml"], ["commit", "-qm", "pipeline"]):
        _run([*git, *args], cwd=dest)
    return dest


def record(project: Path, python: Path, out: Path) -> Path:
    """``envsnap run`` of the pipeline in ``python`` (no thread settings inherited from this machine)."""
    knobs = ("OMP_", "MKL_", "KMP_", "OPENBLAS_NUM_THREADS", "NUMEXPR_", "VECLIB_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(knobs)}
    envsnap = [sys.executable, "-m", "envsnap", "run", "--config", str(project / "envsnap.toml")]
    _run([*envsnap, "--python", str(python), "-o", str(out), "--force", "-q"], cwd=project, env=env)
    return out


def bisect_once(good: Path, bad: Path) -> dict[str, Any]:
    from envsnap.bisect import bisect

    started = time.perf_counter()
    report = bisect(good, bad, engine="venv", stage="localize")
    return {
        "seconds": time.perf_counter() - started,
        "status": report.status,
        "replays": report.replays,
        "units": len(report.delta.units),
        "culprit": [c.describe() for c in report.culprit],
        "cached_steps": sum(1 for s in report.steps if s.cached),
        "steps": [{"phase": s.phase, "changes": list(s.changes), "outcome": s.outcome} for s in report.steps],
    }


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Bisect: replays used vs the number of changed packages",
        "",
        f"Written by `bench/bisect_bench.py` on {results['started_at']} in {results['duration_s']:.0f} s. "
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB. GOOD and each BAD are recordings "
        "of the 4-stage arrow pipeline of `tests/integration/bisect_project` in real venvs; BAD differs in n "
        "packages, of which exactly one (pytz 2025.2 → 2019.1) flips the `localize` stage. "
        '`envsnap.bisect.bisect(GOOD, BAD, engine="venv", stage="localize")`, each replay in a real venv runtime.',
        "",
        "| changed packages n | delta units | replays used | bound 2⌈log2 n⌉+2 | one at a time (n + 1) | culprit "
        "| status | first run s (runtimes built) | later runs s (runtimes reused) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"]:
        if case.get("error"):
            lines.append(f"| {case['changed']} | could not run: {case['error']} | | | | | | | |")
            continue
        later = case["later_seconds"]
        lines.append(
            f"| {case['changed']} | {case['units']} | **{case['replays']}** | {case['bound']} | {case['changed'] + 1} "
            f"| {', '.join(case['culprit']) or '-'} | {case['status']} | {case['seconds']:.1f} | "
            + (f"{min(later):.1f}-{max(later):.1f}" if later else "-")
            + " |"
        )
    lines += [
        "",
        "Replays include GOOD alone and the whole delta (the two checks before ddmin). The replay count of a "
        "bisection is deterministic; its time is not (runtimes are built once, then reused by image key).",
        "",
        f"Versions: {results['versions']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8", help=f"changed-package counts, 1..{len(HARMLESS) + 1}")
    parser.add_argument("--repeats", type=int, default=2, help="bisections per size (the first builds runtimes)")
    parser.add_argument("--out", type=Path, default=BENCH)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not all(1 <= n <= len(HARMLESS) + 1 for n in sizes):
        parser.error(f"sizes must be between 1 and {len(HARMLESS) + 1}")
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="envsnap-bisect-bench-"))
    os.environ["ENVSNAP_CACHE_DIR"] = str(work / "cache")  # cold wheel and runtime caches, deleted after
    cases: list[dict[str, Any]] = []
    try:
        project = make_project(work / "project")
        print("building GOOD's venv and recording GOOD", flush=True)
        good = record(project, make_venv(work / "good", pins(0)), work / "good.envsnap")
        for n in sizes:
            bound = 2 * math.ceil(math.log2(n)) + 2 if n > 1 else 2
            case: dict[str, Any] = {"changed": n, "bound": bound}
            try:
                print(f"n={n}: building BAD's venv, recording, bisecting", flush=True)
                bad = record(project, make_venv(work / f"bad{n}", pins(n)), work / f"bad{n}.envsnap")
                runs = [bisect_once(good, bad) for _ in range(max(1, args.repeats))]
                case.update(runs[0], later_seconds=[r["seconds"] for r in runs[1:]])
                print(f"  {case['status']}: {case['replays']} replays (bound {bound}), {case['culprit']}", flush=True)
            except Exception as exc:  # noqa: BLE001 - one size failing must not hide the others
                case["error"] = one_line(f"{type(exc).__name__}: {exc}")
                print(f"  could not run: {case['error']}", flush=True)
            cases.append(case)
        versions = _run([sys.executable, "-m", "envsnap", "--version"]).stdout.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_s": time.time() - started,
        "machine": machine(),
        "versions": versions,
        "cases": cases,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results-bisect.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = render(results)
    (args.out / "RESULTS-bisect.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(not c.get("error") for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
