"""Hostile archives: every one is refused with a SnapshotError before anything is parsed or written."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path

import pytest

from envsnap.errors import IntegrityError, SnapshotError, UnsafeArchiveError
from envsnap.snapshot import canonical
from envsnap.snapshot.reader import check_member_name, open_snapshot


def _manifest(members: dict[str, bytes]) -> bytes:
    return canonical.dumps(
        {
            "format": "envsnap/1",
            "minor": 0,
            "created_by": "test",
            "created_at": None,
            "id": "x",
            "label": None,
            "fingerprint": "sha256:" + "0" * 64,
            "members": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in members.items()},
            "probes": {},
        }
    )


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], listed: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", _manifest(listed))
        for info, data in entries:
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "name",
    ["../evil.json", "env/../../evil.json", "/etc/passwd", "env\\evil.json", "C:/evil", "env//x.json", "./x.json"],
)
def test_escaping_names_are_refused(tmp_path: Path, name: str) -> None:
    path = _zip(tmp_path / "h.envsnap", [(name, b"{}")], {name: b"{}"})
    with pytest.raises(UnsafeArchiveError):
        open_snapshot(path)


def test_nul_and_control_characters_are_refused() -> None:
    for name in ("env/a\x00b.json", "env/a\nb.json"):
        with pytest.raises(UnsafeArchiveError):
            check_member_name("<test>", name)


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("env/link.json")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _zip(tmp_path / "h.envsnap", [(info, b"/etc/passwd")], {"env/link.json": b"/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        open_snapshot(path)


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        path = _zip(tmp_path / "h.envsnap", [("env/a.json", b"{}"), ("env/a.json", b"{}")], {"env/a.json": b"{}"})
    with pytest.raises(UnsafeArchiveError, match="duplicate"):
        open_snapshot(path)


def test_case_fold_collision_is_refused(tmp_path: Path) -> None:
    entries: list[tuple[zipfile.ZipInfo | str, bytes]] = [("env/A.json", b"{}"), ("env/a.json", b"{}")]
    path = _zip(tmp_path / "h.envsnap", entries, {"env/A.json": b"{}", "env/a.json": b"{}"})
    with pytest.raises(UnsafeArchiveError, match="case folding"):
        open_snapshot(path)


def test_compression_bomb_is_refused_from_the_headers(tmp_path: Path) -> None:
    big = b"\0" * (64 << 20)
    path = tmp_path / "bomb.envsnap"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", _manifest({"data/x.json": b"{}"}))  # lies: promises 2 bytes
        zf.writestr("data/x.json", big)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(IntegrityError, match="size"):
        open_snapshot(path)


def test_unlisted_member_in_zip(tmp_path: Path) -> None:
    path = _zip(tmp_path / "h.envsnap", [("env/a.json", b"{}"), ("env/x.json", b"{}")], {"env/a.json": b"{}"})
    with pytest.raises(IntegrityError, match="not listed"):
        open_snapshot(path)


def test_hash_mismatch_in_zip(tmp_path: Path) -> None:
    path = _zip(tmp_path / "h.envsnap", [("env/a.json", b'{"a":2}')], {"env/a.json": b'{"a":1}'})
    snap = open_snapshot(path)
    with pytest.raises(IntegrityError, match="hash"):
        snap.read_json("env/a.json")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format": 1}', "no valid 'format'"),
        (b'{"format": "envsnap/1", "minor": "0"}', "manifest.json"),
    ],
)
def test_bad_manifests(tmp_path: Path, manifest: bytes, message: str) -> None:
    path = tmp_path / "h.envsnap"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", manifest)
    with pytest.raises(SnapshotError, match=message):
        open_snapshot(path)


def test_symlink_in_directory_snapshot_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "env").mkdir(parents=True)
    (root / "manifest.json").write_bytes(_manifest({"env/a.json": b"{}"}))
    os.symlink("/etc/hostname", root / "env" / "a.json")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        open_snapshot(root)
