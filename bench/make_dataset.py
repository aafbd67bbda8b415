"""Generate the sampling benchmark's parquet dataset (idempotent).

The benchmark's shape: 50M rows, 12 columns, 10 files, 50 row groups in all (5 per file, 1M rows each),
about 5 GiB snappy-compressed. Columns mix what a real event table holds: ids, a timestamp, high-cardinality
hex strings (incompressible, like session ids), low-cardinality categoricals (dictionary-encoded), floats
with a few nulls, a small int and a bool.

    .venv/bin/python bench/make_dataset.py                      # bench/.data/events-50m/
    .venv/bin/python bench/make_dataset.py --rows 10000000      # bench/.data/events-10m/

A stamp file (``.stamp.json``) records the parameters; a dataset whose stamp matches is left as it is, so
running the script twice costs nothing. Data is seeded: the same parameters give the same values.
numpy is a bench-only dependency (installed with pandas in the dev venv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
FILES = 10
GROUPS_PER_FILE = 5
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "NL", "SE", "PL", "MX", "KR"]
DEVICES = ["ios", "android", "web", "desktop", "tv"]


def default_dir(rows: int) -> Path:
    """``bench/.data/events-50m`` for 50M rows."""
    label = f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else str(rows)
    return DATA / f"events-{label}"


def _hex_strings(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """``n`` random lowercase hex strings of ``width`` characters, built straight from buffers."""
    raw = rng.integers(0, 16, size=n * width, dtype=np.uint8)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[raw]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def row_group(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    """One row group of ``n`` rows whose ``event_id`` starts at ``start``."""
    event_id = np.arange(start, start + n, dtype=np.int64)
    base = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    ts = base + event_id * 600_000 + rng.integers(0, 600_000, size=n)
    score = rng.normal(0.0, 1.0, size=n)
    score_mask = rng.random(n) < 0.01
    columns = {
        "event_id": pa.array(event_id),
        "ts": pa.array(ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
        "user_id": pa.array(rng.integers(0, 10_000_000, size=n, dtype=np.int64)),
        "session": _hex_strings(rng, n, 48),
        "device_hash": _hex_strings(rng, n, 24),
        "country": pa.array(np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), size=n)]),
        "device": pa.array(np.array(DEVICES)[rng.integers(0, len(DEVICES), size=n)]),
        "category": pa.array(np.char.add("cat_", rng.integers(0, 200, size=n).astype(str))),
        "amount": pa.array(rng.lognormal(3.0, 1.0, size=n)),
        "score": pa.array(score, mask=score_mask),
        "quantity": pa.array(rng.integers(1, 21, size=n, dtype=np.int32)),
        "is_fraud": pa.array(rng.random(n) < 0.002),
    }
    return pa.table(columns)


def make(rows: int, out: Path, *, seed: int = 1) -> Path:
    """Write the dataset under ``out`` unless a matching one is already there; return ``out``."""
    params = {"rows": rows, "files": FILES, "groups_per_file": GROUPS_PER_FILE, "seed": seed, "version": 2}
    stamp = out / ".stamp.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    per_group = rows // (FILES * GROUPS_PER_FILE)
    if per_group * FILES * GROUPS_PER_FILE != rows:
        raise SystemExit(f"--rows must be a multiple of {FILES * GROUPS_PER_FILE}")
    rng = np.random.default_rng(seed)
    start = 0
    began = time.perf_counter()
    for f in range(FILES):
        path = out / f"part-{f:05d}.parquet"
        writer: pq.ParquetWriter | None = None
        for _ in range(GROUPS_PER_FILE):
            table = row_group(rng, start, per_group)
            start += per_group
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=per_group)
        assert writer is not None
        writer.close()
        print(
            f"  {path.name}: {path.stat().st_size / 2**20:,.0f} MiB ({time.perf_counter() - began:.0f} s)", flush=True
        )
    stamp.write_text(json.dumps(params))
    return out


def dataset_facts(path: Path) -> dict[str, object]:
    """Files, row groups, rows, columns and bytes of a generated dataset (footers only)."""
    files = sorted(path.glob("*.parquet"))
    metas = [pq.read_metadata(p) for p in files]
    return {
        "path": str(path.relative_to(HERE.parent)),
        "files": len(files),
        "row_groups": sum(m.num_row_groups for m in metas),
        "rows": sum(m.num_rows for m in metas),
        "columns": metas[0].num_columns if metas else 0,
        "bytes": sum(p.stat().st_size for p in files),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--rows N`` (default 50M), ``--out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or default_dir(args.rows)
    free = shutil.disk_usage(out.parent if out.parent.exists() else HERE).free
    if free < args.rows * 110 * 4:  # the dataset, plus room for the 'read everything' peer's spill and slack
        print(f"only {free / 2**30:.1f} GiB free: scale down with --rows", file=sys.stderr)
        return 1
    DATA.mkdir(exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")
    make(args.rows, out)
    facts = dataset_facts(out)
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
