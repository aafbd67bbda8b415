"""Sampling inputs on object storage: ``envsnap sample s3://...`` and ``capture --input NAME=s3://...``
against a real S3-compatible server (moto's, on 127.0.0.1, authentication on), compared with the same
files sampled locally (same options and seed: the same rows)."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import envsnap
from envsnap.capture.base import InputSpec, SampleOptions
from envsnap.capture.sample import sample_input
from envsnap.cli import app
from tests.integration.s3_env import S3Server, s3_env, s3_server  # noqa: F401

runner = CliRunner()


def events(n: int, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": ids,
            "country": [("US", "DE", "FR", "JP")[i % 4] for i in ids],
            "amount": [i * 0.25 for i in ids],
            "note": [f"event number {i}" for i in ids],
        }
    )


def upload(server: S3Server, local: Path, key: str) -> str:
    server.client().upload_file(str(local), server.bucket, key)  # type: ignore[attr-defined]
    return f"s3://{server.bucket}/{key}"


def upload_tree(server: S3Server, root: Path, prefix: str) -> str:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            upload(server, path, f"{prefix}/{path.relative_to(root).as_posix()}")
    return f"s3://{server.bucket}/{prefix}/"


def local_sample(path: Path, **options: object) -> tuple[pa.Table, dict[str, Any]]:
    sampled = sample_input(InputSpec("x", str(path)), SampleOptions(**options), salt=None)  # type: ignore[arg-type]
    return sampled.table, sampled.record


def cli_sample(source: str, out: Path, *args: str) -> pa.Table:
    result = runner.invoke(app, ["sample", source, "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("sampled ") and f"from {source} " in result.stdout, result.stdout
    return pq.read_table(out)


@pytest.fixture
def parquet_file(tmp_path: Path) -> Path:
    path = tmp_path / "local" / "events.parquet"
    path.parent.mkdir()
    pq.write_table(events(12_000), path, row_group_size=1_000, max_rows_per_page=100)
    return path


def test_parquet_object_sampled_as_the_local_file(
    s3_env: S3Server,  # noqa: F811
    parquet_file: Path,
    tmp_path: Path,
) -> None:
    uri = upload(s3_env, parquet_file, "in/events.parquet")
    for args, options in (
        (["-n", "300", "--seed", "7"], {"rows": 300, "seed": 7}),
        (["-n", "300", "--seed", "7", "--method", "row-groups"], {"rows": 300, "seed": 7, "method": "row-groups"}),
        (["--fraction", "0.6", "--columns", "id,note"], {"fraction": 0.6, "columns": ("id", "note")}),
    ):
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.parquet"
        remote = cli_sample(uri, out, *args)
        local, _ = local_sample(parquet_file, **options)
        assert remote.equals(local), args
    sampled = sample_input(InputSpec("x", uri), SampleOptions(rows=300, seed=7), salt=None)
    _, local_record = local_sample(parquet_file, rows=300, seed=7)
    record = sampled.record
    assert record["source"]["kind"] == "parquet" and record["source"]["path"] == uri
    assert record["source"]["size"] == parquet_file.stat().st_size and record["source"]["row_groups"] == 12
    assert record["fingerprint"]["digest"] == local_record["fingerprint"]["digest"]  # same path, size, footer
    assert record["fingerprint"]["modified"].endswith("Z")  # the object's Last-Modified
    assert record["columns"] == local_record["columns"]


def test_hive_prefix_sampled_as_the_local_dataset(s3_env: S3Server, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "ds"
    for day in (1, 2, 3):
        folder = root / f"day={day}" / "country=US"
        folder.mkdir(parents=True)
        pq.write_table(events(3_000, start=day * 10_000), folder / "part-0.parquet", row_group_size=500)
    (root / "_SUCCESS").write_bytes(b"")
    (root / "day=1" / ".part-0.parquet.crc").write_bytes(b"crc")
    uri = upload_tree(s3_env, root, "datasets/events")
    for args, options in (
        (["-n", "500", "--seed", "3"], {"rows": 500, "seed": 3}),
        (["-n", "500", "--seed", "3", "--method", "row-groups"], {"rows": 500, "seed": 3, "method": "row-groups"}),
    ):
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.parquet"
        remote = cli_sample(uri, out, *args)
        local, _ = local_sample(root, **options)
        assert remote.equals(local), args
        assert remote.column_names == ["id", "country", "amount", "note", "day"]
        assert all(r["id"] // 10_000 == r["day"] for r in remote.to_pylist())
    # the prefix without its trailing slash names the same dataset
    sampled = sample_input(InputSpec("x", uri.rstrip("/")), SampleOptions(rows=500, seed=3), salt=None)
    assert sampled.table.equals(local_sample(root, rows=500, seed=3)[0])
    assert sampled.record["source"]["kind"] == "parquet-dataset" and sampled.record["source"]["files"] == 3


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz"])
def test_csv_object_streamed_as_the_local_file(s3_env: S3Server, tmp_path: Path, name: str) -> None:  # noqa: F811
    plain = tmp_path / "events.csv"
    pacsv.write_csv(events(20_000), plain)
    local_path = plain
    if name.endswith(".gz"):
        local_path = tmp_path / name
        local_path.write_bytes(gzip.compress(plain.read_bytes()))
    uri = upload(s3_env, local_path, f"csv/{name}")
    for args, options in (
        (["-n", "250", "--seed", "5"], {"rows": 250, "seed": 5}),  # reservoir, one pass
        (["--fraction", "0.01", "--seed", "5"], {"fraction": 0.01, "seed": 5}),  # count, then take
    ):
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.parquet"
        remote = cli_sample(uri, out, *args)
        local, record = local_sample(local_path, **options)
        assert remote.equals(local), args
    sampled = sample_input(InputSpec("x", uri), SampleOptions(rows=10), salt=None)
    assert sampled.record["source"] == {**record["source"], "path": uri}
    assert sampled.record["algorithm"] == "reservoir"


def capture_args(uri: str) -> list[str]:
    return ["--input", f"events={uri}", "-n", "200", "--seed", "2"]


def test_capture_input_on_s3(s3_env: S3Server, parquet_file: Path, tmp_path: Path) -> None:  # noqa: F811
    uri = upload(s3_env, parquet_file, "capture/events.parquet")
    snap = tmp_path / "s.envsnap"
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "capture", "-q", "--no-git", "-o", str(snap), *capture_args(uri)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    loaded = envsnap.load(snap)
    index = loaded.section("data/inputs.json")["inputs"]
    assert index["events"]["source"] == uri and index["events"]["rows"] == 200
    table = pq.read_table(pa.BufferReader(loaded.read_bytes("data/inputs/events.parquet")))
    assert table.equals(local_sample(parquet_file, rows=200, seed=2)[0])
    record = loaded.read_json("data/inputs/events.json")
    assert record["source"]["path"] == uri and record["fingerprint"]["files"][0]["path"] == "events.parquet"
    with zipfile.ZipFile(snap) as zf:  # the credentials never reach the snapshot
        blob = b"".join(zf.read(n) for n in zf.namelist())
    assert s3_env.secret_key.encode() not in blob and s3_env.access_key.encode() not in blob


def test_bad_s3_inputs_are_one_line_exit_3_and_nothing_written(
    s3_env: S3Server,  # noqa: F811
    parquet_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = upload(s3_env, parquet_file, "bad/events.parquet")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a table")
    upload(s3_env, notes, "bad/notes.txt")
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"this is not parquet, only text")
    upload(s3_env, fake, "bad/fake.parquet")
    bucket = s3_env.bucket
    out = tmp_path / "out.parquet"

    def refused(source: str, message: str) -> None:
        result = runner.invoke(app, ["sample", source, "-o", str(out)])
        assert result.exit_code == 3, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
        assert s3_env.secret_key not in result.stderr
        assert not out.exists()

    refused("s3://no-such-bucket/events.parquet", "bucket 'no-such-bucket' does not exist")
    refused("s3://no-such-bucket/events/", "bucket 'no-such-bucket' does not exist")
    refused(f"s3://{bucket}/bad/missing.parquet", "no such object")
    refused(f"s3://{bucket}/bad/notes.txt", "neither a parquet file")
    refused(f"s3://{bucket}/bad/fake.parquet", "not a parquet file")
    refused(f"s3://{bucket}/empty-prefix/", "no parquet files")
    with monkeypatch.context() as m:
        m.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        refused(good, "access denied")
    with monkeypatch.context() as m:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            m.delenv(name)
        refused(good, "no AWS credentials")
    with monkeypatch.context() as m:
        m.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        refused(good, "cannot reach http://127.0.0.1:9")
    # capture: exit 3, the input named in one line; the snapshot records what happened (as for local inputs)
    snap = tmp_path / "s.envsnap"
    result = runner.invoke(app, ["capture", "-q", "--no-git", "-o", str(snap), "--input", f"x=s3://{bucket}/nope/"])
    assert result.exit_code == 3, result.output
    assert "input 'x'" in result.stderr and "no parquet files" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    index = envsnap.load(snap).section("data/inputs.json")["inputs"]
    assert "no parquet files" in index["x"]["error"] and index["x"]["source"] == f"s3://{bucket}/nope/"


def run_args(uri: str) -> list[str]:
    return ["--input", f"events={uri}", "-n", "100", "--", sys.executable, "-c", "print('job')"]


def test_run_command_samples_an_s3_input(s3_env: S3Server, parquet_file: Path, tmp_path: Path) -> None:  # noqa: F811
    uri = upload(s3_env, parquet_file, "run/events.parquet")
    snap = tmp_path / "r.envsnap"
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "run", "-o", str(snap), *run_args(uri)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    loaded = envsnap.load(snap)
    assert loaded.section("data/inputs.json")["inputs"]["events"]["rows"] == 100
    # an object on S3 is not a file of the job's disk: not recorded as a missing job file
    assert loaded.read_json("job/files.json")["files"] == []


def test_only_the_row_groups_drawn_are_fetched_once(
    s3_env: S3Server,  # noqa: F811
    parquet_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envsnap.capture import sample_access
    from envsnap.capture.sample_files import _choose_row_groups

    uri = upload(s3_env, parquet_file, "fetch/events.parquet")
    fetched: list[int] = []
    original = sample_access._S3File.read_at

    def counting(self: sample_access._S3File, offset: int, size: int) -> bytes:
        fetched.append(size)
        return original(self, offset, size)

    monkeypatch.setattr(sample_access._S3File, "read_at", counting)
    meta = pq.read_metadata(parquet_file)
    data = parquet_file.read_bytes()
    overhead = int.from_bytes(data[-8:-4], "little") + 8 + 4 + 4  # footer, length and magic, head twice
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]

    def chunks(groups: Iterable[int]) -> int:
        return sum(meta.row_group(g).column(c).total_compressed_size for g in groups for c in range(meta.num_columns))

    for method, groups in (
        ("uniform", range(meta.num_row_groups)),  # 300 of 12,000 rows: every row group holds a drawn row
        ("row-groups", sorted(_choose_row_groups(random.Random(1), rows, 300))),
    ):
        fetched.clear()
        sampled = sample_input(InputSpec("x", uri), SampleOptions(rows=300, seed=1, method=method), salt=None)
        assert sampled.record["row_groups_read"] == len(groups)
        touched = chunks(groups) + overhead
        assert touched <= sum(fetched) <= 1.2 * touched, (method, sum(fetched), touched)
        assert len(fetched) <= 4 + len(groups), fetched  # head, tail, footer, then a few merged ranges


def test_pipeline_input_declared_on_s3(s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    toy = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
    for name in [m for m in sys.modules if m == "envsnap_toy" or m.startswith("envsnap_toy.")]:
        monkeypatch.delitem(sys.modules, name)  # the stages import it afresh
    local = tmp_path / "events.parquet"
    table = pa.table(
        {"a": [1.0, None, 3.0, 4.0, 0.5], "b": [10, 20, 30, 40, 50], "user": ["u1", "u2", "u1", "u3", "u2"]}
    )
    pq.write_table(table, local)
    uri = upload(s3_env, local, "pipeline/events.parquet")
    config = (toy / "envsnap.toml").read_text(encoding="utf-8")
    config = config.replace('name = "toy"', f'name = "toy"\npythonpath = ["{toy}"]\ninputs = {{x = "{uri}"}}')
    (tmp_path / "envsnap.toml").write_text(config, encoding="utf-8")
    out = tmp_path / "run.envsnap"
    result = runner.invoke(app, ["run", "--config", str(tmp_path / "envsnap.toml"), "-o", str(out), "--no-git"])
    assert result.exit_code == 0, result.output
    assert "3/3 stages ok" in result.stdout
    snap = envsnap.load(out)
    assert snap.section("data/inputs.json")["inputs"]["x"]["source"] == uri
    sampled = pq.read_table(pa.BufferReader(snap.read_bytes("data/inputs/x.parquet")))
    assert sorted(sampled.column("b").to_pylist()) == [10, 20, 30, 40, 50]
