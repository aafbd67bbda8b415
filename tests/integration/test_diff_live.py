"""diff_env and the live comparisons on real captures: real venvs, real pip installs, real environment changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import capture
from envsnap.diff.env import diff_env
from envsnap.diff.live import current_snapshot, diff_requirements
from envsnap.diff.model import Change, EnvDiff


@pytest.fixture(scope="module")
def two_venvs(tmp_path_factory: pytest.TempPathFactory, venv_tools: Any) -> tuple[Path, Path]:
    """(python of a venv with six 1.16.0, python of one with six 1.17.0 and idna)."""
    root = tmp_path_factory.mktemp("diffvenvs")
    old = venv_tools.make_venv(root / "old")
    venv_tools.pip_install(old, "six==1.16.0")
    new = venv_tools.make_venv(root / "new")
    venv_tools.pip_install(new, "six==1.17.0", "idna==3.7")
    return old, new


def changes(diff: EnvDiff, section: str) -> dict[str, Change]:
    found = diff.section(section)
    assert found is not None
    return {c.key: c for c in found.changes}


@pytest.mark.slow
def test_two_real_venvs_upgrade_and_added_package(two_venvs: tuple[Path, Path]) -> None:
    old, new = two_venvs
    a = capture(python=str(old), git=False)
    b = capture(python=str(new), git=False)
    diff = diff_env(a, b)
    deltas = {d.name: d for d in diff.packages}
    assert (deltas["six"].change, deltas["six"].level) == ("upgraded", "minor")
    assert (deltas["six"].before, deltas["six"].after) == ("1.16.0", "1.17.0")
    assert (deltas["idna"].change, deltas["idna"].after) == ("added", "3.7")
    assert set(deltas) == {"six", "idna"}, "the two venvs differ in exactly these distributions"
    assert changes(diff, "packages")["six"].note == "minor upgrade"
    assert changes(diff, "python")["executable"].after == str(new)
    assert diff.fingerprint_changed
    lock = changes(diff, "lock")
    # The lock section reports the pins that moved (no hashes recorded, so nothing else to report).
    assert {(k, c.kind, c.before, c.after) for k, c in lock.items()} == {
        ("six", "changed", "1.16.0", "1.17.0"),
        ("idna", "added", None, "3.7"),
    }


@pytest.mark.slow
def test_diff_requirements_against_a_written_file(two_venvs: tuple[Path, Path], tmp_path: Path) -> None:
    old, _ = two_venvs
    a = capture(python=str(old), git=False)
    path = tmp_path / "requirements.txt"
    path.write_text(
        "--index-url https://pypi.org/simple\n"
        "six==1.17.0 \\\n"
        f"    --hash=sha256:{'0' * 64}\n"
        "    # via -r requirements.in\n"
        "idna>=3\n"
        "pip\n",
        encoding="utf-8",
    )
    diff = diff_requirements(a, path.read_text(encoding="utf-8"), source=str(path))
    deltas = {d.name: d for d in diff.packages}
    assert (deltas["six"].change, deltas["six"].level, deltas["six"].before) == ("upgraded", "minor", "1.16.0")
    found = changes(diff, "packages")
    assert (found["idna"].kind, found["idna"].note) == ("added", "not pinned: >=3; not installed")
    assert found["pip"].note is not None and found["pip"].note.startswith("not pinned: any version")
    # setuptools may or may not be in a fresh venv (Python >= 3.12 leaves it out): whatever else is installed
    # and not listed counts as removed.
    installed = {d["normalized_name"] for d in a.section("packages")["distributions"]}
    assert {d.name for d in diff.packages if d.change == "removed"} == installed - {"six", "idna", "pip"}
    assert diff.section("packages").note.startswith(f"a = snapshot, b = {path}")  # type: ignore[union-attr]


@pytest.mark.slow
def test_current_snapshot_of_another_python(two_venvs: tuple[Path, Path]) -> None:
    old, _ = two_venvs
    snap = current_snapshot(str(old))
    assert "env/git.json" not in snap
    versions = {d["normalized_name"]: d["version"] for d in snap.section("packages")["distributions"]}
    assert versions["six"] == "1.16.0"


def test_current_snapshot_of_this_interpreter_matches_itself() -> None:
    a, b = current_snapshot(), current_snapshot()
    assert "env/git.json" not in a
    assert a.section("python")["executable"]
    diff = diff_env(a, b)
    assert diff.packages == ()
    assert not diff.fingerprint_changed
    git = diff.section("git")
    assert git is not None and git.note == "cannot compare: a: not captured (skipped); b: not captured (skipped)"


def test_thread_setting_change_shows_in_threads_and_envvars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    a = capture(git=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    b = capture(git=False)
    diff = diff_env(a, b)
    threads = changes(diff, "threads")["configured:OMP_NUM_THREADS"]
    assert (threads.kind, threads.before, threads.after) == ("changed", "2", "8")
    env = changes(diff, "envvars")["OMP_NUM_THREADS"]
    assert (env.kind, env.before, env.after, env.redacted) == ("changed", "2", "8", False)
    assert diff.fingerprint_changed, "thread settings are part of the runtime contract"


def test_redacted_value_change_is_seen_only_under_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVSNAP_REDACTION_KEY", "team-key-1")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "value-one")
    a = capture(git=False)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "value-two")
    b = capture(git=False)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "value-one")
    same = capture(git=False)

    change = changes(diff_env(a, b), "envvars")["MY_SERVICE_TOKEN"]
    assert (change.kind, change.redacted, change.value_changed) == ("changed", True, True)
    assert (change.before, change.after) == (None, None)
    assert "MY_SERVICE_TOKEN" not in changes(diff_env(a, same), "envvars")

    monkeypatch.setenv("ENVSNAP_REDACTION_KEY", "team-key-2")
    other_key = capture(git=False)
    change = changes(diff_env(a, other_key), "envvars")["MY_SERVICE_TOKEN"]
    assert (change.redacted, change.value_changed, change.before, change.after) == (True, None, None, None)
    assert change.note == "cannot tell: different redaction keys"
    rendered = repr(diff_env(a, other_key)) + repr(diff_env(a, b))
    assert "value-one" not in rendered and "value-two" not in rendered
    for snap in (a, b, other_key):
        digest = snap.section("envvars")["variables"]["MY_SERVICE_TOKEN"]["digest"]
        assert digest not in rendered


def test_a_snapshot_matches_its_own_exported_lock_editables_included() -> None:
    """`-e file:///...` names no project; it matches the distribution whose direct_url points there."""
    from envsnap.diff.live import diff_requirements

    snap = capture(git=False)
    editables = [d for d in snap.section("packages")["distributions"] if d["location_kind"] == "editable"]
    assert editables, "envsnap itself is installed editable in the test venv"
    result = diff_requirements(snap, snap.section("lock"), source="requirements.lock")
    assert not result.changed, [c for s in result.sections for c in s.changes]
