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


def _expected(snap: Snapshot, stage: str) -> tuple[list[tuple[str, bytes]], list[str] | None]:
    """``[(label, parquet bytes)]`` of ``stage``'s recorded outputs (``stage`` may name a tuple element,
    ``NAME.0``), and the stage's ``columns`` option (names of a 2-D array's columns)."""
    from envsnap.check.baseline import CheckError, recorded_stages

    stages = recorded_stages(snap)
    entry = next((s for s in stages if s["name"] == stage), None)
    element = None
    if entry is None:
        entry = next((s for s in stages if any(label == stage for label, _ in s["outputs"])), None)
        element = stage
    if entry is None:
        raise CheckError(
            f"{snap.path}: the baseline has no stage {stage!r} (its stages: {', '.join(s['name'] for s in stages)})"
        )
    if not entry["outputs"]:
        if entry.get("value_kind") == "none" and entry.get("status") == "ok":
            raise CheckError(f"{snap.path}: stage {stage!r} returned None when the baseline was made: nothing to match")
        raise CheckError(f"{snap.path}: stage {stage!r} did not succeed when the baseline was made: no intermediate")
    outputs = [(label, snap.read_bytes(member)) for label, member in entry["outputs"] if element in (None, label)]
    columns = entry.get("columns") if isinstance(entry.get("columns"), list) else None
    return outputs, columns


def _table_form(value: Any, columns: list[str] | None) -> Any:
    """A stage's value as the table it is recorded as (tables pass as they are)."""
    from envsnap._target.runner import values

    if isinstance(value, (bytes, bytearray)):
        return value
    kind = values.kind_of(value)
    if kind in ("pandas", "arrow"):
        return value
    return values.to_arrow(values.settle(value, kind), kind, columns)


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
    """Assert that ``output`` matches ``stage``'s recorded output in ``baseline`` within ``rtol``/``atol``
    (``columns``: column -> (rtol, atol)).

    ``output`` is what the stage returns: a table (pandas, pyarrow, polars), a numpy array, a Series, a dict
    of metrics, a fitted estimator, ... compared in the table form the recording has (a dict: one row, a
    column per key). For a stage that returned a tuple, pass the whole tuple (each element is compared with
    its recorded one) or name one element, ``stage="NAME.0"``. Rows are matched by position.

    Returns the :class:`~envsnap.diff.model.TableDiff` (of the first output) when it matches; raises
    :class:`AssertionError` showing the differing columns, the first differing rows and the stats shift
    when it does not, and :class:`~envsnap.check.CheckError` when the baseline has no such stage.
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
        expected, stage_columns = _expected(snap, stage)
        where = snap.path
    if len(expected) > 1:
        if type(output) is not tuple or len(output) != len(expected):
            got = f"a tuple of {len(output)}" if type(output) is tuple else type(output).__name__
            raise AssertionError(
                f"stage {stage!r} returned a tuple of {len(expected)} in the baseline {where}, not {got}; pass the "
                f"whole tuple, or one element by its label ({', '.join(label for label, _ in expected)})"
            )
        produced = list(output)
    else:
        produced = [output]
    tables = []
    for (label, data), value in zip(expected, produced, strict=True):
        table = compare_intermediate(
            data, _table_form(value, stage_columns), name=label, tolerance=tolerance, max_rows=max_rows
        )
        if table.diverged:
            lines = [
                f"stage {label!r} does not match the baseline {where} (rtol={rtol:g}, atol={atol:g}): "
                f"{table_summary(table)}",
                *(f"  {line}" for line in table_details(table, max_rows=max_rows)),
            ]
            raise AssertionError("\n".join(lines))
        tables.append(table)
    return tables[0]


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
