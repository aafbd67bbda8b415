"""Facts about a Python runtime, gathered with the standard library alone.

Shipped code (see :mod:`envsnap._target`): stdlib only, Python 3.8 syntax. It runs in two ways:

* imported by envsnap, to inspect its own interpreter in-process;
* in another interpreter (``--python PATH``) through :func:`main`, which prints one JSON document on
  stdout. The target environment is never imported into envsnap's process.

Distribution metadata is read straight from ``*.dist-info``/``*.egg-info`` on ``sys.path`` with a
header-only parser: ``importlib.metadata``'s email parser costs several times more at 300 packages.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import sysconfig
from typing import Any, Dict, List

SNIPPET_VERSION = 1


def _read(path, limit=1 << 22):
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


# Headers kept as the first value of their name, and headers kept as every value (in order).
_SINGLE = ("Name", "Version", "Summary", "License-Expression", "License", "Home-page", "Download-URL")
_MULTIPLE = ("Requires-Dist", "Project-URL")
# Header names are case-insensitive (``Home-Page`` and ``Home-page`` both occur).
_CANONICAL = {key.lower(): key for key in _SINGLE + _MULTIPLE + ("Classifier",)}


def _headers(text):
    """The metadata headers envsnap uses, from RFC 822 style metadata; stops at the body.

    Only ``License :: `` classifiers are kept. A ``License`` that spans several lines is a license
    text, not an identifier: it is kept as ``""`` (present, not an SPDX id or expression).
    """
    out = dict.fromkeys(_SINGLE)
    out.update({key: [] for key in _MULTIPLE})
    out["Classifier"] = []
    last = None
    for line in text.splitlines():
        if not line:
            break
        if line[0] in " \t":
            if last == "Summary" and out["Summary"] is not None:
                out["Summary"] += " " + line.strip()
            elif last == "License" and out["License"] and line.strip():
                out["License"] = ""
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = _CANONICAL.get(key.lower())
        last = key
        if key is None:
            continue
        value = value.strip()
        if key in _MULTIPLE:
            out[key].append(value)
        elif key == "Classifier":
            if value.startswith("License :: "):
                out["Classifier"].append(value)
        elif out[key] is None:
            out[key] = value
    return out


def _egg_requires(text):
    """requires.txt of an egg-info: plain lines, with [extra] / [:marker] sections."""
    reqs = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section is None:
            reqs.append(line)
            continue
        extra, _, marker = section.partition(":")
        parts = []
        if marker:
            parts.append("(" + marker + ")")
        if extra:
            parts.append('extra == "' + extra + '"')
        reqs.append(line + "; " + " and ".join(parts))
    return reqs


def _module_name(first):
    if first.endswith(".py"):
        return first[:-3]
    if ".cpython-" in first or first.endswith((".so", ".pyd", ".abi3.so")):
        return first.split(".", 1)[0]
    return first


# First path component of a RECORD row that lies in a directory, and single-file modules at the top.
# Regexes over the whole text: torch's RECORD has ~20,000 rows, and a per-line Python loop costs ms.
_RECORD_DIR = re.compile(r'^"?([^/,\n"]+)/', re.M)
_RECORD_FILE = re.compile(r'^"?([^/,\n"]+\.(?:py|so|pyd))[",]', re.M)


def _top_level_from_record(text):
    names = set()
    for first in set(_RECORD_DIR.findall(text)) | set(_RECORD_FILE.findall(text)):
        if first.endswith((".dist-info", ".egg-info", ".data", ".pth")) or first in ("__pycache__", "..", "."):
            continue
        name = _module_name(first)
        if name.isidentifier():
            names.add(name)
    return sorted(names)


def _normalize(name):
    out = []
    prev_sep = False
    for ch in name.lower():
        if ch in "-_.":
            if not prev_sep:
                out.append("-")
            prev_sep = True
        else:
            out.append(ch)
            prev_sep = False
    return "".join(out)


def _distribution(entry_dir, name):
    """One installed distribution, or None when its metadata is unreadable."""
    path = os.path.join(entry_dir, name)
    is_dist_info = name.endswith(".dist-info")
    if os.path.isdir(path):
        meta_text = _read(os.path.join(path, "METADATA" if is_dist_info else "PKG-INFO"))
        files = os.listdir(path)
    else:
        meta_text = _read(path)
        files = []
    if meta_text is None:
        return None
    headers = _headers(meta_text)
    if not headers["Name"]:
        return None
    requires = headers["Requires-Dist"]
    if not is_dist_info and "requires.txt" in files:
        requires = _egg_requires(_read(os.path.join(path, "requires.txt")) or "")
    installer = None
    if "INSTALLER" in files:
        installer = (_read(os.path.join(path, "INSTALLER")) or "").strip() or None
    direct_url = None
    if "direct_url.json" in files:
        try:
            direct_url = json.loads(_read(os.path.join(path, "direct_url.json")) or "null")
        except ValueError:
            direct_url = {"error": "unreadable direct_url.json"}
    top_level = None
    if "top_level.txt" in files:
        top_level = sorted(
            {t.strip() for t in (_read(os.path.join(path, "top_level.txt")) or "").splitlines() if t.strip()}
        )
    elif "RECORD" in files:
        top_level = _top_level_from_record(_read(os.path.join(path, "RECORD"), 1 << 24) or "")
    return {
        "name": headers["Name"],
        "normalized_name": _normalize(headers["Name"]),
        "version": headers["Version"] or "",
        "summary": headers["Summary"],
        "license_expression": headers["License-Expression"],
        "license": headers["License"],
        "license_classifiers": headers["Classifier"],
        "home_page": headers["Home-page"],
        "download_url": headers["Download-URL"],
        "project_urls": headers["Project-URL"],
        "requires": requires,
        "installer": installer,
        "direct_url": direct_url,
        "top_level": top_level or [],
        "metadata_path": path,
        "location": entry_dir,
    }


def distributions(paths=None):
    """Every distribution importable from ``paths`` (default ``sys.path``); the first of a name wins."""
    seen = {}
    order = []
    for entry in paths if paths is not None else sys.path:
        entry_dir = os.path.abspath(entry or os.getcwd())
        try:
            names = sorted(os.listdir(entry_dir))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = _distribution(entry_dir, name)
            if dist is None or dist["normalized_name"] in seen:
                continue
            seen[dist["normalized_name"]] = dist
            order.append(dist)
    return order


def marker_environment():
    """The PEP 508 marker environment of this interpreter (what ``packaging`` computes)."""
    impl = sys.implementation
    iv = impl.version
    impl_version = "%d.%d.%d" % (iv.major, iv.minor, iv.micro)
    if iv.releaselevel != "final":
        impl_version += iv.releaselevel[0] + str(iv.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def site_dirs():
    """Directories on sys.path that hold installed distributions or extension modules."""
    out = []
    for entry in sys.path:
        if not entry:
            continue
        path = os.path.abspath(entry)
        if os.path.isdir(path) and path not in out:
            out.append(path)
    return out


def python_facts():
    """Interpreter identity: version, build, prefixes and platform tags."""
    impl = sys.implementation
    return {
        "implementation": impl.name,
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]) + [sys.version_info.releaselevel, sys.version_info.serial],
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "is_venv": getattr(sys, "base_prefix", sys.prefix) != sys.prefix,
        "build": list(platform.python_build()),
        "compiler": platform.python_compiler(),
        "cache_tag": impl.cache_tag,
        "platform": sysconfig.get_platform(),
        "soabi": sysconfig.get_config_var("SOABI"),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
        "abiflags": getattr(sys, "abiflags", ""),
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "byteorder": sys.byteorder,
        "maxsize": sys.maxsize,
    }


def config_of_loaded_numpy(numpy: Any) -> Dict[str, Any]:
    """Build configuration of an already imported numpy module."""
    out = {"version": getattr(numpy, "__version__", None), "source": "runtime"}
    try:
        show = numpy.show_config
        cfg = show(mode="dicts")
        out["config"] = json.loads(json.dumps(cfg, default=str))
    except TypeError:
        cfg_mod = getattr(numpy, "__config__", None)
        info = {}
        for key in dir(cfg_mod):
            if key.endswith("_info") and isinstance(getattr(cfg_mod, key), dict):
                info[key] = getattr(cfg_mod, key)
        out["config"] = json.loads(json.dumps(info, default=str))
    except Exception as exc:  # noqa: BLE001
        out["error"] = type(exc).__name__ + ": " + str(exc)
    return out


def inspect() -> Dict[str, Any]:
    """Everything the capture probes need to know about this interpreter.

    numpy is never imported here: its build configuration is read from its ``__config__.py`` by envsnap
    (see ``envsnap.capture.numpy_config``).
    """
    return {
        "snippet_version": SNIPPET_VERSION,
        "python": python_facts(),
        "markers": marker_environment(),
        "site_dirs": site_dirs(),
        "distributions": distributions(),
    }


def forget_launch_paths() -> None:
    """Take off ``sys.path`` what starting this program put there, so that the runtime is seen as the job sees it.

    ``python -c`` puts the caller's working directory first: the target's environment must not include
    whatever happens to lie where envsnap was started (e.g. a project's *.egg-info). The bootstrap
    appended the directory of the shipped package last.
    """
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    shipped = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [entry for entry in sys.path if not entry or os.path.abspath(entry) != shipped]


def main(argv: List[str]) -> int:
    """Print :func:`inspect` of this interpreter as JSON on stdout (``argv`` takes nothing)."""
    forget_launch_paths()
    json.dump(inspect(), sys.stdout)
    return 0
