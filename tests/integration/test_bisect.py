"""``envsnap bisect`` for real: venv replays of a pipeline recorded in two real venvs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsnap.bisect import BisectReport, bisect, replay_bound
from tests.integration.bisect_env import (  # noqa: F401 - fixtures
    bad_python,
    bisect_project,
    cli,
    good_python,
    good_snap,
    record,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_snap(bisect_project: Path, bad_python: Path) -> Path:  # noqa: F811
    return record(bisect_project, bad_python, bisect_project / "bad.envsnap")


def _names(report: BisectReport) -> set[str]:
    return {c.name for c in report.culprit}


def test_one_package_among_many_flips_the_output(good_snap: Path, bad_snap: Path) -> None:  # noqa: F811
    seen: list[tuple[str, str]] = []
    report = bisect(good_snap, bad_snap, engine="venv", stage="localize", progress=lambda k, m: seen.append((k, m)))
    assert report.status == "found", report.message
    assert [c.describe() for c in report.culprit] == ["pytz 2025.2 → 2019.1"]
    changed = {c.name for c in report.delta.changes}
    assert {"pytz", "six", "idna", "packaging", "attrs", "tzdata", "toolz", "zipp"} <= changed
    assert len(report.delta.units) >= 6
    assert report.replays <= replay_bound(len(report.delta.units)), [s.to_dict() for s in report.steps]
    # the log: GOOD alone first, then the whole delta, each with its outcome and time
    assert report.steps[0].changes == () and report.steps[0].outcome == "good"
    assert report.steps[1].phase == "full" and report.steps[1].outcome == "bad"
    assert all(s.seconds > 0 for s in report.steps)
    assert sum(1 for kind, _ in seen if kind == "result") == report.replays
    # the one-line repro really reproduces it
    assert report.repro == f"envsnap replay {good_snap} --engine venv --stage localize --with pytz==2019.1"
    proc = cli("replay", good_snap, "--engine", "venv", "--stage", "localize", "--with", "pytz==2019.1")
    assert proc.returncode == 1 and "first diverging stage: localize" in proc.stdout


def test_coupled_packages_move_as_one_unit(good_snap: Path, bad_snap: Path) -> None:  # noqa: F811
    report = bisect(good_snap, bad_snap, engine="venv", stage="plugins")
    assert report.status == "found", report.message
    assert _names(report) == {"pluggy", "pytest"}
    units = [{c.name for c in unit} for unit in report.delta.units]
    assert {"pluggy", "pytest"} in units
    for step in report.steps:  # never one without the other
        names = {c.split(" ", 1)[0] for c in step.changes}
        assert ("pluggy" in names) == ("pytest" in names), step


def test_cli_renders_the_log_and_json(good_snap: Path, bad_snap: Path) -> None:  # noqa: F811
    proc = cli("bisect", good_snap, bad_snap, "--engine", "venv", "--stage", "localize")
    assert proc.returncode == 0, proc.stderr
    assert "culprit:\n  pytz 2025.2 → 2019.1" in proc.stdout
    assert "--with pytz==2019.1" in proc.stdout
    assert "step 1 (good)" in proc.stderr  # progress, one line per step
    # the second run replays the same subsets: every runtime is reused
    doc = json.loads(cli("bisect", good_snap, bad_snap, "--engine", "venv", "--stage", "localize", "--json").stdout)
    assert doc["status"] == "found" and doc["culprit"][0]["name"] == "pytz"
    assert all(step["cached"] for step in doc["steps"])


@pytest.mark.parametrize(
    ("bad_env", "culprit"),
    [
        # harmful only together: both are returned, the harmless ones are not
        (
            {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "2", "NUMEXPR_MAX_THREADS": "2"},
            {"OMP_NUM_THREADS", "MKL_NUM_THREADS"},
        ),
        # a thread setting alone, among others that do nothing
        ({"KMP_BLOCKTIME": "0", "OMP_NUM_THREADS": "5", "VECLIB_MAXIMUM_THREADS": "2"}, {"KMP_BLOCKTIME"}),
    ],
)
def test_env_setting_culprits(
    good_snap: Path,  # noqa: F811
    good_python: Path,  # noqa: F811
    bisect_project: Path,  # noqa: F811
    tmp_path: Path,
    bad_env: dict[str, str],
    culprit: set[str],
) -> None:
    bad = record(bisect_project, good_python, tmp_path / "bad-env.envsnap", env=bad_env)
    report = bisect(good_snap, bad, engine="venv")
    assert report.status == "found", report.message
    assert _names(report) == culprit
    assert {c.name for c in report.delta.changes} == set(bad_env)  # the delta is the settings, nothing else
    assert all(c.kind == "env" for c in report.culprit)
    for name in culprit:
        assert f"--set-env {name}={bad_env[name]}" in str(report.repro)


def test_same_output_stops_without_replaying(
    good_snap: Path,  # noqa: F811
    good_python: Path,  # noqa: F811
    bisect_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = record(bisect_project, good_python, tmp_path / "same.envsnap", env={"OPENBLAS_NUM_THREADS": "2"})
    proc = cli("bisect", good_snap, other, "--engine", "venv")
    assert proc.returncode == 0, proc.stderr
    assert "same-output" in proc.stdout and "nothing to bisect" in proc.stdout
    assert "step 1" not in proc.stderr


def test_data_change_is_not_an_environment_change(
    good_snap: Path,  # noqa: F811
    good_python: Path,  # noqa: F811
    bisect_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(bisect_project / "events.parquet")
    pq.write_table(table.slice(0, 100), tmp_path / "fewer.parquet")
    other = record(
        bisect_project, good_python, tmp_path / "data.envsnap", "--input", f"events={tmp_path / 'fewer.parquet'}"
    )
    proc = cli("bisect", good_snap, other, "--engine", "venv")
    assert proc.returncode == 1, proc.stderr
    assert "not an environment change" in proc.stdout and "envsnap diff" in proc.stdout


def test_infrastructure_failure_stops_with_the_reason(good_snap: Path, bad_snap: Path) -> None:  # noqa: F811
    proc = cli("bisect", good_snap, bad_snap, "--engine", "docker", "--base-image", "127.0.0.1:9/none/such:1")
    assert proc.returncode == 3
    err = [line for line in proc.stderr.splitlines() if line.startswith("envsnap:")]
    assert len(err) == 1 and "step 1" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors(good_snap: Path) -> None:  # noqa: F811
    assert cli("bisect", good_snap, good_snap, "--engine", "podman").returncode == 2
    proc = cli("bisect", good_snap, good_snap, "--stage", "nope", "--engine", "venv")
    assert proc.returncode == 3 and "no such stage" in proc.stderr
