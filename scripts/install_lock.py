#!/usr/bin/env python3
"""Install a hashed lock into a venv, then envsnap itself without dependencies (what `make` runs).

    python3 scripts/install_lock.py VENV_PYTHON requirements/dev.txt [--no-project]

pip, setuptools and wheel come first from requirements/bootstrap.txt, so that every later build (envsnap's
editable install, an sdist in the lock) runs without build isolation, on locked tools only. A file whose
hash does not match the lock fails the install with one line naming the file (pip's own report follows
on stderr); the exit status is pip's. Stdlib only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "requirements" / "bootstrap.txt"
# pip's hash-mismatch report: "    six==1.17.0 from https://.../six-1.17.0-py2.py3-none-any.whl#sha256=... (from -r
# lock (line 1)):"
# then "Expected sha256 <hex>" and "Got        <hex>".
_MISMATCH = re.compile(r"^\s+(?P<pin>\S+) from (?P<url>[^\s#]+)\S*(?: \(from .*\))?:\s*$")
_EXPECTED = re.compile(r"Expected sha256 (?P<hex>[0-9a-f]+)")
_GOT = re.compile(r"Got\s+(?P<hex>[0-9a-f]+)")


def hash_mismatches(pip_output: str) -> list[str]:
    """One description per file pip refused for its hash: ``pin (file): expected sha256 X..., got Y...``."""
    found: list[str] = []
    lines = pip_output.splitlines()
    for index, line in enumerate(lines):
        match = _MISMATCH.match(line)
        if not match:
            continue
        window = "\n".join(lines[index + 1 : index + 4])
        expected, got = _EXPECTED.search(window), _GOT.search(window)
        name = match["url"].rsplit("/", 1)[-1]
        detail = f"expected sha256 {expected['hex'][:12]}…, got {got['hex'][:12]}…" if expected and got else ""
        found.append(f"{match['pin']} ({name}){': ' + detail if detail else ''}")
    return found


def pip_install(python: str, *args: str, lock: Path) -> None:
    argv = [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode == 0:
        sys.stderr.write(proc.stderr)
        return
    sys.stderr.write(proc.stderr)
    mismatches = hash_mismatches(proc.stdout + proc.stderr)
    relative = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    if mismatches:
        print(
            f"install_lock: {'; '.join(mismatches)} does not match its hash in {relative}: the download or the"
            " lock was altered (regenerate with `make lock` only when you changed the lock on purpose)",
            file=sys.stderr,
        )
    else:
        print(
            f"install_lock: pip could not install {relative} (exit {proc.returncode}; its report is above)",
            file=sys.stderr,
        )
    raise SystemExit(proc.returncode)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--no-project"):
        raise SystemExit("usage: install_lock.py VENV_PYTHON LOCKFILE [--no-project]")
    python, lock = argv[0], Path(argv[1]).resolve()
    pip_install(python, "--require-hashes", "--no-deps", "-r", str(BOOTSTRAP), lock=BOOTSTRAP)
    pip_install(python, "--require-hashes", "--no-deps", "--no-build-isolation", "-r", str(lock), lock=lock)
    if len(argv) == 2:
        pip_install(python, "--no-deps", "--no-build-isolation", "-e", str(ROOT), lock=lock)


if __name__ == "__main__":
    main(sys.argv[1:])
