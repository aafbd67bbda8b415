"""envsnap's job bootstrap: what an unmodified Python job raised, and which files it opened.

``envsnap run -- COMMAND`` puts the directory holding this file first on the job's ``PYTHONPATH``, so every
Python process of the job (children included: they inherit the environment) imports it as its
``sitecustomize`` at start-up. It then, without printing anything and without raising into the job:

* takes its own directory off ``sys.path``, so the job sees the ``sys.path`` it would have had;
* records the uncaught exception through a ``sys.excepthook`` that calls the previous hook too (the job's
  stderr is unchanged); if the job replaced the hook without chaining, the exception the interpreter
  leaves in ``sys.last_value`` is recorded at exit instead. ``SystemExit`` never reaches the hook: a job
  that exits with ``sys.exit(3)`` has no exception;
* with ``ENVSNAP_JOBHOOK_AUDIT=1``, adds a PEP 578 audit hook listing the files opened for reading and
  writing (not the interpreter's own files, Python sources and byte code, ``/proc``, ``/sys``, ``/dev``),
  at most :data:`MAX_FILES` of them;
* writes ``$ENVSNAP_JOBHOOK_REPORTS/<pid>.json`` at exit (and at once when an exception is recorded, in
  case the interpreter dies while finalizing), atomically: a temporary file renamed into place;
* last, runs the user's own ``sitecustomize`` if one exists further on ``sys.path``, under that name (its
  errors are reported by ``site`` exactly as they would be without envsnap); ``usercustomize`` is then run
  by ``site`` as usual.

The file keeps to a syntax that even Python 2.7 parses (no annotations, no f-strings): an old interpreter
started by the job imports it too, and must only see its own ``sitecustomize``. Recording needs 3.8.
Imported under another name (envsnap's own tests, ``_envsnap_target.jobhook.sitecustomize``), it does nothing.
"""

import os
import sys

#: Files listed per process, reading and writing together; more set ``truncated``.
MAX_FILES = 2000
#: The formatted traceback keeps its last 64 KiB (the message its first); the frames their innermost ones.
MAX_TRACEBACK = 65536
MAX_FRAMES = 200
#: Opened paths never listed: the interpreter's own files, pseudo file systems, code.
_SKIP_DIRS = ("/proc/", "/sys/", "/dev/", "/usr/share/zoneinfo/")
_SKIP_SUFFIXES = (".py", ".pyc", ".pyo", ".pth")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def type_name(exc_type):
    """``module.Qualname`` of an exception class, without the ``builtins.`` prefix."""
    module = getattr(exc_type, "__module__", None) or ""
    name = getattr(exc_type, "__qualname__", None) or getattr(exc_type, "__name__", "?")
    return name if module in ("builtins", "exceptions", "") else module + "." + name


def _frame_file(filename):
    if not filename or filename.startswith("<"):
        return filename or "<unknown>"
    return os.path.abspath(filename)


def exception_record(exc_type, value, tb):
    """RAW_EXCEPTION: ``{type, message, traceback (last 64 KiB), frames (innermost last)}``."""
    import traceback

    try:
        message = str(value)
    except Exception:  # a broken __str__ must not cost the record
        message = "<unprintable " + type_name(exc_type) + ">"
    try:
        text = "".join(traceback.format_exception(exc_type, value, tb))
    except Exception:
        text = ""
    frames = []
    for entry in traceback.extract_tb(tb)[-MAX_FRAMES:]:
        frames.append({"file": _frame_file(entry.filename), "line": entry.lineno or 0, "function": entry.name})
    return {
        "type": type_name(exc_type),
        "message": message[:MAX_TRACEBACK],
        "traceback": text[-MAX_TRACEBACK:],
        "frames": frames,
    }


class _Recorder:
    """The state of one process: when it started, what it raised, which files it opened."""

    def __init__(self, reports, audit):
        import time

        self.time = time.time
        self.reports = reports
        self.audit = audit
        self.started = self.time()
        self.exception = None
        self.read = set()
        self.written = set()
        self.truncated = False
        self.skip_prefixes = ()

    # -- the audit hook --------------------------------------------------------------------------------
    def start_audit(self, own_dirs):
        prefixes = set(_SKIP_DIRS)
        for directory in self._interpreter_dirs() + list(own_dirs):
            if directory and os.path.isabs(directory) and directory != os.sep:
                prefixes.add(os.path.join(os.path.abspath(directory), ""))
        self.skip_prefixes = tuple(sorted(prefixes))
        read, written, skip, suffixes, getcwd = self.read, self.written, self.skip_prefixes, _SKIP_SUFFIXES, os.getcwd
        isabs, fsdecode, write_flags, recorder = os.path.isabs, os.fsdecode, _WRITE_FLAGS, self

        def hook(event, args):
            # Called for every audited event of the process (tens of thousands when pandas imports):
            # everything but "open" leaves on the first comparison.
            if event != "open":
                if event == "os.rename":
                    renamed(args)
                return
            try:
                path, mode, flags = args
                if path.__class__ is not str:
                    if path.__class__ is int:
                        return  # an already open descriptor
                    path = fsdecode(path)  # bytes, or a path-like object
                if path.endswith(suffixes) or path.startswith(skip):
                    return
                if not isabs(path):
                    path = os.path.join(getcwd(), path)
                if mode is None:
                    writing = bool(flags & write_flags)
                else:
                    writing = "w" in mode or "a" in mode or "x" in mode or "+" in mode
                target = written if writing else read
                if path in target:
                    return
                if len(read) + len(written) >= MAX_FILES:
                    recorder.truncated = True
                    return
                target.add(path)
            except Exception:  # an audit hook that raises would fail the job's open()
                return

        def renamed(args):
            # A file written under a temporary name and renamed into place is listed under its final name.
            try:
                source, destination = args[0], args[1]
                if source.__class__ is str and destination.__class__ is str:
                    source = source if isabs(source) else os.path.join(getcwd(), source)
                    if source in written:
                        written.discard(source)
                        written.add(destination if isabs(destination) else os.path.join(getcwd(), destination))
            except Exception:
                return

        sys.addaudithook(hook)

    @staticmethod
    def _interpreter_dirs():
        dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
        return dirs + stdlib_dirs() + site_dirs()

    # -- the exception ---------------------------------------------------------------------------------
    def chain_excepthook(self):
        previous = sys.excepthook
        recorder = self

        def excepthook(exc_type, value, tb):
            try:
                # The interpreter sets sys.last_value before it calls the hook for the uncaught exception;
                # a library calling the hook itself to print an error it then handles is not a failure.
                if recorder.exception is None and value is not None and _is_last(value):
                    recorder.exception = exception_record(exc_type, value, tb)
                    recorder.write()
            except BaseException:
                pass
            previous(exc_type, value, tb)

        sys.excepthook = excepthook

    @staticmethod
    def _last_exception():
        """The uncaught exception the interpreter left in ``sys.last_value`` when the job replaced our hook."""
        value = _last_value()
        if value is None or isinstance(value, SystemExit):
            return None
        return exception_record(type(value), value, getattr(value, "__traceback__", None))

    # -- the report ------------------------------------------------------------------------------------
    def after_fork(self):
        self.started = self.time()
        self.exception = None
        self.read.clear()
        self.written.clear()
        self.truncated = False

    def at_exit(self):
        try:
            if self.exception is None:
                self.exception = self._last_exception()
            self.write()
        except BaseException:
            pass

    def report(self):
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "argv": [str(a) for a in getattr(sys, "argv", [])],
            "started": self.started,
            "ended": self.time(),
            "python": python_facts(),
            "exception": self.exception,
            "files": {
                "read": _existing(self.read),
                "written": _existing(self.written),
                "truncated": self.truncated,
                "detected": "audit-hook" if self.audit else "none",
            },
        }

    def write(self):
        import json

        # The files the report itself opens are not listed: they are under the reports directory.
        document = self.report()
        if not os.path.isdir(self.reports):
            os.makedirs(self.reports)
        final = os.path.join(self.reports, str(document["pid"]) + ".json")
        temporary = final + ".tmp"
        text = json.dumps(document, sort_keys=True)
        with open(temporary, "w") as handle:
            handle.write(text)
        os.replace(temporary, final)


def _existing(paths):
    """The files among ``paths`` that exist now: failed opens (the import system tries many) and temporary
    files are left out."""
    return sorted({os.path.normpath(path) for path in list(paths) if os.path.isfile(path)})


def _last_value():
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


def _is_last(value):
    return getattr(sys, "last_value", None) is value or getattr(sys, "last_exc", None) is value


def site_dirs():
    """The directories the interpreter's distributions are installed in (site-packages, user site)."""
    import site

    found = []
    try:
        found.extend(site.getsitepackages())
    except Exception:
        pass
    try:
        if site.ENABLE_USER_SITE:
            found.append(site.getusersitepackages())
    except Exception:
        pass
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            found.append(entry)
    out = []
    for entry in found:
        directory = os.path.abspath(entry)
        if directory not in out and os.path.isdir(directory):
            out.append(directory)
    return out


def stdlib_dirs():
    """The standard library's directory (``lib-dynload`` is inside it)."""
    return [os.path.dirname(os.path.abspath(os.__file__))]


def python_facts():
    """``{executable, prefix, base_prefix, version, site_dirs, stdlib_dirs}`` of this interpreter."""
    return {
        "stdlib_dirs": stdlib_dirs(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "version": ".".join(str(part) for part in sys.version_info[:3]),
        "site_dirs": site_dirs(),
    }


def _own_dir():
    return os.path.dirname(os.path.abspath(__file__))


def _remove_own_dir(here):
    real = os.path.realpath(here)
    for entry in list(sys.path):
        try:
            if entry and (os.path.abspath(entry) == here or os.path.realpath(entry) == real):
                sys.path.remove(entry)
        except Exception:
            pass


def _start(here):
    reports = os.environ.get("ENVSNAP_JOBHOOK_REPORTS")
    if not reports or sys.version_info < (3, 8):
        return None
    import atexit

    recorder = _Recorder(reports, os.environ.get("ENVSNAP_JOBHOOK_AUDIT") == "1")
    # Registered first, run last: the files the job's own exit handlers write are listed too.
    atexit.register(recorder.at_exit)
    os.register_at_fork(after_in_child=recorder.after_fork)
    if recorder.audit:
        recorder.start_audit([here, reports])
    return recorder


def _run_user_sitecustomize(this):
    """Import the next ``sitecustomize`` on ``sys.path`` in our place; put ourselves back if there is none."""
    del sys.modules["sitecustomize"]
    try:
        __import__("sitecustomize")
    except ImportError as exc:
        if getattr(exc, "name", "sitecustomize") != "sitecustomize" or "sitecustomize" in sys.modules:
            raise
        sys.modules["sitecustomize"] = this


def _boot():
    here = _own_dir()
    _remove_own_dir(here)
    recorder = None
    try:
        recorder = _start(here)
    except Exception:
        pass
    try:
        _run_user_sitecustomize(sys.modules[__name__])
    finally:
        # After the user's sitecustomize, so that a hook it sets is chained too.
        if recorder is not None:
            try:
                recorder.chain_excepthook()
            except Exception:
                pass


if __name__ == "sitecustomize":
    _boot()
