"""``envsnap shrink`` for real: a poisoned row among 1,000, and a divergence between two runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.shrink import shrink
from envsnap.snapshot.reader import open_snapshot
from tests.integration.bisect_env import (  # noqa: F401 - fixtures
    HERE,
    bad_python,
    bisect_project,
    cli,
    git_project,
    good_python,
    good_snap,
    record,
)

pytestmark = pytest.mark.slow
POISONED = 637


@pytest.fixture(scope="module")
def failing_snap(tmp_path_factory: pytest.TempPathFactory, good_python: Path) -> Path:  # noqa: F811
    project = git_project(HERE / "shrink_project", tmp_path_factory.mktemp("shrink") / "proj", data="none")
    values = [float(i % 97) for i in range(1000)]
    values[POISONED] = -999.0
    pq.write_table(pa.table({"id": pa.array(range(1000), pa.int64()), "value": values}), project / "rows.parquet")
    return record(project, good_python, project / "failing.envsnap", "--rows", "1000")


def test_one_poisoned_row_among_1000(failing_snap: Path, tmp_path: Path) -> None:
    out = tmp_path / "minimal.envsnap"
    proc = cli("shrink", failing_snap, "--engine", "venv", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "shrunk" and doc["stage"] == "validate"
    assert doc["rows_in"] == 1000 and doc["rows_kept"] == 1
    with open_snapshot(out) as snap:
        rows = pq.read_table(pa.BufferReader(snap.read_bytes("data/inputs/rows.parquet")))
        assert rows.to_pydict() == {"id": [POISONED], "value": [-999.0]}
        assert snap.read_json("data/inputs/rows.json")["rows"] == 1
        assert snap.label is not None and f"1000 rows in, 1 kept, {doc['replays']} replays" in snap.label
        # the intermediate before the failing stage was rerun on the minimal batch
        prepare = pq.read_table(pa.BufferReader(snap.read_bytes("pipeline/stages/01-prepare.parquet")))
        assert prepare.num_rows == 1 and snap.read_json("pipeline/stages/01-prepare.json")["rows"] == 1
    assert cli("verify", out).returncode == 0
    # the minimal snapshot replays to the same failure, and matches its own intermediates
    again = cli("replay", out, "--engine", "venv", "--json", "--no-fidelity")
    stages = {s["name"]: s for s in json.loads(again.stdout)["stages"]}
    assert stages["prepare"]["status"] == "match"
    assert stages["validate"]["status"] == "failed" and "poisoned row(s) [637]" in stages["validate"]["error"]


def test_nothing_to_shrink_is_one_line(good_snap: Path, tmp_path: Path) -> None:  # noqa: F811
    proc = cli("shrink", good_snap, "--engine", "venv", "-o", tmp_path / "x.envsnap")
    assert proc.returncode == 3 and "no stage failed" in proc.stderr and "--against" in proc.stderr
    assert not (tmp_path / "x.envsnap").exists()


def test_divergence_against_good_shrinks_to_one_row(
    good_snap: Path,  # noqa: F811
    bisect_project: Path,  # noqa: F811
    bad_python: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    bad = record(bisect_project, bad_python, tmp_path / "bad.envsnap")
    report = shrink(bad, against=good_snap, stage="localize", engine="venv", output=tmp_path / "min.envsnap")
    assert report.status == "shrunk", report.message
    assert report.rows_kept == 1 and report.rows_in == 240
    # the kept row is one whose São Paulo hour differs between pytz 2019.1 and 2025.2 (southern summer)
    with open_snapshot(report.output or "") as snap:
        row = pq.read_table(pa.BufferReader(snap.read_bytes("data/inputs/events.parquet"))).to_pylist()[0]
    assert row["ts"].month in (11, 12, 1, 2) and row["amount"] >= 0
