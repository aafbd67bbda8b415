"""The envsnap/1 format: round trips, both forms, reproducibility, atomic writes, version gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from envsnap.errors import FormatVersionError, IntegrityError, OutputError, SchemaError, SnapshotError
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.manifest import Manifest, NewerMinorFormatWarning, manifest_checksum
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.reader import open_snapshot
from tests.conftest import FAKE_FINGERPRINT, sample_members


@pytest.mark.parametrize("name", ["snap.envsnap", "snapdir"])
def test_round_trip_both_forms(write_snapshot: Callable[[str], Path], name: str) -> None:
    path = write_snapshot(name)
    assert path.is_file() == name.endswith(".envsnap")
    with open_snapshot(path) as snap:
        assert snap.members() == sorted(sample_members())
        for member, data in sample_members().items():
            assert snap.read_bytes(member) == data
        assert snap.section("python") == {"implementation": "cpython", "version": "3.11.7"}
        assert snap.section("lock") == "six==1.16.0\n"
        report = snap.verify()
        assert report.members == 4
        assert report.bytes == sum(len(v) for v in sample_members().values())


def test_manifest_round_trip_is_canonical(memory_snapshot: Snapshot) -> None:
    data = memory_snapshot.manifest.to_dict()
    again = Manifest.from_dict(json.loads(canonical.dumps(data)))
    assert again == memory_snapshot.manifest
    assert canonical.dumps(again.to_dict()) == canonical.dumps(data)


def test_zip_stores_parquet_and_deflates_json(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("s.envsnap")
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert zf.namelist()[0] == "manifest.json"
    assert infos["data/inputs/batch.parquet"].compress_type == zipfile.ZIP_STORED
    assert infos["env/python.json"].compress_type == zipfile.ZIP_DEFLATED


def test_reproducible_writes_are_byte_identical(tmp_path: Path) -> None:
    a = assemble_snapshot(sample_members(), fingerprint=FAKE_FINGERPRINT, reproducible=True)
    b = assemble_snapshot(sample_members(), fingerprint=FAKE_FINGERPRINT, reproducible=True)
    pa, pb = a.write(tmp_path / "a.envsnap"), b.write(tmp_path / "b.envsnap")
    assert pa.read_bytes() == pb.read_bytes()
    assert a.manifest.created_at is None
    c = assemble_snapshot(sample_members(), fingerprint=FAKE_FINGERPRINT, reproducible=False)
    assert c.id != a.id and c.manifest.created_at is not None


def test_refuses_to_overwrite_without_force(write_snapshot: Callable[[str], Path], memory_snapshot: Snapshot) -> None:
    path = write_snapshot("s.envsnap")
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        memory_snapshot.write(path)
    assert path.read_bytes() == before
    memory_snapshot.write(path, force=True)
    assert open_snapshot(path).verify().members == 4


def test_refuses_to_replace_a_directory_that_is_not_a_snapshot(tmp_path: Path, memory_snapshot: Snapshot) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a snapshot"):
        memory_snapshot.write(precious, force=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_missing_parent_directories_are_created(tmp_path: Path, memory_snapshot: Snapshot) -> None:
    written = memory_snapshot.write(tmp_path / "snaps" / "daily" / "s.envsnap")
    assert written == tmp_path / "snaps" / "daily" / "s.envsnap" and written.is_file()


def test_parent_that_is_a_file_is_a_clear_error(tmp_path: Path, memory_snapshot: Snapshot) -> None:
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(OutputError, match="is not a directory"):
        memory_snapshot.write(tmp_path / "plain" / "sub" / "s.envsnap")
    assert (tmp_path / "plain").read_text() == "a file"


@pytest.mark.parametrize("name", ["s.envsnap", "sdir"])
def test_failed_write_leaves_nothing(
    tmp_path: Path, memory_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)  # the publish step: rename (dir form, --force) ...
    monkeypatch.setattr(os, "link", boom)  # ... or hard link (zip form without --force)
    with pytest.raises(OSError, match="No space"):
        memory_snapshot.write(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    dest = tmp_path / "big.envsnap"
    script = f"""
import os, signal
from envsnap.snapshot import writer
from envsnap.snapshot.build import assemble_snapshot
real = writer._write_zip
def slow(tmp, manifest, members):
    real(tmp, manifest, members)
    os.kill(os.getpid(), signal.SIGKILL)   # killed after the data, before the rename
writer._write_zip = slow
snap = assemble_snapshot({{"data/x.parquet": os.urandom(1 << 20)}}, fingerprint="sha256:" + "0" * 64)
snap.write({str(dest)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -9
    assert not dest.exists()


def _rewrite_manifest(path: Path, mutate: Callable[[dict], None]) -> None:
    """Change the manifest as a writer would: the self-checksum is recomputed (a corrupt one is another test)."""
    manifest = path / "manifest.json"
    data = json.loads(manifest.read_text())
    mutate(data)
    data["checksum"] = manifest_checksum(data)
    manifest.write_bytes(canonical.dumps(data))


def test_flipped_byte_in_a_directory_manifest_is_always_detected(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    manifest = path / "manifest.json"
    good = manifest.read_bytes()
    assert json.loads(good)["checksum"].startswith("sha256:")
    for offset in range(len(good)):
        for mask in (0x01, 0x20, 0x80):
            bad = bytearray(good)
            bad[offset] ^= mask
            manifest.write_bytes(bytes(bad))
            with pytest.raises(SnapshotError):
                open_snapshot(path).verify()
    manifest.write_bytes(good)
    open_snapshot(path).verify()


def test_a_manifest_without_checksum_minor_0_is_still_read(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    manifest = path / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["checksum"]
    data["minor"] = 0
    manifest.write_bytes(canonical.dumps(data))
    assert open_snapshot(path).verify().members == len(data["members"])


def test_unknown_major_format_is_refused_with_upgrade_hint(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    _rewrite_manifest(path, lambda d: d.update(format="envsnap/2"))
    with pytest.raises(FormatVersionError, match="upgrade envsnap"):
        open_snapshot(path)


def test_newer_minor_is_read_with_a_warning(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    _rewrite_manifest(path, lambda d: d.update(minor=7, added_later={"x": 1}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        snap = open_snapshot(path)
    assert snap.section("python")["version"] == "3.11.7"
    assert any(issubclass(w.category, NewerMinorFormatWarning) for w in caught)


def test_schema_error_names_the_bad_field(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    _rewrite_manifest(path, lambda d: d["members"]["env/python.json"].update(size="12"))
    with pytest.raises(SchemaError) as info:
        open_snapshot(path)
    assert "$.members.env/python.json.size" in str(info.value)


@pytest.mark.parametrize("form", ["d", "s.envsnap"])
def test_one_flipped_byte_is_detected(tmp_path: Path, memory_snapshot: Snapshot, form: str) -> None:
    path = memory_snapshot.write(tmp_path / form)
    if path.is_dir():
        target = path / "env" / "requirements.lock"
        raw = bytearray(target.read_bytes())
        raw[0] ^= 0x01
        target.write_bytes(bytes(raw))
    else:
        raw = bytearray(path.read_bytes())
        offset = raw.find(bytes(range(64)))  # inside the stored (uncompressed) parquet member
        raw[offset + 10] ^= 0x01
        path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        open_snapshot(path).verify()


def test_unlisted_and_missing_members_are_errors(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("d")
    (path / "env" / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match="not listed"):
        open_snapshot(path)
    (path / "env" / "extra.json").unlink()
    (path / "env" / "requirements.lock").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        open_snapshot(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage, not a zip", b"PK\x03\x04truncated"],
    ids=["empty", "garbage", "truncated-header"],
)
def test_not_a_snapshot_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.envsnap"
    path.write_bytes(content)
    with pytest.raises(SnapshotError, match="not an envsnap archive"):
        open_snapshot(path)


def test_truncated_zip_is_refused(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("s.envsnap")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError):
        open_snapshot(path).verify()


def test_missing_snapshot(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such snapshot"):
        open_snapshot(tmp_path / "nope.envsnap")


def test_in_memory_snapshot_reads_and_verifies(memory_snapshot: Snapshot) -> None:
    assert memory_snapshot.verify().members == 4
    assert memory_snapshot.section("lock").startswith("six==")
