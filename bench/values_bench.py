"""Runner overhead per stage value kind (goal: <= 5% for each kind on a stage that processes 1M rows).

For each kind a stage does real work on a 1,000,000-row input and returns a value of that kind:

* ``pandas``    — feature engineering on a DataFrame (runner_bench's ``features``), returns a DataFrame;
* ``polars``    — the same features in polars, returns a polars DataFrame;
* ``numpy``     — standardise a 1M x 4 float matrix, returns the array;
* ``series``    — a per-user mean mapped back onto 1M rows, returns a Series;
* ``dict``      — an evaluation over 1M rows (AUC, log-loss, per-country means, a histogram), returns a dict;
* ``estimator`` — ``StandardScaler().fit`` on 1M x 4, returns the fitted estimator;
* ``tuple``     — a shuffled 80/20 split of the matrix, returns (train, test);
* ``none``      — a side-effect stage (logs percentiles of the matrix), returns None.

Each is measured as ``plain`` (the function called directly) and ``runner`` (through
``envsnap._target.runner.stages.run_stages`` with a sink that records nothing: the runner's own cost —
timing, the memory high-water mark, the ``sys.modules`` diff, the value's kind), interleaved, the pair's
order alternating, after a warm-up. ``runner+record`` (3 runs, after the pairs) adds what ``envsnap run``
does after the stage returns (the value's table form, parquet, column stats), reported for information.

    python bench/values_bench.py [--runs 15] [--rows 1000000] [--out bench]

Writes bench/RESULTS-values.md.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _harness import fmt_ratio, fmt_s, machine  # noqa: E402
from runner_bench import features, make_table  # noqa: E402

GOAL = 1.05


def _stages(table: Any) -> dict[str, tuple[Callable[[Any], Any], Any]]:
    """kind -> (stage function, its input)."""
    import numpy as np
    import polars as pl
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    frame = table.to_pandas()
    polars_frame = pl.from_arrow(table)
    matrix = np.column_stack([frame[c].to_numpy(dtype=float) for c in ("spend", "sessions", "tenure", "user")])

    def polars_features(df: Any) -> Any:
        return df.with_columns(
            (pl.col("spend") / (pl.col("sessions") + 1)).alias("spend_per_session"),
            pl.col("spend").mean().over("user").alias("user_mean_spend"),
            ((pl.col("spend") - pl.col("spend").mean()) / pl.col("spend").std()).alias("spend_z"),
            pl.col("country").str.to_uppercase(),
        ).filter(pl.col("sessions") > 0)

    def standardise(m: Any) -> Any:
        return (m - m.mean(axis=0)) / m.std(axis=0)

    def user_mean(df: Any) -> Any:
        return df.groupby("user")["spend"].transform("mean").rename("user_mean_spend")

    def metrics(df: Any) -> Any:
        """An evaluation stage: AUC and log-loss of a score against a label, per-country means, a histogram."""
        spend = df["spend"].to_numpy()
        label = (df["sessions"].to_numpy() > 20).astype(int)
        score = 1.0 / (1.0 + np.exp(-(spend - spend.mean()) / spend.std()))
        return {
            "rows": len(df),
            "auc": float(roc_auc_score(label, score)),
            "log_loss": float(log_loss(label, score)),
            "spend_by_country": df.groupby("country")["spend"].mean().round(4).to_dict(),
            "sessions_hist": np.bincount(df["sessions"].to_numpy(), minlength=40),
        }

    def fit_scaler(m: Any) -> Any:
        return StandardScaler().fit(m)

    def split(m: Any) -> Any:
        order = np.random.default_rng(0).permutation(len(m))
        cut = int(len(m) * 0.8)
        return m[order[:cut]], m[order[cut:]]

    def log_summary(m: Any) -> None:
        print(np.percentile(m, [1, 50, 99], axis=0).round(2).tolist(), file=sys.stderr)

    return {
        "pandas": (features, frame),
        "polars": (polars_features, polars_frame),
        "numpy": (standardise, matrix),
        "series": (user_mean, frame),
        "dict": (metrics, frame),
        "estimator": (fit_scaler, matrix),
        "tuple": (split, matrix),
        "none": (log_summary, matrix),
    }


def _nothing(index: int, label: str, value: Any, kind: str, columns: Any) -> dict[str, Any]:
    return {"kind": kind, "rows": None}


def timed(func: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def measure(kind: str, func: Callable[[Any], Any], value: Any, runs: int, workdir: str) -> dict[str, list[float]]:
    from envsnap._target.runner.stages import run_stages
    from envsnap.pipeline import Pipeline, Stage
    from envsnap.pipeline.execution import run_stages_here

    spec = {"name": kind, "kind": "call", "inputs": None, "accepts": None, "func": func}
    pipeline = Pipeline("bench", stages=[Stage(kind, func=func)])

    def plain() -> None:
        func(value)

    def runner() -> None:
        outcome = run_stages([spec], {"x": value}, _nothing, workdir=workdir)[0]
        assert outcome["status"] == "ok" and outcome["returned"] == kind, outcome["error"]

    def record() -> None:
        outcome = run_stages_here(pipeline, {"x": value}).outcomes[0]
        assert outcome["status"] == "ok" and outcome["returned"] == kind, outcome["error"]

    times: dict[str, list[float]] = {"plain": [], "runner": [], "runner+record": []}
    # The goal pair first, its order alternating, one warm-up round; the recording runs (which churn a few
    # hundred MiB writing parquet) apart afterwards, so that they do not disturb the pair.
    for i in range(runs + 1):
        pair = [("plain", plain), ("runner", runner)]
        for key, call in pair if i % 2 == 0 else pair[::-1]:
            wall = timed(call)
            if i:
                times[key].append(wall)
    for _ in range(3):
        times["runner+record"].append(timed(record))
    return times


def fixed_cost(value: Any, workdir: str, calls: int = 300) -> float:
    """The runner's own cost per stage in ms: a stage returning a small dict, through the runner, many calls."""
    from envsnap._target.runner.stages import run_stages

    small = {"ok": 1}
    spec = {"name": "fixed", "kind": "call", "inputs": None, "accepts": None, "func": lambda _: small}
    return (
        statistics.median(
            timed(lambda: run_stages([spec], {"x": value}, _nothing, workdir=workdir)) for _ in range(calls)
        )
        * 1000
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=BENCH)
    args = parser.parse_args(argv)
    facts = machine()
    table = make_table(args.rows)
    stages = _stages(table)
    workdir = tempfile.mkdtemp(prefix="values-bench-")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for kind, (func, value) in stages.items():
            results[kind] = measure(kind, func, value, args.runs, workdir)
            ratio = statistics.median(
                r / p for r, p in zip(results[kind]["runner"], results[kind]["plain"], strict=False)
            )
            print(f"{kind:10} plain {statistics.median(results[kind]['plain']):.3f}s  runner/plain {ratio:.3f}x")
        fixed_ms = fixed_cost(stages["pandas"][1], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    verdicts = []
    for kind, times in results.items():
        ratios = [r / p for r, p in zip(times["runner"], times["plain"], strict=False)]
        median = statistics.median(ratios)
        verdicts.append(median <= GOAL)
        recorded = statistics.median(r / p for r, p in zip(times["runner+record"], times["plain"], strict=False))
        rows.append(
            f"| {kind} | {fmt_s(statistics.median(times['plain']))} | {fmt_s(statistics.median(times['runner']))} | "
            f"**{fmt_ratio(median)}** | {fmt_ratio(min(ratios))} | {fmt_ratio(max(ratios))} | {fmt_ratio(recorded)} |"
        )
    worst = max(
        statistics.median(r / p for r, p in zip(t["runner"], t["plain"], strict=False)) for t in results.values()
    )
    verdict = "PASS" if all(verdicts) else "FAIL"
    lines = [
        "# Runner overhead per stage value kind",
        "",
        f"Generated by `bench/values_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one stage per "
        f"value kind on a {args.rows:,}-row input, {args.runs} interleaved plain/runner pairs after a warm-up "
        "(the recording runs apart, 3 each).",
        "",
        f"**Goal: runner overhead <= 5% for each value kind on a 1M-row stage — {verdict}** (worst median "
        f"runner/plain {fmt_ratio(worst)}).",
        "",
        "| kind | plain median s | runner median s | runner / plain (median) | min | max | runner+record / plain |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The runner's own cost per stage, measured apart (a stage returning a small dict, medians of 300 calls in "
        f"this process): **{fixed_ms:.2f} ms**.",
        "",
        "`runner` is the stage through the runner with a sink that records nothing: timing, the memory "
        "high-water mark, the `sys.modules` diff and telling the value's kind (a few `isinstance` checks "
        "through `sys.modules`, never an import). `runner+record` adds the value's table form, parquet and "
        "column stats of all 1M rows, which `envsnap run` does after the stage has returned (with its default "
        "1,000-row sample that is negligible). A dict or an estimator records one row; a tuple records each "
        "element; None records nothing.",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cpus']} CPUs), {facts['memory_gib']} GiB, {facts['os']}, "
        f"Python {sys.version.split()[0]}.",
        "",
    ]
    (args.out / "RESULTS-values.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"value kinds: worst median runner/plain {fmt_ratio(worst)} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
