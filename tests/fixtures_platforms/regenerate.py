"""Regenerate wheels.json: which wheel file pip picks for each pin on x86_64 and on aarch64 Linux.

    python tests/fixtures_platforms/regenerate.py > tests/fixtures_platforms/wheels.json

For every pin and platform it asks pip (``pip install --dry-run --report --no-deps --only-binary :all:
--platform manylinux2014_<arch> --python-version 3.11``; the index serves the metadata, no wheel is
downloaded) and records the file name pip would install, or pip's last error line when no wheel of that
version fits. Needs network access to the package index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PINS = (
    "numpy==1.26.4",
    "pandas==2.2.2",
    "scikit-learn==1.5.0",
    "scipy==1.13.1",
    "pyarrow==16.1.0",
    "requests==2.32.3",
    "mkl==2024.0.0",
    "intel-openmp==2024.0.2",
)
ARCHES = ("x86_64", "aarch64")


def pick(pin: str, arch: str, tmp: Path) -> dict[str, str]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), "--no-deps"]
    argv += ["--only-binary", ":all:", "--platform", f"manylinux2014_{arch}", "--python-version", "3.11"]
    argv += ["--target", str(tmp / "target"), pin]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not report.exists():
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        return {"error": errors[-1] if errors else f"pip exited {proc.returncode}"}
    installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {"file": installs[0]["download_info"]["url"].rsplit("/", 1)[-1]}


def main() -> int:
    pip_version = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    out: dict[str, object] = {"generated_by": "tests/fixtures_platforms/regenerate.py", "pip": pip_version.split()[1]}
    with tempfile.TemporaryDirectory() as tmp:
        out["picks"] = {pin: {arch: pick(pin, arch, Path(tmp)) for arch in ARCHES} for pin in PINS}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
