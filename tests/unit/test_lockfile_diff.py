"""The lockfiles section of a diff: a lock-only edit is a pin change, never an "(installed)" row; a git
source's commit bump is named by package (over two uv.lock revisions written by uv itself); pin changes rank
below installed changes."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from envsnap.capture.lockfile_parsers import parse_lockfile
from envsnap.diff.env_configs import diff_lockfiles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_lockfiles"
SIX = importlib.metadata.version("six")


def _side(pins: dict[str, str], drift: list[tuple[str, str, str]], **extra: Any) -> dict[str, Any]:
    entry = {"path": "uv.lock", "kind": "uv.lock", "pins": pins, "requirements": {}, "sha256": None, "error": None}
    entry.update(extra)
    rows = [
        {"file": "uv.lock", "name": n, "pinned": p, "installed": i, "message": f"uv.lock pins {n} {p}; the job ran {i}"}
        for n, p, i in drift
    ]
    return {"files": [entry], "disagreements": rows}


def _rows(section: Any) -> set[tuple[str, str, Any, Any]]:
    return {(c.key, c.kind, c.before, c.after) for c in section.changes}


def test_lock_only_edit_shows_pin_changes_not_installed_rows() -> None:
    # the installed environment is the same on both sides (attrs 26.1.0, psutil 5.8.0); only the lock moved
    a = _side({"attrs": "26.0.0", "psutil": "5.9.0"}, [("attrs", "26.0.0", "26.1.0"), ("psutil", "5.9.0", "5.8.0")])
    b = _side({"attrs": "26.1.0"}, [])
    assert _rows(diff_lockfiles(a, b)) == {
        ("uv.lock:attrs", "changed", "26.0.0", "26.1.0"),
        ("uv.lock:psutil", "removed", "5.9.0", None),
    }
    # and the other way round: a new lock pin that the unchanged environment does not meet
    assert _rows(diff_lockfiles(b, a)) == {
        ("uv.lock:attrs", "changed", "26.1.0", "26.0.0"),
        ("uv.lock:psutil", "added", None, "5.9.0"),
    }
    # a pin moved while the same installed version disagrees with both: the pin row only
    c = _side({"attrs": "25.0.0"}, [("attrs", "25.0.0", "26.1.0")])
    d = _side({"attrs": "25.1.0"}, [("attrs", "25.1.0", "26.1.0")])
    assert _rows(diff_lockfiles(c, d)) == {("uv.lock:attrs", "changed", "25.0.0", "25.1.0")}


def test_installed_change_is_an_installed_row() -> None:
    same_lock = {"attrs": "26.0.0"}
    rows = _rows(diff_lockfiles(_side(same_lock, []), _side(same_lock, [("attrs", "26.0.0", "25.4.0")])))
    assert rows == {("uv.lock:attrs (installed)", "added", None, "25.4.0")}
    # both moved: the lock to 26.1.0 and the job to 25.4.0, which neither lock pins
    rows = _rows(diff_lockfiles(_side(same_lock, []), _side({"attrs": "26.1.0"}, [("attrs", "26.1.0", "25.4.0")])))
    assert ("uv.lock:attrs (installed)", "added", None, "25.4.0") in rows
    changed = diff_lockfiles(
        _side(same_lock, [("attrs", "26.0.0", "25.3.0")]), _side(same_lock, [("attrs", "26.0.0", "25.4.0")])
    )
    assert _rows(changed) == {("uv.lock:attrs (installed)", "changed", "25.3.0", "25.4.0")}


def test_git_commit_bump_is_named_by_package() -> None:
    locks = [parse_lockfile("uv.lock", (FIXTURES / f"uv-git-{s}.lock").read_text()) for s in "ab"]
    sources = [lock.sources["gitdep"] for lock in locks]
    assert all(s.startswith("git+file:///") and "@" in s for s in sources) and sources[0] != sources[1]
    sides = [_side(lock.pins, [], sources=lock.sources, sha256=c * 64) for lock, c in zip(locks, "ab", strict=True)]
    section = diff_lockfiles(sides[0], sides[1])
    (change,) = section.changes
    assert change.key == "uv.lock:gitdep (source)" and change.kind == "changed"
    assert (change.before, change.after) == (sources[0][-40:][:12], sources[1][-40:][:12])
    assert change.note is not None and change.note.startswith("git commit bump of gitdep: file:///")


def test_sources_of_every_kind() -> None:
    pylock = parse_lockfile(
        "pylock",
        'lock-version = "1.0"\n[[packages]]\nname = "a"\nvcs = {type = "git", url = "https://u:tok@example.com/a.git",'
        ' commit-id = "abc123"}\n[[packages]]\nname = "b"\ndirectory = {path = "./b", editable = true}\n',
    )
    assert pylock.sources == {"a": "git+https://<redacted-url-userinfo>@example.com/a.git@abc123", "b": "editable:./b"}
    poetry = parse_lockfile(
        "poetry.lock",
        '[[package]]\nname = "c"\nversion = "1.0"\n[package.source]\ntype = "git"\n'
        'url = "https://example.com/c.git"\nreference = "main"\nresolved_reference = "def456"\n[metadata]\n',
    )
    assert poetry.sources == {"c": "git+https://example.com/c.git@def456"}
    reqs = parse_lockfile("requirements", "d @ git+https://example.com/d.git@0123abcd\n")
    assert reqs.sources == {"d": "git+https://example.com/d.git@0123abcd"}
    pipfile = parse_lockfile("pipfile.lock", '{"default": {"e": {"git": "https://example.com/e.git", "ref": "fe12"}}}')
    assert pipfile.sources == {"e": "git+https://example.com/e.git@fe12"}


def test_disagreement_made_by_the_lock_is_in_the_note() -> None:
    section = diff_lockfiles(_side({}, []), _side({"psutil": "5.9.0"}, [("psutil", "5.9.0", "5.8.0")]))
    assert _rows(section) == {("uv.lock:psutil", "added", None, "5.9.0")}
    assert section.note == "with the lock's own changes, b disagrees: uv.lock pins psutil 5.9.0; the job ran 5.8.0"


def test_poetry_git_dependency_source() -> None:
    poetry = parse_lockfile("poetry.lock", (FIXTURES / "poetry-git.lock").read_text())
    uv_b = parse_lockfile("uv.lock", (FIXTURES / "uv-git-b.lock").read_text())
    commit = uv_b.sources["gitdep"].rpartition("@")[2]
    assert poetry.sources["gitdep"].startswith("git+file://") and poetry.sources["gitdep"].endswith(f"@{commit}")
    assert poetry.pins["gitdep"] == "0.1.0" and poetry.groups["gitdep"] == {"main"}


def test_two_captures_with_lock_revisions_rank_no_installed_row(tmp_path: Path) -> None:
    """The same installed environment under two uv.lock revisions (uv's own, a git commit bump and a pin
    this environment does not meet on one side): pin and source rows only, ranked as project changes."""
    from envsnap.capture import capture
    from envsnap.diff import diff

    snaps = []
    for side in "ab":
        work = tmp_path / side
        work.mkdir()
        text = (FIXTURES / f"uv-git-{side}.lock").read_text()
        # a pins the six installed here; b moves it to a version nobody installed
        pinned = SIX if side == "a" else "0.0.1"
        text = text.replace('name = "six"\nversion = "1.17.0"', f'name = "six"\nversion = "{pinned}"')
        (work / "uv.lock").write_text(text)
        snaps.append(capture(cwd=work, git=False, reproducible=True))
    result = diff(snaps[0], snaps[1])
    section = result.env.section("lockfiles")
    assert section is not None
    keys = {c.key for c in section.changes}
    assert "uv.lock:gitdep (source)" in keys and "uv.lock:six" in keys
    assert not any(k.endswith(" (installed)") for k in keys)
    assert f"b disagrees: uv.lock pins six 0.0.1; the job ran {SIX}" in (section.note or "")
    lock_suspects = [s for s in result.suspects if s.kind == "lockfiles"]
    assert {s.subject for s in lock_suspects} >= {"lockfile uv.lock:gitdep (source)", "lockfile uv.lock:six"}
    assert all(s.score <= 0.5 for s in lock_suspects)


def test_same_pins_with_moved_hashes_names_the_packages() -> None:
    a = _side({"six": "1.17.0"}, [], sha256="a" * 64, hashes={"six": ["sha256:aa"]})
    b = _side({"six": "1.17.0"}, [], sha256="b" * 64, hashes={"six": ["sha256:bb"]})
    (change,) = diff_lockfiles(a, b).changes
    assert change.key == "uv.lock" and change.note == "content changed; same pins; hashes changed for six"


def test_requirement_specifier_change_alone_is_no_installed_row() -> None:
    def side(spec: str, drift: list[tuple[str, str, str]]) -> dict[str, Any]:
        data = _side({}, drift)
        data["files"][0].update(path="uv.lock", requirements={"numpy": spec})
        return data

    # pyproject-style requirement tightened from <3 to <2 while numpy 2.2.6 stays installed
    rows = _rows(diff_lockfiles(side("<3", []), side("<2", [("numpy", "<2", "2.2.6")])))
    assert rows == {("uv.lock:numpy", "changed", "<3", "<2")}
    # the same requirement, and the installed numpy moved past it
    rows = _rows(diff_lockfiles(side("<3", []), side("<3", [("numpy", "<3", "3.0.0")])))
    assert rows == {("uv.lock:numpy (installed)", "added", None, "3.0.0")}
