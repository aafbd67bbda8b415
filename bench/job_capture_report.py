"""RESULTS-job-capture.md from the results of bench/job_capture_bench.py."""

from __future__ import annotations

from typing import Any

from _harness import fmt_ratio, fmt_s, one_line


def _cells(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "- | - | -"
    return f"{fmt_s(stats['median'])} | {fmt_s(stats['min'])} | {fmt_s(stats['max'])}"


def _ratio(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "n/a"
    return f"**{fmt_ratio(stats['median'])}** ({fmt_ratio(stats['min'])}-{fmt_ratio(stats['max'])})"


def _mib(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def render(results: dict[str, Any]) -> str:
    """RESULTS-job-capture.md."""
    m, a = results["machine"], results["analysis"]
    cmds, rat, size = a["commands"], a["ratios"], results["sizes"]
    fail = results.get("on_failure") or {}
    lines = [
        "# Capture of a running job: plain vs ReproZip vs envsnap",
        "",
        f"Written by `bench/job_capture_bench.py` on {results['started_at']} in {results['duration_s']:.0f} s: "
        f"{results['settings']['runs']} measured rounds after {results['settings']['warmup']} warm-up round(s), "
        "every command once per round in a fresh process, blocks rotated per round; ratios are taken within a "
        "round (A B A B). Machine: "
        f"{m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}; load average "
        f"{m['loadavg_start'][0]:.1f} at the start, {m['loadavg_end'][0]:.1f} at the end (shared machine: the "
        "absolute times are indicative, the ratios are what to read).",
        "",
        "The job: `fixtures/example/run_plain.py`, the churn example's five stages over 20,000 events "
        "(ingest, preprocess, features, scikit-learn predict, a postprocess subprocess), in the job's pinned "
        "venv `.cache/demo-venv`, from a scratch git repository holding the example's code.",
        "",
        "| command | median s | min s | max s | CPU s | peak RSS MiB | ÷ plain job (per round) |",
        "|---|---|---|---|---|---|---|",
    ]
    base_of = {
        "reprozip-trace": "reprozip-trace/plain",
        "envsnap-run": "envsnap-run/plain",
        "envsnap-capture": "envsnap-capture/plain",
        "on-failure": "on-failure/plain-envsnap-venv",
    }
    for key, entry in cmds.items():
        if entry["error"] and not entry["wall_s"]:
            lines.append(f"| {entry['label']} | could not run: {one_line(entry['error'])} | | | | | |")
            continue
        ratio = _ratio(rat.get(base_of[key])) if key in base_of else "—"
        if key == "reprozip-pack":
            ratio = "trace + pack: " + _ratio(rat.get("reprozip-trace+pack/plain"))
        lines.append(
            f"| {entry['label']} | {_cells(entry['wall_s'])} | {fmt_s(entry['cpu_s']['median'])} | "
            f"{entry['max_rss_mib']['max']:.0f} | {ratio} |"
        )
    plain = cmds["plain"]["wall_s"]
    run = cmds["envsnap-run"]["wall_s"]
    pack = cmds["reprozip-pack"]["wall_s"]
    trace = cmds["reprozip-trace"]["wall_s"]
    lines += [
        "",
        "| what it leaves | size |",
        "|---|---|",
        f"| ReproZip trace directory (`reprozip trace -d DIR`: config.yml + trace.sqlite3) | "
        f"{_mib(size['reprozip-trace-dir'])} |",
        f"| ReproZip package (`job.rpz`: every file the job touched, the venv and system libraries included) | "
        f"{_mib(size['reprozip-rpz'])} |",
        f"| envsnap run snapshot (env, the input and five parquet intermediates, all 20,000 rows) | "
        f"{_mib(size['envsnap-run'])} |",
        f"| envsnap capture snapshot (env only) | {_mib(size['envsnap-capture'])} |",
        f"| envsnap.on_failure snapshot (env + failure + 1,000-row input sample) | {_mib(fail.get('size_bytes'))} |",
        "",
        "Capture time, each tool's own cost on top of the job (medians):",
        "",
    ]
    if plain and trace and pack:
        lines.append(
            f"- ReproZip: tracing slows the job by {fmt_s(trace['median'] - plain['median'])} s, then `pack` "
            f"takes {fmt_s(pack['median'])} s: {fmt_s(trace['median'] - plain['median'] + pack['median'])} s."
        )
    if plain and run:
        lines.append(
            f"- `envsnap run`: {fmt_s(run['median'] - plain['median'])} s more than the plain job, for the "
            "runner, five recorded intermediates (parquet + column stats) and the environment capture."
        )
    if fail.get("capture_s"):
        c = fail["capture_s"]
        lines.append(
            f"- `envsnap.on_failure`: the capture after the exception takes {c['median'] * 1000:.0f} ms "
            f"(min {c['min'] * 1000:.0f}, max {c['max'] * 1000:.0f}; timed inside the job, {c['n']} runs); "
            "a job that succeeds pays only `import envsnap`."
        )
    elif fail.get("error"):
        lines.append(f"- `envsnap.on_failure`: could not run: {fail['error']}")
    check = results.get("snapshot_check", {})
    lines += [
        "",
        "Check: the last `envsnap run` snapshot opened with envsnap's verifying reader: "
        + (
            f"{check.get('members')} members, stages {check.get('stages')}."
            if not check.get("error")
            else f"could not be read: {check['error']}"
        ),
        "",
        "Commands (run in the scratch copy of `fixtures/example`; `python` is `.cache/demo-venv/bin/python`, "
        "`reprozip` is `bench/.venvs/tools/bin/reprozip`):",
        "",
        *(f"- {e['label']}: `{e['command']}`" for e in cmds.values()),
        "",
        "Versions: " + "; ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
    ]
    return "\n".join(lines)
