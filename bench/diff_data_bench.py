"""Data-diff benchmark: envsnap's diff_parquet side by side with its peers.

    .venv/bin/python bench/diff_data_bench.py            # generate (once), measure, write RESULTS-diff-data.md
    .venv/bin/python bench/diff_data_bench.py --runs 3   # fewer pairs

Two 5M-row x 12-column parquet files are generated once into ``bench/.data/`` (git-ignored): mixed int64,
float64, string and timestamp columns, several row groups (1M rows on side a, 768k on side b, so the row
groups do NOT align), with 0.1% of the cells of b changed (seeded). Every method runs in a fresh child
process (``worker`` mode of this script) measured by ``_harness.run_once`` (wall time, CPU time and the
child's peak RSS from ``wait4``); each comparison is a pair, interleaved A B A B after a warm-up pair, so a
drift in machine load hits both halves of a pair. The reference (A) of every pair is envsnap's
``diff_parquet``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / ".data"
A_FILE = DATA / "diff_a.parquet"
B_FILE = DATA / "diff_b.parquet"
SNAP_A = DATA / "snap_a"
SNAP_B = DATA / "snap_b"
ROWS = 5_000_000
CHANGED = 0.001
SEED = 20240604


# --- data ---------------------------------------------------------------------------------------------


def _strings(rng: Any, n: int, width: int) -> Any:
    """``n`` random lowercase strings of ``width`` characters, built in numpy (no Python loop)."""
    import pyarrow as pa

    raw = rng.integers(97, 123, size=(n, width), dtype="uint8")
    return pa.array(raw.view(f"S{width}").ravel(), type=pa.binary()).cast(pa.string())


def generate(force: bool = False) -> None:
    """Write the two parquet files (and two snapshot directories holding them) unless they exist."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if A_FILE.exists() and B_FILE.exists() and not force:
        return
    DATA.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    n = ROWS
    cities = np.array([f"city-{i:03d}" for i in range(300)], dtype=object)
    base = np.datetime64("2020-01-01T00:00:00", "us").astype("int64")
    columns: dict[str, Any] = {
        "id": pa.array(np.arange(n, dtype="int64")),
        "user": pa.array(rng.integers(0, 2_000_000, n, dtype="int64")),
        "count": pa.array(rng.integers(0, 1000, n, dtype="int64")),
        "amount_cents": pa.array(rng.integers(-(10**9), 10**9, n, dtype="int64")),
        "price": pa.array(rng.normal(100.0, 15.0, n)),
        "score": pa.array(rng.random(n)),
        "weight": pa.array(rng.lognormal(0.0, 1.0, n)),
        "ratio": pa.array(rng.standard_normal(n)),
        "at": pa.array(base + rng.integers(0, 4 * 365 * 86_400_000_000, n), type=pa.timestamp("us")),
        "city": pa.array(cities[rng.integers(0, len(cities), n)], type=pa.string()),
        "token": _strings(rng, n, 40),
        "code": _strings(rng, n, 8),
    }
    table_a = pa.table(columns)
    # b: 0.1% of the cells changed, spread over every column but the row id.
    changed = dict(columns)
    names = [c for c in columns if c != "id"]
    per_column = int(n * len(columns) * CHANGED / len(names))
    for name in names:
        where = np.zeros(n, dtype=bool)
        where[rng.choice(n, per_column, replace=False)] = True
        mask = pa.array(where)
        col = columns[name]
        if pa.types.is_floating(col.type):
            other = pc.add(col, 0.5)
        elif pa.types.is_integer(col.type):
            other = pc.add(col, 7)
        elif pa.types.is_timestamp(col.type):
            other = pc.add(col, pa.scalar(3_600_000_000, pa.duration("us")))
        else:
            other = pc.binary_join_element_wise(col, "x", "")
        changed[name] = pc.if_else(mask, other, col)
    table_b = pa.table(changed)
    pq.write_table(table_a, A_FILE, row_group_size=1_000_000)
    pq.write_table(table_b, B_FILE, row_group_size=768_000)
    _snapshots()


MEMBER = "pipeline/stages/01-features.parquet"


def _snapshots() -> None:
    """Three snapshot directories holding one stage member each, hard-linked to the generated files.

    ``snap_a`` and ``snap_a2`` hold the same file (equal sha256: the fast path), ``snap_b`` holds b (the
    compare path through a snapshot: the member is verified by hashing it, overlapped with decoding).
    """
    import shutil

    from envsnap.core.hashing import hash_file
    from envsnap.snapshot.build import assemble_snapshot
    from envsnap.snapshot.manifest import manifest_bytes

    for name, source in (("snap_a", A_FILE), ("snap_a2", A_FILE), ("snap_b", B_FILE)):
        dest = DATA / name
        if dest.exists():
            shutil.rmtree(dest)
        digest, size = hash_file(str(source))
        # A placeholder member of the right name builds the manifest; its hash and size are then replaced.
        snap = assemble_snapshot({MEMBER: b""}, fingerprint="sha256:" + "0" * 64, label=name, reproducible=True)
        data = snap.manifest.to_dict()
        data["members"][MEMBER] = {"sha256": digest, "size": size}
        member_path = dest / MEMBER
        member_path.parent.mkdir(parents=True)
        os.link(source, member_path)
        from envsnap.snapshot.manifest import Manifest

        (dest / "manifest.json").write_bytes(manifest_bytes(Manifest.from_dict(data)))


# --- workers: each runs in a fresh child process ------------------------------------------------------


def _worker(method: str) -> None:
    """Do one method's whole job once and print a one-line summary (checked by the parent)."""
    a, b = str(A_FILE), str(B_FILE)
    if method == "pyarrow":
        import pyarrow.parquet as pq

        ta, tb = pq.read_table(a), pq.read_table(b)
        print(ta.num_rows + tb.num_rows)
    elif method in ("duckdb-join", "duckdb-except"):
        import duckdb

        con = duckdb.connect()
        names = [c for c in _names() if c != "id"]
        if method == "duckdb-join":
            counts = ", ".join(f"sum(CASE WHEN a.{c} IS DISTINCT FROM b.{c} THEN 1 ELSE 0 END)" for c in names)
            sql = f"SELECT {counts} FROM read_parquet('{a}') a FULL OUTER JOIN read_parquet('{b}') b ON a.id = b.id"  # noqa: S608 - our own paths
        else:
            sql = f"SELECT count(*) FROM (SELECT * FROM read_parquet('{a}') EXCEPT SELECT * FROM read_parquet('{b}'))"  # noqa: S608 - our own paths
        print(con.execute(sql).fetchall())
    elif method == "pandas":
        import pandas as pd

        da, db = pd.read_parquet(a), pd.read_parquet(b)
        print(int((da != db).sum().sum()))
    elif method == "datacompy":
        import datacompy
        import pandas as pd

        compare = datacompy.PandasCompare(pd.read_parquet(a), pd.read_parquet(b), join_columns="id")
        print(compare.matches(), len(compare.all_mismatch()))
    elif method == "envsnap":
        from envsnap.diff.tables import diff_parquet

        diff = diff_parquet(a, b, name="bench")
        print(diff.status, sum(c.differing for c in diff.columns))
    elif method in ("envsnap-snapshot", "envsnap-snapshot-verify-first", "envsnap-fast-path"):
        import envsnap
        from envsnap.diff.data import diff_member
        from envsnap.diff.tables import diff_parquet

        sa = envsnap.load(DATA / "snap_a")
        sb = envsnap.load(DATA / ("snap_a2" if method == "envsnap-fast-path" else "snap_b"))
        if method == "envsnap-snapshot-verify-first":
            sa.check_member(MEMBER)
            sb.check_member(MEMBER)
            with sa.open_member(MEMBER) as fa, sb.open_member(MEMBER) as fb:
                diff = diff_parquet(fa, fb, name="bench")
        else:
            start = time.perf_counter()
            diff = diff_member(sa, sb, MEMBER, MEMBER, name="bench")
            print(f"inproc_s={time.perf_counter() - start:.6f}")
        print(diff.status, sum(c.differing for c in diff.columns))
    else:
        raise SystemExit(f"unknown method {method}")


def _names() -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(A_FILE).names)


# --- orchestration ------------------------------------------------------------------------------------

PEERS = [
    ("pyarrow", "pyarrow reading both files (the floor)", "pq.read_table(a); pq.read_table(b)"),
    ("duckdb-join", "DuckDB FULL OUTER JOIN on id, per-column difference counts", "duckdb SQL"),
    ("duckdb-except", "DuckDB EXCEPT", "duckdb SQL"),
    ("pandas", "pandas read both, (a != b).sum()", "pandas"),
    ("datacompy", "datacompy.PandasCompare(join_columns='id')", "datacompy (own venv: pandas<3.1)"),
]


def _command(method: str, python: str) -> Any:
    from _harness import Command

    return Command(
        key=method,
        label=method,
        argv=(python, str(Path(__file__).resolve()), "worker", method),
        shown=f"diff_data_bench.py worker {method}",
    )


def main(argv: list[str]) -> int:
    import argparse

    sys.path.insert(0, str(HERE))
    import _harness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", default="")
    parser.add_argument("--datacompy-python", default=str(HERE / ".venvs" / "datacompy" / "bin" / "python"))
    opts = parser.parse_args(argv)
    py = sys.executable
    plan = [("envsnap", peer, py if peer != "datacompy" else opts.datacompy_python) for peer, _, _ in PEERS]
    plan += [
        ("envsnap-snapshot", "envsnap-snapshot-verify-first", py),
        ("envsnap-fast-path", "pyarrow", py),
    ]
    plan = [(ref, peer, python) for ref, peer, python in plan if not opts.only or peer in opts.only.split(",")]
    for ref, peer, peer_python in plan:
        if not Path(peer_python).exists():
            # A fresh clone has no peer venv: one line, not a traceback (run_all.py builds it).
            print(f"pair {ref} vs {peer}: skipped, {peer_python} missing (run_all.py --areas diff-data builds it)")
    plan = [(ref, peer, python) for ref, peer, python in plan if Path(python).exists()]
    if not plan:
        print("nothing to measure")
        return 0
    generate()
    if not (DATA / "snap_b").exists():
        _snapshots()
    env = dict(os.environ)
    machine = _harness.machine()
    print("machine:", machine)
    pairs: list[tuple[str, Any]] = []
    for ref, peer, peer_python in plan:
        print(f"pair {ref} vs {peer}")
        pair = _harness.run_pair(
            _command(ref, py), _command(peer, peer_python), runs=opts.runs, warmup=opts.warmup, cwd=ROOT, env=env
        )
        pairs.append((f"{ref} vs {peer}", pair))
    import subprocess

    inproc = []
    for _ in range(5):
        out = subprocess.run(
            [py, __file__, "worker", "envsnap-fast-path"], capture_output=True, text=True, check=True
        ).stdout
        inproc.append(float(out.split("inproc_s=")[1].split()[0]))
    print("fast path in-process (diff_member call, snapshots open):", inproc)
    results = {
        "fast_path_inproc_s": inproc,
        "machine": machine,
        "loadavg_end": os.getloadavg(),
        "files": {"a": A_FILE.stat().st_size, "b": B_FILE.stat().st_size, "rows": ROWS, "changed": CHANGED},
        "pairs": {name: pair.to_json() for name, pair in pairs},
    }
    (HERE / "results-diff-data.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for name, pair in pairs:
        ratios = pair.ratios()
        print(
            f"{name}: a {statistics.median(pair.a.walls()) if pair.a.runs else float('nan'):.2f}s "
            f"{max(pair.a.rss_mib(), default=0):.0f}MiB | b "
            f"{statistics.median(pair.b.walls()) if pair.b.runs else float('nan'):.2f}s "
            f"{max(pair.b.rss_mib(), default=0):.0f}MiB | ratios {[round(r, 3) for r in ratios]} "
            f"{pair.a.error or ''}{pair.b.error or ''}"
        )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        t = time.perf_counter()
        generate(force=True)
        print(f"generated in {time.perf_counter() - t:.1f}s", A_FILE.stat().st_size, B_FILE.stat().st_size)
    elif sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2])
    else:
        raise SystemExit(main(sys.argv[1:]))
