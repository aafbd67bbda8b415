"""The venv engine: the same plan in a local virtualenv, for machines without a container engine.

- **Python**: the captured version when this host has it (``pythonX.Y`` on ``PATH``, pyenv's and uv's
  interpreter directories), else the closest one of the same minor, else envsnap's own; the fidelity
  report states any mismatch.
- **Install**: the same hermetic wheelhouse and ``--require-hashes`` pins as the docker engine, with
  ``uv`` (from ``PATH``, else the wheelhouse's own uv wheel) when available, else pip; offline.
- **Cache**: the venv lives in the replay venv cache (:mod:`envsnap.replay.cache`), keyed by the plan's
  image key, published whole and checked before every use; its files are hard links into uv's store,
  shared with every other venv (both engines), and its byte code goes to its own ``pycache/``.
- **Runs** get the plan's environment and nothing of the caller's but ``PATH``/``HOME``/``LANG``; there is
  no network, filesystem or memory isolation, and the report says so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envsnap.replay.cache import VenvStore, raise_if_disk_full
from envsnap.replay.dockerfile import WARM_SNIPPET, warm_modules
from envsnap.replay.engines.base import Engine, EngineError, Exit, InstallError, Mount, Prepared, Progress
from envsnap.replay.plan import ReplayPlan
from envsnap.replay.wheelhouse import gather

__all__ = ["VenvEngine", "find_python", "venv_key"]

OUTPUT_TAIL = 8000
WARM_TIMEOUT_S = 120


def venv_key(plan: ReplayPlan, installer: str, python_version: str) -> str:
    """The cache key of the venv engine's venv for ``plan``."""
    return "venv-" + plan.image_key(f"venv-{installer}-{python_version}")[:24]


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


class VenvEngine(Engine):
    """Builds a cached virtualenv from the wheelhouse and runs commands with its Python."""

    name = "venv"
    isolates = False

    def __init__(self, *, root: Path | None = None) -> None:
        self.store = VenvStore(root)
        self.root = self.store.root

    def prepare(self, plan: ReplayPlan, context: Path, progress: Progress) -> Prepared:
        started = time.perf_counter()
        python, got, note = find_python(plan.python_version)
        notes: tuple[str, ...] = (note,) if note else ()
        store = self.store
        for installer in ("uv", "pip"):
            key = venv_key(plan, installer, got)
            store.use(key)
            if store.check(key) is None:
                store.touch(key)
                progress("step", f"venv {store.entry(key)} exists for this runtime: no rebuild")
                return self._prepared(key, False, 0.0, installer, notes)

        def waiting() -> None:
            progress("step", "another envsnap is building this runtime's venv: waiting for it")

        progress("step", f"gathering {len(plan.packages)} locked wheels for {plan.platform} (host pip, cached)")
        wheels = context / "wheels"
        wheelhouse = gather(plan, wheels, log=lambda m: progress("note", m))
        reqs = context / "requirements.txt"
        reqs.write_text(wheelhouse.requirements(), encoding="utf-8")
        with store.writing(venv_key(plan, "uv", got)):
            linked, uv_rel = store.link_wheels(wheelhouse)
        uv = shutil.which("uv") or (str(store.root / uv_rel) if uv_rel else None)
        installer = "uv" if uv else "pip"
        key = venv_key(plan, installer, got)
        store.use(key)
        with store.building(key, waiting):
            problem = store.check(key)
            if problem is None:
                store.touch(key)
                progress("step", f"venv {store.entry(key)} was built meanwhile by another envsnap: reused")
                return self._prepared(key, False, time.perf_counter() - started, installer, notes)
            if problem != "not built":
                rebuilt = f"the cached venv {key} changed since it was built ({problem}): rebuilt"
                progress("note", rebuilt)
                notes = (*notes, rebuilt)
            progress("step", f"creating a venv with Python {got} and installing with {installer} (offline)")
            with store.writing(key):
                build = store.new_build(key)
            try:
                self._install(python, uv, build / "venv", store.root / linked, reqs, refresh=problem != "not built")
                with store.writing(key):
                    (build / "pycache").mkdir()
                    store.publish(build, key, {"engine": "venv", "python": got, "interpreter": python})
            except BaseException:
                store.discard(build)
                raise
            self._warm(plan, key, progress)
        store.touch(key)
        store.evict(protect=key)
        return self._prepared(key, True, time.perf_counter() - started, installer, notes)

    def _prepared(self, key: str, built: bool, seconds: float, installer: str, notes: tuple[str, ...]) -> Prepared:
        entry = self.store.entry(key)
        venv = entry / "venv"
        # Replays run their code from private directories under the temporary directory: the byte code of
        # earlier replays' copies would only pile up.
        shutil.rmtree(entry / "pycache" / tempfile.gettempdir().lstrip("/"), ignore_errors=True)
        return Prepared(
            "venv",
            str(venv),
            str(venv / "bin" / "python"),
            built,
            seconds,
            installer,
            notes=notes,
            env=(("PYTHONPYCACHEPREFIX", str(entry / "pycache")),),
        )

    def _install(self, python: str, uv: str | None, venv: Path, wheels: Path, reqs: Path, *, refresh: bool) -> None:
        """The venv at ``venv``: relocatable (it is renamed into place when complete), the wheels installed
        offline and hash-checked, hard-linked from uv's cache (one copy of each file for every venv), not
        byte-compiled (byte code goes to the venv's own cache on first import)."""
        common = ["--no-index", "--find-links", str(wheels), "--no-deps", "--require-hashes", "-r", str(reqs)]
        if uv:
            environ = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
            self._run(
                [uv, "venv", "--quiet", "--offline", "--relocatable", "--python", python, str(venv)],
                "create the venv",
                environ,
            )
            self._run(
                [
                    uv,
                    "pip",
                    "install",
                    # After a cached file changed: it may be a hard link into uv's cache, so unpack afresh.
                    "--refresh" if refresh else "--offline",
                    "--cache-dir",
                    str(self.store.uv_cache),
                    "--link-mode",
                    "hardlink",
                    "--no-compile",
                    "--python",
                    str(venv / "bin" / "python"),
                    *common,
                ],
                "install the locked wheels",
                environ,
            )
            return
        self._run([python, "-m", "venv", "--clear", str(venv)], "create the venv")
        self._run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *common],
            "install the locked wheels",
        )

    def _warm(self, plan: ReplayPlan, key: str, progress: Progress) -> None:
        """Compile the byte code of what the recorded stages imported into the venv's cache, as a replay would."""
        modules = list(warm_modules(plan))
        if not modules:
            return
        entry = self.store.entry(key)
        progress("step", f"compiling the byte code of {len(modules)} recorded import(s) into the venv's cache")
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [str(entry / "venv" / "bin" / "python"), "-c", WARM_SNIPPET, *modules],
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPYCACHEPREFIX": str(entry / "pycache")},
                capture_output=True,
                timeout=WARM_TIMEOUT_S,
                check=False,
            )

    @staticmethod
    def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            text = proc.stderr + proc.stdout
            raise_if_disk_full(text, Path(argv[-1]).parent)
            last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
            error = InstallError if what == "install the locked wheels" else EngineError
            raise error(f"cannot {what}: {last[0][:300]}")

    @staticmethod
    def _environ(prepared: Prepared, env: dict[str, str], plan: ReplayPlan) -> dict[str, str]:
        base = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR") if k in os.environ}
        base["PATH"] = os.pathsep.join([str(Path(prepared.python).parent), "/usr/local/bin", "/usr/bin", "/bin"])
        base["VIRTUAL_ENV"] = prepared.reference
        base.update(env)
        own = dict(prepared.env)
        if "PYTHONPYCACHEPREFIX" in own and "PYTHONDONTWRITEBYTECODE" not in plan.env:
            # Byte code goes to the venv's own cache, never next to the job's sources.
            base.pop("PYTHONDONTWRITEBYTECODE", None)
            base["PYTHONPYCACHEPREFIX"] = own["PYTHONPYCACHEPREFIX"]
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
                env=self._environ(prepared, env, plan),
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
        return list(command or [shell]), self._environ(prepared, env, plan)
