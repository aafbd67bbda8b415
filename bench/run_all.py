"""Every benchmark area in one run: ``make bench`` = ``.venv/bin/python bench/run_all.py``.

Runs each area script of bench/ in turn (capture, job capture, sampling, data diff, environment diff,
runner overhead, replay, bisect, fleet) at its full settings, after building or installing what it needs
(benchmark venvs, peer tools from PyPI into ``bench/.venvs/``, the demo venv, the Docker base image). An area
that cannot run is never skipped silently: RESULTS.md says why, with the tail of its log. Then it writes
**bench/RESULTS.md**: the machine, every tool's version, one summary table of every goal (goal, measured,
verdict, the command that produced it) and each area's own report (median of >= 5 runs after a warm-up, min
and max, pair-by-pair ratios). Large generated data (``bench/.data``) is deleted at the end.

    .venv/bin/python bench/run_all.py                      # everything, full settings
    .venv/bin/python bench/run_all.py --areas replay,bisect  # some areas; the others keep their last results
    .venv/bin/python bench/run_all.py --quick --areas runner # development: the smallest runs (not figures)

Per-area state (command, when, how long, exit status, why not) is kept in ``bench/results-run-all.json`` so
that RESULTS.md always covers every area: one that was not run this time is shown with the date of its
results. Logs: ``bench/.tmp/logs/AREA.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import setup_venvs  # noqa: E402
from _areas import AREAS, Area, Goal  # noqa: E402
from _harness import machine, one_line, tool_output  # noqa: E402

STATE = BENCH / "results-run-all.json"
LOGS = BENCH / ".tmp" / "logs"
DATA = BENCH / ".data"
TOOLS = setup_venvs.SPECS["tools"].path / "bin"
DATACOMPY = BENCH / ".venvs" / "datacompy"
DATACOMPY_PINS = ("datacompy==1.1.0", "pyarrow")
DEMO_PYTHON = REPO / ".cache" / "demo-venv" / "bin" / "python"
DEMO_SNAPSHOT = REPO / "out" / "demo.envsnap"
PY = sys.executable


def _quiet(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _pip_install(python: Path | str, *pins: str) -> str | None:
    print(f"  installing {' '.join(pins)} into {python}", flush=True)
    proc = _quiet([str(python), "-m", "pip", "install", "-q", *pins])
    return None if proc.returncode == 0 else f"pip install {' '.join(pins)} failed: {one_line(proc.stderr)}"


# --- prerequisites: each returns (why it cannot run or None, extra arguments for the script) --------------


def need_venvs(names: tuple[str, ...] = ("ml", "big", "tools", "ml-envsnap")) -> tuple[str | None, list[str]]:
    try:
        setup_venvs.main(list(names))
    except subprocess.CalledProcessError as exc:
        return f"building bench/.venvs failed: {one_line(str(exc.stderr or exc))}", []
    return None, []


def need_measured_venvs() -> tuple[str | None, list[str]]:
    return need_venvs(("ml", "big"))


def need_demo_venv() -> tuple[str | None, list[str]]:
    if DEMO_PYTHON.exists():
        return None, []
    proc = _quiet(["make", "--no-print-directory", ".cache/demo-venv/.installed"], cwd=REPO)
    return (None if proc.returncode == 0 else f"building .cache/demo-venv failed: {one_line(proc.stderr)}"), []


def need_reprozip() -> tuple[str | None, list[str]]:
    why, _ = need_tools()
    if why:
        return why, []
    import job_capture_bench

    return job_capture_bench.ensure_reprozip(), []


def need_tools() -> tuple[str | None, list[str]]:
    if all((TOOLS / n).exists() for n in ("cyclonedx-py", "pipdeptree", "uv")):
        return None, []
    try:
        setup_venvs.main(["tools"])
    except subprocess.CalledProcessError as exc:
        return f"building bench/.venvs/tools failed: {one_line(str(exc.stderr or exc))}", []
    return None, []


def need_duckdb() -> tuple[str | None, list[str]]:
    if _quiet([PY, "-c", "import duckdb, pandas, pyarrow"]).returncode == 0:
        return None, []
    return _pip_install(PY, "duckdb", "pandas", "pyarrow"), []


def need_datacompy() -> tuple[str | None, list[str]]:
    python = DATACOMPY / "bin" / "python"
    if python.exists() and _quiet([str(python), "-c", "import datacompy, pyarrow"]).returncode == 0:
        return None, []
    shutil.rmtree(DATACOMPY, ignore_errors=True)
    if _quiet([PY, "-m", "venv", str(DATACOMPY)]).returncode != 0:
        return f"could not create {DATACOMPY}", []
    return _pip_install(python, *DATACOMPY_PINS), []


def need_docker() -> tuple[str | None, list[str]]:
    if shutil.which("docker") is None:
        return "no docker client on this machine (scripts/docker-setup.sh installs one)", []
    proc = _quiet([str(REPO / "scripts" / "docker-setup.sh")], cwd=REPO)
    image = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
    if not image:
        return f"scripts/docker-setup.sh failed (exit {proc.returncode}): {one_line(proc.stderr)}", []
    return None, ["--base-image", image]


def need_demo_snapshot() -> tuple[str | None, list[str]]:
    if DEMO_SNAPSHOT.exists():
        return None, []
    print("  out/demo.envsnap is missing: running scripts/demo.sh to record it", flush=True)
    proc = _quiet([str(REPO / "scripts" / "demo.sh")], cwd=REPO, env={**os.environ, "VENV": ".venv"})
    if DEMO_SNAPSHOT.exists():
        return None, []
    return f"out/demo.envsnap is missing and scripts/demo.sh failed: {one_line(proc.stderr)}", []


def need_bisect() -> tuple[str | None, list[str]]:
    proc = _quiet([PY, "-c", "import envsnap.bisect"])
    if proc.returncode != 0:
        return f"envsnap.bisect does not import: {one_line(proc.stderr)}", []
    return None, []


PREPARE: dict[str, Callable[[], tuple[str | None, list[str]]]] = {
    "venvs": need_venvs,
    "measured-venvs": need_measured_venvs,
    "demo-venv": need_demo_venv,
    "reprozip": need_reprozip,
    "duckdb": need_duckdb,
    "datacompy": need_datacompy,
    "docker": need_docker,
    "demo-snapshot": need_demo_snapshot,
    "bisect": need_bisect,
}


# --- running one area ---------------------------------------------------------------------------------


def shown(argv: list[str]) -> str:
    """A command line as RESULTS.md shows it: paths relative to the repository, the base image shortened."""
    root = str(REPO) + os.sep
    parts = [a[len(root) :] if a.startswith(root) else a for a in argv]
    parts = [p.split("@sha256:")[0] + "@sha256:…" if "@sha256:" in p else p for p in parts]
    parts[0] = ".venv/bin/python" if argv[0] == PY else parts[0]
    return " ".join(parts)


def run_area(area: Area, quick: bool) -> dict[str, Any]:
    """Prepare and run one area; return its state entry (status ran / failed / could-not-run)."""
    started = time.time()
    state: dict[str, Any] = {"started_at": _stamp(started), "quick": quick, "reason": None, "rc": None}
    script = BENCH / area.script
    argv = [PY, str(script), *(area.quick_args if quick else area.args)]
    state["command"] = shown(argv)
    if not script.exists():
        return {**state, "status": "could-not-run", "reason": f"bench/{area.script} does not exist (yet)"}
    extra: list[str] = []
    for need in area.needs:
        why, more = PREPARE[need]()
        if why:
            return {**state, "status": "could-not-run", "reason": why, "duration_s": time.time() - started}
        extra += more
    argv += extra
    state["command"] = shown(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{area.key}.log"
    print(f"+ {state['command']}  (log: {log.relative_to(REPO)})", flush=True)
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            sys.stdout.write("    " + line)
            sys.stdout.flush()
        rc = proc.wait()
    state.update(rc=rc, duration_s=time.time() - started, log=str(log.relative_to(REPO)))
    fresh = [o for o in area.outputs if (BENCH / o).exists() and (BENCH / o).stat().st_mtime >= started - 1]
    if rc != 0:
        return {**state, "status": "failed", "reason": f"exit {rc}: {one_line(_tail(log, 1))}"}
    if len(fresh) != len(area.outputs):
        missing = sorted(set(area.outputs) - set(fresh))
        return {**state, "status": "failed", "reason": f"exit 0 but it did not write {', '.join(missing)}"}
    return {**state, "status": "ran"}


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


def tool_versions() -> dict[str, str]:
    """Versions of envsnap and every peer (or why one is unavailable)."""

    def module(python: Path | str, name: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({name!r}))"
        return tool_output([str(python), "-c", code])

    ml = setup_venvs.SPECS["ml"].python
    return {
        "envsnap": module(PY, "envsnap"),
        "Python (envsnap, dev venv)": tool_output([PY, "--version"]),
        "pip (dev venv)": tool_output([PY, "-m", "pip", "--version"]).split(" from ")[0],
        "pip (bench/.venvs/ml)": tool_output([str(ml), "-m", "pip", "--version"]).split(" from ")[0],
        "uv": tool_output([str(TOOLS / "uv"), "--version"]),
        "cyclonedx-py": tool_output([str(TOOLS / "cyclonedx-py"), "--version"]),
        "pipdeptree": tool_output([str(TOOLS / "pipdeptree"), "--version"]),
        "reprozip": tool_output([str(TOOLS / "reprozip"), "--version"]),
        "duckdb": module(PY, "duckdb"),
        "pandas": module(PY, "pandas"),
        "pyarrow": module(PY, "pyarrow"),
        "datacompy": module(DATACOMPY / "bin" / "python", "datacompy"),
        "docker (server)": tool_output(["docker", "version", "--format", "{{.Server.Version}}"]),
    }


# --- RESULTS.md -----------------------------------------------------------------------------------------


def area_goals(area: Area, entry: dict[str, Any] | None) -> list[Goal]:
    """The goal rows of one area; one row saying why when it has no figures."""
    if entry is None:
        return [Goal(f"{area.title}: every goal", "never run by run_all.py", "n/a")]
    if entry["status"] != "ran":
        return [Goal(f"{area.title}: every goal", f"{entry['status']}: {entry['reason']}", "n/a")]
    try:
        return area.goals(BENCH)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return [Goal(f"{area.title}: every goal", f"results unreadable: {type(exc).__name__}: {exc}", "n/a")]


def _demote(markdown: str) -> list[str]:
    """An area's report inside RESULTS.md: its title dropped, every heading one level deeper."""
    out, fence = [], False
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        out.append("#" + line if line.startswith("#") and not fence else line)
    return out


def _status(entry: dict[str, Any] | None, now_keys: set[str], key: str) -> str:
    if entry is None:
        return "never run"
    when = entry["started_at"] + ("" if key in now_keys else " (not rerun by the last `run_all.py`)")
    mode = ", **quick development settings: not figures**" if entry.get("quick") else ""
    took = f", {entry['duration_s'] / 60:.1f} min" if entry.get("duration_s") else ""
    if entry["status"] == "ran":
        return f"ran {when}{took}{mode}"
    return f"**{entry['status']}** {when}: {entry['reason']}"


def render(state: dict[str, Any], now_keys: set[str]) -> str:
    """bench/RESULTS.md."""
    m = state["machine"]
    areas = state["areas"]
    lines = [
        "# envsnap benchmarks: side by side with its peers",
        "",
        f"Written by `make bench` (`bench/run_all.py`) on {state['finished_at']}. Each area runs as its own "
        "script (its report follows below, and in `bench/RESULTS-AREA.md`); each figure is the median of at "
        "least 5 measured runs after a warm-up, with min and max, and every comparison is the ratio against "
        "the peer measured in the same run, pair by pair (A B A B …). The machine is shared with other "
        "work: absolute times are only indicative, the ratios are what to read.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cpus']} cores"
        + (f" (cgroup quota {m['cgroup_cpu_quota']:.1f} CPUs)" if m.get("cgroup_cpu_quota") else ""),
        f"- memory: {m['memory_gib']} GiB; {m['os']}; kernel {m['kernel']}",
        f"- load average (1/5/15 min) at the start {tuple(round(x, 2) for x in m['loadavg_start'])}, at the end "
        f"{tuple(round(x, 2) for x in m.get('loadavg_end', ()))}",
        "",
        "## Tool versions",
        "",
        *(f"- {name}: {version}" for name, version in state["tools"].items()),
        "",
        "## Every goal",
        "",
        "Verdicts: PASS / FAIL against the goal in the row; *figure*: a measured comparison with no "
        "goal set; n/a: not measured (the reason is in the row).",
        "",
        "| area | goal | measured | verdict | command |",
        "|---|---|---|---|---|",
    ]
    for area in AREAS:
        entry = areas.get(area.key)
        command = f"`{entry['command']}`" if entry else f"`.venv/bin/python bench/{area.script}`"
        quick = " (quick development run: not a figure)" if entry and entry.get("quick") else ""
        for goal in area_goals(area, entry):
            verdict = f"**{goal.verdict}**" if goal.verdict in ("PASS", "FAIL") else goal.verdict
            lines.append(f"| {area.title} | {goal.goal} | {goal.measured}{quick} | {verdict} | {command} |")
    lines += ["", "## Areas", "", "| area | status | report |", "|---|---|---|"]
    for area in AREAS:
        report = f"`bench/{area.markdown}`" if area.markdown else f"below (`bench/{area.outputs[0]}`)"
        lines.append(f"| {area.title} | {_status(areas.get(area.key), now_keys, area.key)} | {report} |")
    cleaned = state.get("data_cleanup")
    if cleaned:
        lines += ["", cleaned]
    for area in AREAS:
        entry = areas.get(area.key)
        lines += ["", f"## {area.title}", "", f"Status: {_status(entry, now_keys, area.key)}."]
        if entry:
            lines += ["", f"Command: `{entry['command']}`"]
        if entry is None:
            continue
        if entry["status"] != "ran":
            tail = _tail(REPO / entry["log"], 15) if entry.get("log") else ""
            if tail:
                lines += ["", "Last lines of its log:", "", "```", tail, "```"]
            continue
        lines.append("")
        try:
            if area.markdown:
                lines += _demote((BENCH / area.markdown).read_text(encoding="utf-8"))
            elif area.table is not None:
                lines += area.table(BENCH)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            lines.append(f"Its results could not be read: {type(exc).__name__}: {exc}")
    return "\n".join(lines).rstrip() + "\n"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    keys = [a.key for a in AREAS]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--areas", default=",".join(keys), help=f"comma-separated, from: {', '.join(keys)}")
    parser.add_argument("--skip", default="", help="comma-separated areas not to run this time")
    parser.add_argument("--quick", action="store_true", help="development: the smallest runs (not figures)")
    parser.add_argument("--keep-data", action="store_true", help="keep bench/.data (generated datasets)")
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from the last results")
    args = parser.parse_args(argv)
    chosen = [k for k in args.areas.split(",") if k]
    skip = {k for k in args.skip.split(",") if k}
    unknown = sorted((set(chosen) | skip) - set(keys))
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; areas: {', '.join(keys)}")
    selected = [a for a in AREAS if a.key in chosen and a.key not in skip and not args.report_only]

    state: dict[str, Any] = json.loads(STATE.read_text(encoding="utf-8")) if STATE.is_file() else {}
    state.setdefault("areas", {})
    facts = machine()
    started = time.time()
    for area in selected:
        print(f"\n=== {area.key}: bench/{area.script}", flush=True)
        entry = run_area(area, args.quick)
        state["areas"][area.key] = entry
        print(f"=== {area.key}: {entry['status']}" + (f" ({entry['reason']})" if entry["reason"] else ""), flush=True)
        STATE.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")  # survives an interrupted run
    if DATA.exists() and not args.keep_data and any(a.key in ("sample", "diff-data") for a in selected):
        size = _size(DATA)
        shutil.rmtree(DATA, ignore_errors=True)
        state["data_cleanup"] = (
            f"Generated data: {size / 2**30:.1f} GiB under `bench/.data` (the 50M-row sampling dataset, the two "
            f"5M-row diff files) was deleted after the run of {_stamp(started)}; the next run generates it again "
            "(seeded: the same bytes). `--keep-data` keeps it."
        )
    facts["loadavg_end"] = os.getloadavg()
    state["machine"] = facts
    state["tools"] = tool_versions()
    state["finished_at"] = _stamp(time.time())
    STATE.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    rerun = set(keys) if args.report_only else {a.key for a in selected}  # --report-only reruns nothing
    (BENCH / "RESULTS.md").write_text(render(state, rerun), encoding="utf-8")
    print(f"\nwrote bench/RESULTS.md ({time.time() - started:.0f} s)")
    failed = [k for k in (a.key for a in selected) if state["areas"][k]["status"] != "ran"]
    if failed:
        print(f"areas without figures this run: {', '.join(failed)} (why: bench/RESULTS.md)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    sys.exit(main())
