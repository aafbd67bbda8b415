"""The hermetic wheelhouse: the locked wheels for the *target* platform, in a content-addressed cache.

The host downloads (``pip download --only-binary=:all: --no-deps --platform ... --python-version ...``)
with its own pip configuration — index, proxy, credentials stay on the host — so the image build needs
no network and no credential ever enters a layer. Each wheel is stored once, under its sha256
(``blobs/<hex>``); ``index.json`` maps a target and a pin to a blob. A replay's build context gets
hard links (or copies) of the blobs, re-hashed on the way: a wheel altered in the cache fails here, and
the install pins every file by ``--hash`` as well.

``uv`` goes into the wheelhouse too (its own ``manylinux`` wheel, pinned): the image installs with it
when it is there, else with pip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from envsnap.core.hashing import hash_file
from envsnap.core.naming import normalize_name
from envsnap.errors import EnvsnapError
from envsnap.replay.plan import Package, ReplayPlan

__all__ = [
    "NoDistributionError",
    "TamperedWheelError",
    "Target",
    "Wheel",
    "WheelCache",
    "Wheelhouse",
    "WheelhouseError",
    "cache_root",
    "describe",
    "gather",
]

UV_VERSION = "0.13.9"
DOWNLOAD_TIMEOUT_S = 1800
DOWNLOAD_PROCESSES = 4
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)(?:==([^\s]+))?")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9._-]+)(?:==([^\s]+))?")


class WheelhouseError(EnvsnapError):
    """The locked wheels could not be gathered for the target platform."""


class NoDistributionError(WheelhouseError, ValueError):
    """A locked package has no wheel for the target platform on the configured index."""

    def __init__(self, pin: str, target: str, detail: str) -> None:
        super().__init__(
            f"{pin} has no distribution for the target platform ({target}) on the configured index",
            hint=f"pick another version with --with, or replay with --engine venv ({detail})",
        )
        self.pin = pin


class TamperedWheelError(WheelhouseError):
    """A cached wheel's bytes no longer match the sha256 it was stored under."""


def cache_root() -> Path:
    """``$ENVSNAP_CACHE_DIR``, else ``$XDG_CACHE_HOME/envsnap``, else ``~/.cache/envsnap``."""
    explicit = os.environ.get("ENVSNAP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "envsnap"


@dataclass(frozen=True)
class Target:
    """The platform the wheels are for: what ``pip download`` is told instead of the host's own."""

    implementation: str
    python_version: str
    machine: str
    glibc: str | None

    @classmethod
    def of(cls, plan: ReplayPlan) -> Target:
        machine = plan.platform.split("-", 1)[-1] if "-" in plan.platform else "x86_64"
        choice = plan.platform_choice
        if choice is not None and choice.mode == "rebuilt":
            machine = choice.host  # wheels of the same versions for the host (envsnap/replay/platforms.py)
        return cls(plan.python_implementation, plan.python_version, machine, plan.glibc)

    @property
    def key(self) -> str:
        return f"{self.implementation}-{self.python_version}-{self.machine}-glibc{self.glibc or 'unknown'}"

    def platforms(self) -> list[str]:
        """Every manylinux tag a system with this glibc accepts, newest first, and the legacy aliases."""
        major, minor = 2, 17
        if self.glibc and re.match(r"^\d+\.\d+$", self.glibc):
            major, minor = (int(x) for x in self.glibc.split("."))
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)] if major == 2 else []
        tags += [f"manylinux2014_{self.machine}", f"manylinux2010_{self.machine}", f"manylinux1_{self.machine}"]
        return tags

    def pip_args(self) -> list[str]:
        short = "".join(self.python_version.split(".")[:2])
        impl = {"cpython": "cp", "pypy": "pp"}.get(self.implementation, "cp")
        args = ["--only-binary=:all:", "--implementation", impl, "--python-version", short]
        for abi in (f"{impl}{short}", "abi3", "none"):
            args += ["--abi", abi]
        for platform in self.platforms():
            args += ["--platform", platform]
        return args


@dataclass(frozen=True)
class Wheel:
    """A wheel in the wheelhouse: the pin it serves, its file name and sha256."""

    pin: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Wheelhouse:
    """The wheels a build context carries, and whether ``uv`` is among them."""

    directory: Path
    wheels: tuple[Wheel, ...]
    uv: Wheel | None
    downloaded: int
    cached: int

    def requirements(self) -> str:
        """A ``--require-hashes`` requirements file: every pin with the sha256 of its file."""
        return "".join(f"{w.pin} --hash=sha256:{w.sha256}\n" for w in self.wheels)


class WheelCache:
    """The content-addressed store: ``blobs/<sha256>/<filename>`` and ``index.json``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "wheels"
        self.index_path = self.root / "index.json"

    def _load(self) -> dict[str, dict[str, dict[str, str]]]:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, target: Target, pin: str) -> Wheel | None:
        entry = self._load().get(target.key, {}).get(pin)
        if not entry:
            return None
        blob = self.root / "blobs" / entry["sha256"] / entry["filename"]
        return Wheel(pin, entry["filename"], entry["sha256"]) if blob.is_file() else None

    def store(self, target: Target, pin: str, path: Path) -> Wheel:
        digest = hash_file(str(path))[0]
        blob_dir = self.root / "blobs" / digest
        blob_dir.mkdir(parents=True, exist_ok=True)
        blob = blob_dir / path.name
        if not blob.exists():
            tmp = blob_dir / f".{path.name}.tmp{os.getpid()}"
            shutil.copyfile(path, tmp)
            os.replace(tmp, blob)
        index = self._load()
        index.setdefault(target.key, {})[pin] = {"filename": path.name, "sha256": digest}
        tmp_index = self.index_path.with_name(f".index.{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps(index, sort_keys=True, indent=1), encoding="utf-8")
        os.replace(tmp_index, self.index_path)
        return Wheel(pin, path.name, digest)

    def place(self, wheel: Wheel, directory: Path) -> None:
        """Link (else copy) a cached wheel into ``directory``, checking its bytes against its sha256."""
        blob = self.root / "blobs" / wheel.sha256 / wheel.filename
        if hash_file(str(blob))[0] != wheel.sha256:
            raise TamperedWheelError(
                f"the cached wheel {blob} does not match its sha256 {wheel.sha256[:12]}…",
                hint=f"delete {blob.parent} and replay again to download it afresh",
            )
        dest = directory / wheel.filename
        try:
            os.link(blob, dest)
        except OSError:
            shutil.copyfile(blob, dest)


def _wheel_pin(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return normalize_name(name), version


def _download(pins: list[str], target: Target, dest: Path, log: Callable[[str], None] | None) -> None:
    """``pip download`` the pins for ``target`` into ``dest``: several pip processes at once, since each
    one fetches its files one after the other and most of a cold download is waiting on the index."""
    if log is not None:
        log(f"downloading {len(pins)} wheel(s) for {target.key}")
    groups = [pins[i::DOWNLOAD_PROCESSES] for i in range(min(DOWNLOAD_PROCESSES, len(pins)))]
    procs = []
    for group in groups:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
        cmd += ["-d", str(dest), *target.pip_args(), *group]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    failures = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            for other in procs:
                other.kill()
            raise WheelhouseError(f"pip download did not finish within {DOWNLOAD_TIMEOUT_S} s") from exc
        if proc.returncode != 0:
            failures.append((proc.returncode, err + out))
    if not failures:
        return
    code, text = failures[0]
    for pattern in (_NO_MATCH, _NO_VERSION):
        match = pattern.search(text)
        if match:
            pin = f"{match.group(1)}=={match.group(2)}" if match.group(2) else match.group(1)
            raise NoDistributionError(pin, target.key, "no wheel for it")
    last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no output"]
    raise WheelhouseError(f"pip download failed (exit {code}): {last[0][:300]}")


def gather(
    plan: ReplayPlan,
    directory: Path,
    *,
    cache: WheelCache | None = None,
    with_uv: bool = True,
    log: Callable[[str], None] | None = None,
) -> Wheelhouse:
    """Put a wheel for every package of ``plan`` (and uv) into ``directory``; download what is missing."""
    cache = cache or WheelCache()
    target = Target.of(plan)
    directory.mkdir(parents=True, exist_ok=True)
    wanted: list[Package] = list(plan.packages)
    pins = [p.pin for p in wanted if p.source in ("index", "url-wheel")]
    # A wheel installed from a URL is fetched from that URL (by the host's pip, with its configuration).
    sources = {p.pin: (p.path or p.pin) if p.source == "url-wheel" else p.pin for p in wanted}
    uv_pin = f"uv=={UV_VERSION}"
    uv_target = Target("cpython", plan.python_version, target.machine, target.glibc)
    missing = [pin for pin in pins if cache.lookup(target, pin) is None]
    uv_missing = with_uv and cache.lookup(uv_target, uv_pin) is None
    if missing or uv_missing:
        with tempfile.TemporaryDirectory(prefix="envsnap-wheels-") as tmp, ThreadPoolExecutor(2) as pool:
            tmp_path = Path(tmp)
            uv_dir = tmp_path / "uv"
            uv_dir.mkdir()
            # uv's own wheel is fetched at the same time as the locked ones: on a cold cache, one more pip
            # process waiting on the index costs nothing next to the others.
            uv_fetch = pool.submit(_download, [uv_pin], uv_target, uv_dir, None) if uv_missing else None
            if missing:
                _download([sources[pin] for pin in missing], target, tmp_path, log)
            by_pin = {}
            for path in tmp_path.glob("*.whl"):
                by_pin[_wheel_pin(path.name)] = path
            for pin in missing:
                name, _, version = pin.partition("==")
                found_path: Path | None = by_pin.get((normalize_name(name), version)) or next(
                    (p for (n, _v), p in by_pin.items() if n == normalize_name(name)), None
                )
                if found_path is None:
                    raise NoDistributionError(pin, target.key, "pip downloaded no wheel for it")
                cache.store(target, pin, found_path)
            if uv_fetch is not None:
                try:
                    uv_fetch.result()
                    uv_file = next(uv_dir.glob("*.whl"))
                    cache.store(uv_target, uv_pin, uv_file)
                except (WheelhouseError, StopIteration):
                    pass  # no uv for this platform: the image installs with pip
    wheels: list[Wheel] = []
    for package in wanted:
        if package.source == "local-wheel" and package.path:
            local = Path(package.path)
            if not local.is_file():
                raise WheelhouseError(f"{package.pin} was installed from {local}, which no longer exists")
            wheel = cache.store(target, package.pin, local)
        else:
            found = cache.lookup(target, package.pin)
            if found is None:
                raise NoDistributionError(package.pin, target.key, "not in the wheel cache after download")
            wheel = found
        cache.place(wheel, directory)
        wheels.append(wheel)
    uv = cache.lookup(uv_target, uv_pin) if with_uv else None
    if uv is not None:
        cache.place(uv, directory)
    return Wheelhouse(
        directory=directory,
        wheels=tuple(wheels),
        uv=uv,
        downloaded=len(missing),
        cached=len(pins) - len(missing),
    )


def describe(wheels: Iterable[Wheel]) -> list[str]:
    return [f"{w.filename} sha256:{w.sha256[:12]}" for w in wheels]
