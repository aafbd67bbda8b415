"""Build the benchmark virtualenvs under bench/.venvs/, idempotently.

Venvs (see bench/README.md for why each exists):

* ``ml``         -- the ~26-distribution ML environment of the capture goals (numpy, pandas,
                    scikit-learn, ...), pip >= 25;
* ``big``        -- a realistic 300+ distribution environment (web, cloud, notebook, docs and test stacks);
* ``tools``      -- the peer tools (cyclonedx-bom, pipdeptree, uv), kept apart so that they never change
                    the distribution counts of the measured venvs;
* ``ml-envsnap`` -- the ``ml`` set plus envsnap's dependencies (its own lock) and envsnap itself (editable,
                    ``--no-deps``), for the in-process ``envsnap.capture.capture()`` figure inside a real ML job.

Each venv is installed from the pinned, hashed lock ``requirements/NAME.lock.txt`` with ``--require-hashes
--no-deps``, so every run measures exactly the same distributions and a file that changed on the index fails
the install. A lock that does not exist yet (or ``--relock``) is resolved from ``requirements/NAME.in`` and
written back; ``--rehash`` only recomputes the hashes of the pins already there. Hashes come from
``uv pip compile --no-deps --generate-hashes`` (the uv of envsnap's own dev lock). A venv whose lock,
interpreter and options are unchanged since it was built is left alone (the stamp file
``.venvs/NAME/.bench-stamp`` records them).

pip is always called with the host's configuration (pip.conf, PIP_* variables): nothing is overridden.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
REQS = BENCH / "requirements"
MIN_PIP = "pip>=25"


@dataclass(frozen=True)
class VenvSpec:
    """What one benchmark venv holds."""

    name: str
    requirements: str  # stem of requirements/<stem>.in (and of <name>.lock.txt)
    editable_envsnap: bool = False  # add `pip install --no-deps -e <repo>` on top of the lock

    @property
    def lock(self) -> Path:
        return REQS / f"{self.name}.lock.txt"

    @property
    def path(self) -> Path:
        return VENVS / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


SPECS = {
    spec.name: spec
    for spec in (
        VenvSpec("ml", "ml"),
        VenvSpec("big", "big"),
        VenvSpec("tools", "tools"),
        VenvSpec("ml-envsnap", "ml", editable_envsnap=True),
    )
}


def _run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def _pip(spec: VenvSpec, *args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return _run([spec.python, "-m", "pip", *args], **kwargs)


def _stamp(spec: VenvSpec, base_python: str) -> str:
    """A digest of everything that decides a venv's content: lock text, interpreter, options."""
    lock = spec.lock
    version = subprocess.run(
        [base_python, "-c", "import sys; print(sys.version)"], check=True, capture_output=True, text=True
    ).stdout
    parts = [lock.read_text(encoding="utf-8"), version, str(spec.editable_envsnap), str(REPO)]
    if spec.editable_envsnap:
        # envsnap's own dependencies come from pyproject.toml: a new one must rebuild the venv.
        parts.append((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _distribution_count(spec: VenvSpec) -> int:
    out = _pip(spec, "list", "--format=json", capture_output=True).stdout
    return len(json.loads(out))


def _hashed(pins: list[str]) -> str:
    """``pins`` (``name==version`` lines) with every file's ``--hash``, for this Python on x86_64 Linux."""
    uv = REPO / ".venv" / "bin" / "uv"
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp:
        source = Path(tmp) / "pins.txt"
        source.write_text("\n".join(pins) + "\n", encoding="utf-8")
        version = ".".join(map(str, sys.version_info[:3]))  # requires-python may name a patch release
        argv = [uv, "pip", "compile", "--quiet", "--native-tls", "--no-header", "--no-annotate", "--no-deps"]
        argv += ["--generate-hashes", "--python-version", version, "--python-platform", "x86_64-manylinux_2_28"]
        return _run([*argv, source], capture_output=True).stdout


def _write_lock(spec: VenvSpec, pins: list[str]) -> None:
    header = (
        f"# Pinned by bench/setup_venvs.py from requirements/{spec.requirements}.in "
        f"(Python {sys.version_info.major}.{sys.version_info.minor}), hashed by uv pip compile.\n"
        "# Regenerate with: python bench/setup_venvs.py --relock (or --rehash to keep the pins)\n"
    )
    spec.lock.write_text(header + _hashed(pins), encoding="utf-8")


def _frozen(spec: VenvSpec) -> list[str]:
    # --all keeps pip and setuptools pinned too: they are distributions of the venv like any other. The
    # editable envsnap is the code under test, not a pin.
    frozen = _pip(spec, "freeze", "--all", "--exclude-editable", capture_output=True).stdout
    return sorted((line for line in frozen.splitlines() if line.strip()), key=str.lower)


def _pins(lock: Path) -> list[str]:
    """The ``name==version`` lines of a lock, hashed or not."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    return [line.split()[0] for line in lines if "==" in line and not line.startswith(("#", " "))]


def build(spec: VenvSpec, base_python: str, *, relock: bool, force: bool) -> None:
    """Create (or recreate) one venv unless its stamp says it is up to date."""
    lock = spec.lock
    stamp_file = spec.path / ".bench-stamp"
    fresh = lock.exists() and not relock and not force and spec.python.exists() and stamp_file.exists()
    if fresh and stamp_file.read_text(encoding="utf-8").strip() == _stamp(spec, base_python):
        print(f"[{spec.name}] up to date: {_distribution_count(spec)} distributions", flush=True)
        return
    if spec.path.exists():
        shutil.rmtree(spec.path)
    _run([base_python, "-m", "venv", spec.path])
    if lock.exists() and not relock:
        _pip(spec, "install", "--require-hashes", "--no-deps", "-r", lock)
        if spec.editable_envsnap:
            _pip(spec, "install", "--no-deps", "--no-build-isolation", "-e", REPO)
    else:
        _pip(spec, "install", "--upgrade", MIN_PIP)
        if spec.editable_envsnap:
            # the ml set as locked, then envsnap's dependencies resolved around it
            _pip(spec, "install", "--require-hashes", "--no-deps", "-r", SPECS[spec.requirements].lock)
            _pip(spec, "install", "setuptools>=77", "-e", REPO)
        else:
            _pip(spec, "install", "-r", REQS / f"{spec.requirements}.in")
        _write_lock(spec, _frozen(spec))
    check = subprocess.run([spec.python, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        print(f"[{spec.name}] WARNING pip check:\n{check.stdout}{check.stderr}", flush=True)
    stamp_file.write_text(_stamp(spec, base_python) + "\n", encoding="utf-8")
    print(f"[{spec.name}] built: {_distribution_count(spec)} distributions", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Build the requested venvs (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"venvs to build: {', '.join(SPECS)} (default: all)")
    parser.add_argument("--python", default=sys.executable, help="base interpreter for the venvs")
    parser.add_argument("--relock", action="store_true", help="resolve requirements/*.in again and rewrite locks")
    parser.add_argument("--rehash", action="store_true", help="recompute the hashes of the locks' pins, build nothing")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SPECS))
    if unknown:
        parser.error(f"unknown venv(s) {', '.join(unknown)}; known: {', '.join(SPECS)}")
    VENVS.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(args.names or SPECS))
    # ml-envsnap installs from ml's lock: make sure that lock exists before it is used.
    names.sort(key=lambda n: n == "ml-envsnap")
    if "ml-envsnap" in names and "ml" not in names and not (REQS / "ml.lock.txt").exists():
        names.insert(0, "ml")
    if args.rehash:
        for name in names:
            _write_lock(SPECS[name], _pins(SPECS[name].lock))
        return 0
    for name in names:
        build(SPECS[name], args.python, relock=args.relock, force=args.force)
    return 0


def ensure(names: list[str]) -> str | None:
    """Build the named venvs when missing or stale (as :func:`main`); None when they are ready, else one line
    saying why not, for a bench script to print instead of a traceback."""
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    try:
        main(names)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(a) for a in exc.cmd[:4]) if isinstance(exc.cmd, list) else str(exc.cmd)
        return f"building bench/.venvs/{{{','.join(names)}}} failed: `{command} ...` exited {exc.returncode}"
    except OSError as exc:
        return f"building bench/.venvs/{{{','.join(names)}}} failed: {exc}"
    return None


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    sys.exit(main())
