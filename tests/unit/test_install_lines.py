"""No document tells anyone to install the bare name ``envsnap``: on PyPI it is an unrelated project.

Our distribution is ``envsnap-ml``; until it is published the docs install from a clone or a wheel.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
INSTALLERS = re.compile(r"\b(?:pip3?|pipx|uv pip|uv|poetry|pipenv)\s+(?:install|add)\b(?P<args>.*)")
TEXT_SUFFIXES = {".md", ".sh", ".py", ".toml", ".txt", ".yml", ".yaml", ".cfg", ".in", ""}


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / n for n in names.splitlines() if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def bare_envsnap_installs(text: str) -> list[str]:
    """The install lines of ``text`` that name the distribution ``envsnap`` (with or without extras/pins)."""
    found = []
    for line in text.splitlines():
        match = INSTALLERS.search(line)
        if not match:
            continue
        # The command ends where its Markdown code span or its comment does.
        args = re.split(r"[`#)]", match["args"], maxsplit=1)[0]
        try:
            tokens = shlex.split(args)
        except ValueError:
            tokens = args.split()
        for token in tokens:
            if token.startswith(("-", ".")) or "/" in token:
                continue  # an option, a path, a URL or a wheel file
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", token)
            if name and canonicalize_name(name.group()) == "envsnap":
                found.append(line.strip())
    return found


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("pip install envsnap", True),
        ("$ pip install 'envsnap[ray]'   # the driver", True),
        ("- run: pip install -r requirements.txt envsnap==0.1", True),
        ("uv add envsnap", True),
        ("never `pip install envsnap`.", True),
        ("a hint: (pip install -U envsnap)", True),
        ("pip install envsnap-ml", False),
        ("then `pip install --require-hashes`, then envsnap itself", False),
        ("pip install dist/envsnap_ml-0.1.0-py3-none-any.whl", False),
        ("pip install /path/to/envsnap", False),
        ("pip install -e .", False),
    ],
)
def test_the_check_tells_bare_names_from_ours(line: str, bad: bool) -> None:
    assert bool(bare_envsnap_installs(line)) is bad


def test_no_tracked_file_installs_the_bare_name() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in _tracked_text_files()
        if path.name != "test_install_lines.py"
        and (lines := bare_envsnap_installs(path.read_text(encoding="utf-8", errors="replace")))
    }
    assert not offenders, f"install lines of the unrelated PyPI 'envsnap' (use envsnap-ml): {offenders}"
