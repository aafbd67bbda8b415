"""diff_parquet on real parquet files written with pyarrow: cells, tolerances, nulls, schema, keys, stats."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.diff import tables
from envsnap.diff.tables import diff_parquet


def _write(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _base(n: int = 1000) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    return {
        "id": np.arange(n, dtype="int64"),
        "x": rng.normal(size=n),
        "k": rng.integers(0, 100, n),
        "s": [f"s{i % 7}" for i in range(n)],
    }


def _column(diff: Any, name: str) -> Any:
    return next(c for c in diff.columns if c.column == name)


def test_equal_tables_are_equal_with_zero_shift(tmp_path: Path) -> None:
    table = pa.table(_base())
    diff = diff_parquet(_write(tmp_path / "a.parquet", table), _write(tmp_path / "b.parquet", table), name="t")
    assert diff.status == "equal" and not diff.diverged
    assert diff.rows == (1000, 1000)
    assert all(c.status == "equal" and c.differing == 0 for c in diff.columns)
    assert diff.sample_rows == ()
    x = next(s for s in diff.stats if s.column == "x")
    assert x.psi == 0.0 and x.ks == 0.0 and x.mean is not None and x.mean[0] == x.mean[1]


def test_within_tolerance_and_different_with_exact_counts(tmp_path: Path) -> None:
    data = _base()
    b = dict(data)
    x = data["x"].copy()
    x[[3, 10, 500]] += 1e-9  # inside atol
    x[[7, 8]] += 0.5  # outside
    b["x"] = x
    k = data["k"].copy()
    k[[20]] += 1
    b["k"] = k
    pa_, pb = _write(tmp_path / "a.parquet", pa.table(data)), _write(tmp_path / "b.parquet", pa.table(b))
    exact = diff_parquet(pa_, pb, name="t", max_rows=2)
    assert exact.status == "different"
    assert _column(exact, "x").differing == 5 and _column(exact, "k").differing == 1
    assert _column(exact, "s").status == "equal"
    assert [r["position"] for r in exact.sample_rows] == [3, 7]
    assert exact.sample_rows[1]["b"]["x"] == pytest.approx(exact.sample_rows[1]["a"]["x"] + 0.5)
    tol = diff_parquet(pa_, pb, name="t", atol=1e-6)
    assert _column(tol, "x").status == "different" and _column(tol, "x").differing == 2
    loose = diff_parquet(pa_, pb, name="t", atol=1.0)
    assert _column(loose, "x").status == "within_tolerance" and _column(loose, "x").differing == 0
    assert _column(loose, "x").max_abs_diff == pytest.approx(0.5)
    assert _column(loose, "k").status == "within_tolerance"
    assert loose.status == "within_tolerance"
    rel = diff_parquet(pa_, pb, name="t", rtol=10.0)  # |a-b| <= 10*|b| holds for every changed x cell
    assert _column(rel, "x").status in ("within_tolerance", "different")
    assert _column(rel, "x").max_rel_diff is not None and _column(rel, "x").max_rel_diff > 0


def test_nulls_on_one_side_and_nan_equal_nan(tmp_path: Path) -> None:
    a = pa.table({"v": [1.0, float("nan"), None, 4.0, float("nan")], "w": ["a", None, "c", "d", "e"]})
    b = pa.table({"v": [1.0, float("nan"), 3.0, None, 5.0], "w": ["a", None, None, "d", "e"]})
    diff = diff_parquet(_write(tmp_path / "a.parquet", a), _write(tmp_path / "b.parquet", b), name="t")
    v, w = _column(diff, "v"), _column(diff, "w")
    assert v.null_mismatches == 2 and v.differing == 3  # rows 2, 3 (null) and 4 (NaN vs 5.0)
    assert w.null_mismatches == 1 and w.differing == 1
    assert [r["position"] for r in diff.sample_rows] == [2, 3, 4]
    assert diff.sample_rows[2]["a"]["v"] == "nan"


def test_schema_changes_renamed_retyped_reordered(tmp_path: Path) -> None:
    a = pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "old": ["a", "b", "c"], "n": [1, 2, 3]})
    b = pa.table({"x": [1.0, 2.0, 3.0], "id": [1, 2, 3], "new": ["a", "b", "c"], "n": [1.0, 2.0, 3.5]})
    diff = diff_parquet(_write(tmp_path / "a.parquet", a), _write(tmp_path / "b.parquet", b), name="t")
    kinds = {(c.column, c.kind) for c in diff.schema}
    assert {("old", "removed"), ("new", "added"), ("id", "moved"), ("x", "moved"), ("n", "retyped")} <= kinds
    assert diff.status == "different"
    n = _column(diff, "n")  # int64 vs double: compared as numbers
    assert n.differing == 1 and n.max_abs_diff == pytest.approx(0.5)
    assert _column(diff, "id").status == "equal"


def test_nullability_change(tmp_path: Path) -> None:
    schema_a = pa.schema([pa.field("v", pa.int64(), nullable=True)])
    schema_b = pa.schema([pa.field("v", pa.int64(), nullable=False)])
    a = pa.table({"v": [1, 2]}, schema=schema_a)
    b = pa.table({"v": [1, 2]}, schema=schema_b)
    diff = diff_parquet(_write(tmp_path / "a.parquet", a), _write(tmp_path / "b.parquet", b), name="t")
    assert [(c.column, c.kind, c.before, c.after) for c in diff.schema] == [("v", "nullability", True, False)]


def test_different_row_counts(tmp_path: Path) -> None:
    a = pa.table({"v": list(range(10))})
    b = pa.table({"v": list(range(12))})
    diff = diff_parquet(_write(tmp_path / "a.parquet", a), _write(tmp_path / "b.parquet", b), name="t")
    assert diff.rows == (10, 12) and diff.status == "different"
    assert _column(diff, "v").status == "equal"  # the common prefix matches
    assert diff.note is not None and "row counts differ" in diff.note


def test_row_groups_that_do_not_align(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "BATCH_ROWS", 333)  # batches split inside row groups too
    n = 5000
    data = _base(n)
    b = dict(data)
    x = data["x"].copy()
    changed = [0, 699, 700, 1499, 2999, 4999]
    x[changed] = 99.0
    b["x"] = x
    pa_ = _write(tmp_path / "a.parquet", pa.table(data), row_group_size=700)
    pb = _write(tmp_path / "b.parquet", pa.table(b), row_group_size=1500)
    assert pq.ParquetFile(pa_).num_row_groups == 8 and pq.ParquetFile(pb).num_row_groups == 4
    diff = diff_parquet(pa_, pb, name="t", max_rows=100)
    assert _column(diff, "x").differing == len(changed)
    assert [r["position"] for r in diff.sample_rows] == changed
    assert all(r["a"]["id"] == r["b"]["id"] == r["position"] for r in diff.sample_rows)


def test_keyed_diff_reports_rows_on_one_side(tmp_path: Path) -> None:
    a = pa.table({"key": ["a", "b", "c", "d"], "v": [1.0, 2.0, 3.0, 4.0]})
    b = pa.table({"key": ["e", "d", "c", "a"], "v": [5.0, 4.0, 30.0, 1.0]})  # shuffled, b gone, e new
    pa_, pb = _write(tmp_path / "a.parquet", a), _write(tmp_path / "b.parquet", b)
    diff = diff_parquet(pa_, pb, name="t", keys=["key"])
    assert diff.matched_by == "key" and diff.status == "different"
    assert _column(diff, "v").differing == 1
    changed = [r for r in diff.sample_rows if r["a"] and r["b"]]
    expected = {"key": {"key": "c"}, "a": {"key": "c", "v": 3.0}, "b": {"key": "c", "v": 30.0}, "differing": ["v"]}
    assert changed == [expected]
    assert [r["key"] for r in diff.sample_rows if r["b"] is None] == [{"key": "b"}]
    assert [r["key"] for r in diff.sample_rows if r["a"] is None] == [{"key": "e"}]
    assert diff.note is not None and "1 rows only in a, 1 rows only in b" in diff.note
    positional = diff_parquet(pa_, pb, name="t")
    assert _column(positional, "v").differing == 4


def test_keyed_diff_across_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "BATCH_ROWS", 100)
    n = 1000
    ids = np.arange(n)
    a = pa.table({"id": ids, "v": ids * 2.0})
    order = np.random.default_rng(3).permutation(n)
    v = ids[order] * 2.0
    v[order == 500] = -1.0
    b = pa.table({"id": ids[order], "v": v})
    diff = diff_parquet(
        _write(tmp_path / "a.parquet", a, 128), _write(tmp_path / "b.parquet", b, 300), name="t", keys=["id"]
    )
    assert _column(diff, "v").differing == 1
    assert diff.sample_rows[0]["key"] == {"id": 500} and diff.sample_rows[0]["b"]["v"] == -1.0


def test_missing_key_column_is_incomparable(tmp_path: Path) -> None:
    table = pa.table({"v": [1]})
    diff = diff_parquet(
        _write(tmp_path / "a.parquet", table), _write(tmp_path / "b.parquet", table), name="t", keys=["id"]
    )
    assert diff.status == "incomparable" and "id" in (diff.note or "")


def test_psi_and_ks_on_a_shifted_normal(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    a = pa.table({"x": rng.normal(0, 1, n), "c": rng.choice(["u", "v", "w"], n, p=[0.6, 0.3, 0.1])})
    same = pa.table({"x": rng.normal(0, 1, n), "c": rng.choice(["u", "v", "w"], n, p=[0.6, 0.3, 0.1])})
    moved = pa.table({"x": rng.normal(0.5, 1, n), "c": rng.choice(["u", "v", "w"], n, p=[0.2, 0.3, 0.5])})
    pa_ = _write(tmp_path / "a.parquet", a)
    small = diff_parquet(pa_, _write(tmp_path / "same.parquet", same), name="t")
    big = diff_parquet(pa_, _write(tmp_path / "moved.parquet", moved), name="t")
    xs, xb = (next(s for s in d.stats if s.column == "x") for d in (small, big))
    assert xs.psi is not None and xs.psi < 0.02 and xs.ks is not None and xs.ks < 0.02
    assert xb.psi is not None and xb.psi > 0.2 and xb.ks is not None and xb.ks > 0.1
    assert (
        xb.mean is not None
        and xb.mean[1] is not None
        and xb.mean[1] - (xb.mean[0] or 0) == pytest.approx(0.5, abs=0.05)
    )
    assert xb.quantiles is not None and set(xb.quantiles) == {"p1", "p25", "p50", "p75", "p99"}
    assert xb.histogram is not None and math.isclose(sum(xb.histogram["a"]), 1.0)
    cs, cb = (next(s for s in d.stats if s.column == "c") for d in (small, big))
    assert cb.kind == "categorical" and cb.frequency_shift is not None
    assert cb.frequency_shift["u"][0] == pytest.approx(0.6, abs=0.02)
    assert cb.frequency_shift["u"][1] == pytest.approx(0.2, abs=0.02)
    assert cb.psi is not None and cb.psi > 0.2 and cs.psi is not None and cs.psi < 0.01
    assert cb.histogram is not None and cb.histogram["labels"][0] in ("u", "w")


def test_timestamps_and_bools_and_file_objects(tmp_path: Path) -> None:
    times = pa.array([0, 3_600_000_000, 7_200_000_000], type=pa.timestamp("us"))
    a = pa.table({"t": times, "f": [True, False, True]})
    b = pa.table({"t": times, "f": [True, True, True]})
    with open(_write(tmp_path / "a.parquet", a), "rb") as fa, open(_write(tmp_path / "b.parquet", b), "rb") as fb:
        diff = diff_parquet(fa, fb, name="t")
    assert _column(diff, "t").status == "equal" and _column(diff, "f").differing == 1
    t = next(s for s in diff.stats if s.column == "t")
    assert t.kind == "temporal" and t.quantiles is not None and t.quantiles["p50"][0] == "1970-01-01T01:00:00"
    f = next(s for s in diff.stats if s.column == "f")
    assert f.frequency_shift is not None and f.frequency_shift["true"][1] == 1.0


def test_same_instants_in_ns_and_us_do_not_shift(tmp_path: Path) -> None:
    """pandas 2 writes timestamp[ns], pandas 3 timestamp[us]: a retyped column, not a moved distribution.

    Nanosecond ticks of today's dates exceed 2**53 as well, which a safe float cast refuses.
    """
    import datetime as dt

    start = dt.datetime(2024, 6, 20, 8, 19, tzinfo=dt.timezone.utc)
    times = [start + dt.timedelta(minutes=17 * i) for i in range(2000)]
    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"t": pa.array(times, pa.timestamp("ns", tz="UTC"))}), a)
    pq.write_table(pa.table({"t": pa.array(times, pa.timestamp("us", tz="UTC"))}), b)
    result = diff_parquet(a, b, name="events")
    assert [(c.column, c.kind) for c in result.schema] == [("t", "retyped")]
    shift = next(s for s in result.stats if s.column == "t")
    assert shift.psi is not None and shift.psi < 0.01
    assert shift.ks is not None and shift.ks < 0.01
    assert shift.quantiles is not None and shift.quantiles["p50"][0] == shift.quantiles["p50"][1]


def test_a_column_retyped_from_numbers_to_text_is_a_schema_change_not_a_crash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"k": [1, 2], "v": [1.0, 2.0]}), a)
    pq.write_table(pa.table({"k": [1, 2], "v": ["1.0", "x"]}), b)
    result = diff_parquet(a, b, name="t")
    assert result.status == "different"
    assert [(c.column, c.kind) for c in result.schema] == [("v", "retyped")]
    assert {c.column: c.status for c in result.columns} == {"k": "equal", "v": "incomparable"}
    assert [s.column for s in result.stats] == ["k"]  # no distribution shift across kinds
