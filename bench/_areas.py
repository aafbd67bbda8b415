"""The benchmark areas that bench/run_all.py runs, and how their goals are read back from their results.

Each area is one script of bench/ with the arguments of a full run, the files it writes, and an extractor
that turns those files into goal rows (goal, measured, verdict) for the summary table of bench/RESULTS.md.
An extractor reads only files the script wrote; a missing or unreadable file gives a row that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import fmt_ratio, fmt_s, one_line

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Goal:
    """One row of the summary table."""

    goal: str
    measured: str
    verdict: str  # PASS, FAIL, n/a (could not be measured) or "figure" (no goal set: a measured figure)


@dataclass(frozen=True)
class Area:
    """One benchmark area: its script, full-run arguments, outputs and goal extractor."""

    key: str
    title: str
    script: str  # file name under bench/
    args: tuple[str, ...]  # arguments of a full run
    outputs: tuple[str, ...]  # files the script writes under bench/ (markdown first when it writes one)
    goals: Callable[[Path], list[Goal]]
    quick_args: tuple[str, ...] = ()  # development: the smallest run that still exercises the script
    needs: tuple[str, ...] = field(default=())  # prerequisites run_all.py checks or builds (see run_all.PREPARE)
    table: Callable[[Path], list[str]] | None = None  # the report, for a script that writes only JSON

    @property
    def markdown(self) -> str | None:
        return next((o for o in self.outputs if o.endswith(".md")), None)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _ratio_text(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "not measured"
    return f"{fmt_ratio(stats['median'])} (pairs {fmt_ratio(stats['min'])}-{fmt_ratio(stats['max'])})"


# --- capture (env only) ---------------------------------------------------------------------------------


def capture_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-capture.json")
    return [Goal(f"{g['goal']} ({g['venv']})", g["measured"], _verdict(g["ok"])) for g in data.get("goals", [])]


# --- capture of a running job ---------------------------------------------------------------------------


def job_capture_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-job-capture.json")
    ratios, sizes = data["analysis"]["ratios"], data["sizes"]
    fail = data.get("on_failure") or {}
    rows = [
        Goal("job slowdown: `envsnap run` (all rows, every intermediate) ÷ plain job",
             _ratio_text(ratios.get("envsnap-run/plain")), "figure"),
        Goal("job slowdown: `reprozip trace` ÷ plain job", _ratio_text(ratios.get("reprozip-trace/plain")), "figure"),
        Goal("trace + `reprozip pack` ÷ plain job", _ratio_text(ratios.get("reprozip-trace+pack/plain")), "figure"),
        Goal("failing job under `envsnap.on_failure` ÷ the same job plain",
             _ratio_text(ratios.get("on-failure/plain-envsnap-venv")), "figure"),
    ]  # fmt: skip
    capture = fail.get("capture_s")
    rows.append(
        Goal(
            "capture time of `envsnap.on_failure` (exception → snapshot written)",
            f"{capture['median'] * 1000:.0f} ms (min {capture['min'] * 1000:.0f}, max {capture['max'] * 1000:.0f})"
            if capture
            else "could not run: " + str(fail.get("error", "not measured")),
            "figure",
        )
    )

    def mib(key: str) -> str:
        size = sizes.get(key)
        return "-" if size is None else f"{size / 2**20:.1f} MiB"

    rows.append(
        Goal(
            "what is kept: `.rpz` vs `envsnap run` snapshot vs on_failure snapshot",
            f"{mib('reprozip-rpz')} vs {mib('envsnap-run')} vs "
            + (f"{fail['size_bytes'] / 2**10:.0f} KiB" if fail.get("size_bytes") else "-"),
            "figure",
        )
    )
    return rows


# --- envsnap run -- COMMAND -----------------------------------------------------------------------------


def run_command_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-run-command.json")
    return [
        Goal(f"{g['goal']} (churn job, {int(rows):,} events)", g["measured"], _verdict(g["ok"]))
        for rows, job in data.get("jobs", {}).items()
        for g in job.get("goals", [])
    ]


# --- sampling -------------------------------------------------------------------------------------------


def sample_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-sample.json")
    report = data.get("50m")
    if not report:
        return [Goal("sampling goals (50M rows)", "the 50M-row dataset was not measured", "n/a")]
    return [
        Goal(g["goal"] + " (50M rows)", g["measured"] or "not measured", _verdict(g["pass"] if g["measured"] else None))
        for g in report["goals"]
    ]


# --- data diff ------------------------------------------------------------------------------------------

DIFF_DATA_GOALS = (
    ("envsnap vs pyarrow", 1.3, "data diff ≤ 1.3x pyarrow reading both files"),
    ("envsnap vs duckdb-join", 1.0, "data diff ≤ 1.0x DuckDB (join with per-column counts)"),
    ("envsnap vs datacompy", 1 / 3.5, "data diff ≥ 3.5x faster than datacompy (ratio ≤ 0.29x)"),
    ("envsnap-fast-path vs pyarrow", 0.1, "unchanged intermediates (fast path) ≤ 0.1x the read time"),
)


def diff_data_goals(bench: Path) -> list[Goal]:
    pairs = _load(bench / "results-diff-data.json")["pairs"]
    rows = []
    for key, limit, text in DIFF_DATA_GOALS:
        pair = pairs.get(key)
        ratio = pair.get("ratio_a_over_b") if pair else None
        if ratio:
            rows.append(Goal(text, _ratio_text(ratio), _verdict(ratio["median"] <= limit)))
        else:
            why = one_line((pair["a"]["error"] or pair["b"]["error"] or "") if pair else "") or "not measured"
            rows.append(Goal(text, why, "n/a"))
    peaks = [
        p["a"]["max_rss_mib"]["max"]
        for name, p in pairs.items()
        if name.startswith("envsnap vs") and p["a"].get("max_rss_mib")
    ]
    rows.append(
        Goal(
            "data diff peaks at ≤ 1 GiB",
            f"{max(peaks):.0f} MiB (largest envsnap run)" if peaks else "not measured",
            _verdict(max(peaks) <= 1024 if peaks else None),
        )
    )
    return rows


def diff_data_table(bench: Path) -> list[str]:
    """diff_data_bench.py writes only JSON: its pairs as a table for RESULTS.md."""
    data = _load(bench / "results-diff-data.json")
    files = data.get("files", {})
    lines = [
        f"Two {files.get('rows', 0):,}-row x 12-column parquet files ({files.get('a', 0) / 2**20:.0f} MiB + "
        f"{files.get('b', 0) / 2**20:.0f} MiB), {files.get('changed', 0):.1%} of the cells of b changed. Every "
        "figure is a fresh child process; pairs interleaved A B A B after a warm-up pair; A is envsnap.",
        "",
        "| pair (A vs B) | A median s (min-max) | A peak MiB | B median s (min-max) | B peak MiB | A ÷ B per pair |",
        "|---|---|---|---|---|---|",
    ]

    def cell(side: dict[str, Any]) -> tuple[str, str]:
        if not side.get("wall_s"):
            return "could not run: " + one_line(side.get("error") or "no runs"), "-"
        w = side["wall_s"]
        return f"{fmt_s(w['median'])} ({fmt_s(w['min'])}-{fmt_s(w['max'])})", f"{side['max_rss_mib']['max']:.0f}"

    for name, pair in data["pairs"].items():
        (aw, ar), (bw, br) = cell(pair["a"]), cell(pair["b"])
        lines.append(f"| {name} | {aw} | {ar} | {bw} | {br} | {_ratio_text(pair.get('ratio_a_over_b'))} |")
    inproc = data.get("fast_path_inproc_s") or []
    if inproc:
        best = f"{min(inproc) * 1e6:.0f} µs best of {len(inproc)}"
        lines += ["", f"Fast path in-process (`diff_member`, snapshots open): {best}."]
    return [*lines, ""]


# --- environment diff -----------------------------------------------------------------------------------


def diff_env_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-diff-env.json")
    pair = data["pairs"].get("300 vs 300 (edited copy)", {})
    timing = pair.get("timings", {}).get("diff_env, fresh snapshots")
    limit = data.get("goal_s", 0.1)
    return [
        Goal(
            f"two 300-package snapshots → diff_env ≤ {limit * 1000:.0f} ms",
            f"{timing['median'] * 1000:.1f} ms median (min {timing['min'] * 1000:.1f}, max "
            f"{timing['max'] * 1000:.1f}, {timing['n']} runs)"
            if timing
            else "not measured",
            _verdict(timing["median"] <= limit if timing else None),
        )
    ]


# --- runner overhead ------------------------------------------------------------------------------------

_RUNNER = re.compile(
    r"\*\*Goal: (?P<goal>.+?) — (?P<verdict>PASS|FAIL)\*\* \(median runner/plain = (?P<median>\S+), "
    r"min (?P<min>\S+), max (?P<max>[^)\s]+)\)"
)


def runner_goals(bench: Path) -> list[Goal]:
    match = _RUNNER.search((bench / "RESULTS-runner.md").read_text(encoding="utf-8"))
    if not match:
        return [Goal("runner overhead ≤ 5% on a 1M-row stage", "RESULTS-runner.md has no goal line", "n/a")]
    return [
        Goal(
            match["goal"],
            f"{match['median']} runner ÷ plain (pairs {match['min']}-{match['max']})",
            match["verdict"],
        )
    ]


_VALUES = re.compile(
    r"\*\*Goal: (?P<goal>.+?) — (?P<verdict>PASS|FAIL)\*\* \(worst median runner/plain (?P<worst>[^)\s]+)\)"
)


def values_goals(bench: Path) -> list[Goal]:
    match = _VALUES.search((bench / "RESULTS-values.md").read_text(encoding="utf-8"))
    if not match:
        return [Goal("runner overhead ≤ 5% per stage value kind", "RESULTS-values.md has no goal line", "n/a")]
    return [Goal(match["goal"], f"worst kind {match['worst']} runner ÷ plain", match["verdict"])]


# --- sampling on S3 -------------------------------------------------------------------------------------


def sample_s3_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-sample-s3.json")
    return [Goal(g["goal"], g["measured"], g["verdict"]) for g in data.get("goals", [])]


# --- replay ---------------------------------------------------------------------------------------------


def replay_goals(bench: Path) -> list[Goal]:
    import statistics

    data = _load(bench / "results-replay.json")
    ratios = data.get("ratios", {})
    med = statistics.median

    def pairs(values: list[float]) -> str:
        return f"{fmt_ratio(med(values))} (pairs {fmt_ratio(min(values))}-{fmt_ratio(max(values))})"

    cold, warm = ratios["cold/peer_index"], ratios["warm_cache/peer_wheels"]
    first = data["seconds"]["first_stage"]
    imports = data["import_ratios"]
    disk = data["disk"]
    return [
        Goal("cold build, empty wheel cache ≤ 0.3x the plain Dockerfile (pip from the index)", pairs(cold),
             _verdict(med(cold) <= 0.3)),
        Goal("cold build, wheel cache warm ≤ 0.3x the plain Dockerfile (pip from local wheels)", pairs(warm),
             _verdict(med(warm) <= 0.3)),
        Goal("warm replay reaches its first stage in ≤ 3 s", f"{med(first):.2f} s ({min(first):.2f}-{max(first):.2f})",
             _verdict(med(first) <= 3.0)),
        Goal("a second replay of the same runtime does no rebuild",
             "rebuilt" if data["rebuilt_on_second_replay"] else "no rebuild",
             _verdict(not data["rebuilt_on_second_replay"])),
        Goal("first replay after a cold build imports ≤ 1.5x a compiled image", pairs(imports["first"]),
             _verdict(med(imports["first"]) <= 1.5)),
        Goal("later replays import ≤ 1.1x a compiled image", pairs(imports["second"]),
             _verdict(med(imports["second"]) <= 1.1)),
        Goal("7 replay venvs of the demo's lock family ≤ 1.5x the largest on disk",
             f"{fmt_ratio(disk['ratio'])} ({disk['together_bytes'] / (1 << 20):.0f} MiB vs "
             f"{disk['largest_bytes'] / (1 << 20):.0f} MiB)", _verdict(disk["ratio"] <= 1.5)),
    ]  # fmt: skip


# --- bisect ---------------------------------------------------------------------------------------------


def bisect_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-bisect.json")
    rows = []
    for case in data.get("cases", []):
        n = case["changed"]
        if case.get("error"):
            rows.append(Goal(f"bisect, 1 culprit among {n} changed packages", "could not run: " + case["error"], "n/a"))
            continue
        rows.append(
            Goal(
                f"bisect, 1 culprit among {n} changed packages: replays ≤ 2⌈log2 n⌉+2 = {case['bound']}",
                f"{case['replays']} replays (found {', '.join(case['culprit']) or 'nothing'}; {case['seconds']:.0f} s)",
                _verdict(case["replays"] <= case["bound"] and case["status"] == "found"),
            )
        )
    return rows


# --- fleet capture --------------------------------------------------------------------------


def fleet_goals(bench: Path) -> list[Goal]:
    data = _load(bench / "results-fleet.json")
    return [
        Goal(
            f"fleet capture of {data['nodes']} nodes ≤ one single-node capture + an empty Ray task round trip",
            f"{data['fleet']:.3f} s vs {data['budget']:.3f} s "
            f"(single {data['single']:.3f} + empty {data['empty']:.3f})",
            _verdict(data["within_budget"]),
        ),
        Goal(
            "the node captures run in parallel (fleet < single + the node payloads one after another)",
            f"{data['fleet']:.3f} s vs {data['serial_floor']:.3f} s",
            _verdict(data["overlapped"]),
        ),
    ]


def fleet_table(bench: Path) -> list[str]:
    """fleet_bench.py writes only JSON (medians): its figures as a table for RESULTS.md."""
    data = _load(bench / "results-fleet.json")
    rows = (
        ("empty Ray tasks, one pinned to each node (the scheduling round trip)", "empty"),
        ("one single-node capture (in-process)", "single"),
        (f"fleet capture of the {data['nodes']} nodes (`capture_cluster`)", "fleet"),
        ("the fleet's per-node payload times added up", "node_payload_sum"),
    )
    return [
        f"A local Ray cluster of {data['nodes']} nodes on 127.0.0.1 sharing {data['cpus']} CPUs (so node payloads "
        "compete for the same cores); medians of the runs after an untimed warm run.",
        "",
        "| measured | median s |",
        "|---|---|",
        *(f"| {label} | {data[key]:.3f} |" for label, key in rows),
        "",
    ]


AREAS: tuple[Area, ...] = (
    Area("capture", "Capture (env only)", "capture_bench.py", ("--runs", "7", "--no-setup"),
         ("RESULTS-capture.md", "results-capture.json"), capture_goals,
         quick_args=("--runs", "1", "--inprocess-runs", "1", "--venvs", "ml", "--only", "pip-freeze", "--no-setup"),
         needs=("venvs",)),
    Area("job-capture", "Capture of a running job", "job_capture_bench.py", ("--runs", "5"),
         ("RESULTS-job-capture.md", "results-job-capture.json"), job_capture_goals,
         quick_args=("--runs", "1", "--warmup", "0"), needs=("demo-venv", "reprozip")),
    Area("run-command", "`envsnap run -- COMMAND`", "bench_run_command.py", ("--runs", "7"),
         ("RESULTS-run-command.md", "results-run-command.json"), run_command_goals,
         quick_args=("--runs", "1", "--warmup", "0", "--rows", "20000"), needs=("demo-venv", "reprozip")),
    Area("sample", "Sampling", "sample_bench.py", ("--runs", "5"),
         ("RESULTS-sample.md", "results-sample.json"), sample_goals,
         quick_args=("--rows", "1000000", "--runs", "1", "--warmup", "0"), needs=("duckdb",)),
    Area("sample-s3", "Sampling on S3", "sample_s3_bench.py", ("--rounds", "3"),
         ("RESULTS-sample-s3.md", "results-sample-s3.json"), sample_s3_goals,
         quick_args=("--rounds", "1")),
    Area("diff-data", "Data diff", "diff_data_bench.py", ("--runs", "5"),
         ("results-diff-data.json",), diff_data_goals, table=diff_data_table,
         quick_args=("--runs", "1", "--warmup", "0", "--only", "pyarrow"), needs=("duckdb", "datacompy")),
    Area("diff-env", "Environment diff", "diff_env_bench.py", (),
         ("RESULTS-diff-env.md", "results-diff-env.json"), diff_env_goals,
         quick_args=("--runs", "20", "--warmup", "1"), needs=("measured-venvs",)),
    Area("runner", "Runner overhead", "runner_bench.py", (),
         ("RESULTS-runner.md",), runner_goals,
         quick_args=("--runs", "5", "--warmup", "0", "--rows", "100000", "--no-subprocess")),
    Area("values", "Runner overhead per value kind", "values_bench.py", (),
         ("RESULTS-values.md",), values_goals,
         quick_args=("--runs", "2", "--rows", "100000")),
    Area("replay", "Replay", "replay_bench.py", ("--runs", "5"),
         ("RESULTS-replay.md", "results-replay.json"), replay_goals,
         quick_args=("--runs", "1"), needs=("docker", "demo-snapshot")),
    Area("bisect", "Bisect", "bisect_bench.py", (),
         ("RESULTS-bisect.md", "results-bisect.json"), bisect_goals,
         quick_args=("--sizes", "2", "--repeats", "1"), needs=("bisect",)),
    Area("fleet", "Fleet capture (Ray)", "fleet_bench.py", ("--json", "bench/results-fleet.json"),
         ("results-fleet.json",), fleet_goals, table=fleet_table,
         quick_args=("--repeat", "1", "--json", "bench/results-fleet.json")),
)  # fmt: skip
