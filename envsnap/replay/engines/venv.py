"""The venv engine: the same plan in a local virtualenv, for machines without a container engine.

- **Python**: the captured version when this host has it (``pythonX.Y`` on ``PATH``, pyenv's and uv's
  interpreter directories), else the closest one of the same minor, else envsnap's own; the fidelity
  report states any mismatch.
- **Install**: the same hermetic wheelhouse and ``--require-hashes`` pins as the docker engine, with
  ``uv`` (from ``PATH``, else the wheelhouse's own uv wheel) when available, else pip; offline.
- **Cache**: the venv lives under the envsnap cache, named by the plan's image key, so a second replay of
  the same runtime reuses it.
- **Runs** get the plan's environment and nothing of the caller's but ``PATH``/``HOME``/``LANG``; there is
  no network, filesystem or memory isolation, and the report says so.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from envsnap.replay.engines.base import Engine, EngineError, Exit, InstallError, Mount, Prepared, Progress
from envsnap.replay.plan import ReplayPlan
from envsnap.replay.wheelhouse import cache_root, gather

__all__ = ["VenvEngine", "find_python"]

OUTPUT_TAIL = 8000


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> tuple[str, str, str | None]:
    """(interpreter, its version, a note when it is not the captured version) for ``version``."""
    minor = ".".join(version.split(".")[:2])
    candidates: list[str] = []
    for pattern in (
        os.path.expanduser(f"~/.pyenv/versions/{version}/bin/python{minor}"),
        os.path.expanduser(f"~/.local/share/uv/python/cpython-{version}-*/bin/python{minor}"),
        os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python{minor}"),
        os.path.expanduser(f"~/.local/share/uv/python/cpython-{minor}.*/bin/python{minor}"),
    ):
        candidates += sorted(glob.glob(pattern))
    for name in (f"python{minor}", "python3"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    candidates.append(sys.executable)
    seen: dict[str, str] = {}
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        got = _version_of(candidate)
        if got is None:
            continue
        seen[real] = got
        if got == version:
            return candidate, got, None
    same_minor = [(p, v) for p, v in seen.items() if v.startswith(minor + ".")]
    if same_minor:
        path, got = same_minor[0]
        return path, got, f"Python {version} is not on this host; using {got} ({path})"
    got = seen.get(os.path.realpath(sys.executable)) or sys.version.split()[0]
    return sys.executable, got, f"no Python {minor} on this host; using envsnap's own {got}"


def _uv(wheel_dir: Path, scratch: Path) -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    for wheel in wheel_dir.glob("uv-*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/scripts/uv")), None)
            if member is None:
                return None
            target = scratch / "uv"
            target.write_bytes(zf.read(member))
            target.chmod(0o755)
            return str(target)
    return None


class VenvEngine(Engine):
    """Builds a cached virtualenv from the wheelhouse and runs commands with its Python."""

    name = "venv"
    isolates = False

    def __init__(self, *, root: Path | None = None) -> None:
        self.root = root or cache_root() / "venvs"

    def prepare(self, plan: ReplayPlan, context: Path, progress: Progress) -> Prepared:
        started = time.perf_counter()
        python, got, note = find_python(plan.python_version)
        notes = (note,) if note else ()
        for installer in ("uv", "pip"):
            venv = self.root / plan.image_key(f"venv-{installer}-{got}")[:24]
            if (venv / ".envsnap-complete").is_file():
                os.utime(venv / ".envsnap-complete")  # most recently used: the last to be evicted
                progress("step", f"venv {venv} exists for this runtime: no rebuild")
                return Prepared("venv", str(venv), str(venv / "bin" / "python"), False, 0.0, installer, notes=notes)
        progress("step", f"gathering {len(plan.packages)} locked wheels for {plan.platform} (host pip, cached)")
        wheels = context / "wheels"
        wheelhouse = gather(plan, wheels, log=lambda m: progress("note", m))
        reqs = context / "requirements.txt"
        reqs.write_text(wheelhouse.requirements(), encoding="utf-8")
        uv = _uv(wheels, context)
        installer = "uv" if uv else "pip"
        venv = self.root / plan.image_key(f"venv-{installer}-{got}")[:24]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=self.root))
        progress("step", f"creating a venv with Python {got} and installing with {installer} (offline)")
        try:
            # Built under a temporary name and renamed: a killed build never looks complete. Only
            # bin/python is used from it, which does not depend on the venv's own path.
            self._run(
                [python, "-m", "venv", "--clear"] + (["--without-pip"] if uv else []) + [str(tmp)], "create the venv"
            )
            common = ["--no-index", "--find-links", str(wheels), "--no-deps", "--require-hashes", "-r", str(reqs)]
            if uv:
                self._run(
                    [
                        uv,
                        "pip",
                        "install",
                        "--offline",
                        "--no-cache",
                        "--compile-bytecode",
                        "--python",
                        str(tmp / "bin" / "python"),
                        *common,
                    ],
                    "install the locked wheels",
                )
            else:
                self._run(
                    [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *common],
                    "install the locked wheels",
                )
            (tmp / ".envsnap-complete").write_text(plan.requirements, encoding="utf-8")
            if venv.exists():
                shutil.rmtree(venv)
            os.replace(tmp, venv)
            self._evict(keep=venv)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Prepared(
            "venv",
            str(venv),
            str(venv / "bin" / "python"),
            True,
            time.perf_counter() - started,
            installer,
            notes=notes,
        )

    def _evict(self, keep: Path) -> None:
        """Keep the ``$ENVSNAP_VENV_CACHE_MAX`` (default 12) most recently used venvs; a bisect builds one per
        subset, each a few hundred MB."""
        try:
            limit = max(1, int(os.environ.get("ENVSNAP_VENV_CACHE_MAX", "12")))
        except ValueError:
            limit = 12
        done = [d for d in self.root.iterdir() if (d / ".envsnap-complete").is_file() and d != keep]
        done.sort(key=lambda d: (d / ".envsnap-complete").stat().st_mtime, reverse=True)
        for stale in done[limit - 1 :]:
            shutil.rmtree(stale, ignore_errors=True)

    @staticmethod
    def _run(argv: list[str], what: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
            error = InstallError if what == "install the locked wheels" else EngineError
            raise error(f"cannot {what}: {last[0][:300]}")

    @staticmethod
    def _environ(prepared: Prepared, env: dict[str, str]) -> dict[str, str]:
        base = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR") if k in os.environ}
        base["PATH"] = os.pathsep.join([str(Path(prepared.python).parent), "/usr/local/bin", "/usr/bin", "/bin"])
        base["VIRTUAL_ENV"] = prepared.reference
        base.update(env)
        return base

    def execute(
        self,
        prepared: Prepared,
        argv: list[str],
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        timeout: float | None = None,
    ) -> Exit:
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=self._environ(prepared, env),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"") if isinstance(exc.stdout, bytes) else (exc.stdout or "").encode()
            return Exit(-9, out.decode("utf-8", "replace")[-OUTPUT_TAIL:], timed_out=True)
        except OSError as exc:
            raise EngineError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        return Exit(proc.returncode, (proc.stdout + proc.stderr)[-OUTPUT_TAIL:])

    def shell_command(
        self,
        prepared: Prepared,
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        command: list[str] | None = None,
        tty: bool = True,
    ) -> tuple[list[str], dict[str, str]]:
        shell = os.environ.get("SHELL") or "/bin/sh"
        return list(command or [shell]), self._environ(prepared, env)
