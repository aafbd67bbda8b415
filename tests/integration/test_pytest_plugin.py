"""``pytest --envsnap-on-fail DIR``: one snapshot per failing test, through a real pytest run (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

import envsnap

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_passes():
    assert True

def test_fails():
    assert 1 + 1 == 3, "arithmetic is broken"

@pytest.mark.parametrize("n", [1, 2])
def test_param_fails(n):
    raise ValueError(f"bad {n}")

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_setup_error(broken):
    pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_fails_then_teardown_fails(bad_teardown):
    assert False

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_skipped():
    pytest.skip("not here")
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_sample=TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)  # loaded by its pytest11 entry point


def test_one_snapshot_per_failing_test(pytester: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    result = _run(pytester, f"--envsnap-on-fail={out}")
    result.assert_outcomes(passed=1, failed=4, errors=2, xfailed=1, skipped=1)
    snapshots = sorted(out.glob("*.envsnap"))
    labels = {}
    for path in snapshots:
        snap = envsnap.load(path)
        snap.verify()
        labels[snap.label] = snap.section("job")["exception"]
    assert set(labels) == {
        "test_sample.py::test_fails",
        "test_sample.py::test_param_fails[1]",
        "test_sample.py::test_param_fails[2]",
        "test_sample.py::test_setup_error",
        "test_sample.py::test_fails_then_teardown_fails",
    }
    assert labels["test_sample.py::test_fails"]["type"] == "AssertionError"
    assert "arithmetic is broken" in labels["test_sample.py::test_fails"]["message"]
    assert labels["test_sample.py::test_param_fails[2]"]["message"] == "bad 2"
    assert labels["test_sample.py::test_setup_error"]["message"] == "fixture broke"
    assert labels["test_sample.py::test_fails_then_teardown_fails"]["type"] == "AssertionError"
    assert "test_sample.py" in labels["test_sample.py::test_fails"]["traceback"]
    assert any(p.name.endswith("test_sample.py_test_param_fails_1.envsnap") for p in snapshots)
    result.stdout.fnmatch_lines([f"envsnap: 5 snapshot(s) of failing tests written to {out}"])
    result.stdout.fnmatch_lines(["*snapshot of this failure: *test_fails.envsnap"])


def test_without_the_option_nothing_is_written(pytester: pytest.Pytester) -> None:
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=4, errors=2, xfailed=1, skipped=1)
    assert not list(pytester.path.rglob("*.envsnap"))
    assert "envsnap:" not in result.stdout.str()


def test_the_option_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--envsnap-on-fail=DIR*"])
