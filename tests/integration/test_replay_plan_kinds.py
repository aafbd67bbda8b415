"""Packages that cannot come from an index are handled explicitly and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsnap.capture import capture
from envsnap.replay.plan import ReplayPlan, _packages
from envsnap.replay.wheelhouse import WheelCache, gather
from tests.integration.conftest import KindsVenv

pytestmark = pytest.mark.slow


def test_every_location_kind_is_planned_or_reported(kinds_venv: KindsVenv, tmp_path: Path) -> None:
    snap = capture(python=kinds_venv.python)
    packages, excluded = _packages(snap, {})
    by_name = {p.normalized: p for p in packages}
    assert by_name["six"].source == "index"
    assert by_name["envsnap-t-wheel"].source == "local-wheel"
    assert by_name["envsnap-t-wheel"].path == str(kinds_venv.wheel_file)
    assert by_name["envsnap-t-served"].source == "url-wheel"
    assert by_name["envsnap-t-served"].path == kinds_venv.http_url
    reasons = {e.name: (e.kind, e.reason) for e in excluded}
    assert reasons["envsnap-t-editable"][0] == "editable" and "source tree" in reasons["envsnap-t-editable"][1]
    assert reasons["envsnap-t-vcs"][0] == "vcs" and kinds_venv.vcs_commit in reasons["envsnap-t-vcs"][1]
    assert reasons["envsnap-t-local"][0] == "local"
    # The local wheel and the URL wheel reach the wheelhouse too, hashed like the index ones.
    # build_plan needs a recorded pipeline; gather needs only the packages and the target of a plan.
    fake = ReplayPlan.__new__(ReplayPlan)
    object.__setattr__(fake, "packages", tuple(p for p in packages if p.source != "index" or p.name == "six"))
    object.__setattr__(fake, "python_implementation", "cpython")
    object.__setattr__(fake, "python_version", "3.11.7")
    object.__setattr__(fake, "platform", "linux-x86_64")
    object.__setattr__(fake, "glibc", "2.36")
    house = gather(fake, tmp_path / "wheels", cache=WheelCache(tmp_path / "cache"), with_uv=False)
    names = sorted(w.filename.split("-")[0] for w in house.wheels)
    assert "envsnap_t_wheel" in names and "envsnap_t_served" in names
    assert all(len(w.sha256) == 64 for w in house.wheels)
