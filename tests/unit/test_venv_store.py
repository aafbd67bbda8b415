"""The replay venv cache on a real filesystem: publish last, a changed file detected, one builder at a time
(two real processes), least recently used evicted, sizes counted as ``du`` counts them."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envsnap.replay.cache import CacheBound, CacheError, VenvStore, disk_usage, parse_bound


def fake_build(store: VenvStore, key: str, payload: bytes = b"x" * 5000) -> Path:
    build = store.new_build(key)
    (build / "venv" / "lib").mkdir(parents=True)
    (build / "venv" / "lib" / "mod.py").write_bytes(payload)
    (build / "venv" / "bin").mkdir()
    os.symlink("/usr/bin/python3", build / "venv" / "bin" / "python")
    return build


def test_a_key_appears_only_when_published(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    build = fake_build(store, "k1")
    assert store.check("k1") == "not built" and store.entries() == []
    store.publish(build, "k1", {"engine": "venv", "python": "3.11.7"})
    assert store.check("k1") is None
    assert not build.exists()
    (entry,) = store.entries()
    assert (entry.key, entry.engine, entry.python) == ("k1", "venv", "3.11.7")


def test_a_flipped_byte_is_detected(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    target = store.entry("k1") / "venv" / "lib" / "mod.py"
    time.sleep(0.01)
    with open(target, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert store.check("k1") == "lib/mod.py was changed"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda v: (v / "lib" / "mod.py").unlink(), "lib/mod.py was removed"),
        (lambda v: (v / "lib" / "new.py").write_text("x"), "lib/new.py was added"),
        (
            lambda v: ((v / "bin" / "python").unlink(), os.symlink("/bin/sh", v / "bin" / "python")),
            "bin/python was changed",
        ),
    ],
)
def test_removed_added_and_relinked_files_are_detected(tmp_path: Path, change, problem: str) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    change(store.entry("k1") / "venv")
    assert store.check("k1") == problem


def test_byte_code_written_next_to_sources_is_not_a_change(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    (store.entry("k1") / "venv" / "lib" / "__pycache__").mkdir()
    (store.entry("k1") / "venv" / "lib" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"pyc")
    assert store.check("k1") is None


def test_a_tampered_manifest_is_detected(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    manifest = store.entry("k1") / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"lib/mod.py": [5000', '"lib/mod.py": [5001'))
    assert store.check("k1") == "its manifest does not match its digest"


def test_republishing_replaces_a_changed_entry(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    (store.entry("k1") / "venv" / "lib" / "mod.py").write_text("changed")
    store.publish(fake_build(store, "k1", b"new"), "k1", {"engine": "venv"})
    assert store.check("k1") is None
    assert (store.entry("k1") / "venv" / "lib" / "mod.py").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".stale-")] == []


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    for i, key in enumerate(("a", "b", "c")):
        store.publish(fake_build(store, key), key, {"engine": "venv"})
        os.utime(store.entry(key) / "last-used", (1000 + i, 1000 + i))
    store.touch("a")  # used just now: the most recent
    assert store.prune(2) == ["b"]
    assert [e.key for e in store.entries()] == ["a", "c"]


def test_evict_by_size_removes_the_least_recently_used(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    for i, key in enumerate(("a", "b", "c")):
        store.publish(fake_build(store, key, os.urandom(200_000)), key, {"engine": "venv"})
        os.utime(store.entry(key) / "last-used", (1000 + i, 1000 + i))
    removed = store.evict(protect="a", bound=CacheBound(size=store.total_size() - 100_000))
    assert removed == ["b"]


def test_an_entry_in_use_by_another_process_is_not_removed(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    store.publish(fake_build(store, "k1"), "k1", {"engine": "venv"})
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from envsnap.replay.cache import VenvStore\n"
        "store = VenvStore(Path(sys.argv[1]))\n"
        "store.use('k1')\n"
        "print('using', flush=True)\n"
        "time.sleep(30)\n"
    )
    user = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "using"
        assert store.prune(0) == [] and store.check("k1") is None
        removed, busy = store.clear()
        assert (removed, busy) == ([], ["k1"])
    finally:
        user.kill()
        user.wait()
    assert store.prune(0) == ["k1"]


def _say(log: str, word: str) -> None:
    with Path(log).open("a", encoding="utf-8") as fh:
        fh.write(word + "\n")


def _build_once(root: str, key: str, log: str) -> None:
    store = VenvStore(Path(root))
    with store.building(key, waiting=lambda: _say(log, "waited")):
        if store.check(key) is None:
            _say(log, "reused")
            return
        _say(log, "built")
        build = fake_build(store, key)
        time.sleep(1.0)  # a build that takes a while: the other process arrives meanwhile
        store.publish(build, key, {"engine": "venv"})


def test_two_processes_one_builds_the_other_waits_and_reuses(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_build_once, args=(str(tmp_path / "store"), "k1", str(log))) for _ in range(2)]
    for proc in procs:
        proc.start()
        time.sleep(0.3)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert sorted(log.read_text().split()) == ["built", "reused", "waited"]
    assert VenvStore(tmp_path / "store").check("k1") is None


def test_leftovers_of_a_killed_build_are_swept_never_listed(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    leftover = fake_build(store, "k1")  # as a build killed before publishing leaves it
    assert store.entries() == [] and store.check("k1") == "not built"
    store.prune(5)
    assert not leftover.exists()


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_bytes(os.urandom(100_000))
    os.link(tmp_path / "a" / "f", tmp_path / "b" / "f")
    one = disk_usage([tmp_path / "a"])
    assert one >= 100_000
    assert disk_usage([tmp_path]) < 1.1 * one


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        (None, CacheBound(entries=12)),
        ("3", CacheBound(entries=3)),
        ("20G", CacheBound(size=20 << 30)),
        ("500M", CacheBound(size=500 << 20)),
        ("1.5GiB", CacheBound(size=int(1.5 * (1 << 30)))),
    ],
)
def test_parse_bound(text: str | None, bound: CacheBound) -> None:
    assert parse_bound(text) == bound


@pytest.mark.parametrize("text", ["abc", "0", "12 venvs", "-3"])
def test_a_bad_bound_is_one_line(text: str) -> None:
    with pytest.raises(CacheError) as info:
        parse_bound(text)
    assert "ENVSNAP_CACHE_MAX" in str(info.value) and "\n" not in str(info.value)


def test_identical_byte_code_is_shared_between_venvs(tmp_path: Path) -> None:
    store = VenvStore(tmp_path)
    for key, extra in (("a", b"one"), ("b", b"two")):
        store.publish(fake_build(store, key), key, {"engine": "docker"})
        pyc = store.entry(key) / "pycache" / "opt" / "venv" / "lib"
        pyc.mkdir(parents=True)
        (pyc / "same.pyc").write_bytes(b"identical byte code" * 100)
        (pyc / "other.pyc").write_bytes(extra * 100)
    saved = store.share_bytecode("b")
    a, b = (store.entry(k) / "pycache" / "opt" / "venv" / "lib" for k in ("a", "b"))
    assert os.path.samefile(a / "same.pyc", b / "same.pyc") and saved > 0
    assert not os.path.samefile(a / "other.pyc", b / "other.pyc")
    assert (b / "other.pyc").read_bytes() == b"two" * 100
    assert store.share_bytecode("b") == 0  # already shared
