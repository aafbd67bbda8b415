"""storage.ReadAheadFile (aligned blocks over a remote object) and writer.check_output, without a server."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from envsnap.core.storage import ReadAheadFile
from envsnap.errors import OutputError
from envsnap.snapshot.writer import check_output


class FakeRemote:
    """``read_at`` over bytes, counting the requests and bytes a remote object would serve."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[int, int]] = []
        self.closed = False

    def read_at(self, n: int, offset: int) -> bytes:
        self.requests.append((offset, n))
        return self.data[offset : offset + n]

    def close(self) -> None:
        self.closed = True


def test_small_reads_come_from_aligned_blocks() -> None:
    data = os.urandom(10_000)
    raw = FakeRemote(data)
    fh = ReadAheadFile("s3://b/k.envsnap", raw, len(data), 1024)
    fh.seek(100)
    assert fh.read(10) == data[100:110]
    assert fh.read(20) == data[110:130]
    assert raw.requests == [(0, 1024)]
    # a read across a block boundary fetches the next block only
    fh.seek(1000)
    assert fh.read(100) == data[1000:1100]
    assert raw.requests == [(0, 1024), (1024, 1024)]
    # the last block is short; reading past the end gives what there is
    fh.seek(-5, io.SEEK_END)
    assert fh.read(100) == data[-5:] and fh.read(1) == b""
    assert raw.requests[-1] == (9 * 1024, len(data) - 9 * 1024)
    # a large read is one request of exactly its size, not cached
    before = len(raw.requests)
    assert fh.read_at(3000, 2000) == data[2000:5000]
    assert raw.requests[before:] == [(2000, 3000)]
    assert fh.fetched == sum(n for _, n in raw.requests) and fh.requests == len(raw.requests)
    fh.close()
    assert raw.closed and fh.closed
    with pytest.raises(ValueError, match="closed"):
        fh.read(1)


def test_memory_is_bounded_to_a_few_blocks() -> None:
    data = bytes(range(256)) * 400
    raw = FakeRemote(data)
    fh = ReadAheadFile("s3://b/k.envsnap", raw, len(data), 512)
    for offset in range(0, len(data), 512):
        assert fh.read_at(10, offset) == data[offset : offset + 10]
    assert len(fh._blocks) == ReadAheadFile.MAX_BLOCKS
    # the most recently used blocks are kept: re-reading the last one costs nothing
    count = len(raw.requests)
    assert fh.read_at(10, len(data) - 512) == data[-512:-502]
    assert len(raw.requests) == count


def test_a_zip_reads_through_the_blocks(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", b"{}" * 100)
        archive.writestr("big.bin", os.urandom(200_000), compress_type=zipfile.ZIP_STORED)
    data = buffer.getvalue()
    raw = FakeRemote(data)
    with ReadAheadFile("s3://b/k.envsnap", raw, len(data), 64 << 10) as fh, zipfile.ZipFile(fh) as archive:  # type: ignore[arg-type]
        assert archive.read("manifest.json") == b"{}" * 100
    # the directory at the end and the manifest at the start: two blocks, not a request per small read
    assert len(raw.requests) == 2, raw.requests


def test_check_output_local_paths_unchanged_and_uris_checked_first(tmp_path: Path) -> None:
    assert check_output(tmp_path / "a.envsnap", force=False) == tmp_path / "a.envsnap"
    assert check_output("rel.envsnap", force=False) == Path("rel.envsnap").absolute()
    (tmp_path / "a.envsnap").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        check_output(tmp_path / "a.envsnap", force=False)
    # refused before any request: a prefix, a key that is not *.envsnap, an MLflow run
    with pytest.raises(OutputError, match="names a prefix"):
        check_output("s3://bucket/dir/", force=False)
    with pytest.raises(OutputError, match=r"end the key with \.envsnap"):
        check_output("s3://bucket/key", force=True)
    with pytest.raises(OutputError, match="written with --mlflow"):
        check_output("runs:/abc/envsnap", force=False)
