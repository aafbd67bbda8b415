"""``envsnap.testing``: pin a pipeline stage to a baseline snapshot from a pytest test.

::

    from envsnap.testing import assert_stage_matches
    from mypipeline.features import build_features

    @pytest.mark.envsnap_baseline("baselines/churn.envsnap")
    def test_features_did_not_drift(envsnap_inputs):
        out = build_features(envsnap_inputs["events"])
        assert_stage_matches("baselines/churn.envsnap", "features", out, rtol=1e-9)

``envsnap_inputs`` (registered by envsnap's pytest plugin) yields the baseline's recorded inputs, name ->
pandas DataFrame (``kind="arrow"`` in the marker: pyarrow Tables). The baseline is the marker's path
(relative to the test file), else ``--envsnap-baseline PATH``, else the ``envsnap_baseline`` ini value
(relative to the rootdir). A mismatch fails with the data diff: columns, first differing rows, stats shift.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from envsnap.diff.model import TableDiff
    from envsnap.snapshot.model import Snapshot

__all__ = ["assert_stage_matches", "envsnap_inputs", "load_inputs"]

MARKER = "envsnap_baseline"
OPTION = "--envsnap-baseline"
INI = "envsnap_baseline"


def load_inputs(baseline: Snapshot | str | os.PathLike[str], *, kind: str = "pandas") -> dict[str, Any]:
    """The baseline's recorded inputs, name -> pandas DataFrame (``kind="pandas"``) or pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from envsnap.check.baseline import recorded_inputs
    from envsnap.snapshot.reader import opened

    if kind not in ("pandas", "arrow"):
        raise ValueError(f"kind must be 'pandas' or 'arrow', not {kind!r}")
    with opened(baseline) as snap:
        tables = {name: pq.read_table(pa.BufferReader(data)) for name, data in recorded_inputs(snap).items()}
    return {name: t.to_pandas() if kind == "pandas" else t for name, t in tables.items()}


def _stage_parquet(snap: Snapshot, stage: str) -> bytes:
    from envsnap.check.baseline import CheckError, recorded_stages

    stages = recorded_stages(snap)
    entry = next((s for s in stages if s["name"] == stage), None)
    if entry is None:
        raise CheckError(
            f"{snap.path}: the baseline has no stage {stage!r} (its stages: {', '.join(s['name'] for s in stages)})"
        )
    if not entry["parquet"]:
        raise CheckError(f"{snap.path}: stage {stage!r} did not succeed when the baseline was made: no intermediate")
    return snap.read_bytes(entry["parquet"])


def assert_stage_matches(
    baseline: Snapshot | str | os.PathLike[str],
    stage: str,
    output: Any,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    ignore_columns: Sequence[str] = (),
    ignore_added_columns: bool = False,
    columns: Mapping[str, tuple[float, float]] | None = None,
    max_rows: int = 5,
) -> TableDiff:
    """Assert that ``output`` (pandas DataFrame, pyarrow Table or RecordBatch) matches ``stage``'s
    intermediate in ``baseline`` within ``rtol``/``atol`` (``columns``: column -> (rtol, atol)).

    Rows are matched by position. Returns the :class:`~envsnap.diff.model.TableDiff` when it matches;
    raises :class:`AssertionError` showing the differing columns, the first differing rows and the stats
    shift when it does not, and :class:`~envsnap.check.CheckError` when the baseline has no such stage.
    """
    from envsnap.check.render import table_details
    from envsnap.check.tolerance import Tolerance, compare_intermediate
    from envsnap.diff.render.phrasing import table_summary
    from envsnap.snapshot.reader import opened

    tolerance = Tolerance(
        rtol=rtol,
        atol=atol,
        ignore_columns=tuple(ignore_columns),
        ignore_added_columns=ignore_added_columns,
        columns=dict(columns or {}),
    )
    with opened(baseline) as snap:
        expected = _stage_parquet(snap, stage)
        where = snap.path
    table = compare_intermediate(expected, output, name=stage, tolerance=tolerance, max_rows=max_rows)
    if table.diverged:
        lines = [
            f"stage {stage!r} does not match the baseline {where} (rtol={rtol:g}, atol={atol:g}): "
            f"{table_summary(table)}",
            *(f"  {line}" for line in table_details(table, max_rows=max_rows)),
        ]
        raise AssertionError("\n".join(lines))
    return table


def _baseline_path(request: pytest.FixtureRequest) -> tuple[Path, str]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if not marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} needs the baseline's path")
        path = Path(marker.args[0])
        base = Path(str(request.node.path)).parent
        return (path if path.is_absolute() else base / path), str(marker.kwargs.get("kind", "pandas"))
    given = request.config.getoption("envsnap_baseline", None)
    if given:
        return Path(given).absolute(), "pandas"
    ini = request.config.getini(INI)
    if ini:
        path = Path(str(ini))
        return (path if path.is_absolute() else request.config.rootpath / path), "pandas"
    raise pytest.UsageError(
        f"envsnap_inputs needs a baseline: @pytest.mark.{MARKER}(PATH), {OPTION} PATH or the {INI} ini option"
    )


@pytest.fixture
def envsnap_inputs(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The recorded inputs of the test's baseline snapshot (name -> DataFrame, or Table with kind="arrow")."""
    path, kind = _baseline_path(request)
    yield load_inputs(path, kind=kind)
