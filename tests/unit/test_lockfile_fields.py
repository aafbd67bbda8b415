"""Full fields kept from the real tools' lockfiles (tests/fixtures_lockfiles): hashes, extras, groups,
requires-python, platforms; and the note saying what the markers were evaluated for."""

from __future__ import annotations

from pathlib import Path

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.lockfile_parsers import ParsedLock, parse_lockfile
from envsnap.capture.lockfiles import LockfilesProbe
from envsnap.capture.python import PythonProbe
from envsnap.snapshot.schema import validate_member

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_lockfiles"
SIX_SDIST = "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"


def _parse(fixture: str, kind: str) -> ParsedLock:
    return parse_lockfile(kind, (FIXTURES / fixture).read_text())


def test_hashes_from_every_tool() -> None:
    for fixture, kind in [
        ("uv.lock", "uv.lock"),
        ("pylock.toml", "pylock"),
        ("poetry2.lock", "poetry.lock"),
        ("poetry18.lock", "poetry.lock"),
        ("Pipfile.lock", "pipfile.lock"),
        ("requirements-hashes.txt", "requirements"),
        ("requirements-uv.txt", "requirements"),
    ]:
        parsed = _parse(fixture, kind)
        assert SIX_SDIST in parsed.hashes["six"], fixture
        assert all(h.startswith("sha256:") for h in parsed.hashes["six"]), fixture
    uv = _parse("uv.lock", "uv.lock")
    assert len(uv.hashes["numpy"]) > 20  # every wheel of both forked versions


def test_groups_and_requires_python() -> None:
    uv = _parse("uv.lock", "uv.lock")
    assert uv.groups == {"iniconfig": {"dev"}} and uv.requires_python == ">=3.10"
    poetry = _parse("poetry2.lock", "poetry.lock")
    assert poetry.groups["iniconfig"] == {"dev"} and poetry.groups["six"] == {"main"}
    assert poetry.requires_python == ">=3.10,<3.14"
    pipfile = _parse("Pipfile.lock", "pipfile.lock")
    assert pipfile.groups == {"six": {"default"}, "tomli": {"default"}, "iniconfig": {"develop"}}
    assert _parse("pylock.toml", "pylock").requires_python == ">=3.10"
    assert _parse("projects/poetry/pyproject.toml", "pyproject").requires_python is None
    assert _parse("projects/uv/pyproject.toml", "pyproject").requires_python == ">=3.10"


def test_extras_and_conda_lock_platforms() -> None:
    reqs = parse_lockfile("requirements", "requests[socks,security]==2.32.3\n")
    assert reqs.extras == {"requests": {"security", "socks"}}
    lock = parse_lockfile(
        "uv.lock",
        '[[package]]\nname = "app"\nversion = "1"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "uvicorn", extra = ["standard"] }]\n'
        '[[package]]\nname = "uvicorn"\nversion = "0.30.0"\nsource = { registry = "https://pypi.org/simple" }\n',
    )
    assert lock.extras == {"uvicorn": {"standard"}}
    conda = parse_lockfile(
        "conda-lock",
        "version: 1\nmetadata:\n  platforms: [osx-arm64, linux-64]\npackage:\n"
        "- name: numpy\n  version: 1.26.4\n  manager: conda\n  platform: linux-64\n  category: main\n"
        "  hash: {md5: 0a1b, sha256: 9f8e}\n",
    )
    assert conda.platforms == ["linux-64", "osx-arm64"]
    assert conda.groups == {"numpy": {"main"}} and conda.hashes == {"numpy": {"sha256:9f8e"}}


def test_probe_records_fields_and_what_markers_assumed(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text((FIXTURES / "uv.lock").read_text())
    ctx = CaptureContext(CaptureOptions(git=False, cwd=str(tmp_path)), target.in_process)
    ctx.results["python"] = PythonProbe().collect(ctx)
    ctx.results["packages"] = {"distributions": []}
    out = LockfilesProbe().collect(ctx)
    assert isinstance(out, ProbeOutput)
    validate_member("<test>", "project/lockfiles.json", out.data)
    (entry,) = out.data["files"]
    assert SIX_SDIST in entry["hashes"]["six"] and entry["groups"] == {"iniconfig": ["dev"]}
    assert entry["requires_python"] == ">=3.10" and entry["platforms"] == []
    assert any(n.startswith("markers evaluated for Python 3.") and "assumed not installed" in n for n in entry["notes"])


def test_poetry_1_1_metadata_files_hashes_and_category() -> None:
    # Poetry 1.1's layout (its lock-version 1.1): category per package, hashes under [metadata.files]
    text = (
        '[[package]]\nname = "six"\nversion = "1.16.0"\ndescription = ""\ncategory = "main"\noptional = false\n'
        'python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"\n\n'
        '[metadata]\nlock-version = "1.1"\npython-versions = "^3.8"\ncontent-hash = "abc"\n\n'
        '[metadata.files]\nsix = [\n    {file = "six-1.16.0-py2.py3-none-any.whl", hash = "sha256:8abb"},\n]\n'
    )
    parsed = parse_lockfile("poetry.lock", text)
    assert parsed.hashes == {"six": {"sha256:8abb"}} and parsed.groups == {"six": {"main"}}
    assert parsed.requires_python == "^3.8"
