"""Reliability: hostile archives through ``envsnap diff``, single-byte corruption of
a real snapshot, crashes (SIGKILL, concurrent writers, a full disk) and fuzzed parsers."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import envsnap
from envsnap.capture import capture
from envsnap.cli import app
from envsnap.core.lock_text import parse_lock
from envsnap.errors import EnvsnapError
from envsnap.pipeline.config import load_pipeline
from envsnap.snapshot import canonical
from envsnap.snapshot.manifest import Manifest
from envsnap.snapshot.reader import open_snapshot

runner = CliRunner()
MiB = 1 << 20


# --------------------------------------------------------------------------------------------------
# A real snapshot, shared by the module
# --------------------------------------------------------------------------------------------------
class Good:
    """A real capture written as a directory and as a zip, with its members and manifest."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "good"
        capture(self.dir, git=False, reproducible=True)
        self.zip = root / "good.envsnap"
        envsnap.load(self.dir).write(self.zip)
        self.manifest: dict[str, Any] = json.loads((self.dir / "manifest.json").read_bytes())
        self.members = {name: (self.dir / name).read_bytes() for name in self.manifest["members"]}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    return Good(tmp_path_factory.mktemp("real"))


def _listing(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``roots`` with its size and mtime: proves that nothing was written."""
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                st_ = os.lstat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (st_.st_size, st_.st_mtime_ns)
    return out


# --------------------------------------------------------------------------------------------------
# Item 1: hostile archives through `envsnap diff`, in both argument positions
# --------------------------------------------------------------------------------------------------
Entry = tuple["zipfile.ZipInfo | str", bytes]


def _zip(path: Path, manifest: bytes, entries: list[Entry], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            zf.writestr("manifest.json", manifest)
            for info, data in entries:
                zf.writestr(info, data)
    return path


def _listed(good: Good, members: dict[str, bytes], **changes: Any) -> bytes:
    manifest = dict(good.manifest, **changes)
    manifest["members"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in members.items()}
    return canonical.dumps(manifest)


def _real_zip(path: Path, good: Good, members: dict[str, bytes], entries: list[Entry] | None = None) -> Path:
    """A zip whose manifest lists ``members`` honestly and which holds ``entries`` (default: the members)."""
    return _zip(path, _listed(good, members), entries if entries is not None else list(members.items()))


def _lying_bomb(path: Path, good: Good) -> Path:
    """64 MiB of zeros deflated into env/python.json, with both zip headers patched to claim the manifest's
    size: the ratio check from the headers cannot see it, only bounded streaming can."""
    members = dict(good.members)
    claimed = len(members["env/python.json"])
    _zip(
        path,
        _listed(good, members),
        [(n, b"\0" * (64 * MiB) if n == "env/python.json" else d) for n, d in members.items()],
    )
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("env/python.json")
    struct.pack_into("<I", raw, info.header_offset + 22, claimed)  # local header: uncompressed size
    name = b"env/python.json"
    pos = raw.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46 : pos + 46 + name_len] == name:
            struct.pack_into("<I", raw, pos + 24, claimed)  # central directory: uncompressed size
            break
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert pos != -1
    path.write_bytes(bytes(raw))
    return path


def _build(kind: str, d: Path, good: Good) -> Path:
    m = dict(good.members)
    p = d / "hostile.envsnap"
    if kind in ("dotdot", "absolute", "backslash"):
        name = {"dotdot": "../evil.json", "absolute": "/etc/passwd", "backslash": "env\\evil.json"}[kind]
        return _real_zip(p, good, {**m, name: b"{}"})
    if kind == "symlink":
        info = zipfile.ZipInfo("env/link.json")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        return _real_zip(p, good, {**m, "env/link.json": b"/etc/passwd"}, [*m.items(), (info, b"/etc/passwd")])
    if kind == "duplicate":
        return _real_zip(p, good, m, [*m.items(), ("env/python.json", m["env/python.json"])])
    if kind == "casefold":
        return _real_zip(p, good, {**m, "env/Python.json": m["env/python.json"]})
    if kind == "hash-mismatch":  # same size, so only the hash can tell
        return _zip(
            p,
            _listed(good, m),
            [*{**m, "env/python.json": m["env/python.json"].replace(b"cpython", b"cPython")}.items()],
        )
    if kind == "unlisted":
        return _zip(p, _listed(good, m), [*m.items(), ("env/extra.json", b"{}")])
    if kind == "missing":
        return _zip(p, _listed(good, m), [(n, b) for n, b in m.items() if n != "env/python.json"])
    if kind == "major":
        return _zip(p, _listed(good, m, format="envsnap/2"), list(m.items()))
    if kind == "not-json":
        return _zip(p, b'{"format": "envsnap/1", ', list(m.items()))
    if kind == "wrong-type":
        return _zip(p, _listed(good, m, minor="0"), list(m.items()))
    if kind == "truncated":
        p.write_bytes(good.zip.read_bytes()[: good.zip.stat().st_size // 2])
        return p
    if kind == "empty":
        p.write_bytes(b"")
        return p
    if kind == "garbage":
        p.write_bytes(random.Random(9).randbytes(4096))
        return p
    if kind == "bomb":  # honest headers: refused from the ratio before anything is inflated
        bomb = {**m, "env/python.json": b"\0" * (64 * MiB)}
        return _zip(p, _listed(good, m), list(bomb.items()))  # the manifest promises the real size
    if kind == "lying-bomb":
        return _lying_bomb(p, good)
    if kind == "dir-symlink":
        root = d / "hostile"
        for name, data in m.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        (root / "manifest.json").write_bytes(_listed(good, m))
        (root / "env" / "python.json").unlink()
        os.symlink("/etc/hostname", root / "env" / "python.json")
        return root
    raise AssertionError(kind)


HOSTILE = [
    "dotdot", "absolute", "backslash", "symlink", "duplicate", "casefold", "hash-mismatch", "unlisted", "missing",
    "major", "not-json", "wrong-type", "truncated", "empty", "garbage", "bomb", "lying-bomb", "dir-symlink",
]  # fmt: skip


@pytest.mark.parametrize("hostile_first", [True, False], ids=["HOSTILE-GOOD", "GOOD-HOSTILE"])
@pytest.mark.parametrize("kind", HOSTILE)
def test_diff_refuses_hostile_archives(
    tmp_path: Path, good: Good, kind: str, hostile_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    hostile = _build(kind, tmp_path / "in", good)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _listing(tmp_path, good.zip.parent)
    args = ["diff", str(hostile), str(good.zip)] if hostile_first else ["diff", str(good.zip), str(hostile)]

    tracemalloc.start()
    try:
        result = runner.invoke(app, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert result.exit_code == 3, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("envsnap: error: "), result.stderr
    assert "internal error" not in lines[0]
    assert result.stdout == ""
    assert _listing(tmp_path, good.zip.parent) == before  # nothing written, nothing touched
    assert list(cwd.iterdir()) == []
    assert peak < 256 * MiB, peak  # the bombs hold 64 MiB each when inflated; none may be


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", ["show", "verify", "replay"])
def test_show_verify_replay_refuse_hostile_archives(
    tmp_path: Path, good: Good, kind: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    hostile = _build(kind, tmp_path / "in", good)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _listing(tmp_path, good.zip.parent)
    args = [command, str(hostile)] + (["--engine", "venv"] if command == "replay" else [])
    tracemalloc.start()
    try:
        result = runner.invoke(app, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 3, (result.exit_code, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("envsnap: error: "), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr + result.stdout
    assert _listing(tmp_path, good.zip.parent) == before
    assert list(cwd.iterdir()) == []
    assert peak < 256 * MiB, peak


# --------------------------------------------------------------------------------------------------
# Item 2: one flipped byte anywhere in any member is always detected by verify()
# --------------------------------------------------------------------------------------------------
def _verify_raises(path: Path) -> EnvsnapError:
    try:
        with envsnap.load(path) as snap:
            snap.verify()
    except EnvsnapError as exc:
        return exc
    raise AssertionError(f"{path}: corruption passed verify()")


@contextlib.contextmanager
def _flipped(path: Path, offset: int, mask: int) -> Iterator[None]:
    """``path`` with the byte at ``offset`` XORed with ``mask`` (non-zero), restored afterwards."""
    assert mask
    with open(path, "r+b") as fh:
        fh.seek(offset)
        original = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([original ^ mask]))
    try:
        yield
    finally:
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(bytes([original]))


def _positions(sizes: dict[str, int], total: int, rng: random.Random) -> list[tuple[str, int]]:
    """Every byte of small members, a seeded sample of big ones: ``total`` positions spread over all."""
    out: list[tuple[str, int]] = []
    share = max(1, total // len(sizes))
    for name, size in sorted(sizes.items()):
        picks = range(size) if size <= share else sorted(rng.sample(range(size), share))
        out += [(name, i) for i in picks]
    return out


def test_flipped_byte_in_a_directory_member_is_always_detected(tmp_path: Path, good: Good) -> None:
    path = tmp_path / "s"
    envsnap.load(good.dir).write(path)
    rng = random.Random(2)
    sizes = {name: len(data) for name, data in good.members.items()}
    cases = _positions(sizes, 2400, rng)
    assert len(cases) >= 2000 and {n for n, _ in cases} == set(sizes)
    for name, offset in cases:
        with _flipped(path / name, offset, rng.randrange(1, 256)):
            _verify_raises(path)
    envsnap.load(path).verify()  # every flip was undone: the test itself left the snapshot intact


def _data_regions(path: Path) -> dict[str, tuple[int, int]]:
    """Where each member's (compressed) bytes lie in the zip: name -> (start, length)."""
    raw = path.read_bytes()
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
            out[info.filename] = (info.header_offset + 30 + name_len + extra_len, info.compress_size)
    return out


def _verify_or_intact(path: Path, good: Good) -> bool:
    """True when verify() raised an EnvsnapError; False when it passed, which is only allowed when every
    member and the manifest read back exactly as captured. Deflate has bits that change nothing (the
    BFINAL bit of a block followed by an empty final block, padding after the end of the stream): such a
    flip leaves the content intact. Any other exception fails the test."""
    try:
        with envsnap.load(path) as snap:
            snap.verify()
            assert {n: snap.read_bytes(n) for n in snap.members()} == good.members
            assert snap.manifest.to_dict() == good.manifest
    except EnvsnapError:
        return True
    return False


def test_flipped_byte_in_zip_member_data_is_always_detected(tmp_path: Path, good: Good) -> None:
    path = tmp_path / "s.envsnap"
    path.write_bytes(good.zip.read_bytes())
    rng = random.Random(3)
    regions = _data_regions(path)
    assert set(regions) == set(good.members) | {"manifest.json"}
    cases = _positions({n: length for n, (_, length) in regions.items()}, 2400, rng)
    assert len(cases) >= 2000
    detected = [_flip_case(path, regions[name][0] + offset, rng, good) for name, offset in cases]
    assert sum(detected) > 0.9 * len(detected)  # content-neutral deflate bits are the rare exception
    envsnap.load(path).verify()


def _flip_case(path: Path, offset: int, rng: random.Random, good: Good) -> bool:
    with _flipped(path, offset, rng.randrange(1, 256)):
        return _verify_or_intact(path, good)


def test_flipped_byte_anywhere_in_a_zip_raises_only_envsnap_errors(tmp_path: Path, good: Good) -> None:
    """Outside member data a flip may hit bytes that protect nothing (a timestamp in the central
    directory): verify may pass then, but only with intact content; any failure is an EnvsnapError."""
    path = tmp_path / "s.envsnap"
    path.write_bytes(good.zip.read_bytes())
    rng = random.Random(4)
    size = path.stat().st_size
    for offset in sorted(rng.sample(range(size), min(size, 1500))):
        _flip_case(path, offset, rng, good)
    envsnap.load(path).verify()


# --------------------------------------------------------------------------------------------------
# Item 4: crashes
# --------------------------------------------------------------------------------------------------
CAPTURE_CHILD = """
import sys, time
from envsnap.capture import capture
from envsnap.capture.base import SampleOptions
from envsnap.errors import EnvsnapError
dest, table, force, go = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
print("ready", flush=True)
while go != "-" and not __import__("os").path.exists(go):
    time.sleep(0.001)
start = time.perf_counter()
try:
    capture(dest, git=False, reproducible=True, force=force, inputs={"t": table},
            sampling=SampleOptions(rows=50_000))
except EnvsnapError as exc:
    print(f"clean-error {type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)
print(f"done {time.perf_counter() - start}", flush=True)
"""


@pytest.fixture(scope="module")
def big_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real parquet file whose 50,000-row sample is ~2 MiB of incompressible text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("table") / "t.parquet"
    rng = random.Random(5)
    n = 200_000
    pq.write_table(pa.table({"id": list(range(n)), "blob": [rng.randbytes(24).hex() for _ in range(n)]}), path)
    return path


def _child(dest: Path, table: Path, *, force: bool = False, go: str = "-") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CAPTURE_CHILD, str(dest), str(table), "1" if force else "0", go],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _intact_or_absent(dest: Path) -> bool:
    """True when ``dest`` holds a verified snapshot, False when absent; fails on anything partial."""
    if not dest.exists() and not dest.is_symlink():
        return False
    with envsnap.load(dest) as snap:
        snap.verify()
        assert "data/inputs/t.parquet" in snap.members()
    return True


@pytest.mark.slow
def test_sigkill_at_50_random_points_never_leaves_a_partial_snapshot(tmp_path: Path, big_table: Path) -> None:
    # The kill points spread over a capture's duration: the fastest of three (a first, cold run can take
    # twice as long, and kill points past the real end would leave too few runs killed mid-way).
    durations = []
    for i in range(3):
        probe = _child(tmp_path / f"timing{i}.envsnap", big_table)
        out, errs = probe.communicate(timeout=120)
        assert probe.returncode == 0, errs
        durations.append(float(out.split()[-1]))
    duration = min(durations)
    rng = random.Random(6)
    outcomes = []
    for i in range(50):
        dest = tmp_path / (f"k{i}.envsnap" if i % 2 else f"k{i}")
        proc = _child(dest, big_table)
        time.sleep(rng.uniform(0, duration * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        outcomes.append((proc.returncode, _intact_or_absent(dest)))
    killed = [whole for rc, whole in outcomes if rc == -signal.SIGKILL]
    assert len(killed) >= 25, outcomes  # most runs really were killed mid-way
    assert False in killed  # and some of them before the rename (nothing under the final name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["same", "same.envsnap"])
@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_two_concurrent_captures_to_one_path(tmp_path: Path, big_table: Path, name: str, force: bool) -> None:
    for round_ in range(3):
        work = tmp_path / f"r{round_}"
        work.mkdir()
        dest = work / name
        if force:  # replacing an existing snapshot is the racy path
            envsnap.load(_child_capture(work / f"seed-{name}", big_table)).write(dest)
        go = work / "go"
        procs = [_child(dest, big_table, force=force, go=str(go)) for _ in range(2)]
        go.touch()
        results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
        for out, errs, rc in results:
            assert rc == 0 or (rc == 3 and out.startswith("clean-error ")), (rc, out, errs)
        if force:
            assert any(rc == 0 for *_, rc in results), results
        assert _intact_or_absent(dest) is True
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".")]
        assert leftovers == [], leftovers  # no temp files or trash survive either writer


def _child_capture(dest: Path, table: Path) -> Path:
    proc = _child(dest, table)
    _, errs = proc.communicate(timeout=120)
    assert proc.returncode == 0, errs
    return dest


@contextlib.contextmanager
def _tiny_tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("name", ["s", "s.envsnap"])
def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path, big_table: Path, name: str) -> None:
    from envsnap.capture.base import SampleOptions

    with _tiny_tmpfs(tmp_path / "tiny") as tiny:
        with pytest.raises((EnvsnapError, OSError)) as info:
            capture(
                tiny / name,
                git=False,
                reproducible=True,
                inputs={"t": str(big_table)},
                sampling=SampleOptions(rows=50_000),
            )
        exc = info.value
        assert isinstance(exc, EnvsnapError) or getattr(exc, "errno", None) == errno.ENOSPC, repr(exc)
        assert "space" in str(exc).lower(), str(exc)
        assert list(tiny.iterdir()) == []  # no partial snapshot, no temp file, no temp directory


# --------------------------------------------------------------------------------------------------
# Item 5: fuzzed parsers; only EnvsnapError may escape
# --------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_envsnap_errors(call: Callable[[], object]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a newer-minor warning is an allowed outcome
        with contextlib.suppress(EnvsnapError):
            call()


@FUZZ
@given(json_values)
def test_fuzz_manifest_from_arbitrary_json(value: Any) -> None:
    _only_envsnap_errors(lambda: Manifest.from_dict(value, source="<fuzz>"))


@FUZZ
@given(st.data())
def test_fuzz_manifest_from_mutated_real_manifests(good: Good, data: st.DataObject) -> None:
    manifest = json.loads(json.dumps(good.manifest))
    target: Any = manifest
    for _ in range(data.draw(st.integers(0, 2))):  # walk down 0-2 levels, then replace, add or delete a key
        keys = [k for k, v in target.items() if isinstance(v, dict)] if isinstance(target, dict) else []
        if not keys:
            break
        target = target[data.draw(st.sampled_from(sorted(keys)))]
    action = data.draw(st.sampled_from(["replace", "add", "delete"]))
    if action == "add" or not target:
        target[data.draw(st.text(max_size=12))] = data.draw(json_values)
    elif action == "replace":
        target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    else:
        del target[data.draw(st.sampled_from(sorted(target)))]
    _only_envsnap_errors(lambda: Manifest.from_dict(manifest, source="<fuzz>"))


@FUZZ
@given(raw=st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_open_snapshot_with_arbitrary_manifest_bytes(tmp_path: Path, good: Good, raw: bytes) -> None:
    path = tmp_path / "fuzz.envsnap"
    _zip(path, raw, [("env/python.json", good.members["env/python.json"])])
    _only_envsnap_errors(lambda: open_snapshot(path).verify())


@FUZZ
@given(
    st.text(max_size=400)
    | st.lists(st.sampled_from(["a==1", "  # via x", "-e ./p", "b @ file:///x", "\\", " # "]), max_size=8).map(
        "\n".join
    )
)
def test_fuzz_parse_lock(text: str) -> None:
    _only_envsnap_errors(lambda: parse_lock(text))


def _toml(value: Any) -> str:
    """A TOML inline value (JSON's escapes are TOML's, except for floats we never generate)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


toml_leaf = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=15)
    | st.sampled_from(["pandas", "arrow", "m:f", "."])
)
toml_values = st.recursive(
    toml_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
stage = st.dictionaries(st.sampled_from(["name", "call", "run", "inputs", "accepts", "extra"]), toml_values, max_size=5)
pipeline_table = st.dictionaries(
    st.sampled_from(["name", "inputs", "pythonpath", "accepts", "stages"]),
    toml_values | st.lists(stage, max_size=3),
    max_size=5,
)


@FUZZ
@given(text=st.text(max_size=300) | pipeline_table.map(lambda t: f"pipeline = {_toml(t)}\n"))
def test_fuzz_pipeline_config_loader(tmp_path: Path, text: str) -> None:
    config = tmp_path / "envsnap.toml"
    config.write_text(text, encoding="utf-8", errors="surrogatepass")
    _only_envsnap_errors(lambda: load_pipeline(config, cwd=tmp_path))
