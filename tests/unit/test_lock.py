"""requirements.lock: line forms, the hash policy, annotations, and reading it back.

pip's own requirements-file parser checks that every line is what pip will read; the real install
round trips are in tests/integration/test_lock_roundtrip.py.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_probe_packages import target_of, write_dist  # the real dist-info writer (tests/unit is on sys.path)

from envsnap._version import __version__
from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.lock import LockProbe, lock_text
from envsnap.capture.packages import collect_packages
from envsnap.core.lock_text import parse_lock

REPO = Path(__file__).resolve().parents[2]
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64


def lock_of(site: Path, *, hashes: bool = False) -> str:
    target = target_of(site)
    ctx = CaptureContext(CaptureOptions(hashes=hashes), lambda: target)
    return LockProbe().collect(ctx)


def header_of(lock: str) -> str:
    head = []
    for line in lock.splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("#").strip())
    return " ".join(part for part in head if part)


def pip_parse(lock: str, tmp_path: Path) -> dict[str, Any]:
    """What pip reads from the file: {name or link: (specifier, link, editable, hashes)}."""
    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import parse_requirements

    path = tmp_path / "requirements.lock"
    path.write_text(lock, encoding="utf-8")
    out: dict[str, Any] = {}
    for parsed in parse_requirements(str(path), session=PipSession()):
        ireq = install_req_from_parsed_requirement(parsed)
        key = ireq.name or (ireq.link.url if ireq.link else "?")
        hashes = sorted(f"{alg}:{d}" for alg, ds in ireq.hash_options.items() for d in ds)
        specifier = str(ireq.req.specifier) if ireq.req is not None else ""
        out[key] = (specifier, ireq.link.url if ireq.link else None, ireq.editable, hashes)
    return out


def archive(url: str, *digests: str) -> dict[str, Any]:
    return {"url": url, "archive_info": {"hashes": dict(d.split(":", 1) for d in digests)} if digests else {}}


# --- this dev venv ------------------------------------------------------------------------------------

_DEV_LOCK = (
    "import json\n"
    "from envsnap.capture import target\n"
    "from envsnap.capture.packages import collect_packages\n"
    "from envsnap.capture.lock import lock_text\n"
    "t = target.in_process()\n"
    "p = collect_packages(t.site_dirs, t.distributions, t.markers)\n"
    "print(json.dumps({'packages': p, 'lock': lock_text(p, t.python)}))\n"
)


@pytest.fixture(scope="module")
def dev_lock() -> dict[str, Any]:
    """The lock of this dev venv, captured by a process started outside the checkout."""
    out = subprocess.run([sys.executable, "-c", _DEV_LOCK], capture_output=True, text=True, check=True, cwd="/")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_every_distribution_of_this_venv_is_pinned_once(dev_lock: dict[str, Any]) -> None:
    locked = parse_lock(dev_lock["lock"])
    captured = {f"{d['normalized_name']}=={d['version']}" for d in dev_lock["packages"]["distributions"]}
    assert [r.pin for r in locked if r.pin in captured] == [r.pin for r in locked]
    assert {r.pin for r in locked} == captured
    assert len(locked) == len(captured)


def test_dev_lock_layout(dev_lock: dict[str, Any]) -> None:
    lock: str = dev_lock["lock"]
    locked = {r.name: r for r in parse_lock(lock)}
    assert locked["envsnap-ml"].editable
    assert locked["envsnap-ml"].line == f"-e {REPO.as_uri()}"
    assert locked["envsnap-ml"].version == __version__
    # unsafe section last, pinned (pip-compile --allow-unsafe)
    unsafe = [r.name for r in parse_lock(lock) if r.unsafe]
    assert {"pip", "setuptools", "wheel"} == set(unsafe)
    safe_names = [r.name for r in parse_lock(lock) if not r.unsafe]
    last_safe = lock.index(f"\n{safe_names[-1]}==")
    assert lock.index("# The following packages are considered to be unsafe") > last_safe
    assert [r.name for r in parse_lock(lock)][-len(unsafe) :] == sorted(unsafe)
    # safe part sorted by normalized name
    safe = [r.name for r in parse_lock(lock) if not r.unsafe]
    assert safe == sorted(safe)
    # pip-compile style annotations
    assert "requests" in locked["idna"].via
    assert "docker" in locked["urllib3"].via and "requests" in locked["urllib3"].via
    after = lock[lock.index("\nurllib3==") + 1 :].splitlines()[1:]
    via = []
    for line in after:
        if not line.startswith("    #"):
            break
        via.append(line)
    assert via[0] == "    # via" and "    #   docker" in via and "    #   requests" in via
    header = header_of(lock)
    assert f"envsnap {__version__}" in header
    assert sys.executable in header
    assert "pip install --no-deps -r requirements.lock" in header
    assert "pip-sync requirements.lock" in header


def test_pip_reads_the_dev_lock(dev_lock: dict[str, Any], tmp_path: Path) -> None:
    seen = pip_parse(dev_lock["lock"], tmp_path)
    assert seen["pytest"][0].startswith("==")
    assert seen[REPO.as_uri()][2] is True  # the editable line: pip knows no name before building it
    assert len(seen) == len(dev_lock["packages"]["distributions"])


# --- line forms ---------------------------------------------------------------------------------------


def test_line_form_per_origin(tmp_path: Path) -> None:
    write_dist(tmp_path, "plain", "1.2.3")
    write_dist(tmp_path, "weird", "nightly-2024")
    write_dist(tmp_path, "edit", "0.1", direct_url={"url": "file:///src/edit", "dir_info": {"editable": True}})
    write_dist(tmp_path, "localdir", "0.2", direct_url={"url": "file:///src/localdir", "dir_info": {}})
    write_dist(
        tmp_path,
        "gitpkg",
        "0.3",
        direct_url={
            "url": "https://user:hunter22@github.com/org/gitpkg.git",
            "vcs_info": {"vcs": "git", "commit_id": "c0ffee"},
            "subdirectory": "python",
        },
    )
    write_dist(
        tmp_path,
        "localgit",
        "0.4",
        direct_url={"url": "file:///repos/localgit", "vcs_info": {"vcs": "git", "commit_id": "beef"}},
    )
    write_dist(tmp_path, "remote", "0.5", direct_url=archive("https://example.org/remote-0.5.tar.gz"))
    lock = lock_of(tmp_path)
    lines = {r.name: r for r in parse_lock(lock)}
    assert lines["plain"].line == "plain==1.2.3"
    assert lines["weird"].line == "weird===nightly-2024"
    assert lines["weird"].version == "nightly-2024"
    assert lines["edit"].line == "-e file:///src/edit"
    assert lines["localdir"].line == "localdir @ file:///src/localdir"
    assert lines["gitpkg"].line == "gitpkg @ git+https://github.com/org/gitpkg.git@c0ffee#subdirectory=python"
    assert lines["localgit"].line == "git+file:///repos/localgit@beef#egg=localgit"
    assert lines["remote"].line == "remote @ https://example.org/remote-0.5.tar.gz"
    assert {r.version for r in lines.values()} == {"1.2.3", "nightly-2024", "0.1", "0.2", "0.3", "0.4", "0.5"}
    assert "hunter22" not in lock
    assert "user:" not in lock
    assert "user@" not in lock
    seen = pip_parse(lock, tmp_path)
    assert seen["plain"][0] == "==1.2.3"
    assert seen["weird"][0] == "===nightly-2024"
    assert seen["gitpkg"][1] == "git+https://github.com/org/gitpkg.git@c0ffee#subdirectory=python"
    assert seen["localgit"][1] == "git+file:///repos/localgit@beef#egg=localgit"
    assert any(v[2] and v[1] == "file:///src/edit" for v in seen.values())


# --- the hash policy ----------------------------------------------------------------------------------


def test_hashes_are_options_when_every_requirement_has_one(tmp_path: Path) -> None:
    write_dist(tmp_path, "one", direct_url=archive("https://example.org/one-1.0.whl", SHA_A))
    write_dist(tmp_path, "two", direct_url=archive("file:///w/two-1.0.whl", SHA_B, "md5:" + "c" * 32))
    lock = lock_of(tmp_path)
    lines = {r.name: r for r in parse_lock(lock)}
    assert lines["one"].hashes == (SHA_A,)
    assert lines["two"].hashes == (SHA_B,)  # md5 is not a --hash algorithm pip accepts
    assert "one @ https://example.org/one-1.0.whl \\\n    --hash=" + SHA_A + "\n" in lock
    assert "pip install --require-hashes --no-deps -r requirements.lock" in header_of(lock)
    seen = pip_parse(lock, tmp_path)
    assert seen["one"][3] == [SHA_A]
    assert seen["two"][3] == [SHA_B]


def test_partial_hashes_stay_comments(tmp_path: Path) -> None:
    write_dist(tmp_path, "hashed", direct_url=archive("https://example.org/hashed-1.0.whl", SHA_A))
    write_dist(tmp_path, "plain")
    lock = lock_of(tmp_path)
    assert "--hash=" not in lock
    expected = [
        "hashed @ https://example.org/hashed-1.0.whl",
        "    # installed as hashed==1.0",
        f"    # hash known locally: {SHA_A}",
    ]
    assert "\n".join(expected) + "\n" in lock
    lines = {r.name: r for r in parse_lock(lock)}
    assert lines["hashed"].noted_hashes == (SHA_A,)
    assert lines["hashed"].hashes == ()
    header = header_of(lock)
    assert "1 requirement(s) have none (plain)" in header
    assert "pip requires a hash for every requirement once one has one" in header
    assert all(not v[3] for v in pip_parse(lock, tmp_path).values())


def test_no_hash_at_all_points_at_the_hashes_option(tmp_path: Path) -> None:
    write_dist(tmp_path, "plain")
    assert "capture with --hashes" in header_of(lock_of(tmp_path))


# --- structure ----------------------------------------------------------------------------------------


def test_unsafe_packages_are_pinned_last(tmp_path: Path) -> None:
    for name in ("zzz", "setuptools", "aaa", "pip", "wheel"):
        write_dist(tmp_path, name, requires=("setuptools",) if name == "zzz" else ())
    lock = lock_of(tmp_path)
    body = lock[lock.index("\naaa==") :]
    assert body.index("zzz==") < body.index("# The following packages are considered to be unsafe")
    locked = parse_lock(lock)
    assert [(r.name, r.unsafe) for r in locked] == [
        ("aaa", False),
        ("zzz", False),
        ("pip", True),
        ("setuptools", True),
        ("wheel", True),
    ]
    assert {r.name: r.via for r in locked}["setuptools"] == ("zzz",)


def test_lock_is_deterministic_whatever_the_input_order(tmp_path: Path) -> None:
    for index, name in enumerate(("c", "a", "b", "d")):
        write_dist(tmp_path, name, f"1.{index}", requires=("a",) if name != "a" else ())
    target = target_of(tmp_path)
    packages = collect_packages(target.site_dirs, target.distributions, target.markers)
    shuffled = dict(packages, distributions=random.Random(4).sample(packages["distributions"], 4))
    assert lock_text(packages, target.python) == lock_text(shuffled, target.python)


def test_probe_uses_the_packages_result_when_there_is_one(tmp_path: Path) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    write_dist(site, "from-site")
    write_dist(elsewhere, "from-result")
    target = target_of(site)
    ctx = CaptureContext(CaptureOptions(), lambda: target)
    assert "from-site==1.0" in LockProbe().collect(ctx)  # no packages result: computed from the target
    other = target_of(elsewhere)
    ctx.results["packages"] = collect_packages(other.site_dirs, other.distributions, other.markers)
    lock = LockProbe().collect(ctx)
    assert "from-result==1.0" in lock
    assert "from-site==" not in lock


# --- --hashes through pip-tools -----------------------------------------------------------------------


@pytest.mark.slow
def test_unresolvable_hashes_are_recorded_and_the_lock_still_written(tmp_path: Path) -> None:
    write_dist(tmp_path, "envsnap-no-such-project-anywhere", "9.9.9")
    write_dist(tmp_path, "six", "1.17.0")
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("pip").handlers[:])
    lock = lock_of(tmp_path, hashes=True)
    assert (list(root.handlers), root.level, logging.getLogger("pip").handlers[:]) == before
    header = header_of(lock)
    assert "--hashes: could not resolve hashes from the index for envsnap-no-such-project-anywhere:" in header
    assert "--hash=" not in lock
    locked = {r.name: r for r in parse_lock(lock)}
    assert locked["envsnap-no-such-project-anywhere"].line == "envsnap-no-such-project-anywhere==9.9.9"
    assert locked["six"].noted_hashes  # resolved, but kept as a comment: the other one has none
    assert "# hash from the index: sha256:" in lock


def test_in_process_target_matches_packages(tmp_path: Path) -> None:
    """The probe reads the target it is given, not envsnap's own environment."""
    write_dist(tmp_path, "only-here")
    lock = lock_of(tmp_path)
    assert [r.name for r in parse_lock(lock)] == ["only-here"]
    assert target_mod.in_process().python["version"] in header_of(lock)
