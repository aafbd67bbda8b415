"""The HTML report in a real headless Chromium (Debian's ``chromium``), opened from a file, network off.

Network off means: the page's own Content-Security-Policy forbids every load, Chromium runs with its
background networking, component updates and sync disabled, and a proxy that does not exist is set so that
any request the page might still try fails instead of leaving the machine. The report must render its
verdict from the file alone. CI installs chromium (.ci/run); a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from envsnap.diff.render.html import render_html

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envsnap_golden_sample_diff", GOLDEN / "sample_diff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: apt-get install -y chromium (CI installs it in .ci/run)")


def _run_chromium(tmp_path: Path, profile: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        # Any request that got past the CSP would go to a proxy that is not there, and fail.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={tmp_path / profile}",
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, timeout=120, check=False, cwd=tmp_path)
    if proc.returncode != 0:
        pytest.fail(f"chromium exited {proc.returncode}\n{proc.stderr.decode(errors='replace')[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "diff report.html"  # a space: the file URL must be quoted
    path.write_text(render_html(_load_sample().sample_diff()), encoding="utf-8")
    return path


def test_screenshot_is_taken(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _run_chromium(tmp_path, "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2000)
    # A blank page of that size compresses to a few KiB; text, tables and plots take far more.
    assert len(data) > 30_000


def test_verdict_elements_are_in_the_rendered_dom(report: Path, tmp_path: Path) -> None:
    dom = _run_chromium(tmp_path, "profile-dom", "--dump-dom", report.as_uri()).stdout.decode("utf-8")
    assert '<section id="verdict"' in dom
    assert 'id="first-diverging-stage">ratio</code>' in dom
    assert '<ol id="top-suspects">' in dom
    assert dom.count('class="top-suspect"') == 3
    assert '<section id="suspects">' in dom
    assert dom.count('<tr class="suspect">') == 7
    assert "numpy 1.26.4 → 2.2.6: major; imported by stage `ratio`" in dom
    assert 'id="stage-ratio"' in dom
    assert dom.count("<svg") == 2
