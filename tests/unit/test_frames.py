"""Placing an exception's frames (project, library and its distribution, stdlib) and comparing two failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture.frames import enrich_exception, innermost_project_frame, same_failure, stdlib_dirs_of

STDLIB = os.path.dirname(os.__file__)


def _dist_info(site: Path, name: str, version: str, files: list[str], *, top_level: str | None = None) -> None:
    """A ``*.dist-info`` as pip writes it (METADATA and RECORD), with ``files`` created in ``site``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
    record = [f"{f},sha256=x,1" for f in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level + "\n")
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_text("")


@pytest.fixture
def job(tmp_path: Path) -> dict[str, Any]:
    """A project root holding its venv, whose site-packages has two distributions and one egg-info."""
    root = tmp_path / "proj"
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    _dist_info(site, "fancy-lib", "1.2", ["fancy/__init__.py", "fancy/core.py", "fancy_helpers.py"])
    _dist_info(site, "other", "0.1", ["other/x.py"])
    egg = site / "oldpkg-1.0-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Name: oldpkg\nVersion: 1.0\n")
    (egg / "top_level.txt").write_text("oldpkg\n")
    (site / "oldpkg").mkdir()
    return {"root": root, "site": site}


def _raw(*frames: tuple[str, int, str], kind: str = "ValueError", message: str = "bad") -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "traceback": f"Traceback (most recent call last):\n{kind}: {message}\n",
        "frames": [{"file": f, "line": line, "function": fn} for f, line, fn in frames],
    }


def test_frames_are_placed_and_library_frames_mapped_to_their_distribution(job: dict[str, Any]) -> None:
    root, site = job["root"], job["site"]
    raw = _raw(
        (str(root / "train.py"), 10, "<module>"),
        ("<frozen runpy>", 198, "_run_module_as_main"),
        (os.path.join(STDLIB, "json", "__init__.py"), 346, "loads"),
        (str(site / "fancy" / "core.py"), 5, "fit"),
        (str(site / "fancy_helpers.py"), 7, "helper"),
        (str(site / "oldpkg" / "mod.py"), 3, "old"),
        (str(site / "unknown_mod.py"), 1, "mystery"),
        ("/elsewhere/tool.py", 2, "tool"),
        ("<string>", 1, "<module>"),
        (str(root / "pkg" / "model.py"), 42, "predict"),
    )
    record = enrich_exception(raw, root=str(root), site_dirs=[str(site)], stdlib_dirs=[STDLIB])
    placed = [(f["file"], f["where"], f["distribution"]) for f in record["frames"]]
    assert placed == [
        ("train.py", "project", None),
        ("<frozen runpy>", "stdlib", None),
        (os.path.join(STDLIB, "json", "__init__.py"), "stdlib", None),
        (str(site / "fancy" / "core.py"), "library", "fancy-lib"),
        (str(site / "fancy_helpers.py"), "library", "fancy-lib"),
        (str(site / "oldpkg" / "mod.py"), "library", "oldpkg"),
        (str(site / "unknown_mod.py"), "library", None),
        ("/elsewhere/tool.py", "other", None),
        ("<string>", "other", None),
        ("pkg/model.py", "project", None),
    ]
    assert [f["line"] for f in record["frames"]][-1] == 42
    assert record["type"] == "ValueError"
    assert innermost_project_frame(record) == record["frames"][-1]


def test_a_venv_inside_the_project_root_is_library_code_not_the_project(job: dict[str, Any]) -> None:
    root, site = job["root"], job["site"]
    record = enrich_exception(
        _raw((str(site / "other" / "x.py"), 1, "f")), root=str(root), site_dirs=[str(site)], stdlib_dirs=[]
    )
    assert record["frames"][0]["where"] == "library"
    assert record["frames"][0]["distribution"] == "other"
    assert innermost_project_frame(record) is None


def test_without_a_root_every_file_outside_libraries_and_stdlib_is_the_project(job: dict[str, Any]) -> None:
    record = enrich_exception(
        _raw(("/anywhere/job.py", 3, "main"), ("<stdin>", 1, "<module>")), root=None, site_dirs=[], stdlib_dirs=[]
    )
    assert [f["where"] for f in record["frames"]] == ["project", "other"]
    assert record["frames"][0]["file"] == "/anywhere/job.py"


def test_an_install_after_the_first_lookup_is_seen(job: dict[str, Any]) -> None:
    site = job["site"]
    first = enrich_exception(
        _raw((str(site / "late" / "m.py"), 1, "f")), root=None, site_dirs=[str(site)], stdlib_dirs=[]
    )
    assert first["frames"][0]["distribution"] is None
    _dist_info(site, "late", "2.0", ["late/m.py"])
    os.utime(site, ns=(os.stat(site).st_atime_ns, os.stat(site).st_mtime_ns + 10**9))
    again = enrich_exception(
        _raw((str(site / "late" / "m.py"), 1, "f")), root=None, site_dirs=[str(site)], stdlib_dirs=[]
    )
    assert again["frames"][0]["distribution"] == "late"


def test_a_real_site_packages_maps_pytest_to_its_distribution() -> None:
    site = str(Path(pytest.__file__).resolve().parents[1])
    record = enrich_exception(
        _raw((str(Path(pytest.__file__).resolve()), 1, "f")), root=None, site_dirs=[site], stdlib_dirs=[STDLIB]
    )
    assert record["frames"][0]["where"] == "library"
    assert record["frames"][0]["distribution"] == "pytest"


def test_message_and_traceback_are_scrubbed() -> None:
    secret = "ghp_" + "a1B2" * 9
    raw = _raw(("/p/job.py", 1, "f"), message=f"login failed with {secret}")
    raw["traceback"] = f'  File "/p/job.py", line 1\n    token = "{secret}"\nValueError: login failed with {secret}\n'
    record = enrich_exception(raw, root="/p", site_dirs=[], stdlib_dirs=[])
    assert secret not in record["message"]
    assert secret not in record["traceback"]
    assert "<redacted" in record["message"]


def test_malformed_frames_are_left_out_and_odd_values_made_safe() -> None:
    raw: dict[str, Any] = {
        "type": "KeyError",
        "message": None,
        "frames": [
            None,
            {"line": 3},
            {"file": "/p/a.py", "line": "x", "function": None},
            {"file": "/p/b.py", "line": 4},
        ],
    }
    record = enrich_exception(raw, root="/p", site_dirs=[], stdlib_dirs=[])
    assert record["frames"] == [
        {"file": "a.py", "line": 0, "function": "?", "where": "project", "distribution": None},
        {"file": "b.py", "line": 4, "function": "?", "where": "project", "distribution": None},
    ]
    assert record["message"] == ""
    assert record["traceback"] == ""
    assert enrich_exception({}, root=None, site_dirs=[], stdlib_dirs=[])["frames"] == []


def test_stdlib_dirs_come_from_the_report_or_from_the_base_prefix() -> None:
    assert stdlib_dirs_of({"stdlib_dirs": ["/usr/lib/python3.12"]}) == ["/usr/lib/python3.12"]
    assert stdlib_dirs_of({"base_prefix": "/opt/py", "version": "3.10.4"}) == ["/opt/py/lib/python3.10"]
    assert stdlib_dirs_of(None) == []
    assert stdlib_dirs_of({"version": "3"}) == []


def _failure(kind: str, *project: tuple[str, int, str]) -> dict[str, Any]:
    frames = [{"file": "/site/lib.py", "line": 1, "function": "lib", "where": "library", "distribution": "lib"}]
    frames = [
        {"file": f, "line": n, "function": fn, "where": "project", "distribution": None} for f, n, fn in project
    ] + frames
    return {"type": kind, "message": "m", "traceback": "t", "frames": frames}


@pytest.mark.parametrize(
    ("recorded", "replayed", "same", "says"),
    [
        (None, None, True, "neither run raised"),
        (None, _failure("ValueError", ("a.py", 3, "f")), False, "the recorded run raised nothing"),
        (_failure("ValueError", ("a.py", 3, "f")), None, False, "the replay raised nothing"),
        (
            _failure("ValueError", ("a.py", 3, "f")),
            _failure("KeyError", ("a.py", 3, "f")),
            False,
            "recorded ValueError, replayed KeyError",
        ),
        (
            _failure("ValueError", ("a.py", 3, "f")),
            _failure("ValueError", ("a.py", 3, "f")),
            True,
            "the same ValueError at a.py:3 in f",
        ),
        (
            _failure("ValueError", ("a.py", 3, "f")),
            _failure("ValueError", ("a.py", 5, "f")),
            True,
            "the line moved from 3 to 5",
        ),
        (_failure("ValueError", ("a.py", 3, "f")), _failure("ValueError", ("a.py", 3, "g")), False, "raised elsewhere"),
        (
            _failure("ValueError", ("a.py", 3, "f")),
            _failure("ValueError", ("b.py", 3, "f")),
            False,
            "replayed at b.py:3 in f",
        ),
        (_failure("ValueError"), _failure("ValueError"), True, "no project frame in either"),
        (
            _failure("ValueError", ("a.py", 3, "f")),
            _failure("ValueError"),
            False,
            "the replayed traceback has no project frame",
        ),
        # Only the innermost project frame counts: the callers above it may differ.
        (
            _failure("ValueError", ("main.py", 1, "<module>"), ("a.py", 3, "f")),
            _failure("ValueError", ("cli.py", 9, "run"), ("a.py", 3, "f")),
            True,
            "at a.py:3 in f",
        ),
    ],
)
def test_same_failure(recorded: dict[str, Any] | None, replayed: dict[str, Any] | None, same: bool, says: str) -> None:
    verdict, note = same_failure(recorded, replayed)
    assert verdict is same
    assert says in note


def test_enriched_records_of_the_same_failure_at_two_roots_compare_equal() -> None:
    """A replay runs the code at another root (a container's): relative project paths make them comparable."""
    recorded = enrich_exception(
        _raw(("/home/u/proj/job.py", 7, "main")), root="/home/u/proj", site_dirs=[], stdlib_dirs=[]
    )
    replayed = enrich_exception(_raw(("/srv/app/job.py", 7, "main")), root="/srv/app", site_dirs=[], stdlib_dirs=[])
    assert same_failure(recorded, replayed)[0] is True
