"""Untrusted parquet: a column claiming a pickled Python extension type never runs code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from packaging.version import Version

from envsnap.core.arrow import guard
from envsnap.diff.tables import diff_parquet


class _Boom:
    """Unpickling this creates the marker file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.marker), "pwned"))


def _hostile_parquet(path: Path, marker: Path) -> None:
    payload = pickle.dumps(_Boom(str(marker)))
    field = pa.field(
        "x",
        pa.int64(),
        metadata={b"ARROW:extension:name": b"arrow.py_extension_type", b"ARROW:extension:metadata": payload},
    )
    table = pa.table({"x": pa.array([1, 2, 3], pa.int64())}, schema=pa.schema([field]))
    pq.write_table(table, path)


def test_pyarrow_is_at_least_the_fixed_release() -> None:
    assert Version(pa.__version__) >= Version("14.0.1")


def test_pickled_extension_type_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _hostile_parquet(a, marker)
    _hostile_parquet(b, marker)
    guard()
    result = diff_parquet(str(a), str(b), name="x")
    assert result.status == "equal"
    read = pq.read_table(a)
    assert read.column("x").to_pylist() == [1, 2, 3]
    assert read.schema.field("x").type in (pa.int64(),) or type(read.schema.field("x").type).__name__ == (
        "UnknownExtensionType"
    )
    assert not marker.exists()
    # The payload is live: unpickling the stored metadata by hand does create the marker.
    payload = pq.read_schema(a).field("x").metadata[b"ARROW:extension:metadata"]
    pickle.loads(payload)  # noqa: S301 - the control that proves the check above meant something
    assert marker.read_text() == "pwned"
