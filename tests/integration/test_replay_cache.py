"""The replay venv cache under bad conditions, for real: a full disk (a size-limited tmpfs), two replays of
the same runtime at once (two processes), a byte flipped in a cached venv; and ``envsnap cache``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from envsnap.replay.cache import VenvStore
from envsnap.replay.wheelhouse import WheelCache, cache_root
from tests.integration.replay_env import ENVSNAP, docker_base, git_project, record, replay_python  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, replay_python: Path) -> Path:  # noqa: F811
    project = git_project(tmp_path_factory.mktemp("replay-cache-project") / "proj")
    return record(project, replay_python, project / "good.envsnap")


def envsnap(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVSNAP_CACHE_DIR": str(cache)}
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, env=env, check=False)


def shared_wheels(cache: Path) -> Path:
    """A fresh envsnap cache whose wheel cache is this machine's (no download), venvs of its own."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = WheelCache(cache_root())
    if not (cache / "wheels").exists():
        os.symlink(wheels.root, cache / "wheels")
    return cache


def seeded_wheels(cache: Path, recorded: Path) -> int:
    """Copy the wheels the replay needs (and uv) into ``cache``'s own wheel cache; their bytes."""
    source = WheelCache(cache_root())
    index = json.loads(source.index_path.read_text())
    needed = {line.split("==")[0].lower() for line in _pins(recorded)} | {"uv"}
    total = 0
    mine: dict[str, dict[str, dict[str, str]]] = {}
    for target, pins in index.items():
        for pin, entry in pins.items():
            if pin.split("==")[0].lower() not in needed:
                continue
            blob = source.root / "blobs" / entry["sha256"] / entry["filename"]
            if not blob.is_file():
                continue
            dest = cache / "wheels" / "blobs" / entry["sha256"]
            dest.mkdir(parents=True, exist_ok=True)
            if not (dest / entry["filename"]).exists():
                shutil.copyfile(blob, dest / entry["filename"])
                total += blob.stat().st_size
            mine.setdefault(target, {})[pin] = entry
    (cache / "wheels" / "index.json").write_text(json.dumps(mine))
    return total


def _pins(recorded: Path) -> list[str]:
    proc = subprocess.run([*ENVSNAP, "replay", str(recorded), "--dry-run", "--json"], capture_output=True, text=True)
    plan = json.loads(proc.stdout)
    return [f"{p['name']}=={p['version']}" for p in plan["packages"]]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _resize(mount: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


@pytest.mark.parametrize("engine", ["venv", "docker"])
def test_a_full_disk_is_one_line_and_leaves_nothing_used_later(
    engine: str,
    recorded: Path,
    small_tmpfs: Path,
    request: pytest.FixtureRequest,
) -> None:
    base = ["--base-image", request.getfixturevalue("docker_base")] if engine == "docker" else []
    # Room for the wheels, not for them unpacked: the install runs out of space half way.
    cache = small_tmpfs
    _resize(cache, 512 << 20)
    wheels = seeded_wheels(cache, recorded)
    _resize(cache, wheels + (90 << 20))  # uv's binary is unpacked there too (~50 MB)
    proc = envsnap("replay", recorded, "--engine", engine, *base, "--stage", "clean", "--no-fidelity", cache=cache)
    assert proc.returncode == 3, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln or "Traceback" in ln]
    assert len(lines) == 1 and "no space left" in lines[0] and "nothing of it was kept" in lines[0], proc.stderr
    assert "installing" in proc.stderr or "building venv" in proc.stderr, proc.stderr  # it failed in the install
    store = VenvStore(cache / "venvs")
    assert store.entries() == []
    assert not [p for p in store.root.iterdir() if p.name.startswith(".building-")]
    # With room again, the next replay builds afresh and reproduces: nothing half-built was picked up.
    _resize(cache, 2 << 30)
    again = envsnap(
        "replay", recorded, "--engine", engine, *base, "--stage", "clean", "--no-fidelity", "--json", cache=cache
    )
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["prepared"]["built"] is True and doc["verdict"] == "reproduced"


@pytest.mark.parametrize("engine", ["venv", "docker"])
def test_two_replays_at_once_build_once(
    engine: str, recorded: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = ["--base-image", request.getfixturevalue("docker_base")] if engine == "docker" else []
    cache = shared_wheels(tmp_path / "cache")
    argv = [*ENVSNAP, "replay", str(recorded), "--engine", engine, *base, "--stage", "clean", "--no-fidelity"]
    env = {**os.environ, "ENVSNAP_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    outs = sorted(
        "built in" if "(built in" in out else "reused" if "reused: no rebuild" in out else out for out, _e in results
    )
    assert outs == ["built in", "reused"], results
    waited = [err for _out, err in results if "waiting for it" in err or "built meanwhile" in err]
    assert len(waited) == 1, [err for _o, err in results]
    assert len(VenvStore(cache / "venvs").entries()) == 1


@pytest.mark.parametrize("engine", ["venv", "docker"])
def test_a_flipped_byte_in_a_cached_venv_is_detected_and_rebuilt(
    engine: str, recorded: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = ["--base-image", request.getfixturevalue("docker_base")] if engine == "docker" else []
    cache = shared_wheels(tmp_path / "cache")
    first = envsnap(
        "replay", recorded, "--engine", engine, *base, "--stage", "clean", "--no-fidelity", "--json", cache=cache
    )
    assert first.returncode == 0, first.stderr
    (entry,) = VenvStore(cache / "venvs").entries()
    target = next((entry.path / "venv").glob("lib/python3*/site-packages/pytz/__init__.py"))
    with open(target, "r+b") as fh:  # a real byte flipped in place (the file is a hard link into uv's cache)
        fh.seek(10)
        byte = fh.read(1)
        fh.seek(10)
        fh.write(bytes([byte[0] ^ 0x20]))
    again = envsnap(
        "replay", recorded, "--engine", engine, *base, "--stage", "clean", "--no-fidelity", "--json", cache=cache
    )
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["prepared"]["built"] is True
    assert any("pytz/__init__.py was changed" in n and "rebuilt" in n for n in doc["prepared"]["notes"]), doc[
        "prepared"
    ]
    # The rebuilt venv is whole again: unpacked afresh from the hash-checked wheel, not from uv's cache (which
    # shared the flipped byte through the hard link).
    assert VenvStore(cache / "venvs").check(entry.key) is None
    rebuilt = next((entry.path / "venv").glob("lib/python3*/site-packages/pytz/__init__.py"))
    assert rebuilt.read_bytes()[10] == byte[0]
    third = envsnap(
        "replay", recorded, "--engine", engine, *base, "--stage", "clean", "--no-fidelity", "--json", cache=cache
    )
    assert json.loads(third.stdout)["prepared"]["built"] is False


def test_cache_list_prune_clear(recorded: Path, tmp_path: Path) -> None:
    cache = shared_wheels(tmp_path / "cache")
    for pin in ("pytz==2025.2", "pytz==2019.1"):
        proc = envsnap(
            "replay", recorded, "--engine", "venv", "--stage", "clean", "--no-fidelity", "--with", pin, cache=cache
        )
        assert proc.returncode in (0, 1), proc.stderr
    listed = envsnap("cache", "list", "--json", cache=cache)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert len(doc["entries"]) == 2 and all(e["engine"] == "venv" and e["bytes"] > 0 for e in doc["entries"])
    # Two venvs of the same lock family share their files: the store holds about one venv, not two.
    largest = max(e["bytes"] for e in doc["entries"])
    venvs = VenvStore(cache / "venvs")
    from envsnap.replay.cache import disk_usage

    assert disk_usage([e.path for e in venvs.entries()]) < 1.5 * largest
    text = envsnap("cache", "list", cache=cache).stdout
    assert "2 venv(s)" in text and "venv-" in text
    pruned = envsnap("cache", "prune", "--keep", "1", cache=cache)
    assert pruned.returncode == 0 and "removed 1 venv(s)" in pruned.stdout
    assert len(venvs.entries()) == 1
    cleared = envsnap("cache", "clear", cache=cache)
    assert cleared.returncode == 0 and "removed 1 venv(s)" in cleared.stdout
    assert venvs.entries() == [] and not venvs.uv_cache.exists()
    bad = envsnap("cache", "prune", "--keep", "-1", cache=cache)
    assert bad.returncode == 2
    bound = subprocess.run(
        [*ENVSNAP, "cache", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "ENVSNAP_CACHE_DIR": str(cache), "ENVSNAP_CACHE_MAX": "lots"},
        check=False,
    )
    assert bound.returncode == 3 and len(bound.stderr.strip().splitlines()) == 1
