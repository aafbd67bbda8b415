"""``--python PATH``: capture another interpreter's environment, never envsnap's own."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.packages import PackagesProbe
from envsnap.errors import InterpreterError
from envsnap.snapshot.schema import validate_member

ENVSNAP_ONLY = {"pytest", "typer", "envsnap", "hypothesis", "cyclonedx-python-lib", "pip-tools"}


def _packages_of(python: Path) -> dict[str, Any]:
    inspected = target_mod.from_interpreter(python)
    ctx = CaptureContext(CaptureOptions(python=str(python)), lambda: inspected)
    data = PackagesProbe().collect(ctx)
    validate_member("<test>", "env/packages.json", data)
    return data


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["normalized_name"]: d for d in data["distributions"]}


@pytest.mark.slow
def test_packages_of_another_venv_are_that_venvs(index_venv: Path) -> None:
    data = _packages_of(index_venv)
    names = set(_by_name(data))
    assert {"six", "requests", "idna", "urllib3", "certifi", "charset-normalizer", "pip"} <= names
    assert not names & ENVSNAP_ONLY, "envsnap's own packages leaked into the target's capture"
    venv_dir = str(index_venv.parent.parent)
    assert any(site.startswith(venv_dir) for site in data["site_dirs"])
    requests = _by_name(data)["requests"]
    assert requests["location_kind"] == "site"
    assert requests["installer"] == "pip"
    assert {"idna", "urllib3", "certifi", "charset-normalizer"} <= set(requests["dependencies"])


@pytest.mark.slow
def test_target_facts_describe_the_target_interpreter(index_venv: Path) -> None:
    inspected = target_mod.from_interpreter(index_venv)
    assert not inspected.in_process
    assert inspected.python["prefix"] == str(index_venv.parent.parent)
    assert inspected.python["is_venv"] is True


@pytest.mark.slow
def test_location_kinds_of_a_venv_with_every_origin(kinds_venv: Any) -> None:
    dists = _by_name(_packages_of(kinds_venv.python))

    assert dists["six"]["location_kind"] == "site"
    assert dists["six"]["direct_url"] is None

    local = dists["envsnap-t-local"]
    assert local["location_kind"] == "local"
    assert local["direct_url"]["source"] == "dir"
    assert local["direct_url"]["url"] == kinds_venv.local_dir.as_uri()

    wheel = dists["envsnap-t-wheel"]
    assert wheel["location_kind"] == "local"
    assert wheel["direct_url"]["source"] == "archive"
    assert wheel["direct_url"]["url"] == kinds_venv.wheel_file.as_uri()
    digest = hashlib.sha256(kinds_venv.wheel_file.read_bytes()).hexdigest()
    assert wheel["hashes"] == [f"sha256:{digest}"]

    editable = dists["envsnap-t-editable"]
    assert editable["location_kind"] == "editable"
    assert editable["direct_url"]["editable"] is True
    assert editable["direct_url"]["url"] == kinds_venv.editable_dir.as_uri()

    vcs = dists["envsnap-t-vcs"]
    assert vcs["location_kind"] == "vcs"
    assert vcs["direct_url"]["vcs"] == "git"
    assert vcs["direct_url"]["commit_id"] == kinds_venv.vcs_commit

    served = dists["envsnap-t-served"]
    assert served["location_kind"] == "url"
    assert served["direct_url"]["url"] == kinds_venv.http_url
    assert served["hashes"] and served["hashes"][0].startswith("sha256:")

    for name in ("envsnap-t-local", "envsnap-t-wheel", "envsnap-t-editable", "envsnap-t-vcs"):
        assert dists[name]["dependencies"] == ["six"], name
    assert vcs["top_level"] == ["envsnap_t_vcs"]
    assert served["dependencies"] == []


@pytest.mark.slow
def test_capture_api_with_python_lists_that_venvs_packages(index_venv: Path) -> None:
    """The whole pipeline; needs every probe module of PROBE_MODULES to exist."""
    from envsnap.capture import capture

    snap = capture(python=index_venv, git=False, reproducible=True)
    packages = snap.read_json("env/packages.json")
    names = {d["normalized_name"] for d in packages["distributions"]}
    assert {"six", "requests"} <= names
    assert not names & ENVSNAP_ONLY
    lock = snap.read_text("env/requirements.lock")
    assert "six==" in lock
    assert "pytest==" not in lock
    assert "typer==" not in lock
    sbom = snap.read_json("env/sbom.cdx.json")
    purls = {c.get("purl", "") for c in sbom["components"]}
    assert any(p.startswith("pkg:pypi/six@") for p in purls)
    assert not any(p.startswith("pkg:pypi/pytest@") for p in purls)


# --- --python that is not a Python --------------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: Path("/bin/true"), id="exits-0-prints-nothing"),
        pytest.param(lambda tmp: Path("/bin/false"), id="exits-1"),
        pytest.param(lambda tmp: _script(tmp / "fake", "#!/bin/sh\necho '{not json'\n"), id="prints-garbage"),
        pytest.param(lambda tmp: _script(tmp / "list", '#!/bin/sh\necho "[1, 2]"\n'), id="prints-other-json"),
        pytest.param(lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hi"))[0], id="text-file"),
        pytest.param(lambda tmp: tmp / "missing" / "python", id="missing"),
        pytest.param(lambda tmp: tmp, id="directory-without-bin-python"),
    ],
)
def test_a_python_that_is_not_a_python_is_an_interpreter_error(tmp_path: Path, make: Any) -> None:
    bad = make(tmp_path)
    with pytest.raises(InterpreterError) as info:
        target_mod.from_interpreter(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_capture_refuses_a_non_python_before_running_any_probe(tmp_path: Path) -> None:
    from envsnap.capture import capture

    out = tmp_path / "snap.envsnap"
    with pytest.raises(InterpreterError):
        capture(out, python=_script(tmp_path / "fake", "#!/bin/sh\nexit 0\n"), git=False)
    assert not os.path.exists(out)
