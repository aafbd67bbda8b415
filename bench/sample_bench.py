"""Sampling benchmark: 1,000 rows from a 50M-row, 12-column, 10-file parquet dataset, side by side.

    .venv/bin/python bench/sample_bench.py                       # 50M rows (bench/.data/events-50m, made once)
    .venv/bin/python bench/sample_bench.py --rows 10000000       # the 10M-row variant

Every method runs as its own process (interpreter start and imports included, as a user would run it),
one round at a time: each round runs every method once, in an order rotated from round to round, so load
drifting on a shared machine hits all of them alike; ratios to DuckDB are taken within a round. The first
round is a warm-up (it also fills the page cache) and checks that each method returned 1,000 rows. Wall
time and peak RSS come from ``wait4`` on the child (peak RSS = GNU time's %M); CPU time is user + system,
the figure that load on a shared machine disturbs least.

Results: ``bench/RESULTS-sample.md`` (tables, ratios, goals) and ``bench/results-sample.json`` (every run),
or ``--out DIR``. duckdb is a bench-only dependency (``pip install duckdb``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import make_dataset  # noqa: E402 - a sibling script
from _harness import fmt_ratio, fmt_s, machine, spawn_measured  # noqa: E402

K = 1000
SLOW_RUN_S = 30.0

# Table.take would concatenate each string column into one array, which overflows 32-bit offsets past
# 2 GiB of text: the 1,000 rows are sliced out instead (1,000 zero-copy slices, then one small concat).
READ_ALL = """
import random, sys
import pyarrow as pa
import pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet").to_table()
ids = sorted(random.Random(0).sample(range(table.num_rows), 1000))
print(pa.concat_tables([table.slice(i, 1) for i in ids]).num_rows)
"""
DATASET_TAKE = """
import random, sys
import pyarrow.dataset as ds
dataset = ds.dataset(sys.argv[1], format="parquet")
ids = sorted(random.Random(0).sample(range(dataset.count_rows()), 1000))
print(dataset.take(ids).num_rows)
"""
DUCKDB = """
import sys
import duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
query = f"SELECT * FROM read_parquet('{sys.argv[1]}/*.parquet') USING SAMPLE 1000 ROWS"
print(con.sql(query).to_arrow_table().num_rows)
"""


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    shown: str  # the command as a reader would type it


METHODS = (
    Method("read-all", "read everything, then sample", "pyarrow.dataset(...).to_table().take(ids)"),
    Method("dataset-take", "pyarrow `Dataset.take`", "pyarrow.dataset(...).take(ids)"),
    Method(
        "duckdb",
        "DuckDB `USING SAMPLE 1000 ROWS`",
        "SELECT * FROM read_parquet('DATA/*.parquet') USING SAMPLE 1000 ROWS",
    ),
    Method("envsnap", "envsnap uniform (iid)", "envsnap sample DATA -n 1000 -o out.parquet"),
    Method(
        "envsnap-columns",
        "envsnap uniform, `--columns` (2 of 12)",
        "envsnap sample DATA -n 1000 --columns user_id,amount -o out.parquet",
    ),
    Method(
        "envsnap-row-groups",
        "envsnap `--method row-groups` (not iid)",
        "envsnap sample DATA -n 1000 --method row-groups -o out.parquet",
    ),
)


def argv_for(method: str, data: Path, out: Path) -> list[str]:
    """The child command of ``method`` on dataset ``data``."""
    py = sys.executable
    snippets = {"read-all": READ_ALL, "dataset-take": DATASET_TAKE, "duckdb": DUCKDB}
    if method in snippets:
        return [py, "-c", snippets[method], str(data)]
    base = [py, "-m", "envsnap", "sample", str(data), "-n", str(K), "-o", str(out), "--force"]
    if method == "envsnap-columns":
        return [*base, "--columns", "user_id,amount"]
    if method == "envsnap-row-groups":
        return [*base, "--method", "row-groups"]
    return base


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    round: int


@dataclass
class Series:
    method: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None


def measure(argv: list[str]) -> tuple[Run, str]:
    """One child run: wall time, CPU time and peak RSS from its own rusage; returns its stdout too."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # Through the harness's launcher: this process generated the data, and a child spawned from it
        # would report this process's resident pages as its own peak.
        spawned = spawn_measured(argv, cwd=ROOT, env=None, stdout=out, stderr=err)
        code = spawned.returncode
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        if code != 0:
            tail = err.read().decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"exit {code}: {tail[-1] if tail else ''}")
    run = Run(spawned.wall_s, spawned.cpu_s, spawned.max_rss_kib / 1024, -1)
    return run, stdout


def sampled_rows(stdout: str) -> int:
    """Rows a method reports: a bare count, or envsnap's 'sampled 1,000 of ...' line."""
    match = re.search(r"sampled ([0-9,]+) of", stdout)
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    return int((match.group(1) if match else last).replace(",", ""))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_rounds(
    data: Path, methods: list[str], runs: int | None, warmup: int
) -> tuple[dict[str, Series], dict[str, Any]]:
    series = {m: Series(m) for m in methods}
    out = HERE / ".data" / "out.parquet"
    notes: dict[str, Any] = {"reduced_runs": False}
    planned = runs if runs is not None else 5
    r = 0
    while r < warmup + planned:
        active = [m for m in methods if series[m].error is None]
        order = active[r % len(active) :] + active[: r % len(active)]
        walls = []
        for method in order:
            try:
                run, stdout = measure(argv_for(method, data, out))
                rows = sampled_rows(stdout)
                if rows != K:
                    raise RuntimeError(f"returned {rows} rows, not {K}")
            except (RuntimeError, ValueError) as exc:
                series[method].error = str(exc)
                print(f"  round {r}: {method} FAILED: {exc}", flush=True)
                continue
            run.round = r - warmup
            walls.append(run.wall_s)
            print(
                f"  round {r}{' (warm-up)' if r < warmup else ''}: {method:<19} {run.wall_s:7.2f} s wall "
                f"{run.cpu_s:7.2f} s cpu {run.max_rss_mib:8.0f} MiB",
                flush=True,
            )
            if r >= warmup:
                series[method].runs.append(run)
        if r == warmup - 1 and runs is None and walls and max(walls) > SLOW_RUN_S:
            planned = 3  # a slow peer (reading 5 GiB into memory): 3 measured rounds, and the report says so
            notes["reduced_runs"] = True
        r += 1
    notes["runs"] = planned
    return series, notes


def summarise(series: dict[str, Series]) -> dict[str, Any]:
    """Per method: medians, and per-round ratios to DuckDB (wall and CPU)."""
    duck = {run.round: run for run in series["duckdb"].runs} if "duckdb" in series else {}
    out: dict[str, Any] = {}
    for name, s in series.items():
        walls = [r.wall_s for r in s.runs]
        ratios = [r.wall_s / duck[r.round].wall_s for r in s.runs if r.round in duck]
        cpu_ratios = [r.cpu_s / duck[r.round].cpu_s for r in s.runs if r.round in duck]
        out[name] = {
            "error": s.error,
            "n": len(s.runs),
            "wall_s": {"median": median(walls), "min": min(walls, default=None), "max": max(walls, default=None)},
            "cpu_s": median([r.cpu_s for r in s.runs]),
            "max_rss_mib": max((r.max_rss_mib for r in s.runs), default=None),
            "wall_ratio_to_duckdb": median(ratios) if ratios else None,
            "cpu_ratio_to_duckdb": median(cpu_ratios) if cpu_ratios else None,
            "runs": [asdict(r) for r in s.runs],
        }
    return out


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    def get(method: str, key: str) -> Any:
        return summary.get(method, {}).get(key)

    uniform_ratio = get("envsnap", "wall_ratio_to_duckdb")
    uniform_rss = get("envsnap", "max_rss_mib")
    fast_ratio = get("envsnap-row-groups", "wall_ratio_to_duckdb")
    return [
        {
            "goal": "uniform (iid) sample takes <= 1.0x DuckDB's time",
            "measured": None if uniform_ratio is None else f"{fmt_ratio(uniform_ratio)} (median of per-round ratios)",
            "pass": uniform_ratio is not None and uniform_ratio <= 1.0,
        },
        {
            "goal": "uniform (iid) sample peaks at <= 1 GiB",
            "measured": None if uniform_rss is None else f"{uniform_rss:.0f} MiB (largest run)",
            "pass": uniform_rss is not None and uniform_rss <= 1024,
        },
        {
            "goal": "--method row-groups is >= 4x faster than DuckDB",
            "measured": None
            if fast_ratio is None
            else f"{1 / fast_ratio:.1f}x faster ({fmt_ratio(fast_ratio)} of its time)",
            "pass": fast_ratio is not None and fast_ratio <= 0.25,
        },
    ]


def markdown(reports: dict[str, dict[str, Any]]) -> str:
    """RESULTS-sample.md: one section per dataset size measured (50M first)."""
    lines = [
        "# Sampling benchmark",
        "",
        "`make_dataset.py` generates the data; `sample_bench.py` (full size) and `sample_bench.py --rows 10000000`",
        "each rewrite their own section below. The goals are judged on the 50M-row dataset.",
        "",
    ]
    for size in sorted(reports, key=lambda k: -reports[k]["dataset"]["rows"]):
        lines += section(reports[size])
    return "\n".join(lines)


def section(report: dict[str, Any]) -> list[str]:
    facts = report["dataset"]
    host = report["machine"]
    lines = [
        f"## {facts['rows'] / 1e6:.0f}M rows",
        "",
        f"Generated by `bench/sample_bench.py` on {report['date']}. Task: take {K:,} rows from "
        f"`{facts['path']}`: {facts['rows']:,} rows, {facts['columns']} columns, {facts['files']} files, "
        f"{facts['row_groups']} row groups, {facts['bytes'] / 2**30:.2f} GiB (snappy).",
        "",
        f"Machine: {host['cpu_model']}, {host['cpus']} CPUs, {host['memory_gib']} GiB, {host['os']}. "
        f"**Shared**: other work ran on these {host['cpus']} cores during the run "
        f"(load average {report['load_start'][0]:.1f} at the start, {report['load_end'][0]:.1f} at the end), "
        "so wall times are indicative; the within-round ratios and the CPU times are what to read.",
        "",
        f"{report['notes']['runs']} measured rounds after {report['warmup']} warm-up round(s)"
        + (" (reduced from 5: a peer's run took over 30 s)" if report["notes"]["reduced_runs"] else "")
        + "; every method runs once per round, order rotated per round, each in a fresh process.",
        "",
        "| method | wall (median) | min-max | CPU (median) | peak RSS | wall vs DuckDB | CPU vs DuckDB |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        s = report["summary"].get(method.key)
        if s is None:
            continue
        if s["error"] and not s["n"]:
            lines.append(f"| {method.label} | failed: {s['error']} | | | | | |")
            continue
        w = s["wall_s"]
        ratio = (
            "—" if method.key == "duckdb" or s["wall_ratio_to_duckdb"] is None else fmt_ratio(s["wall_ratio_to_duckdb"])
        )
        cpu_ratio = (
            "—" if method.key == "duckdb" or s["cpu_ratio_to_duckdb"] is None else fmt_ratio(s["cpu_ratio_to_duckdb"])
        )
        lines.append(
            f"| {method.label} | {fmt_s(w['median'])} s | {fmt_s(w['min'])}-{fmt_s(w['max'])} s | "
            f"{fmt_s(s['cpu_s'])} s | {s['max_rss_mib']:,.0f} MiB | {ratio} | {cpu_ratio} |"
        )
    full_size = facts["rows"] == 50_000_000
    heading = (
        "| goal | measured | verdict |"
        if full_size
        else "| goal (set for 50M rows; informative here) | measured | verdict |"
    )
    lines += ["", heading, "|---|---|---|"]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g['measured'] or 'not measured'} | {'PASS' if g['pass'] else 'FAIL'} |")
    lines += ["", "Commands:", ""]
    lines += [f"- {m.label}: `{m.shown}`" for m in METHODS if m.key in report["summary"]]
    lines += ["", f"Versions: {report['versions']}", ""]
    return lines


def versions() -> str:
    code = "import pyarrow, duckdb, envsnap; print(pyarrow.__version__, duckdb.__version__, envsnap.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "unknown"
    pa_v, duck_v, env_v = proc.stdout.split()
    return f"Python {sys.version.split()[0]}, pyarrow {pa_v}, duckdb {duck_v}, envsnap {env_v}"


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000, help="dataset size (default 50M)")
    parser.add_argument("--runs", type=int, default=None, help="measured rounds (default 5; 3 when a run > 30 s)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", default=None, help="comma-separated method keys (development)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS-sample.md and results-sample.json go")
    args = parser.parse_args(argv)
    if make_dataset.main(["--rows", str(args.rows)]) != 0:
        return 1
    data = make_dataset.default_dir(args.rows)
    methods = [m.key for m in METHODS if args.only is None or m.key in args.only.split(",")]
    if "duckdb" not in methods:
        methods.append("duckdb")  # the yardstick of every ratio
    load_start = os.getloadavg()
    series, notes = run_rounds(data, methods, args.runs, args.warmup)
    summary = summarise(series)
    size = make_dataset.default_dir(args.rows).name.split("-")[-1]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dataset": make_dataset.dataset_facts(data),
        "machine": machine(),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "warmup": args.warmup,
        "notes": notes,
        "versions": versions(),
        "summary": summary,
        "goals": goals(summary),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results-sample.json"
    reports = json.loads(store.read_text()) if store.is_file() else {}
    reports = {k: v for k, v in reports.items() if isinstance(v, dict) and "dataset" in v}  # sizes measured before
    reports[size] = report
    store.write_text(json.dumps(reports, indent=1) + "\n")
    (args.out / "RESULTS-sample.md").write_text(markdown(reports))
    print("\n".join(section(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
