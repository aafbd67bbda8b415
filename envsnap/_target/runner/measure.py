"""What the runner measures around a stage: peak resident memory and the modules it imported.

Peak memory is the resident set (RSS) high-water mark: on Linux the mark is reset just before the stage
(``echo 5 > /proc/self/clear_refs``) and read back after it (``VmHWM``), which is exact and costs two
small file operations. tracemalloc would be wrong here: it only sees allocations made through Python's
allocator (not pyarrow's memory pool, numpy's large buffers or BLAS workspaces) and slows allocation-
heavy code several-fold. Where the mark cannot be reset, a thread samples the RSS every 2 ms (it can
miss shorter spikes; the record says which method was used). ``run`` stages report their child's own
``ru_maxrss`` from ``wait4`` (see :mod:`.command`).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any


def _statm_rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _vmhwm() -> int | None:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class MemoryMeter:
    """Peak RSS of this process between :meth:`start` and :meth:`stop` (see the module docstring)."""

    def __init__(self) -> None:
        self.method = "vmhwm-reset" if _reset_hwm() and _vmhwm() is not None else "sampled"
        if self.method == "sampled" and _statm_rss() is None:
            self.method = "unavailable"
        self._start = 0
        self._peak = 0
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop_event.wait(0.002):
            rss = _statm_rss() or 0
            self._peak = max(self._peak, rss)

    def start(self) -> None:
        """Mark the start of the measured window."""
        self._start = _statm_rss() or 0
        self._peak = self._start
        if self.method == "vmhwm-reset":
            _reset_hwm()
        elif self.method == "sampled":
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._sample, name="envsnap-rss", daemon=True)
            self._thread.start()

    def stop(self) -> dict[str, Any]:
        """``{method, peak_rss_bytes, peak_rss_delta_bytes}`` of the window (None where unavailable)."""
        if self.method == "vmhwm-reset":
            self._peak = max(self._peak, _vmhwm() or 0)
        elif self.method == "sampled" and self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._peak = max(self._peak, _statm_rss() or 0)
        if self.method == "unavailable":
            return {"method": self.method, "peak_rss_bytes": None, "peak_rss_delta_bytes": None}
        return {
            "method": self.method,
            "peak_rss_bytes": self._peak,
            "peak_rss_delta_bytes": max(0, self._peak - self._start),
        }


def top_level_modules(names: Any) -> set[str]:
    """The top-level packages that the modules ``names`` belong to.

    Usually the first dotted component. But compiled extensions often register a flat name
    (scipy's ``_csparsetools`` lives in ``scipy/sparse/``): a module whose file sits inside another
    top-level package's directory on ``sys.path`` is counted as that package. Modules created at run time
    (no file, not a package; e.g. Cython's shared ``_cython_3_x`` module) belong to whoever imported them
    and are left out.
    """
    roots = sorted({os.path.join(os.path.abspath(p or os.curdir), "") for p in sys.path}, key=len, reverse=True)
    found = set()
    for name in names:
        top = name.partition(".")[0]
        if top != name:
            found.add(top)
            continue
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.startswith("<"):
            continue  # "<stdin>", "<string>": code made at run time
        if not isinstance(path, str):
            if getattr(module, "__path__", None) is not None or name in sys.builtin_module_names:
                found.add(top)  # a namespace package, or a builtin (the host drops the stdlib)
            continue
        path = os.path.abspath(path)
        owner = top
        for root in roots:
            if path.startswith(root):
                first = path[len(root) :].split(os.sep, 1)[0]
                owner = first.split(".", 1)[0] if os.sep not in path[len(root) :] else first
                break
        found.add(owner)
    return found


#: At most this many source files are recorded per stage (a stage importing a whole source tree).
MAX_SOURCE_FILES = 500


_INSTALL_DIRS: list[str] = []


def _library_dirs() -> tuple[str, ...]:
    """Where installed code lives: the standard library and every site/dist-packages directory."""
    if not _INSTALL_DIRS:  # sysconfig's paths never change in a process; asked once (0.15 ms a stage)
        import sysconfig

        paths = sysconfig.get_paths()
        wanted = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
        _INSTALL_DIRS.extend(os.path.join(os.path.abspath(p), "") for p in wanted if p)
    dirs = set(_INSTALL_DIRS)
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry):
            dirs.add(os.path.join(os.path.abspath(entry), ""))
    return tuple(dirs)


def source_files(names: Any, also: Any = ()) -> list[str]:
    """Absolute paths of the ``.py`` source files of modules ``names`` (and of the files ``also``) that are
    the user's own code: not installed (no prefix, no site-packages), not the runner's. Sorted, capped
    at :data:`MAX_SOURCE_FILES`."""
    libraries = _library_dirs()
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
    found = set()
    paths = [getattr(sys.modules.get(name), "__file__", None) for name in names]
    for given in [*paths, *also]:
        if not isinstance(given, str) or given.startswith("<") or not given.endswith(".py"):
            continue
        path = os.path.abspath(given)
        if path.startswith(here) or "site-packages" in path or "dist-packages" in path:
            continue
        if any(path.startswith(lib) for lib in libraries) or not os.path.isfile(path):
            continue
        found.add(path)
    return sorted(found)[:MAX_SOURCE_FILES]


def command_source_files(argv: list[str], cwd: str | None, pythonpath: list[str]) -> list[str]:
    """The project source a ``run`` stage's command runs: ``python -m pkg.tool`` (looked up on ``cwd`` and
    ``pythonpath``) or a ``*.py`` argument; what that code imports in its own process is not seen."""
    base = cwd or os.getcwd()
    roots = [base, *(p if os.path.isabs(p) else os.path.join(base, p) for p in pythonpath)]
    found: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "-m" and index + 1 < len(argv):
            module = argv[index + 1].replace(".", os.sep)
            for root in roots:
                for candidate in (os.path.join(root, module + ".py"), os.path.join(root, module, "__main__.py")):
                    if os.path.isfile(candidate):
                        found.append(candidate)
                        break
                if found:
                    break
            break
        if arg.endswith(".py"):
            found.append(arg if os.path.isabs(arg) else os.path.join(base, arg))
            break
    return source_files((), [f for f in found if os.path.isfile(f)])
