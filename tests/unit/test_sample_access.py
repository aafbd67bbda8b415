"""The sampled-file access layer: local files and s3:// objects behind one interface (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsnap.capture import sample_access
from envsnap.capture.sample_access import LocalSource, open_source
from envsnap.errors import InputError


def test_local_source_lists_like_dataset_discovery(tmp_path: Path) -> None:
    (tmp_path / "day=1" / "_tmp").mkdir(parents=True)
    (tmp_path / "day=1" / "a.parquet").write_bytes(b"12345")
    (tmp_path / "day=1" / ".a.parquet.crc").write_bytes(b"x")
    (tmp_path / "day=1" / "_tmp" / "b.parquet").write_bytes(b"x")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    source = LocalSource("x", str(tmp_path))
    assert source.entry() is None
    [entry] = source.list()
    assert (entry.relpath, entry.size) == ("day=1/a.parquet", 5) and entry.modified and entry.modified.endswith("Z")
    handle = source.open(entry)
    try:
        assert handle.read_at(1, 3) == b"234"
    finally:
        handle.close()
    with pytest.raises(InputError, match="no such file or directory"):
        LocalSource("x", str(tmp_path / "missing")).entry()


def test_other_uris_are_refused() -> None:
    with pytest.raises(InputError, match=r"only local paths and s3:// locations"):
        open_source("x", "gs://bucket/events.parquet")


def test_a_failed_range_read_is_one_line_naming_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def read_at(self, size: int, offset: int) -> bytes:
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 7, Couldn't connect")

        def close(self) -> None:
            pass

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    handle = sample_access._S3File(Broken(), "events", "s3://lake/events.parquet")
    with pytest.raises(InputError) as info:
        handle.read_at(0, 4)
    text = str(info.value)
    assert text.startswith("input 'events' (s3://lake/events.parquet): cannot reach http://127.0.0.1:9"), text
    assert "\n" not in text
