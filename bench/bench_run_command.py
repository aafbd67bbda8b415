"""``envsnap run -- COMMAND`` on the job-capture benchmark job: its overhead, beside ``reprozip trace``.

The job is the one of ``job_capture_bench.py``: the churn example's ``fixtures/example/run_plain.py`` (five
stages over 20,000 events, a scikit-learn predict, a postprocess subprocess) in its pinned venv
``.cache/demo-venv``, copied into a scratch git repository with its data generated there. The job is not
modified and knows nothing of envsnap. Every round runs, each as a fresh child process (wall time
spawn-to-reap, CPU time and peak RSS from ``wait4``):

* ``plain``          -- ``python run_plain.py``: the yardstick;
* ``envsnap-run``    -- ``envsnap run -o job.envsnap -- python run_plain.py``: the whole command, and the
  job's own duration as envsnap recorded it (``job/command.json``: ``command.duration_s``);
* ``bootstrap-only`` -- diagnostic: the job plain, but with envsnap's job bootstrap on its ``PYTHONPATH``
  (exception recorder + PEP 578 audit hook listing opened files), no probes: what the hook alone costs
  the job, to tell it apart from the probes competing for the CPU while the job runs;
* ``reprozip-trace`` -- ``reprozip trace --overwrite -d DIR python run_plain.py``: the job under ptrace;
* ``envsnap-fail``   -- ``envsnap run -o fail.envsnap -- python fail_job.py``: the same job, which raises
  after its last stage (``fail_job.py`` calls ``run_plain.main`` and raises; it writes ``time.time()`` to
  stderr just before raising). Measured: the time from that raise to the snapshot on disk (the snapshot's
  mtime), and envsnap's time outside the job (its wall minus the job's recorded duration). Both are upper
  bounds of "job exit to snapshot written": the first includes the job's own traceback print and
  interpreter shutdown, the second envsnap's start-up before it spawns the job.

The plain job and ``envsnap run`` run back to back in every round (A B, then B A in the next round); the
other commands are blocks rotated from round to round, so drifting load hits every command alike. Every
ratio is taken within a round (plain and the other command of the same round). The first round is a
warm-up.

    .venv/bin/python bench/bench_run_command.py [--runs 7] [--warmup 1] [--rows 20000] [--out bench]

Writes ``RESULTS-run-command.md`` and ``results-run-command.json``. ReproZip (``reprozip==1.3.2``) is
installed into ``bench/.venvs/tools`` when missing, as for ``job_capture_bench.py``; a command that cannot
run is reported with its error, never skipped silently.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from _harness import fmt_ratio, fmt_s, machine, one_line, summary, tool_output  # noqa: E402
from job_capture_bench import DEMO_PYTHON, TOOLS, bench_env, ensure_reprozip, make_project  # noqa: E402

ENVSNAP = REPO / ".venv" / "bin" / "envsnap"
DEFAULT_ROWS = 20_000
#: The goals: the job slowed by at most 5%, a failure's snapshot on disk within 1 s.
OVERHEAD_GOAL = 1.05
FAILURE_LATENCY_GOAL_S = 1.0
MARK = "ENVSNAP-BENCH-RAISED-AT "

# The job, failing after its last stage: unmodified code, one raise added by a wrapper.
FAIL_JOB = f'''"""The churn job, failing after its last stage (bench_run_command.py)."""
import sys
import time

import run_plain


class JobFailed(RuntimeError):
    pass


run_plain.main(sys.argv[1:])
sys.stderr.write("{MARK}%.6f\\n" % time.time())
sys.stderr.flush()
raise JobFailed("bench: the job fails after its last stage")
'''


@dataclass(frozen=True)
class Cmd:
    """One measured command: its key, how a reader would type it, argv, exit status expected, env changes."""

    key: str
    shown: str
    argv: tuple[str, ...]
    expect: int = 0
    env: dict[str, str] | None = None
    snapshot: Path | None = None  # the snapshot it writes (deleted before each run)
    trace_dir: Path | None = None  # reprozip's trace directory (deleted before each run)


class Failed(RuntimeError):
    """A command exited with another status than expected."""


def run_one(cmd: Cmd, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` once and measure it; stdout to a scratch file, stderr kept (the failure mark)."""
    if cmd.snapshot is not None:
        cmd.snapshot.unlink(missing_ok=True)
    if cmd.trace_dir is not None:
        shutil.rmtree(cmd.trace_dir, ignore_errors=True)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd.argv, cwd=cwd, env={**env, **(cmd.env or {})}, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        reaped_at = time.time()
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if code != cmd.expect:
        raise Failed(f"exited {code} (expected {cmd.expect}): {one_line(stderr)}")
    run: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_kib": int(usage.ru_maxrss),
    }
    marks = [line for line in stderr.splitlines() if line.startswith(MARK)]
    if marks and cmd.snapshot is None:
        run["raise_to_exit_s"] = reaped_at - float(marks[-1][len(MARK) :])
    if cmd.snapshot is not None:
        with zipfile.ZipFile(cmd.snapshot) as zf:
            record = json.loads(zf.read("job/command.json"))["command"]
        run["job_duration_s"] = record["duration_s"]
        run["job_exit_status"] = record["exit_status"]
        run["outside_job_s"] = wall - record["duration_s"]
        marks = [line for line in stderr.splitlines() if line.startswith(MARK)]
        if marks:
            raised = float(marks[-1][len(MARK) :])
            run["raise_to_snapshot_s"] = cmd.snapshot.stat().st_mtime - raised
            run["raise_to_envsnap_exit_s"] = reaped_at - raised
    return run


def commands(project: Path, out: Path) -> list[Cmd]:
    """The measured commands, in the order of the first round."""
    from envsnap._target import jobhook

    py, rz = str(DEMO_PYTHON), str(TOOLS / "bin" / "reprozip")
    job = ("run_plain.py", "--output", str(out / "scores.parquet"))
    boot = jobhook.install_bootstrap(str(out / "boot"))
    reports = out / "reports"
    reports.mkdir(exist_ok=True)
    hook_env = {
        k: v
        for k, v in jobhook.bootstrap_env(boot, str(reports), str(project), {}, audit=True).items()
        if k.startswith("ENVSNAP_JOBHOOK_") or k == "PYTHONPATH"
    }
    snap, fail_snap, trace = out / "job.envsnap", out / "fail.envsnap", out / "rz-trace"
    return [
        Cmd("plain", "python run_plain.py", (py, *job)),
        Cmd(
            "envsnap-run",
            "envsnap run -o job.envsnap -- python run_plain.py",
            (str(ENVSNAP), "run", "-q", "-o", str(snap), "--", py, *job),
            snapshot=snap,
        ),
        Cmd("bootstrap-only", "python run_plain.py, envsnap's job bootstrap on PYTHONPATH", (py, *job), env=hook_env),
        Cmd(
            "reprozip-trace",
            "reprozip trace --overwrite -d DIR python run_plain.py",
            (rz, "trace", "--overwrite", "-d", str(trace), py, *job),
            trace_dir=trace,
        ),
        Cmd(
            "envsnap-empty",
            "envsnap run -o empty.envsnap -- python -c pass (the fixed cost: probes, record, write)",
            (str(ENVSNAP), "run", "-q", "-o", str(out / "empty.envsnap"), "--", py, "-c", "pass"),
            snapshot=out / "empty.envsnap",
        ),
        Cmd(
            "plain-fail",
            "python fail_job.py (the failing variant, plain: its own teardown after the raise)",
            (py, "fail_job.py", *job[1:]),
            expect=1,
        ),
        Cmd(
            "envsnap-fail",
            "envsnap run -o fail.envsnap -- python fail_job.py (raises after the last stage)",
            (str(ENVSNAP), "run", "-q", "-o", str(fail_snap), "--", py, "fail_job.py", *job[1:]),
            expect=1,
            snapshot=fail_snap,
        ),
    ]


def run_rounds(cmds: list[Cmd], project: Path, runs: int, warmup: int) -> dict[str, Any]:
    """Every command once per round; a failing command is recorded, not retried.

    The plain job and ``envsnap run`` form one block, run back to back (A B in even rounds, B A in odd
    ones) so that their ratio sees the same load; the blocks are rotated from round to round.
    """
    env = bench_env()
    series: dict[str, Any] = {c.key: {"command": c.shown, "runs": [], "error": None} for c in cmds}
    blocks = [cmds[:2], *([c] for c in cmds[2:])]
    for r in range(warmup + runs):
        rotated = blocks[r % len(blocks) :] + blocks[: r % len(blocks)]
        order = [c for block in rotated for c in (block[::-1] if r % 2 and len(block) > 1 else block)]
        for cmd in order:
            entry = series[cmd.key]
            if entry["error"] is not None:
                continue
            try:
                run = run_one(cmd, project, env)
            except (Failed, OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                entry["error"] = one_line(str(exc))
                print(f"  round {r}: {cmd.key} FAILED: {entry['error']}", flush=True)
                continue
            extra = "".join(
                f" {k}={run[k]:.3f}" for k in ("job_duration_s", "outside_job_s", "raise_to_snapshot_s") if k in run
            )
            print(
                f"  round {r}{' (warm-up)' if r < warmup else ''}: {cmd.key:<15} {run['wall_s']:7.2f} s wall "
                f"{run['cpu_s']:6.2f} s cpu{extra}",
                flush=True,
            )
            if r >= warmup:
                entry["runs"].append({**run, "round": r - warmup})
    return series


def per_round(series: dict[str, Any], key: str, field: str, base: str, base_field: str = "wall_s") -> list[float]:
    """``key.field`` ÷ ``base.base_field`` within each round."""
    by_round = {r["round"]: r[base_field] for r in series[base]["runs"]}
    return [r[field] / by_round[r["round"]] for r in series[key]["runs"] if r["round"] in by_round and field in r]


def analyse(series: dict[str, Any]) -> dict[str, Any]:
    """Summaries per command and the within-round ratios to the plain job."""
    stats: dict[str, Any] = {}
    for key, entry in series.items():
        runs = entry["runs"]
        fields = sorted({f for r in runs for f in r if f.endswith(("_s", "_kib")) and f != "round"})
        stats[key] = {f: summary([r[f] for r in runs if f in r]) for f in fields}
    ratios = {
        "envsnap-run/plain (wall)": per_round(series, "envsnap-run", "wall_s", "plain"),
        "envsnap-run job duration/plain": per_round(series, "envsnap-run", "job_duration_s", "plain"),
        "bootstrap-only/plain": per_round(series, "bootstrap-only", "wall_s", "plain"),
        "reprozip-trace/plain": per_round(series, "reprozip-trace", "wall_s", "plain"),
        "envsnap-run/plain (cpu)": per_round(series, "envsnap-run", "cpu_s", "plain", "cpu_s"),
        "bootstrap-only/plain (cpu)": per_round(series, "bootstrap-only", "cpu_s", "plain", "cpu_s"),
        "reprozip-trace/plain (cpu)": per_round(series, "reprozip-trace", "cpu_s", "plain", "cpu_s"),
    }
    plain_cpu = {r["round"]: r["cpu_s"] for r in series["plain"]["runs"]}
    extra_cpu = [r["cpu_s"] - plain_cpu[r["round"]] for r in series["envsnap-run"]["runs"] if r["round"] in plain_cpu]
    # The job's own CPU under envsnap: envsnap run's CPU minus envsnap's fixed CPU (the empty job's, same round).
    empty_cpu = {r["round"]: r["cpu_s"] for r in series.get("envsnap-empty", {}).get("runs", [])}
    ratios["job cpu under envsnap/plain (cpu)"] = [
        (r["cpu_s"] - empty_cpu[r["round"]]) / plain_cpu[r["round"]]
        for r in series["envsnap-run"]["runs"]
        if r["round"] in empty_cpu and r["round"] in plain_cpu
    ]
    # After the snapshot is on disk, envsnap still has to exit (interpreter teardown) before the shell goes on.
    teardown = [
        r["raise_to_envsnap_exit_s"] - r["raise_to_snapshot_s"]
        for r in series.get("envsnap-fail", {}).get("runs", [])
        if "raise_to_snapshot_s" in r
    ]
    # The job's own teardown after its raise (traceback, interpreter shutdown), measured plain in the same
    # round, taken off the raise-to-snapshot time: what is left is envsnap's, from the job's exit.
    job_teardown = {r["round"]: r["raise_to_exit_s"] for r in series.get("plain-fail", {}).get("runs", [])}
    after_exit = [
        r["raise_to_snapshot_s"] - job_teardown[r["round"]]
        for r in series.get("envsnap-fail", {}).get("runs", [])
        if "raise_to_snapshot_s" in r and r["round"] in job_teardown
    ]
    return {
        "commands": stats,
        "ratios": {k: summary(v) if v else None for k, v in ratios.items()},
        "envsnap_extra_cpu_s": summary(extra_cpu) if extra_cpu else None,
        "snapshot_to_exit_s": summary(teardown) if teardown else None,
        "exit_to_snapshot_s": summary(after_exit) if after_exit else None,
    }


def goals(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The overhead and failure-latency goals, judged on the medians."""
    ratios, fail = analysis["ratios"], analysis["commands"].get("envsnap-fail", {})
    rows = []
    for text, stats in (
        ("`envsnap run -- CMD` whole command ≤ 1.05x the plain job (wall)", ratios["envsnap-run/plain (wall)"]),
        ("the job's own duration under `envsnap run` ≤ 1.05x the plain job", ratios["envsnap-run job duration/plain"]),
    ):
        rows.append(
            {
                "goal": text,
                "measured": _ratio(stats),
                "ok": None if stats is None else stats["median"] <= OVERHEAD_GOAL,
            }
        )
    latency, after = fail.get("raise_to_snapshot_s"), analysis.get("exit_to_snapshot_s")
    measured = "not measured"
    if latency is not None:
        measured = (
            f"from the raise {latency['median']:.2f} s ({latency['min']:.2f}-{latency['max']:.2f}); envsnap's "
            f"time outside the job {fail['outside_job_s']['median']:.2f} s"
        )
    if after is not None:
        measured = f"{after['median']:.2f} s ({after['min']:.2f}-{after['max']:.2f}) from the job's exit; " + measured
    judged = after if after is not None else latency
    rows.append(
        {
            "goal": "a failure's snapshot on disk ≤ 1 s after the job fails",
            "measured": measured,
            "ok": None if judged is None else judged["median"] <= FAILURE_LATENCY_GOAL_S,
        }
    )
    return rows


def _ratio(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "not measured"
    return f"{fmt_ratio(stats['median'])} ({fmt_ratio(stats['min'])}-{fmt_ratio(stats['max'])})"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def render_job(job: dict[str, Any], cpus: int) -> list[str]:
    """One job size: its goals, every command, the failure figures."""
    a, s = job["analysis"], job["series"]
    cmds, ratios = a["commands"], a["ratios"]
    lines = [
        "| goal | measured (median, min-max of the rounds) | verdict |",
        "|---|---|---|",
        *(f"| {g['goal']} | {g['measured']} | {_verdict(g['ok'])} |" for g in job["goals"]),
        "",
        "| command | wall median (min-max) | CPU median | ÷ plain, per round (wall) | ÷ plain (CPU) |",
        "|---|---|---|---|---|",
    ]
    shown = {
        "plain": (None, None),
        "envsnap-run": ("envsnap-run/plain (wall)", "envsnap-run/plain (cpu)"),
        "bootstrap-only": ("bootstrap-only/plain", "bootstrap-only/plain (cpu)"),
        "reprozip-trace": ("reprozip-trace/plain", "reprozip-trace/plain (cpu)"),
        "envsnap-empty": (None, None),
        "plain-fail": (None, None),
        "envsnap-fail": (None, None),
    }
    for key, (wall_ratio, cpu_ratio) in shown.items():
        if key not in s:
            continue
        entry, stats = s[key], cmds.get(key, {})
        if entry["error"] or "wall_s" not in stats:
            lines.append(f"| `{entry['command']}` | could not run: {entry['error'] or 'no runs'} | | | |")
            continue
        w, c = stats["wall_s"], stats["cpu_s"]
        lines.append(
            f"| `{entry['command']}` | {fmt_s(w['median'])} s ({fmt_s(w['min'])}-{fmt_s(w['max'])}) | "
            f"{fmt_s(c['median'])} s | {_ratio(ratios.get(wall_ratio)) if wall_ratio else '—'} | "
            f"{_ratio(ratios.get(cpu_ratio)) if cpu_ratio else '—'} |"
        )
        if key == "envsnap-run" and "job_duration_s" in stats:
            d, o = stats["job_duration_s"], stats["outside_job_s"]
            lines.append(
                f"| … the job's own duration under it (`command.duration_s`; CPU: envsnap run's - the empty "
                f"job's) | {fmt_s(d['median'])} s ({fmt_s(d['min'])}-{fmt_s(d['max'])}) | | "
                f"{_ratio(ratios.get('envsnap-run job duration/plain'))} | "
                f"{_ratio(ratios.get('job cpu under envsnap/plain (cpu)'))} |"
            )
            lines.append(
                f"| … envsnap's time outside the job (wall - duration) | {fmt_s(o['median'])} s "
                f"({fmt_s(o['min'])}-{fmt_s(o['max'])}) | | | |"
            )
    extra, fail = a.get("envsnap_extra_cpu_s"), cmds.get("envsnap-fail", {})
    lines.append("")
    if extra:
        lines.append(
            f"envsnap's own CPU (envsnap run's CPU - the plain job's, per round): {extra['median']:.2f} s "
            f"({extra['min']:.2f}-{extra['max']:.2f}); on {cpus} cores shared with other work it competes with the job."
        )
    if "raise_to_snapshot_s" in fail:
        r, x, o = fail["raise_to_snapshot_s"], fail["raise_to_envsnap_exit_s"], fail["outside_job_s"]
        lines += [
            "",
            "Failure: from the job's raise to the snapshot on disk (mtime) "
            f"{r['median']:.3f} s ({r['min']:.3f}-{r['max']:.3f}); to envsnap's exit {x['median']:.3f} s "
            f"(snapshot on disk to exit {a['snapshot_to_exit_s']['median']:.3f} s); "
            f"envsnap's time outside the job (wall - duration) {o['median']:.3f} s ({o['min']:.3f}-{o['max']:.3f}).",
        ]
        teardown, after = cmds.get("plain-fail", {}).get("raise_to_exit_s"), a.get("exit_to_snapshot_s")
        if teardown and after:
            lines += [
                "",
                f"The job's own teardown after its raise, plain (traceback, interpreter shutdown): "
                f"{teardown['median']:.3f} s ({teardown['min']:.3f}-{teardown['max']:.3f}); so from the job's "
                f"exit to the snapshot on disk, per round: {after['median']:.3f} s "
                f"({after['min']:.3f}-{after['max']:.3f}).",
            ]
    sizes = ", ".join(f"{k} {v / 2**10:.0f} KiB" for k, v in job["sizes"].items() if v)
    return [*lines, "", f"Snapshot sizes (last round): {sizes}.", ""]


def render(results: dict[str, Any]) -> str:
    """RESULTS-run-command.md."""
    m, settings = results["machine"], results["settings"]
    lines = [
        "# `envsnap run -- COMMAND` on the job-capture benchmark job",
        "",
        f"Run {results['started_at']}, {results['duration_s']:.0f} s; {m['cpu_model']}, {m['cpus']} CPUs, "
        f"{m['memory_gib']} GiB; load average {m['loadavg_start'][0]:.2f} at start, "
        f"{m['loadavg_end'][0]:.2f} at the end. {settings['runs']} rounds after {settings['warmup']} warm-up; "
        "in each, the plain job and `envsnap run` back to back (A B, then B A), the other commands rotated; "
        "ratios are taken within a round.",
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in results["versions"].items()) + ".",
        "",
        f"Probes run while the job runs: {', '.join(results['probes']['while_job'])}; after it exits: "
        f"{', '.join(results['probes']['after_job'])}.",
        "",
    ]
    for rows, job in results["jobs"].items():
        lines += [f"## The churn job, {int(rows):,} events", "", *render_job(job, m["cpus"])]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    return {
        "job python": tool_output([str(DEMO_PYTHON), "--version"]),
        "reprozip": tool_output([str(TOOLS / "bin" / "reprozip"), "--version"]),
        "envsnap": tool_output([str(ENVSNAP), "--version"]),
        "envsnap commit": tool_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        + (" + uncommitted changes" if _dirty() else ""),
    }


def _dirty() -> bool:
    """Whether envsnap's code differs from its commit (what was measured is then the working tree)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", "envsnap"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(done.stdout.strip())


def probe_split() -> dict[str, list[str]]:
    """Which probes run while the job runs and which wait for it (envsnap's own split)."""
    from envsnap.capture import load_probes
    from envsnap.capture.command_run import AFTER_JOB

    names = [cls.name for cls in load_probes()]
    return {"while_job": [n for n in names if n not in AFTER_JOB], "after_job": [n for n in names if n in AFTER_JOB]}


def measure_job(work: Path, rows: int, runs: int, warmup: int, missing: str | None) -> dict[str, Any]:
    """Every command on the churn job scoring ``rows`` events, in a scratch project under ``work``."""
    project = make_project(work)
    if rows != DEFAULT_ROWS:
        subprocess.run([str(DEMO_PYTHON), "make_data.py", "--rows", str(rows)], cwd=project, check=True)
    (project / "fail_job.py").write_text(FAIL_JOB, encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for step in (["add", "fail_job.py"], ["commit", "-q", "-m", "failing variant"]):
        subprocess.run([*git, *step], cwd=project, check=True, capture_output=True)
    out = work / "out"
    out.mkdir()
    cmds = commands(project, out)
    if missing:
        cmds = [c for c in cmds if c.key != "reprozip-trace"]
    print(f"the churn job, {rows:,} events", flush=True)
    series = run_rounds(cmds, project, runs, warmup)
    if missing:
        series["reprozip-trace"] = {"command": "reprozip trace", "runs": [], "error": missing}
    analysis = analyse(series)
    return {
        "series": series,
        "analysis": analysis,
        "goals": goals(analysis),
        "sizes": {
            name: (out / name).stat().st_size if (out / name).exists() else None
            for name in ("job.envsnap", "fail.envsnap", "empty.envsnap")
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured rounds (>= 5 for a figure)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--rows",
        default=f"{DEFAULT_ROWS},100000",
        help="events the job scores, comma-separated sizes (default 20000 = job_capture_bench's job, and 100000)",
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where the RESULTS/results files go")
    parser.add_argument("--report-only", action="store_true", help="analyse and render the last results again")
    args = parser.parse_args(argv)
    if args.report_only:
        results = json.loads((args.out / "results-run-command.json").read_text(encoding="utf-8"))
        for job in results["jobs"].values():
            job["analysis"] = analyse(job["series"])
            job["goals"] = goals(job["analysis"])
        return write(results, args.out)
    if not DEMO_PYTHON.exists():
        parser.error(f"{DEMO_PYTHON} does not exist: run `make .cache/demo-venv/.installed` (or make demo)")
    try:
        sizes = [int(v) for v in args.rows.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--rows {args.rows}: give event counts, comma-separated (e.g. 20000,100000)")
    started = time.time()
    facts = machine()
    missing = ensure_reprozip()
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": facts,
        "settings": {"runs": args.runs, "warmup": args.warmup, "rows": sizes},
        "versions": versions(),
        "probes": probe_split(),
        "jobs": {},
    }
    for rows in sizes:
        work = Path(tempfile.mkdtemp(prefix="envsnap-run-bench-"))
        try:
            results["jobs"][str(rows)] = measure_job(work, rows, args.runs, args.warmup, missing)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # Written after every job size: an interrupted run keeps what it measured.
        facts["loadavg_end"] = os.getloadavg()
        results["duration_s"] = time.time() - started
        write(results, args.out, show=rows == sizes[-1])
    return 0


def write(results: dict[str, Any], out: Path, *, show: bool = True) -> int:
    """results-run-command.json and RESULTS-run-command.md under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results-run-command.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = render(results)
    (out / "RESULTS-run-command.md").write_text(text, encoding="utf-8")
    if show:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
