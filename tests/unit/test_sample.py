"""The sampling engine on real parquet/CSV files and in-memory tables: draws, reads, masking, records."""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import struct
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from envsnap.capture.base import InputSpec, SampleOptions
from envsnap.capture.parquet_pages import SparseReader
from envsnap.capture.sample import mask_salt, mask_table, mask_token, parquet_bytes, salt_id, sample_input
from envsnap.capture.sample_csv import _reservoir
from envsnap.capture.sample_files import draw
from envsnap.capture.thrift_compact import dump_struct, parse_struct
from envsnap.errors import InputError
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

SALT = b"s" * 32


def events(n: int, start: int = 0) -> pa.Table:
    """A table whose ``id`` is the global row number, so a sampled row can be checked against its source."""
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "user": pa.array([f"user{i % 37}" for i in ids]),
            "amount": pa.array([None if i % 11 == 0 else i * 0.5 for i in ids], pa.float64()),
            "country": pa.array(["US", "DE", "FR", "JP"][i % 4] for i in ids).dictionary_encode(),
            "ts": pa.array([1_700_000_000_000_000 + i for i in ids], pa.timestamp("us", tz="UTC")),
        }
    )


def write(path: Path, table: pa.Table, **kwargs: Any) -> Path:
    kwargs.setdefault("row_group_size", 1000)
    kwargs.setdefault("max_rows_per_page", 100)  # many pages a chunk: the sparse reader has work to do
    pq.write_table(table, path, **kwargs)
    return path


def sample(source: Any, name: str = "events", salt: bytes | None = SALT, **options: Any) -> Any:
    result = sample_input(InputSpec(name, source), SampleOptions(**options), salt=salt)
    validate_member("<test>", f"data/inputs/{name}.json", result.record)
    canonical.dumps(result.record)  # JSON-safe: no NaN, no infinities, no bytes, no datetimes
    return result


def rows_of(table: pa.Table) -> list[int]:
    return table.column("id").to_pylist()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """4 files x 5 row groups x 1000 rows, ids 0..19999 in file order."""
    root = tmp_path / "events"
    root.mkdir()
    for f in range(4):
        write(root / f"part-{f}.parquet", events(5000, start=f * 5000))
    return root


# -- drawing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("population", "k"), [(10, 0), (10, 3), (10, 7), (10, 10), (10, 15), (100_000, 1000)])
def test_draw_gives_k_distinct_sorted_ids(population: int, k: int) -> None:
    ids = draw(random.Random(1), population, k)
    assert ids == sorted(set(ids))
    assert len(ids) == min(k, population)
    assert all(0 <= i < population for i in ids)


def test_draw_is_uniform() -> None:
    counts: Counter[int] = Counter()
    for seed in range(4000):
        counts.update(draw(random.Random(seed), 20, 13))  # the k > population/2 path
    expected = 4000 * 13 / 20
    assert all(abs(counts[i] - expected) < 0.08 * expected for i in range(20))


def test_reservoir_is_uniform_and_in_stream_order() -> None:
    batches = [pa.record_batch({"id": list(range(s, s + 7))}) for s in range(0, 49, 7)]
    counts: Counter[int] = Counter()
    for seed in range(3000):
        table, seen = _reservoir(iter(batches), 10, random.Random(seed), batches[0].schema)
        ids = table.column("id").to_pylist()
        assert seen == 49 and len(ids) == 10 and ids == sorted(set(ids))
        counts.update(ids)
    expected = 3000 * 10 / 49
    assert all(abs(counts[i] - expected) < 0.15 * expected for i in range(49))


# -- parquet ---------------------------------------------------------------------------------------------


def test_uniform_sample_of_a_dataset_takes_real_rows_in_source_order(dataset: Path) -> None:
    full = pq.read_table(dataset)
    result = sample(str(dataset), rows=700, seed=3)
    ids = rows_of(result.table)
    assert len(ids) == 700 and ids == sorted(set(ids))
    assert result.table.equals(full.take(pa.array(ids)).combine_chunks())  # every column, not just the ids
    record = result.record
    assert record["method"] == "uniform" and record["iid"] is True and record["algorithm"] == "row-ids"
    assert record["source"] == {
        "kind": "parquet-dataset",
        "path": str(dataset),
        "size": sum(p.stat().st_size for p in dataset.iterdir()),
        "rows": 20_000,
        "files": 4,
        "row_groups": 20,
        "partitioning": [],
    }
    assert [f["path"] for f in record["fingerprint"]["files"]] == [f"part-{f}.parquet" for f in range(4)]
    assert [c["name"] for c in record["schema"]] == ["id", "user", "amount", "country", "ts"]
    assert record["rows"] == 700 and record["seed"] == 3


def test_same_seed_same_sample_other_seed_other_sample(dataset: Path) -> None:
    first = sample(str(dataset), rows=50, seed=9)
    again = sample(str(dataset), rows=50, seed=9)
    other = sample(str(dataset), rows=50, seed=10)
    assert rows_of(first.table) == rows_of(again.table)
    assert first.record == again.record
    assert parquet_bytes(first.table) == parquet_bytes(again.table)
    assert rows_of(first.table) != rows_of(other.table)


def test_fraction_and_oversized_requests(dataset: Path) -> None:
    assert sample(str(dataset), rows=None, fraction=0.01).record["rows"] == 200
    assert sample(str(dataset), rows=None, fraction=0.0).table.num_rows == 0
    everything = sample(str(dataset), rows=50_000)
    assert rows_of(everything.table) == list(range(20_000))


def test_row_groups_method_is_labelled_not_iid_and_reads_few_groups(dataset: Path) -> None:
    result = sample(str(dataset), rows=100, method="row-groups", seed=4)
    record = result.record
    assert record["method"] == "row-groups" and record["iid"] is False and record["algorithm"] == "row-groups"
    assert record["row_groups_read"] == 2  # 100 rows fit in one group of 1000; two are the minimum
    groups = {i // 1000 for i in rows_of(result.table)}
    assert len(groups) == 2
    assert sample(str(dataset), rows=1000, method="uniform").record["row_groups_read"] == 20


def corrupt_chunk(path: Path, row_group: int, column: str) -> None:
    """Overwrite the first page header of one column chunk: reading that chunk must now fail."""
    meta = pq.read_metadata(path).row_group(row_group)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(b"\xff" * 16)


def test_columns_decode_only_the_named_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", events(5000))
    for g in range(5):
        corrupt_chunk(path, g, "user")
    result = sample(str(path), rows=300, columns=("amount", "id"))
    assert result.table.column_names == ["amount", "id"]
    assert result.record["selected"] == ["amount", "id"]
    assert [c["name"] for c in result.record["schema"]] == ["id", "user", "amount", "country", "ts"]
    with pytest.raises(InputError, match=r"input 'events' .*corrupt parquet file e\.parquet \(row group 0\)"):
        sample(str(path), rows=300)


def test_row_groups_without_a_drawn_row_are_not_read(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", events(5000))
    clean = sample(str(path), rows=2, seed=5)
    untouched = sorted(set(range(5)) - {i // 1000 for i in rows_of(clean.table)})
    for column in ("id", "user", "amount", "country", "ts"):
        corrupt_chunk(path, untouched[0], column)
    assert rows_of(sample(str(path), rows=2, seed=5).table) == rows_of(clean.table)


def test_hive_partitions_become_columns(tmp_path: Path) -> None:
    for year, country in ((2023, "DE"), (2024, "US"), (2024, "FR")):
        folder = tmp_path / "ds" / f"year={year}" / f"country={country}"
        folder.mkdir(parents=True)
        write(folder / "part.parquet", pa.table({"id": [year * 10 + i for i in range(5)], "v": [1.5] * 5}))
    result = sample(str(tmp_path / "ds"), rows=100)
    assert result.record["source"]["partitioning"] == ["year", "country"]
    assert result.table.schema.field("year").type == pa.int32()
    got = {(r["id"], r["year"], r["country"]) for r in result.table.to_pylist()}
    assert (20231, 2023, "DE") in got and (20244, 2024, "US") in got and len(got) == 15
    only = sample(str(tmp_path / "ds"), rows=3, columns=("country",))
    assert only.table.column_names == ["country"] and only.table.num_rows == 3


def test_files_with_an_extra_column_are_unified(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds" / "a.parquet", pa.table({"id": [1, 2], "x": pa.array([1, 2], pa.int32())}))
    write(tmp_path / "ds" / "b.parquet", pa.table({"id": [3], "x": pa.array([3], pa.int64()), "extra": ["e"]}))
    result = sample(str(tmp_path / "ds"), rows=10)
    assert result.table.to_pylist() == [
        {"id": 1, "x": 1, "extra": None},
        {"id": 2, "x": 2, "extra": None},
        {"id": 3, "x": 3, "extra": "e"},
    ]


# -- the sparse page reader ------------------------------------------------------------------------------


def every_type(n: int) -> pa.Table:
    """Flat columns of most types (with nulls, dictionaries, a required column) and two nested ones."""
    rng = random.Random(7)
    columns = {
        "i8": pa.array([rng.randrange(-100, 100) for _ in range(n)], pa.int8()),
        "u64": pa.array([rng.randrange(2**64) for _ in range(n)], pa.uint64()),
        "f32": pa.array([None if i % 13 == 0 else rng.random() for i in range(n)], pa.float32()),
        "text": pa.array([None if i % 7 == 0 else "x" * rng.randrange(0, 40) + str(i) for i in range(n)]),
        "big_text": pa.array([f"{i:08d}" for i in range(n)], pa.large_string()),
        "cat": pa.array([["a", "b", None][i % 3] for i in range(n)]).dictionary_encode(),
        "blob": pa.array([bytes([i % 256]) * (i % 5) for i in range(n)], pa.binary()),
        "fixed": pa.array([struct.pack("<I", i) for i in range(n)], pa.binary(4)),
        "flag": pa.array([i % 3 == 0 for i in range(n)]),
        "dec": pa.array([Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
        "ts_ns": pa.array([1_700_000_000_000_000_123 + i for i in range(n)], pa.timestamp("ns", tz="Europe/Paris")),
        "day": pa.array(list(range(n)), pa.date32()),
        "dur": pa.array(list(range(n)), pa.duration("ms")),
        "tags": pa.array([[str(i)] * (i % 3) for i in range(n)], pa.list_(pa.string())),
        "point": pa.array([{"x": i, "y": None} for i in range(n)], pa.struct([("x", pa.int32()), ("y", pa.string())])),
        "req": pa.array(list(range(n)), pa.int64()),
    }
    fields = [pa.field(name, array.type, nullable=name != "req") for name, array in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


WRITER_OPTIONS = [
    {},
    {"data_page_version": "2.0"},
    {"compression": "zstd", "write_page_checksum": True},
    {"compression": "gzip", "use_dictionary": False},
    {"compression": "none", "write_page_index": True},
    {"compression": "snappy", "write_statistics": False, "data_page_version": "2.0", "use_dictionary": False},
    {"store_schema": False},
]


@pytest.mark.parametrize("options", WRITER_OPTIONS, ids=[json.dumps(o) for o in WRITER_OPTIONS])
def test_sparse_reads_equal_pyarrow_reads(tmp_path: Path, options: dict[str, Any]) -> None:
    table = every_type(3000)
    path = write(tmp_path / "t.parquet", table, row_group_size=1500, max_rows_per_page=64, **options)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(size - 8)
        length = struct.unpack("<I", fh.read(4))[0]
        fh.seek(size - 8 - length)
        footer = fh.read(length)
    assert dump_struct(parse_struct(footer)) == footer  # the Thrift codec round-trips byte for byte
    handle = pq.ParquetFile(path)
    reader = SparseReader(str(path), footer, handle)
    rng = random.Random(11)
    flat = len(handle.schema_arrow) - 2  # the list and the struct column are always read whole
    try:
        for group in range(handle.num_row_groups):
            for k in (1, 5, 40, 700):
                rows = sorted(rng.sample(range(1500), k))
                got = reader.read(group, handle.schema_arrow.names, rows)
                want = handle.read_row_group(group).take(pa.array(rows))
                assert got.equals(want, check_metadata=True), (group, k)
                if k == 1:
                    assert reader.sparse_reads >= flat  # the page path was taken, not only its fallback
        subset = ["text", "req", "cat"]
        got = reader.read(1, subset, [3, 999])
        assert got.equals(handle.read_row_group(1, columns=subset).take(pa.array([3, 999])), check_metadata=True)
    finally:
        reader.close()


def footer_of(path: Path) -> bytes:
    data = path.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    return data[-8 - length : -8]


def test_pages_without_a_drawn_row_are_not_decoded(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(5000)), "s": [f"value-{i}" * 3 for i in range(5000)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=5000, max_rows_per_page=100, compression="zstd", use_dictionary=False)
    footer = footer_of(path)
    reader = SparseReader(str(path), footer, pq.ParquetFile(path))
    chunk = pq.read_metadata(path).row_group(0).column(1)
    pages, _, _ = reader._pages([(7, 6, chunk.total_compressed_size), (9, 6, chunk.data_page_offset)])
    assert [p.rows for p in pages] == [100] * 50
    victim = pages[10]  # rows 1000-1099
    with open(path, "r+b") as fh:
        fh.seek(victim.offset + victim.size - 40)
        fh.write(b"\x00garbage\xff" * 4)
    reader.close()
    reader = SparseReader(str(path), footer, pq.ParquetFile(path))
    try:
        rows = [3, 999, 1100, 4999]
        assert reader.read(0, ["id", "s"], rows).to_pylist() == table.take(pa.array(rows)).to_pylist()
        with pytest.raises(OSError, match="ZSTD decompression failed"):
            reader.read(0, ["s"], [3, 1050])  # the corrupt page is needed: the whole-chunk read reports it
    finally:
        reader.close()


# -- CSV -------------------------------------------------------------------------------------------------


def write_csv(path: Path, table: pa.Table) -> Path:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    data = sink.getvalue().to_pybytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_csv_reservoir_and_two_pass(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(30_000)), "name": [f"n{i % 10}" for i in range(30_000)]})
    path = write_csv(tmp_path / "t.csv", table)
    result = sample(str(path), rows=250, seed=2)
    ids = rows_of(result.table)
    assert (
        len(ids) == 250
        and ids == sorted(set(ids))
        and result.table.column("name").to_pylist() == [f"n{i % 10}" for i in ids]
    )
    assert result.record["algorithm"] == "reservoir" and result.record["source"]["rows"] == 30_000
    assert result.record["source"]["kind"] == "csv" and result.record["fingerprint"]["basis"] == [
        "path",
        "size",
        "modified",
    ]
    assert rows_of(sample(str(path), rows=250, seed=2).table) == ids
    frac = sample(str(path), rows=None, fraction=0.01, seed=2)
    assert frac.record["algorithm"] == "count-then-row-ids" and frac.table.num_rows == 300
    assert sample(str(path), rows=100_000).table.num_rows == 30_000
    fallback = sample(str(path), rows=5, method="row-groups")
    assert fallback.record["iid"] is True and "no row groups" in fallback.record["note"]


def test_a_csv_with_only_a_header_gives_an_empty_sample(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    result = sample(str(path))
    assert result.table.column_names == ["a", "b"] and result.table.num_rows == 0
    assert result.record["source"]["rows"] == 0


def test_compressed_tsv_with_columns(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(500)), "a": ["x"] * 500, "b": [1.5] * 500})
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(delimiter="\t"))
    path = tmp_path / "t.tsv.gz"
    path.write_bytes(gzip.compress(sink.getvalue().to_pybytes()))
    result = sample(str(path), rows=10, columns=("b", "id"))
    assert result.table.column_names == ["b", "id"] and result.table.num_rows == 10


# -- in-memory sources -----------------------------------------------------------------------------------


def test_arrow_table_and_record_batch() -> None:
    table = events(3000)
    result = sample(table, rows=100, seed=1)
    assert result.record["source"]["kind"] == "arrow" and result.record["fingerprint"] is None
    assert result.table.equals(table.take(pa.array(rows_of(result.table))))
    batch = sample(table.to_batches()[0], rows=100, seed=1)
    assert rows_of(batch.table) == rows_of(result.table)


def test_pandas_dataframe_keeps_a_real_index_and_drops_a_range_index() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": range(1000), "v": [i * 2.0 for i in range(1000)]})
    plain = sample(frame, rows=10, seed=0)
    assert plain.record["source"]["kind"] == "pandas" and plain.table.column_names == ["id", "v"]
    assert all(r["v"] == r["id"] * 2.0 for r in plain.table.to_pylist())
    indexed = sample(frame.set_index(pd.Index([f"k{i}" for i in range(1000)], name="key")), rows=10)
    assert "key" in indexed.table.column_names
    assert rows_of(indexed.table) == rows_of(plain.table)  # the same draw whatever the index


def test_sampling_files_never_imports_pandas(tmp_path: Path) -> None:
    """pandas costs 0.14 s to import; pyarrow pulls it in for pa.array(list), datetimes and pyarrow.dataset."""
    (tmp_path / "ds" / "day=1").mkdir(parents=True)
    write(tmp_path / "ds" / "day=1" / "a.parquet", events(100))
    write_csv(tmp_path / "t.csv", events(100).drop_columns(["country"]))
    code = f"""
import sys
from envsnap.capture.sample import sample_input
from envsnap.capture.base import InputSpec, SampleOptions
for source in ({str(tmp_path / "ds")!r}, {str(tmp_path / "t.csv")!r}):
    for fraction in (None, 0.5):
        sample_input(InputSpec("e", source), SampleOptions(fraction=fraction, mask=("user", "ts")), salt=None)
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- masking ---------------------------------------------------------------------------------------------


def test_masked_columns_are_tokens_everywhere(tmp_path: Path) -> None:
    table = pa.table(
        {"id": list(range(400)), "email": [None if i % 9 == 0 else f"p{i % 40}@corp.example" for i in range(400)]}
    )
    path = write(tmp_path / "people.parquet", table)
    result = sample(str(path), rows=200, mask=("email",))
    emails = result.table.column("email").to_pylist()
    ids = rows_of(result.table)
    for i, token in zip(ids, emails, strict=True):
        if i % 9 == 0:
            assert token is None
        else:
            assert token == mask_token(f"p{i % 40}@corp.example", SALT)
            assert token is not None and len(token) == 20 and token.startswith("tok_")
    blob = parquet_bytes(result.table) + canonical.dumps(result.record)
    assert b"corp.example" not in blob and SALT not in blob
    stats = next(c for c in result.record["columns"] if c["name"] == "email")
    assert stats["masked"] is True and not {"top", "min", "max"} & set(stats)
    assert stats["distinct"] == len({e for e in emails if e is not None})
    assert result.record["masking"] == {"columns": ["email"], "salt_id": salt_id(SALT)}


def test_tokens_are_consistent_across_inputs_and_types() -> None:
    left = mask_table(pa.table({"k": pa.array([5, 6, 5], pa.int64())}), ["k"], SALT)
    right = mask_table(pa.table({"key": pa.array([6, 7], pa.int32()).dictionary_encode()}), ["key"], SALT)
    assert left.column("k").to_pylist()[1] == right.column("key").to_pylist()[0]
    assert left.column("k").to_pylist()[0] == left.column("k").to_pylist()[2]
    assert mask_table(pa.table({"k": [5]}), ["k"], b"t" * 32).column("k")[0] != left.column("k")[0]
    nested = mask_table(pa.table({"l": [[1, 2], None, [1, 2]]}), ["l"], SALT).column("l").to_pylist()
    assert nested[0] == nested[2] and nested[1] is None


def test_mask_salt_comes_from_the_redaction_key(tmp_path: Path) -> None:
    env = {"ENVSNAP_REDACTION_KEY": "k" * 32, "HOME": str(tmp_path)}
    assert mask_salt(env) == mask_salt(dict(env))
    assert mask_salt(env) != mask_salt({**env, "ENVSNAP_REDACTION_KEY": "j" * 32})
    from_file = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    assert mask_salt(from_file) == mask_salt(from_file)  # created once, then read back
    assert (tmp_path / "cfg" / "envsnap" / "redaction.key").is_file()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    no_key = {"XDG_CONFIG_HOME": str(blocked), "HOME": str(blocked)}
    assert mask_salt(no_key) == mask_salt(no_key) != mask_salt(env)  # a per-process salt
    assert not (blocked / "envsnap").exists()


# -- bad input -------------------------------------------------------------------------------------------


def test_bad_inputs_name_the_input(tmp_path: Path) -> None:
    good = write(tmp_path / "good.parquet", events(10))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.parquet").write_bytes(b"this is not parquet at all")
    truncated = tmp_path / "trunc.parquet"
    truncated.write_bytes(good.read_bytes()[:-100])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    cases = [
        (str(tmp_path / "missing.parquet"), {}, "no such file"),
        (str(tmp_path / "notes.txt"), {}, "neither a parquet file"),
        (str(tmp_path / "fake.parquet"), {}, "not a parquet file"),
        (str(truncated), {}, "truncated"),
        (str(tmp_path / "empty"), {}, "no parquet files"),
        (str(tmp_path / "empty.csv"), {}, "cannot read the CSV: Empty CSV file"),
        (str(tmp_path / "ragged.csv"), {}, "cannot read the CSV: CSV parse error"),
        ("gs://bucket/events.parquet", {}, "only local paths and s3:// locations can be sampled"),
        (str(good), {"columns": ("nope",)}, "no column 'nope' (--columns)"),
        (str(good), {"mask": ("secret",)}, "no column 'secret' (--mask)"),
        (object(), {}, "unsupported source of type object"),
        (str(good), {"method": "magic"}, "unknown sampling method"),
    ]
    for source, options, message in cases:
        with pytest.raises(InputError) as info:
            sample(source, name="batch", **options)
        text = str(info.value)
        assert text.startswith("input 'batch'") and message in text, text
        assert isinstance(info.value, ValueError)


# -- stats and records -----------------------------------------------------------------------------------


def test_stats_are_json_safe_for_awkward_values() -> None:
    table = pa.table(
        {
            "f": pa.array([1.0, float("nan"), float("inf"), None, -2.5]),
            "ts": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 4 + [None], pa.timestamp("ns", tz="UTC")),
            "dec": pa.array([Decimal("1.10"), None, Decimal("2.00"), Decimal("3.50"), Decimal("-1.00")]),
            "b": pa.array([b"\x00\xff", b"", None, b"x", b"x"]),
            "s": pa.array(["a", "a", "b" * 500, None, "a"]),
            "flag": pa.array([True, False, True, None, True]),
            "nested": pa.array([[1], [], None, [2, 3], [1]]),
            "empty": pa.nulls(5, pa.int64()),
        }
    )
    result = sample(table, rows=10)
    stats = {c["name"]: c for c in result.record["columns"]}
    assert stats["f"]["nan_count"] == 1 and stats["f"]["max"] == "inf" and stats["f"]["min"] == -2.5
    assert stats["ts"]["min"] == "2024-01-01T00:00:00.000000000Z"
    assert stats["dec"]["min"] == "-1.00" and stats["dec"]["quantiles"]["p100"] == 3.5
    assert stats["s"]["top"] == [{"value": "a", "count": 3}] and stats["s"]["length"]["max"] == 500
    assert len(stats["s"]["max"]) <= 201
    assert stats["flag"]["true_count"] == 3 and stats["empty"]["null_rate"] == 1.0
    assert stats["nested"]["null_count"] == 1
    assert stats["b"]["length"] == {"min": 0, "max": 2, "mean": 1.0}


def test_quantiles_and_distinct_estimate(dataset: Path) -> None:
    result = sample(str(dataset), rows=2000, seed=1)
    stats = {c["name"]: c for c in result.record["columns"]}
    ids = stats["id"]
    assert ids["min"] <= ids["quantiles"]["p25"] <= ids["quantiles"]["p50"] <= ids["quantiles"]["p75"] <= ids["max"]
    assert math.isclose(ids["quantiles"]["p50"], 10_000, rel_tol=0.1)
    assert stats["user"]["distinct"] == stats["user"]["distinct_estimate"] == 37  # every value seen twice or more
    assert 2000 < ids["distinct_estimate"] <= 20_000  # unique values: the estimate scales up


def test_progress_reports_bytes_up_to_the_total(dataset: Path) -> None:
    calls: list[tuple[int, int]] = []
    sample_input(
        InputSpec("e", str(dataset)), SampleOptions(rows=100), salt=None, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 0
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_parquet_bytes_are_deterministic(dataset: Path) -> None:
    table = sample(str(dataset), rows=300, mask=("user",)).table
    assert parquet_bytes(table) == parquet_bytes(table)
    assert pq.read_table(pa.BufferReader(parquet_bytes(table))).equals(table)


def test_timestamps_in_records_are_utc_iso(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", events(10))
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    record = sample(str(path), rows=5).record
    assert record["fingerprint"]["modified"] == "2023-11-14T22:13:20.000000Z"
    assert record["fingerprint"]["files"][0]["modified"] == record["fingerprint"]["modified"]
