"""``envsnap.testing`` in a real pytest run (pytester): the ``envsnap_inputs`` fixture and
``assert_stage_matches`` with its data-diff failure message."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from envsnap.check import CheckError
from envsnap.pipeline import Pipeline
from envsnap.testing import assert_stage_matches, load_inputs

pytest_plugins = ["pytester"]

TESTS = """
import pyarrow.compute as pc
import pytest

from envsnap.testing import assert_stage_matches

BASE = {base!r}


@pytest.mark.envsnap_baseline(BASE, kind="arrow")
def test_same_code_matches(envsnap_inputs):
    t = envsnap_inputs["events"]
    assert_stage_matches(BASE, "double", t.append_column("y", pc.multiply(t["x"], 2.0)))


@pytest.mark.envsnap_baseline(BASE, kind="arrow")
def test_changed_code_fails(envsnap_inputs):
    t = envsnap_inputs["events"]
    assert_stage_matches(BASE, "double", t.append_column("y", pc.multiply(t["x"], 2.5)))


def test_option_gives_pandas_frames(envsnap_inputs):
    frame = envsnap_inputs["events"]
    assert type(frame).__name__ == "DataFrame"
    assert list(frame.columns) == ["x", "k"] and len(frame) == 50
"""


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Module-scoped on purpose: the capture modules load before pytester snapshots ``sys.modules``, so its
    restore does not drop them (a re-import would register the probes twice)."""
    tmp_path = tmp_path_factory.mktemp("testing-baseline")
    table = pa.table({"x": [0.5 * i for i in range(50)], "k": list(range(50))})
    pipeline = Pipeline("p", inputs={"events": table})

    @pipeline.stage()
    def double(t: pa.Table) -> pa.Table:
        return t.append_column("y", pc.multiply(t["x"], 2.0))

    return Path(str(pipeline.run(output=tmp_path / "base.envsnap", git=False).snapshot.path))


def test_fixture_and_assertion_in_a_real_pytest_run(pytester: pytest.Pytester, baseline: Path) -> None:
    pytester.makepyfile(test_stage=TESTS.format(base=str(baseline)))
    result = pytester.runpytest_subprocess("--envsnap-baseline", str(baseline), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "stage 'double' does not match the baseline" in out
    assert "column y: different, 49 differing" in out  # row 0 is 0 * 2 == 0 * 2.5
    assert "row 1: baseline" in out and '"y": 1.25' in out
    assert "stats y: mean 24.5 -> 30.625" in out


def test_fixture_without_a_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(envsnap_inputs):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "envsnap_inputs needs a baseline" in result.stdout.str()


def test_assert_stage_matches_directly(baseline: Path) -> None:
    events = load_inputs(baseline, kind="arrow")["events"]
    same = events.append_column("y", pc.multiply(events["x"], 2.0))
    assert assert_stage_matches(baseline, "double", same.to_pandas()).status in ("identical", "equal")
    nudged = events.append_column("y", pc.add(pc.multiply(events["x"], 2.0), 1e-12))
    with pytest.raises(AssertionError, match="column y: different, 50 differing"):
        assert_stage_matches(baseline, "double", nudged)
    assert assert_stage_matches(baseline, "double", nudged, atol=1e-9).status == "within_tolerance"
    with pytest.raises(CheckError, match="no stage 'tripple' \\(its stages: double\\)"):
        assert_stage_matches(baseline, "tripple", same)
