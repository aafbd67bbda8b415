"""Sampling a parquet object on S3-compatible storage: bytes fetched vs the bytes of the row groups touched.

Runs alone from a fresh clone (``python bench/sample_s3_bench.py``): it starts its own moto S3 server on
127.0.0.1 (moto is in the dev extra), puts a counting TCP proxy on 127.0.0.1 in front of it, writes a
50-row-group parquet file with pyarrow and uploads it (directly, not through the proxy), then takes 1,000
rows from ``s3://bench/events.parquet`` with envsnap and with pyarrow's own S3 readers, every reader talking
to the proxy through the standard ``AWS_ENDPOINT_URL``.

Counted by the proxy, per method: the bytes the server sent (``wire``: status lines, headers and bodies of
every response, HEAD and listing included) and the requests with the byte ranges they asked for. The bytes
of the row groups touched are computed from the parquet metadata: for each row group holding a drawn row,
``total_compressed_size`` of the column chunks read, plus the footer (its length, length field and magic)
and the 4-byte head. The goal: ``wire <= 1.2 x touched`` for the uniform (iid) and row-group modes.

The peer: DuckDB's httpfs extension would be the natural one, but DuckDB downloads extensions on first use
and this machine is offline (``INSTALL httpfs`` fails), so the peers are pyarrow's readers over the same
S3 filesystem: ``pyarrow.dataset(...).take(ids)``, ``ParquetFile.read_row_groups(touched).take(...)`` (a
hand-written reader that knows which row groups it needs) and ``pq.read_table`` (download everything).

Wall times are medians of a few rounds against a local Python S3 server on a shared 2-core machine: they
are indicative; the byte counts are exact and do not depend on load.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from _harness import machine  # noqa: E402

from envsnap.capture.base import InputSpec, SampleOptions  # noqa: E402
from envsnap.capture.sample import sample_input  # noqa: E402
from envsnap.capture.sample_files import _choose_row_groups, draw, split  # noqa: E402
from envsnap.core import storage  # noqa: E402

BUCKET = "bench"
KEY = "events.parquet"
ROW_GROUPS = 50
ROWS_PER_GROUP = 20_000
SAMPLE = 1_000
GOAL = 1.2
RESULTS_MD = BENCH / "RESULTS-sample-s3.md"
RESULTS_JSON = BENCH / "results-sample-s3.json"


# -- a counting proxy --------------------------------------------------------------------------------------


@dataclass
class Counts:
    wire: int = 0  # bytes server -> client
    requests: dict[str, int] = field(default_factory=dict)  # method -> count
    ranged: int = 0  # bytes asked for by GET requests with a Range header
    unranged_gets: int = 0


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes the server sends and parses the requests' first lines
    and Range headers (the readers here send GET and HEAD only: no request bodies to step over)."""

    _REQUEST = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.[01]\r\n(.*?)\r\n\r\n", re.DOTALL)
    _RANGE = re.compile(rb"(?im)^range:\s*bytes=(\d+)-(\d+)\s*$")

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.counts = Counts()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> Counts:
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 16):
                pending += data
                while match := self._REQUEST.match(pending):
                    self._request(match.group(1).decode(), match.group(3))
                    pending = pending[match.end() :]
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _request(self, method: str, headers: bytes) -> None:
        with self._lock:
            self.counts.requests[method] = self.counts.requests.get(method, 0) + 1
            if method == "GET":
                found = self._RANGE.search(headers)
                if found:
                    self.counts.ranged += int(found.group(2)) - int(found.group(1)) + 1
                else:
                    self.counts.unranged_gets += 1

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(1 << 16):
                with self._lock:
                    self.counts.wire += len(data)
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()


# -- the S3 server -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[int]:
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"moto_server exited {proc.returncode}: {log.read_text(errors='replace')[-500:]}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("moto_server did not start within 60 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def aws_env(port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }


# -- data --------------------------------------------------------------------------------------------------


def make_table(rows: int) -> pa.Table:
    rng = random.Random(11)
    countries = ["US", "DE", "FR", "JP", "BR", "IN", "GB", "CA"]
    return pa.table(
        {
            "event_id": pa.array(range(rows), pa.int64()),
            "user_id": pa.array([rng.randrange(2_000_000) for _ in range(rows)], pa.int64()),
            "country": pa.array([countries[rng.randrange(8)] for _ in range(rows)]),
            "amount": pa.array([round(rng.random() * 500, 2) for _ in range(rows)], pa.float64()),
            "score": pa.array([rng.random() for _ in range(rows)], pa.float64()),
            "comment": pa.array([f"event {i} from session {rng.randrange(10**9):09d}" for i in range(rows)]),
        }
    )


def touched_bytes(meta: pq.FileMetaData, groups: list[int], columns: list[str] | None, footer: int) -> int:
    keep = set(columns) if columns else None
    total = 4 + footer + 8  # head magic, footer, length + magic
    for g in groups:
        rg = meta.row_group(g)
        for i in range(rg.num_columns):
            chunk = rg.column(i)
            if keep is None or chunk.path_in_schema in keep:
                total += chunk.total_compressed_size
    return total


def drawn_groups(meta: pq.FileMetaData, seed: int, method: str) -> dict[int, list[int]]:
    """The row groups (and their local row ids) envsnap draws: the same calls, the same seeded generator."""
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    starts = [sum(rows[:g]) for g in range(len(rows))]
    rng = random.Random(seed)
    if method == "row-groups":
        return _choose_row_groups(rng, rows, SAMPLE)
    return split(draw(rng, sum(rows), SAMPLE), starts)


# -- methods -----------------------------------------------------------------------------------------------


@dataclass
class Method:
    key: str
    label: str
    shown: str
    run: Callable[[], int]  # returns the rows it produced
    touched: int | None  # bytes of the row groups touched (envsnap's own draws), None when not judged
    groups: int | None


def methods(uri: str, meta: pq.FileMetaData, footer: int, seed: int) -> list[Method]:
    path = uri.removeprefix("s3://")
    iid = drawn_groups(meta, seed, "uniform")
    by_group = drawn_groups(meta, seed, "row-groups")
    starts = [sum(meta.row_group(i).num_rows for i in range(g)) for g in range(meta.num_row_groups)]
    ids = [starts[g] + r for g, rows in sorted(iid.items()) for r in rows]
    two = ["user_id", "amount"]

    def envsnap_sample(**options: Any) -> Callable[[], int]:
        def go() -> int:
            wanted = SampleOptions(rows=SAMPLE, seed=seed, **options)
            sampled = sample_input(InputSpec("events", uri), wanted, salt=None)
            return int(sampled.table.num_rows)

        return go

    def dataset_take() -> int:
        import pyarrow.dataset as ds

        table = ds.dataset(path, filesystem=storage.filesystem(), format="parquet").take(pa.array(ids))
        return int(table.num_rows)

    def row_groups_take() -> int:
        pf = pq.ParquetFile(path, filesystem=storage.filesystem())
        groups = sorted(iid)
        table = pf.read_row_groups(groups)
        offsets = []
        acc = 0
        for g in groups:
            offsets += [acc + r for r in iid[g]]
            acc += meta.row_group(g).num_rows
        return int(table.take(pa.array(offsets)).num_rows)

    def read_all() -> int:
        table = pq.read_table(path, filesystem=storage.filesystem())
        return int(table.take(pa.array(ids)).num_rows)

    all_groups = list(range(meta.num_row_groups))
    return [
        Method(
            "envsnap-uniform",
            "envsnap uniform (iid)",
            f"envsnap sample {uri} -n 1000",
            envsnap_sample(),
            touched_bytes(meta, sorted(iid), None, footer),
            len(iid),
        ),
        Method(
            "envsnap-columns",
            "envsnap uniform, `--columns` (2 of 6)",
            f"envsnap sample {uri} -n 1000 --columns user_id,amount",
            envsnap_sample(columns=tuple(two)),
            touched_bytes(meta, sorted(iid), two, footer),
            len(iid),
        ),
        Method(
            "envsnap-row-groups",
            "envsnap `--method row-groups` (not iid)",
            f"envsnap sample {uri} -n 1000 --method row-groups",
            envsnap_sample(method="row-groups"),
            touched_bytes(meta, sorted(by_group), None, footer),
            len(by_group),
        ),
        Method(
            "pyarrow-row-groups",
            "pyarrow `ParquetFile.read_row_groups(touched)`",
            "pq.ParquetFile(path, filesystem=s3).read_row_groups(groups with a drawn row).take(ids)",
            row_groups_take,
            touched_bytes(meta, sorted(iid), None, footer),
            len(iid),
        ),
        Method(
            "pyarrow-dataset-take",
            "pyarrow `Dataset.take`",
            "pyarrow.dataset.dataset(path, filesystem=s3).take(ids)",
            dataset_take,
            None,
            None,
        ),
        Method(
            "read-all",
            "read everything, then sample",
            "pq.read_table(path, filesystem=s3).take(ids)",
            read_all,
            touched_bytes(meta, all_groups, None, footer),
            len(all_groups),
        ),
    ]


# -- report ------------------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.2f} MiB"


def write_report(results: dict[str, Any]) -> None:
    facts = results["data"]
    m = results["machine"]
    lines = [
        "# Sampling a parquet object on S3-compatible storage",
        "",
        f"Generated by `bench/sample_s3_bench.py` on {results['when']}. Task: take {SAMPLE:,} rows from "
        f"`s3://{BUCKET}/{KEY}`: {facts['rows']:,} rows, {facts['columns']} columns, {facts['row_groups']} row "
        f"groups, {mib(facts['size'])} (snappy), on a moto S3 server on 127.0.0.1 behind a counting proxy.",
        "",
        f"Machine: {m.get('cpu_model', '?')}, {m.get('cpus', '?')} CPUs. **Shared**: other work ran on these cores "
        "during the run, and the server is moto (Python): wall times are indicative. Byte and request counts "
        "are exact and load-independent; they are what the goal reads.",
        "",
        "`wire`: every byte the server sent (status lines, headers, bodies; HEAD and listings included). "
        "`ranges`: the bytes the GET requests asked for. `touched`: the column chunks of the row groups holding "
        "a drawn row (only the columns read) + footer + head magic, from the parquet metadata.",
        "",
        f"Wall: median of {results['rounds']} rounds, methods interleaved. Each request costs tens of "
        "milliseconds on this moto server whatever its size, so the request count weighs on the wall times "
        "more than it would on AWS S3: envsnap fetches the column chunks it needs with adjacent chunks "
        "merged into one request (across row groups, up to 32 MiB, holes up to 8 KiB), so the iid sample of "
        "all columns takes a few requests, and `--columns` one per row group (the other columns lie between).",
        "",
        "| method | row groups touched | touched | wire | ranges | wire / touched | wire / file | requests "
        "(GET+HEAD) | wall (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["methods"]:
        ratio = f"{r['wire'] / r['touched']:.3f}x" if r["touched"] else "—"
        requests = r["requests"]
        lines.append(
            f"| {r['label']} | {r['groups'] if r['groups'] is not None else '—'} | "
            f"{mib(r['touched']) if r['touched'] else '—'} | {mib(r['wire'])} | {mib(r['ranged'])} | {ratio} | "
            f"{r['wire'] / facts['size']:.3f}x | {requests.get('GET', 0)}+{requests.get('HEAD', 0)} | "
            f"{r['wall_s']:.3f} s |"
        )
    lines += ["", "| goal | measured | verdict |", "|---|---|---|"]
    for goal in results["goals"]:
        lines.append(f"| {goal['goal']} | {goal['measured']} | {goal['verdict']} |")
    lines += [
        "",
        "Why DuckDB is not the peer here: its httpfs extension is downloaded on first use (`INSTALL httpfs`), "
        "and this machine has no network; pyarrow's own S3 readers read the same object through the same "
        "filesystem instead.",
        "",
        "Commands (all in the bench process, against the same proxy; the envsnap rows call "
        "`envsnap.capture.sample.sample_input`, what `envsnap sample` runs before writing its output):",
        "",
    ]
    lines += [f"- {r['label']}: `{r['shown']}`" for r in results["methods"]]
    lines += ["", f"Versions: {results['versions']}", ""]
    RESULTS_MD.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the JSON results")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads(RESULTS_JSON.read_text()))
        return 0
    with tempfile.TemporaryDirectory(prefix="envsnap-s3-bench-") as tmp, moto_server(Path(tmp) / "moto.log") as port:
        import boto3

        local = Path(tmp) / KEY
        pq.write_table(
            make_table(ROW_GROUPS * ROWS_PER_GROUP), local, row_group_size=ROWS_PER_GROUP, compression="snappy"
        )
        env = aws_env(port)
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(local), BUCKET, KEY)
        meta = pq.read_metadata(local)
        data = local.read_bytes()
        footer = int.from_bytes(data[-8:-4], "little")
        proxy = CountingProxy(port)
        os.environ.update(aws_env(proxy.port))
        uri = f"s3://{BUCKET}/{KEY}"
        plan = methods(uri, meta, footer, args.seed)
        walls: dict[str, list[float]] = {m.key: [] for m in plan}
        counts: dict[str, Counts] = {}
        for round_no in range(args.rounds):
            order = plan[round_no % len(plan) :] + plan[: round_no % len(plan)]
            for method in order:
                proxy.reset()
                start = time.perf_counter()
                produced = method.run()
                walls[method.key].append(time.perf_counter() - start)
                time.sleep(0.05)  # let the last response bytes reach the counter
                counted = proxy.reset()
                if produced != SAMPLE:
                    raise SystemExit(f"{method.key} produced {produced} rows, not {SAMPLE}")
                if method.key in counts and counts[method.key].wire != counted.wire:
                    print(f"note: {method.key} fetched {counted.wire} bytes, earlier {counts[method.key].wire}")
                counts.setdefault(method.key, counted)
        proxy.close()
        rows = []
        for method in plan:
            c = counts[method.key]
            rows.append(
                {
                    "key": method.key,
                    "label": method.label,
                    "shown": method.shown,
                    "groups": method.groups,
                    "touched": method.touched,
                    "wire": c.wire,
                    "ranged": c.ranged,
                    "unranged_gets": c.unranged_gets,
                    "requests": c.requests,
                    "wall_s": statistics.median(walls[method.key]),
                    "walls_s": walls[method.key],
                }
            )
        by_key = {r["key"]: r for r in rows}
        goals = []
        for key, what in (("envsnap-uniform", "uniform (iid)"), ("envsnap-row-groups", "--method row-groups")):
            r = by_key[key]
            ratio = r["wire"] / r["touched"]
            goals.append(
                {
                    "goal": f"{what}: bytes fetched <= {GOAL}x the row groups touched",
                    "measured": f"{ratio:.3f}x ({mib(r['wire'])} for {mib(r['touched'])}, {r['groups']} row groups)",
                    "verdict": "PASS" if ratio <= GOAL else "FAIL",
                }
            )
        import duckdb

        results = {
            "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "rounds": args.rounds,
            "seed": args.seed,
            "data": {
                "rows": meta.num_rows,
                "columns": meta.num_columns,
                "row_groups": meta.num_row_groups,
                "size": len(data),
                "footer": footer,
            },
            "methods": rows,
            "goals": goals,
            "versions": f"Python {sys.version.split()[0]}, pyarrow {pa.__version__}, duckdb {duckdb.__version__} "
            "(httpfs not loadable offline)",
        }
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)
    for goal in goals:
        print(f"{goal['verdict']}: {goal['goal']}: {goal['measured']}")
    return 0 if all(g["verdict"] == "PASS" for g in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
